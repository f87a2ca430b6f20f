"""The admin HTTP API: push notifications, receipts, clients and sessions, retained messages,
listeners, stats, reload and a server-sent event stream, as a FastAPI application.

Handlers only translate: every query and action is the core's service layer
(``core/service.py``) or the :class:`BrokerAPI` the broker gives it.  Every response is JSON;
every error is ``{"code": "UPPER_SNAKE", "message": "..."}`` with its status (400, 401, 403, 404,
409, 413, 422, 503).  Must not import the broker (it is handed one) nor the transports.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from importlib.metadata import version
from typing import Annotated, Any, Protocol
from urllib.parse import quote, unquote

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import AdminScope, Config, ListenerConfig
from ..core import Core, PublishResult
from ..core.publish import is_reserved
from ..core.service import SessionView
from ..errors import InvalidArgument, StoreError
from ..events import Event
from ..message import Message
from ..metrics import BrokerMetrics
from ..mqtt.properties import Properties
from ..storage import Receipt
from . import schemas as s
from .dashboard import router as dashboard_router
from .events import event_json
from .tokens import OPEN, Grant, TokenTable

__all__ = ["ApiError", "BrokerAPI", "create_app"]

logger = logging.getLogger(__name__)


class BrokerAPI(Protocol):
    """What the admin API needs of the broker (``zanzara.Broker`` is one)."""

    config: Config
    core: Core

    @property
    def ready(self) -> bool: ...

    @property
    def addresses(self) -> list[tuple[str, int]]: ...

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        user_properties: Iterable[tuple[str, str]] = (),
        priority: int | None = None,
        collapse_key: str | None = None,
        ttl: int | None = None,
        client_ids: Iterable[str] | None = None,
        dry_run: bool = False,
        wait: bool = True,
    ) -> PublishResult: ...

    async def committed(self) -> None: ...

    async def receipts(self, message_id: str) -> list[Receipt]: ...

    def reload_files(self) -> dict[str, bool]: ...


class ApiError(Exception):
    """An error answered as ``{"code", "message"}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_REQUEST",
    503: "UNAVAILABLE",
}

# -- path parameters that may hold '/' -------------------------------------------------------------
#
# Client ids, message ids and topics may hold '/', sent as %2F.  The server hands the routes a
# path already decoded, where %2F is a '/' like any other, so /clients/a%2Fb/queue could not be
# told from /clients/a/b/queue and matched no route.  Under /api/ the path is decoded again from
# the raw one, segment by segment, keeping '/' and '%' of a segment encoded; the convertors below
# decode a parameter's value last.


