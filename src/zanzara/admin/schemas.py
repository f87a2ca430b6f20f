"""The admin API's request and response bodies (pydantic models: FastAPI validates them and
publishes them in the OpenAPI document).

Field names are the JSON ones.  Requests forbid unknown fields, so a misspelt option is a 422
naming it instead of being ignored.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BulkItemResult",
    "BulkPublishRequest",
    "BulkPublishResponse",
    "ClientDetail",
    "ClientPage",
    "ClientSummary",
    "ErrorBody",
    "KickRequest",
    "KickResponse",
    "ListenerInfo",
    "MessageProperties",
    "MessageSummary",
    "PublishRequest",
    "PublishResponse",
    "QueuePage",
    "QueuedItem",
    "ReceiptItem",
    "ReceiptPage",
    "ReloadResponse",
    "RetainedItem",
    "RetainedPage",
    "StatsResponse",
    "SubscribeRequest",
    "SubscriptionItem",
    "SubscriptionPage",
    "TrafficInfo",
]

# One JSON integer each: what MQTT's fields can hold.
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
MAX_BULK = 10_000
MAX_TARGETS = 10_000


def _utf8(text: str) -> str:
    # JSON's "\ud800" escapes decode to lone surrogates, which have no UTF-8 form: caught here
    # they are a 422, not an encoding error when the message is sent to a subscriber.
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8 text (a lone surrogate)") from None
    return text


def _mqtt_string(text: str) -> str:
    # MQTT's UTF-8 strings must not hold U+0000 [MQTT-1.5.4-2]: a subscriber may close on it.
    if "\x00" in _utf8(text):
        raise ValueError("null character (U+0000) not allowed")
    return text


# Text that goes out as an MQTT UTF-8 string (topics, properties) or as the payload's bytes.
MqttString = Annotated[str, AfterValidator(_mqtt_string)]
Utf8Text = Annotated[str, AfterValidator(_utf8)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error response: a stable code to branch on and a message for people."""

    code: str = Field(examples=["NOT_FOUND"])
    message: str


class MessageProperties(_Request):
    """MQTT 5 properties forwarded to subscribers (3.1.1 subscribers get the payload only)."""

    content_type: MqttString | None = Field(default=None, max_length=_U16)
    response_topic: MqttString | None = Field(default=None, min_length=1, max_length=_U16)
    # Base64, as it is binary data in MQTT.
    correlation_data: str | None = Field(default=None, max_length=(_U16 * 4) // 3 + 4)
    payload_format_indicator: Literal[0, 1] | None = None
    user_properties: list[tuple[MqttString, MqttString]] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _correlation_is_base64(self) -> Self:
        if self.correlation_data is not None:
            decode_base64(self.correlation_data, "properties.correlation_data")
        return self


class PublishRequest(_Request):
    """One notification to publish."""

    topic: MqttString = Field(min_length=1, max_length=_U16, examples=["devices/42/alerts"])
    # The payload: UTF-8 text, or base64 for binary data (at most one of the two; neither: empty).
    payload: Utf8Text | None = None
    payload_base64: str | None = None
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    # 0-255, higher first, for sessions that have it queued.
    priority: int | None = Field(default=None, ge=0, le=255)
    # Seconds until it expires (MQTT 5 Message Expiry Interval).
    ttl: int | None = Field(default=None, ge=1, le=_U32)
    # A newer queued message with the same key replaces this one.
    collapse_key: str | None = Field(default=None, min_length=1, max_length=1024)
    properties: MessageProperties = Field(default_factory=MessageProperties)
    # Deliver only to these sessions among the matching ones (targeted push).
    client_ids: list[str] | None = Field(default=None, max_length=MAX_TARGETS)
    # Check and count matches; publish nothing.
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_payload(self) -> Self:
        if self.payload is not None and self.payload_base64 is not None:
            raise ValueError("give payload or payload_base64, not both")
        if self.payload_base64 is not None:
            decode_base64(self.payload_base64, "payload_base64")
        return self

    def payload_bytes(self) -> bytes:
        if self.payload_base64 is not None:
            return decode_base64(self.payload_base64, "payload_base64")
        return (self.payload or "").encode()


def decode_base64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} is not valid base64") from None


class PublishResponse(BaseModel):
    """What a publish did: the id to look its receipts up with, and where it went."""

    # None for QoS 0 (not tracked) and dry runs.
    message_id: str | None
    matched: int = Field(description="sessions the topic matched (a shared group counts once)")
    sent: int = Field(description="of those, sent it now")
    queued: int = Field(description="of those, queued it for later (offline, or a full window)")


