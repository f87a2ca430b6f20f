"""MQTT over WebSocket (MQTT 5.0 section 6, RFC 6455), served with the ``websockets`` library.

``websockets`` (its asyncio server) does the HTTP upgrade, the framing, ping/pong
and the closing handshake.  The payload of every binary data frame goes
straight into the same :class:`~.connection.MqttConnection` that serves TCP,
as a byte stream: an MQTT packet may span frames and a frame may hold several
packets [MQTT-6.0.0-2].  Frames are not gathered into messages
first (``recv()`` is not used), so there is no task or copy per message.

Output keeps the TCP path's shape: what a connection queues during one loop
iteration leaves as one binary frame [MQTT-6.0.0-1].  Backpressure is the TCP
socket's: when its write buffer passes ``write_limit`` the connections
publishing into it stop reading, and a paused connection pauses its socket.

The handshake refuses a client that offers neither ``mqtt`` nor ``mqttv3.1``
as subprotocol [MQTT-6.0.0-3] (HTTP 400); ``mqtt`` is chosen when offered
[MQTT-6.0.0-4].  The spec names no path, so, as in Mosquitto, a handshake on
any path opens MQTT (``mqtt.connect('ws://host:port')`` asks for ``/``), unless
the listener has a ``path``: then that one only, and 404 elsewhere.  With a
static folder, plain HTTP requests (no WebSocket upgrade) get its files
instead (:mod:`.static`), except on a configured ``path``, which behaves the
same with or without one.  With ``bundle``, a plain HTTP request for
``/mqtt.min.js`` gets MQTT.js's browser bundle shipped in the package (before
the static folder is looked at: the listener's setting, not a file, decides).

This module may import the broker's configuration and the connection; nothing
above the transports.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import NegotiationError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State
from websockets.typing import Subprotocol

from .connection import MqttConnection
from .static import PackagedFile, StaticFolder, mqtt_js

__all__ = ["SUBPROTOCOLS", "MqttWebSocket", "WebSocketListener"]

logger = logging.getLogger(__name__)
# websockets announces its server on this logger; the broker already announces every listener once.
logger.addFilter(lambda record: record.msg != "server listening on %s")

# [MQTT-6.0.0-4] "mqtt" for 3.1.1 and 5.0, preferred; "mqttv3.1" is what old 3.1 clients offer.
SUBPROTOCOLS = (Subprotocol("mqtt"), Subprotocol("mqttv3.1"))
# Above this many bytes waiting in the socket, the connection counts as "full"
# (asyncio's own default for TCP, so both transports behave alike).
WRITE_LIMIT = 64 * 1024
# Seconds the peer has to answer our close frame before the socket is dropped.
CLOSE_TIMEOUT = 3.0


class _FrameTransport:
    """The :class:`~.connection.ByteTransport` of a WebSocket: one binary frame per write."""

    __slots__ = ("_ws",)

    def __init__(self, ws: MqttWebSocket) -> None:
        self._ws = ws

    def write(self, data: bytes) -> None:
        ws = self._ws
        if ws.protocol.state is State.OPEN:
            ws.protocol.send_binary(data)  # [MQTT-6.0.0-1] binary data frames only
            ws.send_data()

    def close(self) -> None:
        self._ws.request_close()

    def abort(self) -> None:
        self._ws.transport.abort()

    def is_closing(self) -> bool:
        return self._ws.close_requested.is_set() or self._ws.protocol.state is not State.OPEN

    def can_write_eof(self) -> bool:
        return False  # the WebSocket closing handshake ends the stream instead

    def write_eof(self) -> None:
        raise NotImplementedError("a WebSocket closes with a close frame")

    def pause_reading(self) -> None:
        self._ws.transport.pause_reading()

    def resume_reading(self) -> None:
        self._ws.transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._ws.transport.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._ws.transport.get_extra_info(name, default)


class MqttWebSocket(ServerConnection):
    """A WebSocket connection whose data frames feed an MQTT connection.

    ``websockets`` creates one per accepted socket (``create_connection``); the
    listener's handler attaches an MQTT connection (:meth:`attach`) once the
    opening handshake has succeeded.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mqtt: MqttConnection | None = None
        # Set when the MQTT side (or the peer) ends the connection; the handler
        # then runs the closing handshake with requested_close_code.
        self.close_requested = asyncio.Event()
        self.requested_close_code: int = CloseCode.NORMAL_CLOSURE
        self.lost_exc: Exception | None = None
        self._early: list[bytes] = []  # frames that came before attach()
        self._text = False  # the message being received is a text message

    def attach(self, conn: MqttConnection) -> None:
        self.mqtt = conn
        conn.attach(_FrameTransport(self))
        if self.paused:
            conn.pause_writing()
        early, self._early = self._early, []
        for data in early:
            conn.data_received(data)

    def request_close(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        if not self.close_requested.is_set():
            self.requested_close_code = code
            self.close_requested.set()

    # -- frames in --------------------------------------------------------------------

    def process_event(self, event: Event) -> None:
        if self.request is None or not isinstance(event, Frame):
            super().process_event(event)  # the opening handshake's request
            return
        opcode = event.opcode
        if opcode is Opcode.TEXT or (opcode is Opcode.CONT and self._text):
            self._text = not event.fin
            # [MQTT-6.0.0-1] a frame that is not binary closes the network connection.
            logger.info("closing WebSocket %s: text frame", self._peer())
            self.request_close(CloseCode.UNSUPPORTED_DATA)
            return
        if opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if self.close_requested.is_set():
                return
            data = event.data if type(event.data) is bytes else bytes(event.data)
            mqtt = self.mqtt
            if mqtt is None:
                self._early.append(data)
            else:
                mqtt.data_received(data)
            return
        super().process_event(event)  # PONG answers our pings; PING/CLOSE are done already

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        # The MQTT side hears of it from the handler, once that is done (see _serve).
        super().connection_lost(exc)
        self.lost_exc = exc
        self.close_requested.set()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.mqtt is not None:
            self.mqtt.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.mqtt is not None:
            self.mqtt.resume_writing()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


def _select_subprotocol(ws: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol:
    # [MQTT-6.0.0-3] the client must offer "mqtt"; without it the handshake fails (HTTP 400).
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    raise NegotiationError("the MQTT subprotocol (mqtt or mqttv3.1) is required")


def _is_upgrade(request: Request) -> bool:
    # [RFC 6455 4.2.1] a handshake carries "Upgrade: websocket"; a browser fetching a page does not.
    return any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))


