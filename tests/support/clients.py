"""Test clients: paho-mqtt (the real peer) and a raw socket client for exact bytes."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from zanzara.mqtt.codec import Reader, encode
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import Connect, Packet

V311 = paho.MQTTv311
V5 = paho.MQTTv5
TIMEOUT = 5.0


def props(kind: str = "PUBLISH", **values: Any) -> PahoProperties:
    p = PahoProperties(getattr(PacketTypes, kind))
    for name, value in values.items():
        setattr(p, name, value)
    return p


AuthHandler = Callable[[int, PahoProperties], tuple[int, PahoProperties] | None]


class AuthCapableClient(paho.Client):
    """paho-mqtt 2.x with AUTH packets (MQTT 5 section 3.15), which it otherwise rejects as unknown.

    Packets are encoded and decoded with paho's own code (fixed header, reason code,
    ``Properties.pack``/``unpack``); only the AUTH framing is added here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_auth: AuthHandler | None = None
        self.auth_received: queue.Queue[tuple[int, PahoProperties]] = queue.Queue()

    def _packet_handle(self) -> Any:
        if self._in_packet["command"] & 0xF0 != paho.AUTH:
            return super()._packet_handle()
        body = bytes(self._in_packet["packet"])
        code = body[0] if body else 0  # 3.15.2.1: no reason code means 0x00
        properties = PahoProperties(PacketTypes.AUTH)
        if len(body) > 1:
            properties.unpack(body[1:])
        self.auth_received.put((code, properties))
        answer = self.on_auth(code, properties) if self.on_auth is not None else None
        if answer is not None:
            self.send_auth(*answer)
        return paho.MQTT_ERR_SUCCESS

    def send_auth(self, reason_code: int, properties: PahoProperties) -> Any:
        body = struct.pack("!B", reason_code) + properties.pack()
        packet = bytearray([paho.AUTH])
        self._pack_remaining_length(packet, len(body))
        return self._packet_queue(paho.AUTH, bytes(packet) + body, 0, 0)


