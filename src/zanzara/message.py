"""The application message: stored once, referenced by every queue that holds it.

A :class:`Message` is what a publisher sent, minus what belongs to one hop
(packet id, DUP, topic alias, subscription identifiers).  Each recipient's
queue and inflight entries point at the same object (Mosquitto's
``mosquitto_msg_store``), so fan-out never copies payloads.

Pure: time is passed in as ``now`` (seconds, any monotonic origin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .mqtt.properties import EMPTY_PROPERTIES, Properties

__all__ = ["Message", "build_message"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One application message as the broker keeps it, shared by every queue, hook and store.

    Immutable: a per-recipient change (QoS, retain as published, expiry left) is made when its
    PUBLISH is built, never here.  The publish path builds them with :func:`build_message`.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    # Properties forwarded unaltered to subscribers (section 3.3.2.3): payload format,
    # content type, response topic, correlation data, user properties.  Topic alias,
    # subscription identifiers and message expiry are per hop and are not kept here.
    properties: Properties = EMPTY_PROPERTIES
    # Absolute deadline on the broker's clock; None: never expires.
    expires_at: float | None = None
    priority: int = 0
    # The publishing client (None for messages published by the broker itself);
    # needed for the no-local subscription option [MQTT-3.8.3-3].
    sender: str | None = None
    created_at: float = 0.0
    # Broker-assigned id for delivery tracking (time-sortable); None when untracked.
    message_id: str | None = None
    # A newer message with the same key replaces this one while it is still queued
    # (FCM/APNs collapse keys).
    collapse_key: str | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def remaining_expiry(self, now: float) -> int | None:
        """Seconds left, rounded up, as forwarded in the PUBLISH [MQTT-3.3.2-6]."""
        if self.expires_at is None:
            return None
        return max(0, math.ceil(self.expires_at - now))


# Message stays frozen (every recipient, hook and store shares one object), but the broker
# builds one per publish: filling the slots through their descriptors costs about a third of
# the frozen ``__init__`` (one ``object.__setattr__`` call per field).
_FIELDS = (
    "topic", "payload", "qos", "retain", "properties", "expires_at", "priority", "sender",
    "created_at", "message_id", "collapse_key",
)  # fmt: skip
if set(_FIELDS) != {f.name for f in fields(Message)}:
    raise TypeError("build_message must fill every field of Message")
(_topic, _payload, _qos, _retain, _properties, _expires_at, _priority, _sender, _created_at,
 _message_id, _collapse_key) = (getattr(Message, name).__set__ for name in _FIELDS)  # fmt: skip
_new = object.__new__


def build_message(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties: Properties,
    expires_at: float | None,
    priority: int,
    sender: str | None,
    created_at: float,
    message_id: str | None,
    collapse_key: str | None,
) -> Message:
    """``Message(...)`` with every field given, for the publish path."""
    m: Message = _new(Message)
    _topic(m, topic)
    _payload(m, payload)
    _qos(m, qos)
    _retain(m, retain)
    _properties(m, properties)
    _expires_at(m, expires_at)
    _priority(m, priority)
    _sender(m, sender)
    _created_at(m, created_at)
    _message_id(m, message_id)
    _collapse_key(m, collapse_key)
    return m
