"""Topic names and topic filters: validation, shared-subscription syntax, reference matching.

Charter: every rule about the *text* of a topic lives here -- what a PUBLISH
may name (MQTT 5.0 section 4.7.3, 3.3.2), what a SUBSCRIBE may ask for (4.7.1),
how ``$share/{ShareName}/{filter}`` splits (4.8.2), and what "matches" means
(4.7.2).  The rules are the same in 3.1.1 (section 4.7) except that 3.1.1 has
no shared subscriptions; whether ``$share/`` is special is the caller's choice.

``matches`` is the readable reference that the fast tries in
``zanzara.topic_tree`` are tested against; the broker never calls it on the
hot path.  ``validate_topic_name`` *is* on the hot path (every PUBLISH), so its
common case is a handful of C-level scans of the string and nothing else.

Pure functions: this module must not import asyncio, sockets, the clock or
anything of zanzara outside ``zanzara.errors`` and ``zanzara.mqtt``.
"""

from __future__ import annotations

from typing import Final

from ..errors import ProtocolError, ProtocolViolation
from .enums import ReasonCode

__all__ = [
    "DEFAULT_MAX_TOPIC_LEVELS",
    "MAX_TOPIC_LENGTH",
    "SHARE_PREFIX",
    "matches",
    "parse_shared",
    "validate_topic_filter",
    "validate_topic_filter_syntax",
    "validate_topic_name",
]

#: Bound on the number of levels, so matching does bounded work (qlobber's
#: ``max_words``): a denial-of-service guard, not a spec rule.
DEFAULT_MAX_TOPIC_LEVELS: Final = 128
#: [MQTT-4.7.3-3] a topic is a UTF-8 string of at most 65,535 bytes.
MAX_TOPIC_LENGTH: Final = 65535
SHARE_PREFIX: Final = "$share/"


def _too_long(text: str, max_length: int) -> bool:
    # A code point encodes to at most 4 UTF-8 bytes, so short strings need no encoding.
    # "surrogatepass" only so that measuring never raises; the codec rejects surrogates.
    return len(text) * 4 > max_length and len(text.encode("utf-8", "surrogatepass")) > max_length


def validate_topic_name(
    name: str, *, max_levels: int = DEFAULT_MAX_TOPIC_LEVELS, max_length: int = MAX_TOPIC_LENGTH
) -> None:
    """Raise ``ProtocolError(TOPIC_NAME_INVALID)`` unless ``name`` may be published to."""
    # Fast path for every PUBLISH: four memchr-speed scans and a length comparison.
    if (
        name
        and "+" not in name
        and "#" not in name
        and "\x00" not in name
        and name.count("/") < max_levels
        and len(name) * 4 <= max_length
    ):
        return
    if not name:
        # [MQTT-4.7.3-1] topic names are at least one character long.
        raise ProtocolError("empty topic name", ReasonCode.TOPIC_NAME_INVALID)
    if "+" in name or "#" in name:
        # [MQTT-3.3.2-2] the topic name in a PUBLISH must not contain wildcard characters.
        raise ProtocolError("wildcard character in topic name", ReasonCode.TOPIC_NAME_INVALID)
    if "\x00" in name:
        # [MQTT-4.7.3-2] topic names must not include the null character U+0000.
        raise ProtocolError("null character in topic name", ReasonCode.TOPIC_NAME_INVALID)
    if name.count("/") >= max_levels:
        raise ProtocolError(f"more than {max_levels} topic levels", ReasonCode.TOPIC_NAME_INVALID)
    if _too_long(name, max_length):
        # [MQTT-4.7.3-3] (and any lower configured limit).
        raise ProtocolError(f"topic name longer than {max_length} bytes", ReasonCode.TOPIC_NAME_INVALID)