class PahoClient:
    """A paho-mqtt 2.x client with blocking helpers and a message inbox."""

    client_class: type[paho.Client] = paho.Client

    def __init__(
        self,
        port: int,
        client_id: str | None = None,
        *,
        version: int = V5,
        clean: bool = True,
        session_expiry: int | None = None,
        keepalive: int = 60,
        will: tuple[str, bytes, int, bool] | None = None,
        will_properties: PahoProperties | None = None,
        username: str | None = None,
        password: str | None = None,
        connect_properties: PahoProperties | None = None,
        connect: bool = True,
        manual_ack: bool = False,
    ) -> None:
        self.port = port
        self.version = version
        self.client_id = client_id if client_id is not None else f"t-{uuid.uuid4().hex[:10]}"
        kwargs: dict[str, Any] = {"client_id": self.client_id, "protocol": version, "manual_ack": manual_ack}
        if version != V5:
            kwargs["clean_session"] = clean
        self.client = self.client_class(paho.CallbackAPIVersion.VERSION2, **kwargs)
        self.clean = clean
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.connect_properties = connect_properties
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connack: tuple[Any, Any, Any] | None = None
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self._connected = threading.Event()
        self._subacks: dict[int, Any] = {}
        self._unsubacks: dict[int, Any] = {}
        self._acked: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        c = self.client
        c.on_connect = self._on_connect
        c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_disconnect = lambda _c, _u, _f, rc, p: self.disconnects.put((rc, p))
        c.on_publish = self._on_publish
        if will is not None:
            c.will_set(will[0], will[1], will[2], will[3], properties=will_properties)
        if username is not None:
            c.username_pw_set(username, password)
        if connect:
            self.connect()

    # -- callbacks --------------------------------------------------------------

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, properties: Any) -> None:
        self.connack = (flags, rc, properties)
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: Any, properties: Any) -> None:
        with self._lock:
            self._subacks[mid] = rcs

    def _on_unsubscribe(self, _c: Any, _u: Any, mid: int, rcs: Any, properties: Any) -> None:
        with self._lock:
            self._unsubacks[mid] = rcs

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, properties: Any) -> None:
        with self._lock:
            self._acked.setdefault(mid, threading.Event()).set()

    # -- actions ----------------------------------------------------------------

    def connect(self) -> Any:
        self._connected.clear()
        kwargs: dict[str, Any] = {"keepalive": self.keepalive}
        if self.version == V5:
            kwargs["clean_start"] = self.clean
            p = self.connect_properties or props("CONNECT")
            if self.session_expiry is not None:
                p.SessionExpiryInterval = self.session_expiry
            kwargs["properties"] = p
        self.client.connect("127.0.0.1", self.port, **kwargs)
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT):
            raise TimeoutError("no CONNACK")
        return self.connack

    @property
    def session_present(self) -> bool:
        assert self.connack is not None
        return bool(self.connack[0].session_present)

    @property
    def reason_code(self) -> int:
        assert self.connack is not None
        return int(self.connack[1].value)

    def subscribe(self, topic: str | list[tuple[str, Any]], qos: int = 0, **kw: Any) -> list[int]:
        if self.version == V5 and isinstance(topic, str):
            options = paho.SubscribeOptions(
                qos=qos,
                noLocal=kw.pop("no_local", False),
                retainAsPublished=kw.pop("retain_as_published", False),
                retainHandling=kw.pop("retain_handling", 0),
            )
            rc, mid = self.client.subscribe(topic, options=options, **kw)
        else:
            rc, mid = self.client.subscribe(topic, qos, **kw)
        assert rc == paho.MQTT_ERR_SUCCESS, rc
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self._lock:
                if mid in self._subacks:
                    return [int(getattr(r, "value", r)) for r in self._subacks.pop(mid)]
            time.sleep(0.005)
        raise TimeoutError("no SUBACK")

    def unsubscribe(self, topic: str | list[str], **kw: Any) -> Any:
        _rc, mid = self.client.unsubscribe(topic, **kw)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self._lock:
                if mid in self._unsubacks:
                    return self._unsubacks.pop(mid)
            time.sleep(0.005)
        raise TimeoutError("no UNSUBACK")

    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        properties: PahoProperties | None = None,
        wait: bool = True,
    ) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        if wait and qos > 0:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), f"publish {topic} not acknowledged"
        return info

    def expect(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("expected a message, none came") from None

    def expect_n(self, n: int, timeout: float = TIMEOUT) -> list[paho.MQTTMessage]:
        return [self.expect(timeout) for _ in range(n)]

    def expect_none(self, timeout: float = 0.3) -> None:
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")

    def expect_disconnect(self, timeout: float = TIMEOUT) -> Any:
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("expected the broker to disconnect") from None

    def disconnect(self, reason_code: int | None = None, properties: PahoProperties | None = None) -> None:
        if reason_code is not None:
            from paho.mqtt.reasoncodes import ReasonCode as PahoReason

            self.client.disconnect(PahoReason(PacketTypes.DISCONNECT, identifier=reason_code), properties)
        else:
            self.client.disconnect(properties=properties)
        self.client.loop_stop()

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT (an abnormal close)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class RawClient:
    """Speaks bytes to the broker and decodes its answers with zanzara's own codec."""

    def __init__(self, port: int, version: ProtocolVersion = ProtocolVersion.MQTT5) -> None:
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.reader = Reader(role="client", version=version)
        self._packets: list[Packet] = []

    def send(self, packet: Packet | bytes) -> None:
        data = packet if isinstance(packet, bytes) else encode(packet, self.version)
        self.sock.sendall(data)

    def connect(self, client_id: str = "", **kw: Any) -> Packet:
        self.send(
            Connect(protocol_version=self.version, client_id=client_id or f"raw-{uuid.uuid4().hex[:8]}", **kw)
        )
        return self.recv()

    def recv(self, timeout: float = TIMEOUT) -> Packet:
        deadline = time.monotonic() + timeout
        while not self._packets:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("expected a packet, none came")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("closed by the broker")
            self.reader.feed(data)
            self._packets.extend(self.reader.read_packets())
        return self._packets.pop(0)

    def expect_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Read until the broker closes; returns the packets that came before."""
        got = list(self._packets)
        self._packets.clear()
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return got
            except TimeoutError:
                raise AssertionError("the broker did not close the connection") from None
            if not data:
                return got
            self.reader.feed(data)
            got.extend(self.reader.read_packets())

    def close(self) -> None:
        self.sock.close()
