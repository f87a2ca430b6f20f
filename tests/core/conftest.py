"""Fakes and helpers for sans-I/O tests of :mod:`zanzara.core`: no sockets, threads or sleeps.

The core sees a connection only through :class:`~zanzara.core.ClientLink` and
time only through ``state.clock`` and ``state.scheduler``, so a test plays the
transport's part by hand:

- :class:`FakeLink` is a connection over a real :class:`~zanzara.protocol.ServerProtocol`
  (so the protocol's rules on what may be sent, accept, refuse and disconnect
  apply) that records what it is asked to do; :func:`sent` decodes its output as
  its client would.
- :class:`FakeScheduler` keeps the timers the core sets; :meth:`FakeScheduler.advance`
  moves a :class:`FakeClock` (also ``state.clock``) and runs what falls due, in order.
- :func:`connect`, :func:`receive`, :func:`publish`, :func:`subscribe`,
  :func:`disconnect` and :func:`drop` do what ``transports/connection.py`` does
  with a client's packets: bytes through the protocol, packets to the core, a
  :class:`~zanzara.errors.ProtocolError` answered by ``protocol.fail``.

A hook's coroutine is stepped by :func:`settle` without an event loop (the
hooks of these tests never suspend).  Without a store (``state.store is None``)
acknowledgements leave at once.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from zanzara.auth.exchange import AuthExchange
from zanzara.config import MqttConfig, PushConfig
from zanzara.core import Admitted, Awaiting, Challenge, Client, ConnectResult, Core, Refused
from zanzara.errors import ProtocolError
from zanzara.message import Message
from zanzara.mqtt.codec import Reader, encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode, RetainHandling
from zanzara.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from zanzara.mqtt.properties import EMPTY_PROPERTIES, Properties
from zanzara.protocol import ConnectionPhase, PublishEncoder
from zanzara.transports.connection import ProtocolFacts, new_protocol

V31 = ProtocolVersion.MQTT31
V311 = ProtocolVersion.MQTT311
V5 = ProtocolVersion.MQTT5
RC = ReasonCode

# Parametrize a test over the protocol versions it holds for.
both_versions = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])

# Where the fake wall clock starts: any positive time does, this one reads like a date.
EPOCH = 1_700_000_000.0

T = TypeVar("T")


# -- time ------------------------------------------------------------------------------------------


class FakeClock:
    """Wall-clock seconds that move only when told (``state.clock``)."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(eq=False)