class _Segment(Convertor[str]):
    """One path segment, decoded: a client id or a message id."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


class _Topic(Convertor[str]):
    """The rest of the path, decoded: a topic, whose '/' may come encoded or not."""

    regex = ".*"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return quote(value, safe="/")


register_url_convertor("zsegment", _Segment())
register_url_convertor("ztopic", _Topic())


def _segment_path(raw_path: bytes) -> str:
    segments = (unquote(seg) for seg in raw_path.decode("latin-1").split("/"))
    return "/".join(seg.replace("%", "%25").replace("/", "%2F") for seg in segments)


# Documented on every route: what errors look like.
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorBody} for code in (400, 401, 403, 404, 413, 422, 503)
}


# -- who is asking: a dependency per scope ---------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="A token of [admin] tokens or admin.token_file")


def _grant(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Grant:
    tokens: TokenTable = request.app.state.tokens
    if tokens.open:
        return OPEN
    if credentials is None:
        raise ApiError(401, "UNAUTHORIZED", "an 'Authorization: Bearer <token>' header is required")
    grant = tokens.check(credentials.credentials)
    if grant is None:
        raise ApiError(401, "UNAUTHORIZED", "unknown token")
    return grant


def _scope(needed: AdminScope) -> Callable[[Grant], Grant]:
    def check(grant: Annotated[Grant, Depends(_grant)]) -> Grant:
        if not grant.allows(needed):
            raise ApiError(403, "FORBIDDEN", f"this token's scope is {grant.scope!r}; {needed!r} is needed")
        return grant

    return check


Read = Annotated[Grant, Depends(_scope("read"))]
Publish = Annotated[Grant, Depends(_scope("publish"))]
Admin = Annotated[Grant, Depends(_scope("admin"))]


def create_app(broker: BrokerAPI, tokens: TokenTable) -> FastAPI:  # noqa: C901 - one nested function per route
    """The admin application of ``broker``; ``tokens`` decides who may do what."""
    app = FastAPI(
        title="zanzara admin API",
        version=version("zanzara"),
        description="Push notifications, delivery receipts, clients and sessions of a zanzara MQTT broker.",
        responses=_ERRORS,
    )
    core = broker.core
    admin_cfg = broker.config.admin
    app.state.tokens = tokens

    # -- errors: one shape for all --------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "ERROR")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        if first.get("type") == "json_invalid":
            return _error(400, "MALFORMED_JSON", f"the body is not valid JSON: {first.get('msg')}")
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        return _error(422, "INVALID_REQUEST", message)

    @app.exception_handler(InvalidArgument)
    async def _bad_argument(request: Request, exc: InvalidArgument) -> JSONResponse:
        return _error(422, "INVALID_REQUEST", str(exc))

    @app.exception_handler(StoreError)
    async def _store_down(request: Request, exc: StoreError) -> JSONResponse:
        return _error(503, "STORE_UNAVAILABLE", str(exc))

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        raw_path = request.scope.get("raw_path")
        if raw_path and b"%" in raw_path and request.scope["path"].startswith("/api/"):
            request.scope["path"] = _segment_path(raw_path)
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _error(400, "BAD_REQUEST", "invalid Content-Length")
            if int(length) > admin_cfg.max_body:
                return _error(
                    413, "PAYLOAD_TOO_LARGE", f"the body exceeds admin.max_body ({admin_cfg.max_body})"
                )
        elif request.headers.get("transfer-encoding", "").lower() == "chunked":
            # Without a length the limit could only be found out by reading past it.
            return _error(400, "LENGTH_REQUIRED", "send the body with a Content-Length")
        return await call_next(request)

    # -- health ---------------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process answers (no token needed)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": s.ErrorBody}})
    async def readyz() -> dict[str, str]:
        """Ready once the store is loaded and every listener is up (no token needed)."""
        if not broker.ready:
            raise ApiError(503, "NOT_READY", "the broker is starting or stopping")
        return {"status": "ready"}

    # -- push -----------------------------------------------------------------------------------

    async def publish_one(req: s.PublishRequest, *, wait: bool) -> PublishResult:
        if is_reserved(req.topic):
            # As for clients (MQTT 5.0 section 4.7.2): $SYS is the broker's own tree, and a
            # $share/ name is no topic anyone can subscribe to.  The embedded API may.
            raise InvalidArgument(f"topic {req.topic!r}: $SYS and $share/ are the broker's")
        props = req.properties
        # Most pushes carry none: the broker's shared empty properties then, not one each.
        properties = (
            None
            if props.content_type is None
            and props.response_topic is None
            and props.correlation_data is None
            and props.payload_format_indicator is None
            else Properties(
                content_type=props.content_type,
                response_topic=props.response_topic,
                correlation_data=None
                if props.correlation_data is None
                else s.decode_base64(props.correlation_data, "properties.correlation_data"),
                payload_format_indicator=props.payload_format_indicator,
            )
        )
        return await broker.publish(
            req.topic,
            req.payload_bytes(),
            qos=req.qos,
            retain=req.retain,
            properties=properties,
            user_properties=props.user_properties,
            priority=req.priority,
            collapse_key=req.collapse_key,
            ttl=req.ttl,
            client_ids=req.client_ids,
            dry_run=req.dry_run,
            wait=wait,
        )

    def published(result: PublishResult) -> s.PublishResponse:
        return s.PublishResponse(
            message_id=result.message_id, matched=result.matched, sent=result.sent, queued=result.queued
        )

    @app.post("/api/v1/publish", tags=["push"])
    async def publish(req: s.PublishRequest, _: Publish) -> s.PublishResponse:
        """Publish one notification. QoS 1/2: answered once it is in the store."""
        return published(await publish_one(req, wait=True))

    @app.post("/api/v1/publish/bulk", tags=["push"], response_model=s.BulkPublishResponse)
    async def publish_bulk(req: s.BulkPublishRequest, _: Publish) -> JSONResponse:
        """Publish many, in order, with one store commit; each item is answered on its own."""
        # Plain dicts in the documented shape: up to MAX_BULK response models, each validated
        # again by FastAPI on the way out, cost more than publishing the messages does.
        results: list[dict[str, Any]] = []
        for item in req.messages:
            try:
                r = await publish_one(item, wait=False)
            except (InvalidArgument, ValueError) as exc:
                error = {"code": "INVALID_REQUEST", "message": str(exc)}
                results.append({"ok": False, "result": None, "error": error})
            else:
                result = {
                    "message_id": r.message_id,
                    "matched": r.matched,
                    "sent": r.sent,
                    "queued": r.queued,
                }
                results.append({"ok": True, "result": result, "error": None})
        await broker.committed()
        return JSONResponse({"results": results})

    # -- receipts -------------------------------------------------------------------------------

    async def receipts_of(message_id: str) -> list[Receipt]:
        found = await broker.receipts(message_id)
        if not found:
            raise ApiError(404, "NOT_FOUND", f"no receipts for message {message_id!r}")
        return found

    @app.get("/api/v1/messages/{message_id:zsegment}", tags=["receipts"])
    async def message_summary(message_id: str, _: Read) -> s.MessageSummary:
        """How many recipients the message has, by delivery status."""
        found = await receipts_of(message_id)
        counts: dict[str, int] = {}
        for receipt in found:
            counts[receipt.status.value] = counts.get(receipt.status.value, 0) + 1
        return s.MessageSummary(message_id=message_id, recipients=len(found), by_status=counts)

    @app.get("/api/v1/messages/{message_id:zsegment}/receipts", tags=["receipts"])
    async def message_receipts(
        message_id: str,
        _: Read,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> s.ReceiptPage:
        """Per recipient: when it was queued, sent and acknowledged, or why it expired or was
        dropped; by client id, ``limit`` at a time after ``cursor``."""
        found = sorted(await receipts_of(message_id), key=lambda r: r.client_id)
        chosen = [r for r in found if (status is None or r.status.value == status)]
        if cursor is not None:
            chosen = [r for r in chosen if r.client_id > cursor]
        page = chosen[:limit]
        items = [
            s.ReceiptItem(
                client_id=r.client_id,
                status=r.status.value,
                queued_at=r.queued_at,
                sent_at=r.sent_at,
                acknowledged_at=r.acknowledged_at,
                finished_at=r.finished_at,
                reason=r.reason,
            )
            for r in page
        ]
        more = len(chosen) > limit
        return s.ReceiptPage(items=items, next_cursor=page[-1].client_id if more else None)

    # -- clients and sessions -------------------------------------------------------------------

    def session_or_404(client_id: str) -> SessionView:
        view = core.session(client_id)
        if view is None:
            raise ApiError(404, "NOT_FOUND", f"no session for client {client_id!r}")
        return view

    @app.get("/api/v1/clients", tags=["clients"])
    async def list_clients(
        _: Read,
        prefix: str = "",
        username: str | None = None,
        connected: bool | None = None,
        listener: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> s.ClientPage:
        """Sessions by client id (connected or not), ``limit`` at a time after ``cursor``."""
        views, next_cursor = core.list_sessions(
            prefix=prefix,
            username=username,
            connected=connected,
            listener=listener,
            after=cursor,
            limit=limit,
        )
        return s.ClientPage(items=[_summary(v) for v in views], next_cursor=next_cursor)

    @app.post("/api/v1/clients/kick", tags=["clients"])
    async def kick_many(req: s.KickRequest, _: Admin) -> s.KickResponse:
        """Disconnect several clients (v5: DISCONNECT 0x98 Administrative action)."""
        kicked: list[str] = []
        absent: list[str] = []
        for cid in req.client_ids:
            (kicked if core.kick(cid, with_will=req.will) else absent).append(cid)
        return s.KickResponse(kicked=kicked, not_connected=absent)

    @app.get("/api/v1/clients/{client_id:zsegment}", tags=["clients"])
    async def get_client(client_id: str, _: Read) -> s.ClientDetail:
        """One session and its client: connection, subscriptions, queue, traffic."""
        return _detail(session_or_404(client_id))

    @app.delete("/api/v1/clients/{client_id:zsegment}/connection", tags=["clients"], status_code=204)
    async def kick(client_id: str, _: Admin, will: bool = True) -> Response:
        """Disconnect the client (v5: DISCONNECT 0x98); its session stays. ``will=false``
        discards its will."""
        if not core.kick(client_id, with_will=will):
            raise ApiError(404, "NOT_CONNECTED", f"client {client_id!r} is not connected")
        return Response(status_code=204)

    @app.delete("/api/v1/clients/{client_id:zsegment}", tags=["clients"], status_code=204)
    async def end_session(client_id: str, _: Admin, will: bool = False) -> Response:
        """End the session: disconnect the client, drop its queue and subscriptions."""
        if not core.end_session(client_id, with_will=will):
            raise ApiError(404, "NOT_FOUND", f"no session for client {client_id!r}")
        return Response(status_code=204)

    @app.post("/api/v1/clients/{client_id:zsegment}/subscriptions", tags=["clients"], status_code=201)
    async def subscribe(client_id: str, req: s.SubscribeRequest, _: Admin) -> s.SubscriptionItem:
        """Subscribe the session from the server side; a connected client gets the retained messages."""
        ok = core.subscribe(
            client_id,
            req.topic_filter,
            qos=req.qos,
            no_local=req.no_local,
            retain_as_published=req.retain_as_published,
        )
        if not ok:
            raise ApiError(404, "NOT_FOUND", f"no session for client {client_id!r}")
        [item] = core.list_subscriptions(topic_filter=req.topic_filter, client_id=client_id)
        return _subscription(item)

    @app.delete("/api/v1/clients/{client_id:zsegment}/subscriptions", tags=["clients"], status_code=204)
    async def unsubscribe(client_id: str, topic_filter: str, _: Admin) -> Response:
        """Remove one subscription (``topic_filter`` as a query parameter: it may hold '/' and '#')."""
        if not core.unsubscribe(client_id, topic_filter):
            raise ApiError(404, "NOT_FOUND", f"client {client_id!r} has no subscription {topic_filter!r}")
        return Response(status_code=204)

    @app.get("/api/v1/clients/{client_id:zsegment}/queue", tags=["clients"])
    async def get_queue(client_id: str, _: Read) -> s.QueuePage:
        """What the session holds: in flight first, then queued in delivery order."""
        queue = core.queue(client_id)
        if queue is None:
            raise ApiError(404, "NOT_FOUND", f"no session for client {client_id!r}")
        return s.QueuePage(items=[s.QueuedItem(**_fields(q)) for q in queue])

    @app.delete("/api/v1/clients/{client_id:zsegment}/queue", tags=["clients"])
    async def purge_queue(client_id: str, _: Admin) -> dict[str, int]:
        """Drop what waits in the queue (not what is in flight); receipts say "purged"."""
        purged = core.purge_queue(client_id)
        if purged is None:
            raise ApiError(404, "NOT_FOUND", f"no session for client {client_id!r}")
        return {"purged": purged}

    # -- subscriptions, retained, listeners, stats ----------------------------------------------

    @app.get("/api/v1/subscriptions", tags=["subscriptions"])
    async def list_subscriptions(
        _: Read, topic_filter: str | None = None, client_id: str | None = None
    ) -> s.SubscriptionPage:
        """Every subscription (shared ones with their group), of one filter or client if given."""
        found = core.list_subscriptions(topic_filter=topic_filter, client_id=client_id)
        return s.SubscriptionPage(items=[_subscription(v) for v in found])

    @app.get("/api/v1/retained", tags=["retained"])
    async def list_retained(
        _: Read,
        topic_filter: str = "#",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> s.RetainedPage:
        """Retained messages whose topics match ``topic_filter``, by topic."""
        try:
            found = core.retained(topic_filter)
        except ValueError as exc:
            raise ApiError(422, "INVALID_REQUEST", f"topic_filter: {exc}") from None
        if cursor is not None:
            found = [m for m in found if m.topic > cursor]
        page = found[:limit]
        more = len(found) > limit
        return s.RetainedPage(
            items=[_retained(m) for m in page], next_cursor=page[-1].topic if more else None
        )

    @app.get("/api/v1/retained/{topic:ztopic}", tags=["retained"])
    async def get_retained(topic: str, _: Read) -> s.RetainedItem:
        message = core.retained_message(topic)
        if message is None:
            raise ApiError(404, "NOT_FOUND", f"no retained message on {topic!r}")
        return _retained(message)

    @app.delete("/api/v1/retained/{topic:ztopic}", tags=["retained"], status_code=204)
    async def delete_retained(topic: str, _: Admin) -> Response:
        if not core.delete_retained(topic):
            raise ApiError(404, "NOT_FOUND", f"no retained message on {topic!r}")
        return Response(status_code=204)

    @app.get("/api/v1/listeners", tags=["broker"])
    async def listeners(_: Read) -> list[s.ListenerInfo]:
        """The MQTT listeners and the addresses they are bound to."""
        return [
            _listener(lc, host, port)
            for lc, (host, port) in zip(broker.config.listeners, broker.addresses, strict=False)
        ]

    @app.get("/api/v1/stats", tags=["broker"])
    async def stats(_: Read) -> s.StatsResponse:
        """The broker's counters and current sizes."""
        state = core.state
        sessions = state.sessions.values()
        counters = core.stats.counters()
        counters["events_dropped"] = core.events.dropped
        return s.StatsResponse(
            connections=len(state.clients),
            sessions=len(state.sessions),
            subscriptions=len(state.subscriptions),
            retained_messages=len(state.retained),
            queued_messages=sum(x.queued for x in sessions),
            inflight_messages=sum(len(x.inflight) for x in sessions),
            counters=counters,
        )

    @app.post("/api/v1/reload", tags=["broker"])
    async def reload(_: Admin) -> s.ReloadResponse:
        """Re-read the password, ACL and token files and the configuration's log level (as SIGHUP does)."""
        done = broker.reload_files()
        reloaded = [name for name, ok in done.items() if ok]
        failed = [name for name, ok in done.items() if not ok]
        return s.ReloadResponse(reloaded=reloaded, failed=failed)

    # -- metrics --------------------------------------------------------------------------------

    metrics = BrokerMetrics(core)

    @app.get("/metrics", tags=["metrics"], response_class=Response)
    async def prometheus(request: Request, _: Read) -> Response:
        """Prometheus text (or OpenMetrics, when asked) of the broker's counters, read now."""
        body, content_type = metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    # -- events ---------------------------------------------------------------------------------

    @app.get("/api/v1/events", tags=["events"], response_class=StreamingResponse)
    async def events(_: Read, names: str | None = None) -> StreamingResponse:
        """Broker events as server-sent events (``names``: a comma-separated filter, e.g.
        ``client_connected,dropped``).  A reader that falls ``admin.events_buffer`` events
        behind misses the ones that do not fit, and is told how many in a ``missed`` event."""
        wanted = tuple(n for n in (names or "").split(",") if n)
        return StreamingResponse(
            _event_stream(core, wanted, admin_cfg.events_buffer),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app.include_router(dashboard_router)  # the page at / and its files (no data, no token)
    return app


async def _event_stream(core: Core, names: tuple[str, ...], size: int) -> AsyncIterator[str]:
    queue: asyncio.Queue[Event] = asyncio.Queue(size)
    missed = 0

    def put(event: Event) -> None:
        nonlocal missed
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            missed += 1

    remove = core.events.add(put, *names)
    try:
        yield ": zanzara events\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=15.0)
            except TimeoutError:
                yield ": keep-alive\n\n"  # proxies close idle streams
                continue
            if missed:
                yield f"event: missed\ndata: {json.dumps({'count': missed})}\n\n"
                missed = 0
            yield f"event: {event.name}\ndata: {json.dumps(event_json(event))}\n\n"
    finally:
        remove()


def _fields(obj: object) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in type(obj).__slots__}  # type: ignore[attr-defined]