class WebSocketListener:
    """Accepts MQTT-over-WebSocket connections (ws, or wss with an ``ssl_context``) on one address."""

    def __init__(
        self,
        factory: Callable[[], MqttConnection],
        host: str,
        port: int,
        *,
        name: str,
        path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int | None = None,
        open_timeout: float = 10.0,
        static_dir: str | None = None,
        bundle: bool = False,
    ) -> None:
        self._factory = factory
        self.host = host
        self.port = port
        self.name = name
        self.path = path
        self._ssl = ssl_context
        self._max_message_size = max_message_size
        self._open_timeout = open_timeout
        self._static = StaticFolder(static_dir) if static_dir is not None else None
        self._bundle: PackagedFile | None = mqtt_js() if bundle else None
        self._server: Server | None = None
        # Handler tasks of connections between their request and an MQTT session:
        # handshakes, and refusals and static files, which end once the response is
        # out.  websockets does not hand them to anyone, and stop() must not leave
        # them running (see there).
        self._responding: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await serve(
            self._serve,
            self.host,
            self.port,
            subprotocols=list(SUBPROTOCOLS),
            select_subprotocol=_select_subprotocol,
            process_request=self._check_path,
            # Per-connection zlib state costs memory and CPU; MQTT payloads are
            # often already compact.  Clients that offer it go without.
            compression=None,
            server_header="zanzara",
            open_timeout=self._open_timeout,
            # MQTT has its own keep alive [MQTT-3.1.2-22]; pings from the client are answered.
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=self._max_message_size,
            write_limit=WRITE_LIMIT,
            create_connection=MqttWebSocket,
            logger=logger,
            ssl=self._ssl,
            reuse_address=True,
            backlog=4096,
        )
        self.port = self._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for

    @property
    def url(self) -> str:
        scheme = "wss" if self._ssl else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.path or '/'}"

    async def _check_path(self, ws: ServerConnection, request: Request) -> Response | None:
        # websockets calls this from the connection's handler task.
        task = asyncio.current_task()
        if task is not None:
            self._responding.add(task)
            task.add_done_callback(self._responding.discard)
        bundle = self._bundle
        if bundle is not None and bundle.serves(request.path) and not _is_upgrade(request):
            return bundle.respond(request)
        path = self.path
        static = self._static
        if path is None:
            if static is None or _is_upgrade(request):
                return None  # the handshake: 400 without the mqtt subprotocol, 426 without Upgrade
            return await static.respond(request)
        if request.path.partition("?")[0] == path:
            return None  # the handshake, whether static files are served or not
        if static is not None and not _is_upgrade(request):
            return await static.respond(request)
        return ws.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")

    async def _serve(self, ws: ServerConnection) -> None:
        """One connection, after its opening handshake: serve MQTT until either side closes.

        The MQTT connection is told it is lost only at the end, so that once the
        broker has seen every connection go, no handler task is left running.
        """
        assert isinstance(ws, MqttWebSocket)  # create_connection makes only these
        task = asyncio.current_task()
        if task is not None:
            self._responding.discard(task)  # the broker owns it from here, through conn
        conn = self._factory()
        try:
            ws.attach(conn)
            await ws.close_requested.wait()
            try:
                # The closing handshake; a peer that neither answers nor reads is dropped.
                async with asyncio.timeout(2 * CLOSE_TIMEOUT):
                    await ws.close(ws.requested_close_code)
            except TimeoutError:
                ws.transport.abort()
                await ws.wait_closed()
        finally:
            conn.connection_lost(ws.lost_exc)

    async def stop(self) -> None:
        """Stop accepting.  Open connections stay: the broker disconnects them (MQTT first)."""
        server, self._server = self._server, None
        if server is not None:
            # Only the listening socket.  websockets' own Server.close() would start
            # a task waiting for every handler, which outlives the broker's shutdown;
            # the broker closes the connections, and each handler ends with its own.
            server.server.close()
        # A connection that got an HTTP response (404, 400, a static file) waits for
        # the client to close, at most close_timeout; a request being answered, at
        # most open_timeout.  Waited for so that none outlives the broker's loop.
        pending = set(self._responding)
        if pending:
            _, late = await asyncio.wait(pending, timeout=2 * CLOSE_TIMEOUT)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