class BulkPublishRequest(_Request):
    """Many notifications, published in order; one store commit for all of them."""

    messages: list[PublishRequest] = Field(min_length=1, max_length=MAX_BULK)


class BulkItemResult(BaseModel):
    """One item of a bulk publish: its result, or why it was refused."""

    ok: bool
    result: PublishResponse | None = None
    error: ErrorBody | None = None


class BulkPublishResponse(BaseModel):
    """One result per item of the request, in its order."""

    results: list[BulkItemResult]


class MessageSummary(BaseModel):
    """A message's delivery receipts, counted by status."""

    message_id: str
    recipients: int
    by_status: dict[str, int]


class ReceiptItem(BaseModel):
    """What happened to one message for one recipient (wall-clock seconds)."""

    client_id: str
    status: str
    queued_at: float | None
    sent_at: float | None
    acknowledged_at: float | None
    finished_at: float | None
    reason: str | None


class ReceiptPage(BaseModel):
    """A page of receipts by client id; ``next_cursor`` as ``cursor`` for the next one."""

    items: list[ReceiptItem]
    next_cursor: str | None


class TrafficInfo(BaseModel):
    """PUBLISH packets and bytes through the client's connection, each way."""

    messages_received: int
    messages_sent: int
    bytes_received: int
    bytes_sent: int


class ClientSummary(BaseModel):
    """A session and its connection (connection fields are null while offline)."""

    client_id: str
    connected: bool
    username: str | None
    address: str | None
    listener: str | None
    protocol_version: int | None
    connected_at: float | None
    disconnected_at: float | None
    session_expiry_interval: int
    queued_messages: int
    inflight: int


class SubscriptionItem(BaseModel):
    """One subscription of one session (``share_group`` set for ``$share/`` filters)."""

    client_id: str
    topic_filter: str
    qos: int
    no_local: bool
    retain_as_published: bool
    subscription_id: int | None
    share_group: str | None


class ClientDetail(ClientSummary):
    """Everything about one session and its client."""

    keep_alive: int | None
    clean_start: bool | None
    subscriptions: list[SubscriptionItem]
    queued_bytes: int
    max_inflight: int
    max_queued_messages: int
    max_queued_bytes: int
    traffic: TrafficInfo
    messages_dropped: int


class ClientPage(BaseModel):
    """A page of sessions; pass ``next_cursor`` as ``cursor`` for the next one (null: the last)."""

    items: list[ClientSummary]
    next_cursor: str | None


class KickRequest(_Request):
    """Clients to disconnect; ``will``: publish their wills (default) or discard them."""

    client_ids: list[str] = Field(min_length=1, max_length=MAX_TARGETS)
    will: bool = True


class KickResponse(BaseModel):
    """Who was disconnected, and who was not connected."""

    kicked: list[str]
    not_connected: list[str]


class SubscribeRequest(_Request):
    """A subscription made from the server side."""

    topic_filter: MqttString = Field(min_length=1, max_length=_U16)
    qos: Literal[0, 1, 2] = 0
    no_local: bool = False
    retain_as_published: bool = False


class SubscriptionPage(BaseModel):
    """Subscriptions, by client id."""

    items: list[SubscriptionItem]


class QueuedItem(BaseModel):
    """One message in flight to, or queued for, a session."""

    message_id: str | None
    topic: str
    qos: int
    priority: int
    payload_size: int
    status: str
    queued_at: float
    expires_at: float | None
    collapse_key: str | None


class QueuePage(BaseModel):
    """A session's messages: in flight first, then queued in delivery order."""

    items: list[QueuedItem]


class RetainedItem(BaseModel):
    """A retained message; the payload as text when it is UTF-8, else in ``payload_base64``."""

    topic: str
    qos: int
    payload: str | None
    payload_base64: str | None
    payload_size: int
    message_id: str | None
    created_at: float
    expires_at: float | None


class RetainedPage(BaseModel):
    """A page of retained messages by topic; ``next_cursor`` as ``cursor`` for the next one."""

    items: list[RetainedItem]
    next_cursor: str | None


class ListenerInfo(BaseModel):
    """An MQTT listener and the address it is bound to."""

    name: str
    protocol: str
    host: str
    port: int
    tls: bool
    url: str


class StatsResponse(BaseModel):
    """The broker's counters and current sizes."""

    connections: int
    sessions: int
    subscriptions: int
    retained_messages: int
    queued_messages: int
    inflight_messages: int
    counters: dict[str, int]


class ReloadResponse(BaseModel):
    """What a reload read again, and what failed (and kept its previous state)."""

    reloaded: list[str]
    failed: list[str]