def _summary(v: SessionView) -> s.ClientSummary:
    return s.ClientSummary(
        client_id=v.client_id,
        connected=v.connected,
        username=v.username,
        address=v.address,
        listener=v.listener,
        protocol_version=v.protocol_version,
        connected_at=v.connected_at,
        disconnected_at=v.disconnected_at,
        session_expiry_interval=v.session_expiry_interval,
        queued_messages=v.queued_messages,
        inflight=v.inflight,
    )


def _detail(v: SessionView) -> s.ClientDetail:
    t = v.traffic
    return s.ClientDetail(
        **_summary(v).model_dump(),
        keep_alive=v.keep_alive,
        clean_start=v.clean_start,
        subscriptions=[_subscription(x) for x in v.subscriptions],
        queued_bytes=v.queued_bytes,
        max_inflight=v.max_inflight,
        max_queued_messages=v.max_queued_messages,
        max_queued_bytes=v.max_queued_bytes,
        traffic=s.TrafficInfo(
            messages_received=t.messages_received,
            messages_sent=t.messages_sent,
            bytes_received=t.bytes_received,
            bytes_sent=t.bytes_sent,
        ),
        messages_dropped=v.messages_dropped,
    )


def _subscription(v: Any) -> s.SubscriptionItem:
    return s.SubscriptionItem(**_fields(v))


def _retained(m: Message) -> s.RetainedItem:
    try:
        text: str | None = m.payload.decode()
        b64 = None
    except UnicodeDecodeError:
        text, b64 = None, base64.b64encode(m.payload).decode()
    return s.RetainedItem(
        topic=m.topic,
        qos=m.qos,
        payload=text,
        payload_base64=b64,
        payload_size=len(m.payload),
        message_id=m.message_id,
        created_at=m.created_at,
        expires_at=m.expires_at,
    )


def _listener(lc: ListenerConfig, host: str, port: int) -> s.ListenerInfo:
    scheme = {("mqtt", False): "mqtt", ("mqtt", True): "mqtts", ("ws", False): "ws", ("ws", True): "wss"}[
        (lc.protocol, lc.tls)
    ]
    return s.ListenerInfo(
        name=lc.name or f"{lc.host}:{lc.port}",
        protocol=lc.protocol,
        host=host,
        port=port,
        tls=lc.tls,
        url=f"{scheme}://{host}:{port}",
    )