class FakeTimer:
    """A call the core scheduled; ``cancel()`` as on ``asyncio.TimerHandle``."""

    due: float
    callback: Callable[..., object]
    args: tuple[Any, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """``call_later`` records; :meth:`advance` moves the clock and runs what falls due, in order."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        timer = FakeTimer(self.clock.now + delay, callback, args)
        heapq.heappush(self._heap, (timer.due, next(self._seq), timer))
        return timer

    @property
    def pending(self) -> list[FakeTimer]:
        """The timers still to run, earliest first."""
        return [timer for _, _, timer in sorted(self._heap) if not timer.cancelled]

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: each timer due by then runs at its own time, earliest first."""
        until = self.clock.now + seconds
        heap = self._heap
        while heap and heap[0][0] <= until:
            due, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self.clock.now = max(self.clock.now, due)
            timer.callback(*timer.args)
        self.clock.now = until


# -- the connection --------------------------------------------------------------------------------


class FakeLink(ProtocolFacts):
    """A :class:`~zanzara.core.ClientLink` over a real ServerProtocol, recording what it is told."""

    def __init__(self, config: MqttConfig, address: str | None = "192.0.2.1:50000") -> None:
        # Built from the configuration as transports/connection.py builds it.
        self.protocol = new_protocol(config)
        self.congested = False
        self.closed = False
        self.keep_alive: int | None = None
        self.identity_as_username = False
        self.certificate_username: str | None = None
        self.over_connection_limit = False
        self.auth_exchange: AuthExchange | None = None
        self._address = address
        # The CONNACK that admitted or refused the client (set by connect()).
        self.connack: ConnAck | None = None
        # Packets decoded by a helper but not yet looked at (returned first by sent()).
        self.backlog: list[Packet] = []

    @property
    def address(self) -> str | None:
        return self._address

    @property
    def listener_name(self) -> str | None:
        return "test"

    def send(self, packet: Packet) -> None:
        self.protocol.send(packet)

    def send_publish(
        self, encoder: PublishEncoder, qos: int, retain: bool, sub_ids: tuple[int, ...], packet_id: int = 0
    ) -> bool:
        return bool(self.protocol.send_publish(encoder, qos, retain, sub_ids, packet_id))

    def send_message(
        self,
        message: Message,
        qos: int,
        retain: bool,
        sub_ids: tuple[int, ...],
        packet_id: int,
        now: float,
        *,
        dup: bool = False,
    ) -> bool:
        return bool(self.protocol.send_message(message, qos, retain, sub_ids, packet_id, now, dup=dup))

    def accept(self, connack: ConnAck, keep_alive: int) -> None:
        self.protocol.accept(connack)
        self.keep_alive = keep_alive

    def refuse(self, reason_code: int, reason: str | None = None) -> None:
        self.protocol.refuse(reason_code, reason)

    def disconnect(self, reason_code: int, reason: str | None = None) -> None:
        self.protocol.disconnect(reason_code, reason)
        self.close()

    def close(self) -> None:
        self.closed = True


def sent(link: FakeLink) -> list[Packet]:
    """What ``link``'s client receives, decoded as the client would (and emptied).

    The client-side Reader is strict about which reason codes and properties each
    packet may carry, so whatever the core sends must be well formed for its client.
    """
    reader = Reader(role="client", version=link.protocol.version)
    reader.feed(b"".join(link.protocol.data_to_send()))
    packets = [*link.backlog, *reader.read_packets()]
    link.backlog = []
    assert reader.buffered == 0, "a partial packet was queued"
    return packets


def publishes(link: FakeLink) -> list[Publish]:
    """The PUBLISH packets among what ``link``'s client receives (its acks left out)."""
    return [p for p in sent(link) if isinstance(p, Publish)]


def settle(result: T | Coroutine[Any, Any, T]) -> T:
    """``result``, or what its coroutine returns: stepped once, it must not suspend."""
    if not isinstance(result, Coroutine):
        return result
    try:
        result.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    result.close()
    raise AssertionError("the coroutine waited for something: no event loop runs here")


class Pause:
    """An awaitable that suspends its coroutine once, so that a test can act in between."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


def finish(pending: Coroutine[Any, Any, T]) -> T:
    """Resume a coroutine suspended once (by :class:`Pause`) to its end; what it returns."""
    try:
        pending.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("suspended twice")


def disconnect_code(packets: list[Packet]) -> int:
    """The reason code of the DISCONNECT that ends ``packets``."""
    assert packets, "nothing was sent"
    last = packets[-1]
    assert isinstance(last, Disconnect), f"{last} is not a DISCONNECT"
    return last.reason_code


# -- what a client does ----------------------------------------------------------------------------


def will(
    topic: str = "will/t", payload: bytes = b"gone", qos: int = 0, retain: bool = False, **props: Any
) -> Will:
    """A will message; keyword arguments are its properties (``will_delay_interval=10``)."""
    properties = Properties(**props) if props else EMPTY_PROPERTIES
    return Will(topic=topic, payload=payload, qos=qos, retain=retain, properties=properties)


def connect_packet(
    client_id: str = "c",
    *,
    version: ProtocolVersion = V5,
    clean_start: bool = True,
    keep_alive: int = 0,
    username: str | None = None,
    password: bytes | None = None,
    will: Will | None = None,
    **props: Any,
) -> Connect:
    """A CONNECT; keyword arguments are its properties (``session_expiry_interval=60``)."""
    return Connect(
        protocol_version=version,
        protocol_name="MQIsdp" if version is V31 else "MQTT",
        clean_start=clean_start,
        keep_alive=keep_alive,
        client_id=client_id,
        username=username,
        password=password,
        will=will,
        properties=Properties(**props) if props else EMPTY_PROPERTIES,
    )


def open_connection(
    core: Core, packet: Connect, link: FakeLink | None = None
) -> tuple[FakeLink, Client | None]:
    """A new connection sends ``packet``; the core decides (a hook coroutine is settled).

    As the transport: the CONNECT goes through ``protocol.receive_data`` first, and
    a refused connection is closed.  Returns the link and the admitted Client or None
    (refused, or an enhanced authentication waits for the client's next AUTH).
    """
    link = link or FakeLink(core.config)
    [received] = link.protocol.receive_data(encode(packet, packet.protocol_version))
    assert isinstance(received, Connect)
    return link, _after_connect(link, core.connecting(link, received))


def decided(result: ConnectResult) -> Admitted | Refused | Challenge:
    """What a CONNECT came to, its hook's coroutine (if any) settled."""
    return settle(result.pending) if isinstance(result, Awaiting) else result


def _after_connect(link: FakeLink, result: ConnectResult | None) -> Client | None:
    """As the transport: a refused connection is closed; the admitted client, or None."""
    assert result is not None, "a CONNECT or AUTH before admission always has a result"
    outcome = decided(result)
    if isinstance(outcome, Refused):
        link.close()
    return outcome.client if isinstance(outcome, Admitted) else None


def continue_auth(core: Core, link: FakeLink, data: bytes | None, method: str) -> Client | None:
    """The client answers AUTH 0x18 before CONNACK with ``data``."""
    packet = Auth(
        reason_code=RC.CONTINUE_AUTHENTICATION,
        properties=Properties(authentication_method=method, authentication_data=data),
    )
    [received] = link.protocol.receive_data(encode(packet, V5))
    assert isinstance(received, Auth)
    return _after_connect(link, core.connecting(link, received))


def connect(core: Core, client_id: str = "c", **kw: Any) -> Client:
    """Connect ``client_id`` (see :func:`connect_packet` for ``kw``); it must be admitted.

    The CONNACK goes to ``client.link.connack``; whatever followed it (resent
    messages, the queue) waits for :func:`sent`.
    """
    link, client = open_connection(core, connect_packet(client_id, **kw))
    assert client is not None, f"{client_id} was refused: {sent(link)}"
    first, *rest = sent(link)
    assert isinstance(first, ConnAck), first
    assert first.reason_code == RC.SUCCESS
    link.connack, link.backlog = first, rest
    return client


def refused(core: Core, packet: Connect) -> list[Packet]:
    """``packet`` must be refused: what its client gets (the CONNACK, if any), connection closed."""
    link, client = open_connection(core, packet)
    assert client is None
    assert link.protocol.phase is ConnectionPhase.CLOSED
    assert link.closed
    return sent(link)


def receive(core: Core, client: Client, *packets: Packet) -> None:
    """The client sends ``packets``: through its protocol, then the core, as the transport does.

    A hook's coroutine is settled; a ProtocolError (from the protocol or a handler)
    is answered by ``protocol.fail`` (v5: DISCONNECT with its reason code).
    """
    link = client.link
    assert isinstance(link, FakeLink)
    protocol = link.protocol
    data = b"".join(encode(packet, client.version) for packet in packets)
    for received in protocol.receive_data(data):  # PUBACKs read together come as one PubAcks
        if protocol.phase is ConnectionPhase.CLOSED or link.closed:
            return  # nothing after DISCONNECT or an error is acted upon
        try:
            settle(core.handle(client, received))
        except ProtocolError as exc:
            protocol.fail(exc)
            link.close()
            return
    if protocol.deferred_error is not None:
        protocol.fail(protocol.deferred_error)
        link.close()


def publish(
    core: Core,
    client: Client,
    topic: str = "t",
    payload: bytes = b"m",
    *,
    qos: int = 0,
    retain: bool = False,
    packet_id: int | None = None,
    **props: Any,
) -> None:
    """The client publishes; keyword arguments are PUBLISH properties."""
    if qos and packet_id is None:
        packet_id = next(_publish_ids)
    properties = Properties(**props) if props else EMPTY_PROPERTIES
    receive(
        core,
        client,
        Publish(
            topic=topic, payload=payload, qos=qos, retain=retain, packet_id=packet_id, properties=properties
        ),
    )


_publish_ids = itertools.cycle(range(1000, 2000))


def subscribe(
    core: Core,
    client: Client,
    *filters: str | Subscription,
    qos: int = 0,
    subscription_id: int | None = None,
    packet_id: int = 1,
) -> SubAck:
    """The client subscribes (a str is a filter at ``qos``); returns the SUBACK.

    Retained messages sent after the SUBACK wait for :func:`sent`.
    """
    subs = tuple(f if isinstance(f, Subscription) else Subscription(topic_filter=f, qos=qos) for f in filters)
    props = Properties(subscription_identifiers=(subscription_id,)) if subscription_id else EMPTY_PROPERTIES
    receive(core, client, Subscribe(packet_id=packet_id, subscriptions=subs, properties=props))
    link = client.link
    assert isinstance(link, FakeLink)
    packets = sent(link)
    [suback] = [p for p in packets if isinstance(p, SubAck) and p.packet_id == packet_id] or [packets]
    assert isinstance(suback, SubAck), f"no SUBACK in {suback}"
    link.backlog = [p for p in packets if p is not suback]
    return suback


def option(
    topic_filter: str,
    qos: int = 0,
    *,
    no_local: bool = False,
    retain_as_published: bool = False,
    retain_handling: RetainHandling = RetainHandling.SEND_ON_SUBSCRIBE,
) -> Subscription:
    """One topic filter with its MQTT 5 subscription options."""
    return Subscription(
        topic_filter=topic_filter,
        qos=qos,
        no_local=no_local,
        retain_as_published=retain_as_published,
        retain_handling=retain_handling,
    )


def disconnect(core: Core, client: Client, reason_code: int = 0, **props: Any) -> None:
    """The client sends DISCONNECT, then its connection closes."""
    properties = Properties(**props) if props else EMPTY_PROPERTIES
    receive(core, client, Disconnect(reason_code=reason_code, properties=properties))
    drop(core, client)


def drop(core: Core, client: Client) -> None:
    """The connection is gone (whatever the reason): what the transport tells the core."""
    client.link.close()
    core.disconnected(client)


def message(topic: str, payload: bytes, **fields: Any) -> Publish:
    """The PUBLISH a subscriber expects (QoS 0, no properties unless given)."""
    return Publish(topic=topic, payload=payload, **fields)


# -- fixtures --------------------------------------------------------------------------------------


@dataclass
class CoreFactory:
    """Builds cores over one fake scheduler: ``make_core(max_qos=1, push=PushConfig(...))``."""

    scheduler: FakeScheduler
    built: list[Core] = field(default_factory=list)

    def __call__(self, *, push: PushConfig | None = None, allow_anonymous: bool = True, **mqtt: Any) -> Core:
        core = Core(MqttConfig(**mqtt), allow_anonymous=allow_anonymous, push=push, scheduler=self.scheduler)
        core.state.clock = self.scheduler.clock
        self.built.append(core)
        return core


@pytest.fixture
def scheduler() -> FakeScheduler:
    return FakeScheduler()


@pytest.fixture
def make_core(scheduler: FakeScheduler) -> CoreFactory:
    return CoreFactory(scheduler)


@pytest.fixture
def core(make_core: CoreFactory) -> Core:
    """A core with the default configuration, no store, the fake clock and scheduler."""
    return make_core()


def ids(packets: Iterator[Packet] | list[Packet]) -> list[int | None]:
    """The packet ids of ``packets`` (PUBLISH, PUBACK, ...)."""
    return [getattr(p, "packet_id", None) for p in packets]
