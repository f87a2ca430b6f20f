"""Broker events as JSON objects, for the admin API's event stream.

Payloads are never included (they may be large or private): a message is its topic, QoS, id and
size.
"""

from __future__ import annotations

from typing import Any

from ..events import (
    ClientConnected,
    ClientDisconnected,
    Delivered,
    Dropped,
    Event,
    Published,
    Subscribed,
    Unsubscribed,
)
from ..hooks import ClientInfo
from ..message import Message

__all__ = ["event_json"]


def event_json(event: Event) -> dict[str, Any]:
    """``event`` as a JSON-ready dict; ``event`` names its kind."""
    match event:
        case ClientConnected(client=client, session_present=present):
            return {"event": event.name, **_client(client), "session_present": present}
        case ClientDisconnected(client=client, reason=reason):
            return {"event": event.name, **_client(client), "reason": reason.value}
        case Published(client_id=cid, message=message):
            return {"event": event.name, "client_id": cid, **_message(message)}
        case Delivered(client_id=cid, message=message, qos=qos):
            return {"event": event.name, "client_id": cid, **_message(message), "qos": qos}
        case Dropped(client_id=cid, message=message, reason=reason):
            return {"event": event.name, "client_id": cid, **_message(message), "reason": reason}
        case Subscribed(client=client, subscriptions=subs, reason_codes=codes):
            filters = [{"topic_filter": sub.topic_filter, "qos": sub.qos} for sub in subs]
            return {
                "event": event.name,
                **_client(client),
                "subscriptions": filters,
                "reason_codes": list(codes),
            }
        case Unsubscribed(client=client, topic_filters=filters):
            return {"event": event.name, **_client(client), "topic_filters": list(filters)}
    raise TypeError(f"not an event: {event!r}")


def _client(info: ClientInfo) -> dict[str, Any]:
    return {
        "client_id": info.client_id,
        "username": info.username,
        "address": info.address,
        "listener": info.listener,
        "protocol_version": int(info.protocol_version),
    }


def _message(message: Message) -> dict[str, Any]:
    return {
        "topic": message.topic,
        "message_id": message.message_id,
        "qos": message.qos,
        "retain": message.retain,
        "payload_size": len(message.payload),
    }
