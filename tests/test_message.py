"""The publish path's Message builder makes the same frozen value as the dataclass constructor."""

from __future__ import annotations

import dataclasses

import pytest

from zanzara.message import Message, build_message
from zanzara.mqtt.properties import Properties


def test_build_message_equals_the_constructor_and_stays_frozen() -> None:
    props = Properties(user_properties=(("k", "v"),))
    fields = {
        "topic": "a/b", "payload": b"\x00x", "qos": 2, "retain": True, "properties": props,
        "expires_at": 12.5, "priority": 9, "sender": "dev", "created_at": 3.0,
        "message_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "collapse_key": "score",
    }  # fmt: skip
    built = build_message(**fields)  # type: ignore[arg-type]
    assert built == Message(**fields)  # type: ignore[arg-type]
    # Every field is set (a field added to Message but not to build_message fails here).
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(Message)} == fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.priority = 0  # type: ignore[misc]
    assert hash(built) == hash(Message(**fields))  # type: ignore[arg-type]