def validate_topic_filter(
    topic_filter: str, *, max_levels: int = DEFAULT_MAX_TOPIC_LEVELS, max_length: int = MAX_TOPIC_LENGTH
) -> None:
    """Raise unless ``topic_filter`` may be subscribed to.

    Two kinds of failure, because the spec answers them differently: a
    *malformed* filter (see :func:`validate_topic_filter_syntax`) raises
    :class:`~zanzara.errors.ProtocolViolation`, a Protocol Error that closes the
    connection (MQTT 5 section 4.13, 3.1.1 [MQTT-4.8.0-1]); a well formed
    filter beyond our limits (``max_levels``, ``max_length``) raises
    ``ProtocolError(TOPIC_FILTER_INVALID)``, which SUBACK reports as 0x8F "the
    Topic Filter is correctly formed but is not allowed" (section 3.9.3).
    """
    plain = validate_topic_filter_syntax(topic_filter)
    if _too_long(topic_filter, max_length):
        raise ProtocolError(f"topic filter longer than {max_length} bytes", ReasonCode.TOPIC_FILTER_INVALID)
    if plain.count("/") >= max_levels:
        raise ProtocolError(f"more than {max_levels} topic levels", ReasonCode.TOPIC_FILTER_INVALID)


def validate_topic_filter_syntax(topic_filter: str) -> str:
    """Raise ``ProtocolViolation`` unless ``topic_filter`` is well formed.

    Well formed: the rules of sections 4.7.1, 4.7.3 and 4.8.2, and nothing of
    our limits.  Returns the filter without its ``$share/{ShareName}/`` prefix.
    """
    if not topic_filter:
        # [MQTT-4.7.3-1] topic filters are at least one character long.
        raise ProtocolViolation("empty topic filter")
    if "\x00" in topic_filter:
        # [MQTT-4.7.3-2] topic filters must not include the null character U+0000.
        raise ProtocolViolation("null character in topic filter")
    if _too_long(topic_filter, MAX_TOPIC_LENGTH):
        # [MQTT-4.7.3-3] no topic filter encodes to more than 65,535 bytes.
        raise ProtocolViolation(f"topic filter longer than {MAX_TOPIC_LENGTH} bytes")
    _, plain = parse_shared(topic_filter)
    if "+" not in plain and "#" not in plain:
        return plain
    levels = plain.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != last):
            # [MQTT-4.7.1-1] '#' stands alone in its level and is the last character of the filter
            # (3.1.1: [MQTT-4.7.1-2]).
            raise ProtocolViolation("'#' must be alone in the last level")
        if "+" in level and level != "+":
            # [MQTT-4.7.1-2] '+' occupies an entire level of the filter (3.1.1: [MQTT-4.7.1-3]).
            raise ProtocolViolation("'+' must occupy an entire level")
    return plain


def parse_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split ``$share/{ShareName}/{filter}`` into ``(ShareName, filter)``.

    Any other filter gives ``(None, topic_filter)``; a malformed shared filter
    raises ``ProtocolViolation`` (a Protocol Error, 0x82).  The inner filter
    itself is not validated here (that is :func:`validate_topic_filter`'s job).
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    # The ShareName ends at the first '/', so it can never contain one.
    share_name, sep, plain = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not share_name:
        # [MQTT-4.8.2-1] a ShareName is at least one character long.
        raise ProtocolViolation("empty share name")
    if "+" in share_name or "#" in share_name:
        # [MQTT-4.8.2-2] the ShareName must not contain '/', '+' or '#'.
        raise ProtocolViolation("wildcard character in share name")
    if not sep or not plain:
        # [MQTT-4.8.2-2] the ShareName must be followed by '/' and then a topic filter.
        raise ProtocolViolation("shared subscription without a topic filter")
    return share_name, plain


def matches(topic_filter: str, topic_name: str) -> bool:
    """Does the valid ``topic_filter`` match the valid ``topic_name``?

    The reference implementation, written for clarity.  ``topic_filter`` is
    taken literally: strip a ``$share/{ShareName}/`` prefix with
    :func:`parse_shared` first where shared subscriptions apply.
    """
    if topic_name.startswith("$") and topic_filter.startswith(("+", "#")):
        # [MQTT-4.7.2-1] a filter starting with a wildcard does not match a topic starting with '$'.
        return False
    filter_levels = topic_filter.split("/")
    name_levels = topic_name.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            # 4.7.1.2: '#' matches the parent level too, so "sport/#" matches "sport".
            return True
        if i >= len(name_levels):
            return False
        if level != "+" and level != name_levels[i]:
            # [MQTT-4.7.3-4] compared exactly: no normalization of either string.
            return False
    return len(filter_levels) == len(name_levels)
