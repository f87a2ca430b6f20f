"""The broker's semantics, pure of I/O but for the seams it is given: the core.

:class:`Core` owns one :class:`~.state.CoreState` and is what transports and
the embedded API talk to.  A CONNECT goes to :mod:`.connect` (then
:mod:`.enhanced_auth` or the password hooks, then :mod:`.admission`); every
later packet goes through :data:`HANDLERS`, one module per packet family, as
Mosquitto's ``handle_*.c``:

=================  ============================================
PUBLISH, PUBREL    :mod:`.publish` (then :mod:`.routing`, :mod:`.deliveries`)
PUBACK, PUBREC,    :mod:`.acks` (PUBACKs read together as one ``PubAcks``)
PUBCOMP
SUBSCRIBE,         :mod:`.subscribe`
UNSUBSCRIBE
DISCONNECT         :mod:`.lifecycle` (also wills, will delay, session expiry)
AUTH               :mod:`.enhanced_auth`
PINGREQ            here
=================  ============================================

Acknowledgements that wait for the store are ordered in :mod:`.commits`;
the message a publish becomes is built in :mod:`.push_rules`; the store's
snapshot is loaded by :mod:`.restore`.  A handler returns None, or a
coroutine when a hook must be awaited: the connection awaits it before its
next packet, so each connection's packets stay strictly in order.

Must not import the transports, the back-ends or the server.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from ..config import MqttConfig, PushConfig
from ..errors import ProtocolViolation
from ..events import EventHub
from ..hooks import (
    Authenticator,
    ClientInfo,
    EnhancedAuthenticator,
    PublishAuthorizer,
    SubscribeAuthorizer,
)
from ..message import Message
from ..mqtt.enums import PacketType
from ..mqtt.packets import (
    Auth,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Subscribe,
    Unsubscribe,
)
from ..mqtt.properties import EMPTY_PROPERTIES, Properties
from ..protocol import PubAcks
from ..session import Session
from ..storage import Snapshot, Store
from . import (
    acks,
    deliveries,
    enhanced_auth,
    lifecycle,
    publish,
    restore,
    routing,
    service,
    subscribe,
    sys_topics,
)
from .client import Admitted, Awaiting, Challenge, Client, ClientLink, ConnectResult, Refused
from .connect import connect as _connect
from .publish import PublishResult
from .state import CoreState, Scheduler, Stats

__all__ = [
    "HANDLERS",
    "Admitted",
    "Awaiting",
    "Challenge",
    "Client",
    "ClientLink",
    "ConnectResult",
    "Core",
    "CoreState",
    "PublishResult",
    "Refused",
    "Scheduler",
    "Stats",
]

Pending = Coroutine[Any, Any, None]
# Each handler takes the packet type it is registered for (hence Any here).
Handler = Callable[[CoreState, Client, Any], Pending | None]


def _handle_pingreq(state: CoreState, client: Client, packet: PingReq) -> None:
    client.link.send(PingResp())


def _handle_pubacks(state: CoreState, client: Client, run: PubAcks) -> None:
    state.stats.packets_received += len(run.packets) - 1  # the transport counted the run as one
    acks.handle_pubacks(state, client, run.packets)


HANDLERS: Final[dict[type[Packet | PubAcks], Handler]] = {
    Publish: publish.handle_publish,
    PubRel: publish.handle_pubrel,
    PubAck: acks.handle_puback,
    PubAcks: _handle_pubacks,
    PubRec: acks.handle_pubrec,
    PubComp: acks.handle_pubcomp,
    Subscribe: subscribe.handle_subscribe,
    Unsubscribe: subscribe.handle_unsubscribe,
    PingReq: _handle_pingreq,
    Disconnect: lifecycle.handle_disconnect,
    Auth: enhanced_auth.handle_auth,
}


class Core:
    """The broker core: one state, the packet handlers, and what the embedded API needs."""

    __slots__ = ("_sys_topics", "state")

    def __init__(
        self,
        config: MqttConfig | None = None,
        *,
        allow_anonymous: bool = True,
        push: PushConfig | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.state = state = CoreState(
            config=config or MqttConfig(), push=push or PushConfig(), allow_anonymous=allow_anonymous
        )
        if scheduler is not None:
            state.scheduler = scheduler
        # $SYS/broker/... publishing (start_sys_topics): a service of the core, not its state.
        self._sys_topics: sys_topics.SysTopics | None = None

    # -- what others read ----------------------------------------------------------

    @property
    def config(self) -> MqttConfig:
        return self.state.config

    @property
    def sessions(self) -> dict[str, Session]:
        return self.state.sessions

    @property
    def clients(self) -> dict[str, Client]:
        return self.state.clients

    @property
    def stats(self) -> Stats:
        return self.state.stats

    @property
    def events(self) -> EventHub:
        return self.state.events

    @property
    def store(self) -> Store | None:
        return self.state.store

    # -- hooks ---------------------------------------------------------------------

    def add_authenticator(self, hook: Authenticator) -> None:
        self.state.authenticators.append(hook)

    def add_enhanced_authenticator(self, hook: EnhancedAuthenticator) -> None:
        """``hook`` answers the CONNECTs whose Authentication Method is its ``method``."""
        self.state.enhanced_authenticators[hook.method] = hook

    def add_publish_authorizer(self, hook: PublishAuthorizer) -> None:
        self.state.publish_authorizers.append(hook)

    def add_subscribe_authorizer(self, hook: SubscribeAuthorizer) -> None:
        self.state.subscribe_authorizers.append(hook)

    def set_acl(
        self, may_receive: Callable[[str, str], bool], on_authenticated: Callable[[ClientInfo], None]
    ) -> None:
        """An ACL: who may receive which topic, and who a client proved to be."""
        self.state.may_receive = may_receive
        self.state.on_authenticated = on_authenticated

    def invalidate(self) -> None:
        """The ACL's answers changed: forget every cached routing plan."""
        routing.invalidate(self.state)

    # -- from the connections ------------------------------------------------------

    def attach_store(self, store: Store, snapshot: Snapshot) -> None:
        """Use ``store`` from now on, starting from what it held (before listeners open)."""
        restore.restore(self.state, store, snapshot)

    def connecting(self, link: ClientLink, packet: Packet | PubAcks) -> ConnectResult | None:
        """A packet before the client is admitted: CONNECT, or the AUTH 0x18 of the next step
        of an enhanced authentication; None for anything else (what follows a refusal)."""
        if type(packet) is Connect:
            return _connect(self.state, link, packet)
        if type(packet) is Auth:
            return enhanced_auth.continue_connect(self.state, link, packet)
        return None

    def handle(self, client: Client, packet: Packet | PubAcks) -> Pending | None:
        """Handle one packet of a connected client; a coroutine when a hook must be awaited."""
        handler = HANDLERS.get(type(packet))
        if handler is None:
            raise ProtocolViolation(f"unexpected {PacketType(packet.packet_type).name}")
        return handler(self.state, client, packet)

    def pump(self, client: Client) -> None:
        """The client's socket drained: move what waits in its queue into flight."""
        deliveries.pump(self.state, client)

    def disconnected(self, client: Client) -> None:
        """The connection of ``client`` is gone (any reason). Idempotent."""
        lifecycle.disconnected(self.state, client)

    # -- the embedded API ----------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
        priority: int | None = None,
        collapse_key: str | None = None,
        ttl: int | None = None,
        client_ids: frozenset[str] | None = None,
        dry_run: bool = False,
    ) -> PublishResult:
        """Publish from the server side (embedded API, admin API); see :func:`.publish.publish`."""
        return publish.publish(
            self.state,
            topic,
            payload,
            qos=qos,
            retain=retain,
            properties=properties,
            priority=priority,
            collapse_key=collapse_key,
            ttl=ttl,
            client_ids=client_ids,
            dry_run=dry_run,
        )

    # -- the operator's tools (core/service.py) -------------------------------------------------

    def session(self, client_id: str) -> service.SessionView | None:
        """A snapshot of one session and its client; None if there is no such session."""
        session = self.state.sessions.get(client_id)
        return None if session is None else service.session_view(self.state, session)

    def list_sessions(
        self,
        *,
        prefix: str = "",
        username: str | None = None,
        connected: bool | None = None,
        listener: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[service.SessionView], str | None]:
        """A page of sessions by client id and the cursor of the next one (see core/service.py)."""
        return service.list_sessions(
            self.state,
            prefix=prefix,
            username=username,
            connected=connected,
            listener=listener,
            after=after,
            limit=limit,
        )

    def list_subscriptions(
        self, *, topic_filter: str | None = None, client_id: str | None = None
    ) -> list[service.SubscriptionView]:
        return service.list_subscriptions(self.state, topic_filter=topic_filter, client_id=client_id)

    def queue(self, client_id: str) -> list[service.QueuedView] | None:
        return service.queue_of(self.state, client_id)

    def purge_queue(self, client_id: str) -> int | None:
        return service.purge_queue(self.state, client_id)

    def kick(self, client_id: str, *, with_will: bool = True) -> bool:
        return service.kick(self.state, client_id, with_will=with_will)

    def end_session(self, client_id: str, *, with_will: bool = False) -> bool:
        return service.end_session(self.state, client_id, with_will=with_will)

    def subscribe(
        self,
        client_id: str,
        topic_filter: str,
        *,
        qos: int = 0,
        no_local: bool = False,
        retain_as_published: bool = False,
    ) -> bool:
        return service.subscribe(
            self.state,
            client_id,
            topic_filter,
            qos=qos,
            no_local=no_local,
            retain_as_published=retain_as_published,
        )

    def unsubscribe(self, client_id: str, topic_filter: str) -> bool:
        return service.unsubscribe(self.state, client_id, topic_filter)

    def retained(self, topic_filter: str = "#") -> list[Message]:
        """The retained messages whose topics match ``topic_filter``, by topic."""
        return sorted((m for _, m in self.state.retained.match(topic_filter)), key=lambda m: m.topic)

    def retained_message(self, topic: str) -> Message | None:
        return self.state.retained.get(topic)

    def delete_retained(self, topic: str) -> bool:
        """Clear the retained message of ``topic`` (as an empty retained PUBLISH would)."""
        if self.state.retained.get(topic) is None:
            return False
        self.state.retained.delete(topic)
        store = self.state.store
        if store is not None:
            store.retained_delete(topic)
        return True

    def start_sys_topics(self, interval: float, *, presence_node: str | None = None) -> None:
        """Publish ``$SYS/broker/...`` now and every ``interval`` seconds (0: never), and, given
        a node name, ``$SYS/brokers/<node>/clients/<id>/connected|disconnected``."""
        state = self.state
        state.presence_node = presence_node
        if interval > 0 and self._sys_topics is None:
            self._sys_topics = sys_topics.SysTopics(state, interval)
            self._sys_topics.start()

    async def close(self) -> None:
        """Stop every timer and the event listeners."""
        state = self.state
        if self._sys_topics is not None:
            self._sys_topics.stop()
        for timer in state.expiry_timers.values():
            timer.cancel()
        state.expiry_timers.clear()
        if state.purge_timer is not None:
            state.purge_timer.cancel()
        for handle, _ in state.will_timers.values():
            handle.cancel()
        state.will_timers.clear()
        await state.events.close()
