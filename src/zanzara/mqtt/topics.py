"""Topic names and filters: validation, shared-subscription syntax, reference matching.

Rules from MQTT 5.0 section 4.7 (identical in 3.1.1 section 4.7) and 4.8.2.
Pure functions; the broker's fast matcher is the trie in ``topic_tree.py``,
``matches`` here is the reference it is tested against.
"""

from __future__ import annotations

from typing import Final

from ..errors import ProtocolError
from .enums import ReasonCode

__all__ = [
    "DEFAULT_MAX_TOPIC_LEVELS",
    "SHARE_PREFIX",
    "matches",
    "parse_shared",
    "validate_topic_filter",
    "validate_topic_name",
]

DEFAULT_MAX_TOPIC_LEVELS: Final = 128
SHARE_PREFIX: Final = "$share/"


def validate_topic_name(
    name: str, *, max_levels: int = DEFAULT_MAX_TOPIC_LEVELS, max_length: int = 65535
) -> None:
    """Raise ProtocolError(TOPIC_NAME_INVALID) unless ``name`` may be published to."""
    if not name:
        raise ProtocolError("empty topic name", ReasonCode.TOPIC_NAME_INVALID)  # [MQTT-4.7.3-1]
    if "+" in name or "#" in name:
        raise ProtocolError("wildcard in topic name", ReasonCode.TOPIC_NAME_INVALID)  # [MQTT-3.3.2-2]
    if name.count("/") >= max_levels:
        raise ProtocolError(f"more than {max_levels} topic levels", ReasonCode.TOPIC_NAME_INVALID)
    if len(name) > max_length // 4 and len(name.encode()) > max_length:
        raise ProtocolError("topic name too long", ReasonCode.TOPIC_NAME_INVALID)  # [MQTT-4.7.3-3]


def validate_topic_filter(
    topic_filter: str, *, max_levels: int = DEFAULT_MAX_TOPIC_LEVELS, max_length: int = 65535
) -> None:
    """Raise ProtocolError(TOPIC_FILTER_INVALID) unless ``topic_filter`` may be subscribed to."""
    _, plain = parse_shared(topic_filter)
    if not plain:
        raise ProtocolError("empty topic filter", ReasonCode.TOPIC_FILTER_INVALID)  # [MQTT-4.7.3-1]
    if len(topic_filter) > max_length // 4 and len(topic_filter.encode()) > max_length:
        raise ProtocolError("topic filter too long", ReasonCode.TOPIC_FILTER_INVALID)
    levels = plain.split("/")
    if len(levels) > max_levels:
        raise ProtocolError(f"more than {max_levels} topic levels", ReasonCode.TOPIC_FILTER_INVALID)
    if "+" not in plain and "#" not in plain:
        return
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != last):
            # [MQTT-4.7.1-1] '#' alone in its level and the last character of the filter.
            raise ProtocolError("'#' must be the last level, alone", ReasonCode.TOPIC_FILTER_INVALID)
        if "+" in level and level != "+":
            # [MQTT-4.7.1-2] '+' must occupy an entire level.
            raise ProtocolError("'+' must occupy a whole level", ReasonCode.TOPIC_FILTER_INVALID)


def parse_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split ``$share/{group}/{filter}`` into (group, filter); (None, topic_filter) otherwise."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    rest = topic_filter[len(SHARE_PREFIX) :]
    group, sep, plain = rest.partition("/")
    if not group or "+" in group or "#" in group:
        # [MQTT-4.8.2-2] the ShareName must not contain '/', '+' or '#' and is at least one character.
        raise ProtocolError("invalid share name", ReasonCode.TOPIC_FILTER_INVALID)
    if not sep or not plain:
        # [MQTT-4.8.2-1] a shared subscription needs a topic filter after the share name.
        raise ProtocolError("shared subscription without a topic filter", ReasonCode.TOPIC_FILTER_INVALID)
    return group, plain


def matches(topic_filter: str, topic_name: str) -> bool:
    """Does ``topic_filter`` (without $share prefix) match ``topic_name``? Reference implementation."""
    if topic_name.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # [MQTT-4.7.2-1]
    f = topic_filter.split("/")
    t = topic_name.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True  # also matches the parent level: "sport/#" matches "sport" (4.7.1.2)
        if i >= len(t):
            return False
        if level != "+" and level != t[i]:
            return False
    return len(f) == len(t)
