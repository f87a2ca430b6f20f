"""Building the application message: expiry, priority and collapse key, by the push rules.

The publisher's own MQTT 5 Message Expiry Interval and ``priority`` /
``collapse-key`` user properties come first; the ``[push]`` topic rules fill
what it did not say (first matching rule wins, cached per topic), and
``default_ttl`` what no rule says.  Messages that may be stored (QoS 1/2 or
retained) get a message id, under which their receipts are kept.
"""

from __future__ import annotations

from ..ids import new_message_id
from ..message import Message, build_message
from ..mqtt.properties import EMPTY_PROPERTIES, Properties
from ..mqtt.topics import matches
from .state import CoreState

__all__ = ["make_message"]

# Per-hop properties a stored message must not keep (the next hop sets its own).
_PER_HOP = ("topic_alias", "subscription_identifiers", "message_expiry_interval")
# The per-topic rules cache is cleared past this many topics.
MAX_CACHED_RULES = 10_000


def make_message(
    state: CoreState,
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    props: Properties,
    sender: str | None,
    *,
    priority: int | None = None,
    collapse_key: str | None = None,
    ttl: int | None = None,
) -> Message:
    """The message to route, with its expiry, priority and collapse key settled."""
    now = state.clock()
    expires_at = None
    if props is not EMPTY_PROPERTIES:
        if props.message_expiry_interval is not None:
            expires_at = now + props.message_expiry_interval
        if props.topic_alias is not None or props.message_expiry_interval is not None:
            props = props.without(*_PER_HOP)
        for key, value in props.user_properties:
            # Push metadata from MQTT 5 publishers; the properties are forwarded unchanged.
            if key == "priority" and priority is None:
                priority = _parse_priority(value)
            elif key == "collapse-key" and collapse_key is None:
                collapse_key = value
    if expires_at is None or priority is None:
        rule_priority, rule_ttl = _topic_rules(state, topic)
        if priority is None:
            priority = rule_priority
        if expires_at is None:
            ttl = ttl or rule_ttl
            if ttl:
                expires_at = now + ttl
    message_id = new_message_id() if qos or retain else None
    return build_message(
        topic, payload, qos, retain, props, expires_at, priority, sender, now, message_id, collapse_key
    )


def _topic_rules(state: CoreState, topic: str) -> tuple[int, int | None]:
    """(priority, ttl) from the [push] topic rules; first match wins, cached per topic."""
    cache = state.rules_cache
    cached = cache.get(topic)
    if cached is not None:
        return cached
    push = state.push
    priority = next((r.priority for r in push.priority if matches(r.topic, topic)), 0)
    ttl = next((r.ttl for r in push.ttl if matches(r.topic, topic)), push.default_ttl)
    if len(cache) > MAX_CACHED_RULES:
        cache.clear()
    result = cache[topic] = (priority, ttl)
    return result


def _parse_priority(value: str) -> int | None:
    try:
        priority = int(value)
    except ValueError:
        return None
    return min(max(priority, 0), 255)
