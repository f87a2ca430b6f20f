"""The broker core: sessions, routing, retained messages, wills, QoS flows.

The only place that combines sessions, the topic trees, hooks and events.
Transports hand it packets through :meth:`BrokerCore.connect` and
:meth:`BrokerCore.handle`; it answers through the :class:`ClientLink` of each
connection.  One small method per inbound packet type (``_on_publish``,
``_on_puback``, ...), as in Mosquitto's ``handle_*.c``.

Handlers run synchronously unless a hook must be awaited; then they return a
coroutine and the connection awaits it before the next packet, which keeps
each connection's packets strictly in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from .auth.exchange import AuthExchange
from .config import MqttConfig, PushConfig
from .errors import ProtocolError, ProtocolViolation
from .events import (
    ClientConnected,
    ClientDisconnected,
    EventHub,
    Subscribed,
    Unsubscribed,
)
from .hooks import (
    Authenticator,
    AuthResult,
    AuthStep,
    ClientInfo,
    ConnectRequest,
    EnhancedAuthenticator,
    PublishAuthorizer,
    SubscribeAuthorizer,
)
from .ids import new_message_id
from .message import Message, build_message
from .mqtt.codec import CONNACK_REASON_CODES, DISCONNECT_REASON_CODES
from .mqtt.enums import PacketType, ProtocolVersion, ReasonCode, RetainHandling
from .mqtt.packets import (
    Auth,
    ConnAck,
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
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from .mqtt.properties import EMPTY_PROPERTIES, Properties
from .mqtt.topics import (
    matches,
    parse_shared,
    validate_topic_filter,
    validate_topic_filter_syntax,
    validate_topic_name,
)
from .protocol import ConnectionPhase
from .routing import Client, ClientLink, Router, Stats
from .session import NEVER_EXPIRES, Outgoing, OutState, Session
from .storage import SessionRecord, Snapshot, Store
from .topic_tree import SubscriptionEntry

__all__ = ["BrokerCore", "Client", "ClientLink", "PublishResult", "Stats"]

logger = logging.getLogger(__name__)

V5 = ProtocolVersion.MQTT5
V31 = ProtocolVersion.MQTT31
Step = Coroutine[Any, Any, None]
_PUBLISH_KEEP = ("topic_alias", "subscription_identifiers", "message_expiry_interval")


@dataclass(frozen=True, slots=True)
class PublishResult:
    # Look delivery receipts up with it; None for QoS 0 messages (not tracked).
    message_id: str | None
    # How many subscriptions (clients and shared groups) the message matched.
    matched: int


class BrokerCore:
    def __init__(
        self,
        config: MqttConfig | None = None,
        *,
        allow_anonymous: bool = True,
        push: PushConfig | None = None,
    ) -> None:
        self.config = config or MqttConfig()
        self.push = push or PushConfig()
        self._rules_cache: dict[str, tuple[int, int | None]] = {}
        self.allow_anonymous = allow_anonymous
        self.sessions: dict[str, Session] = {}
        self.clients: dict[str, Client] = {}
        self.events = EventHub()
        self.stats = Stats()
        self.authenticators: list[Authenticator] = []
        # MQTT 5 enhanced authentication: one hook per Authentication Method.
        self.enhanced_authenticators: dict[str, EnhancedAuthenticator] = {}
        # Told who a method proved a client to be (the ACL's username for routing).
        self.on_authenticated: Callable[[ClientInfo], None] | None = None
        self.publish_authorizers: list[PublishAuthorizer] = []
        self.subscribe_authorizers: list[SubscribeAuthorizer] = []
        self._expiry_timers: dict[str, asyncio.TimerHandle] = {}
        self._will_timers: dict[str, tuple[asyncio.TimerHandle, Will]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # Wall-clock seconds: message expiry and receipts must mean the same after a restart.
        self.clock: Callable[[], float] = time.time
        self.store: Store | None = None
        self._purge_timer: asyncio.TimerHandle | None = None
        self.router = Router(self.config, self.sessions, self.clients, self.stats, self.events, self.clock)
        self.subscriptions = self.router.subscriptions
        self.retained = self.router.retained

    def attach_store(self, store: Store, snapshot: Snapshot) -> None:
        """Use ``store`` from now on, starting from what it held (before listeners open)."""
        self.store = store
        self.router.store = store
        self.router.track = self.push.track_deliveries
        if self.push.track_deliveries:
            self._purge_receipts()
        now = self.clock()
        for rec in snapshot.sessions:
            session = Session(client_id=rec.client_id, expiry_interval=rec.expiry_interval)
            self._set_quota(session, rec.max_queued, rec.max_queued_bytes)
            self.sessions[rec.client_id] = session
        for entry in snapshot.subscriptions:
            owner = self.sessions.get(entry.client_id)
            if owner is not None:
                owner.subscriptions[entry.topic_filter] = entry
                self.subscriptions.add(entry)
        for cid, records in snapshot.queues.items():
            owner = self.sessions.get(cid)
            if owner is None:
                continue
            for qrec in records:
                out = Outgoing(
                    message=qrec.message,
                    qos=qrec.qos,
                    retain=qrec.retain,
                    subscription_ids=qrec.subscription_ids,
                    packet_id=qrec.packet_id,
                    state=qrec.state,
                    client_id=cid,
                )
                if qrec.state is OutState.QUEUED:
                    # A quota lowered since the last run drops (and unstores) the excess now.
                    for dropped, why in owner.enqueue(out):
                        self.router.dropped(owner, dropped, why)
                else:
                    owner.inflight[qrec.packet_id] = out
        for cid, packet_ids in snapshot.incoming.items():
            owner = self.sessions.get(cid)
            if owner is not None:
                owner.incoming_qos2.update(packet_ids)
        for message in snapshot.retained:
            if not message.expired(now):
                self.retained.set(message.topic, message)
        self.router.invalidate()
        for rec in snapshot.sessions:
            session = self.sessions[rec.client_id]
            # A client still connected when the broker stopped lost its connection then: now.
            session.disconnected_at = rec.disconnected_at if rec.disconnected_at is not None else now
            if rec.will is not None:
                elapsed = now - session.disconnected_at
                delayed = self._schedule_will(rec.client_id, rec.will, session, elapsed)
                self._persist(session, rec.will if delayed else None)
            elif rec.disconnected_at is None:
                self._persist(session)
        loop = asyncio.get_running_loop()
        for rec in snapshot.sessions:
            if rec.expiry_interval == NEVER_EXPIRES:
                continue
            away = now - (rec.disconnected_at if rec.disconnected_at is not None else now)
            remaining = rec.expiry_interval - away
            if remaining <= 0:
                self._expire_session(rec.client_id)
            else:
                self._expiry_timers[rec.client_id] = loop.call_later(
                    remaining, self._expire_session, rec.client_id
                )
        logger.info(
            "restored %d sessions, %d retained messages from the %s store",
            len(snapshot.sessions),
            len(snapshot.retained),
            store.name,
        )

    def _purge_receipts(self) -> None:
        """Forget receipts older than receipt_retention; runs every tenth of it (at most hourly)."""
        store = self.store
        if store is None:
            return
        retention = self.push.receipt_retention
        store.receipts_purge(self.clock() - retention)
        loop = asyncio.get_running_loop()
        self._purge_timer = loop.call_later(min(retention / 10, 3600.0), self._purge_receipts)

    def _persist(self, session: Session, will: Will | None = None) -> None:
        if self.store is not None and session.expiry_interval:
            session.stored = True
            self.store.session_put(
                SessionRecord(
                    client_id=session.client_id,
                    expiry_interval=session.expiry_interval,
                    disconnected_at=session.disconnected_at,
                    will=will,
                    max_queued=session.quota_messages,
                    max_queued_bytes=session.quota_bytes,
                )
            )

    def _set_quota(self, session: Session, messages: int | None, size: int | None) -> None:
        """The session's queue quota: a per-device one where given, else the configured one."""
        cfg = self.config
        session.quota_messages, session.quota_bytes = messages, size
        session.max_queued = cfg.max_queued_messages if messages is None else messages
        session.max_queued_bytes = cfg.max_queued_bytes if size is None else size

    def ack_after_commit(self, client: Client, ack: Packet, on_failure: Packet | None = None) -> None:
        """Send ``ack`` once everything recorded so far is durable (group commit).

        On a store failure the client gets ``on_failure`` (a v5 negative ack); where
        there is none (3.1.1 has no negative ack; PUBREL, PUBCOMP, UNSUBACK) its
        connection is closed, so that it resends after reconnecting: a client left
        waiting would hold a place in its window (and our receive window) forever.
        """
        self._after_commit(client, client.link.send, ack, on_failure)

    def after_commit(
        self, client: Client, then: Callable[[], None], on_failure: Callable[[], None] | None = None
    ) -> None:
        """Run ``then`` once everything recorded so far is durable; keeps the client's acks in order."""
        self._after_commit(client, _call, then, on_failure)

    def _after_commit(self, client: Client, action: Callable[[Any], None], arg: Any, failed: Any) -> None:
        store = self.store
        if store is None:
            action(arg)
            return
        fut = store.commit()
        pending = client.pending_acks
        if pending:
            pending.append((fut, action, arg, failed))  # released with those before it
            return
        if fut.done() and fut.exception() is None:
            action(arg)
            return
        # One callback per client and batch, not per ack: a batch commits many publishes
        # of one client, and they share the batch's future.
        pending.append((fut, action, arg, failed))
        fut.add_done_callback(partial(_release_acks, client, pending))

    # == connect ==================================================================

    def connect(
        self, link: ClientLink, packet: Connect
    ) -> Client | Coroutine[Any, Any, Client | None] | None:
        """Admit or refuse a CONNECT; returns the Client, None if refused (or a coroutine)."""
        cfg = self.config
        version = packet.protocol_version
        client_id = packet.client_id
        assigned = None
        if version is V31 and not 1 <= len(client_id) <= 23:
            # MQTT 3.1 (section 3.1, CONNECT payload): "The Client Identifier (Client ID) is between
            # 1 and 23 characters long", else CONNACK return code 2, identifier rejected (as
            # Mosquitto).  3.1 has no Assigned Client Identifier.
            link.protocol.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "3.1 client id of 1-23 characters")
            return None
        if not client_id:
            if not cfg.allow_zero_length_clientid or (version is not V5 and not packet.clean_start):
                # [MQTT-3.1.3-8] a 3.1.1 client with an empty id must ask for a clean session.
                link.protocol.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty client id")
                return None
            client_id = assigned = f"auto-{uuid.uuid4().hex}"
        elif len(client_id) > cfg.max_client_id_length:
            link.protocol.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "client id too long")
            return None
        will = packet.will
        if will is not None:
            try:
                validate_topic_name(
                    will.topic, max_levels=cfg.max_topic_levels, max_length=cfg.max_topic_length
                )
            except ProtocolError as exc:
                # "The Will Topic Name is not malformed, but is not accepted": CONNACK 0x90
                # (section 3.2.2.2); 3.1.1 has no such code and just closes [MQTT-3.1.4-1].
                link.protocol.refuse(exc.reason_code, str(exc))
                return None
        if version is not V5 and packet.keep_alive > cfg.max_keepalive:
            # As Mosquitto: a 3.x client cannot be told a lower keep alive, so it is refused.
            link.protocol.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "keep alive above max_keepalive")
            return None
        info = ClientInfo(
            client_id=client_id,
            username=packet.username,
            protocol_version=version,
            address=link.address,
            listener=link.listener_name,
        )
        method = packet.properties.authentication_method
        if method is not None:
            return self._start_exchange(link, packet, info, assigned, method)
        if not self.authenticators:
            return self._admit(link, packet, info, assigned, self._unchecked_decision(link))
        return self._authenticate_then_admit(link, packet, info, assigned)

    async def _authenticate_then_admit(
        self, link: ClientLink, packet: Connect, info: ClientInfo, assigned: str | None
    ) -> Client | None:
        request = ConnectRequest(
            client=info,
            password=packet.password,
            clean_start=packet.clean_start,
            keep_alive=packet.keep_alive,
            will=packet.will,
            properties=packet.properties,
        )
        decision: ReasonCode | AuthResult | None = None
        for hook in self.authenticators:
            decision = await hook.authenticate(request)
            if decision is not None:
                break
        if decision is None:
            decision = self._unchecked_decision(link)
        if isinstance(decision, AuthResult):
            return self._admit(link, packet, info, assigned, decision.reason_code, decision)
        return self._admit(link, packet, info, assigned, decision)

    # -- enhanced authentication (MQTT 5 section 4.12) ----------------------------------

    def _start_exchange(
        self, link: ClientLink, packet: Connect, info: ClientInfo, assigned: str | None, method: str
    ) -> Coroutine[Any, Any, Client | None] | None:
        hook = self.enhanced_authenticators.get(method)
        if hook is None:
            # [MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C, then close.
            logger.info("client %s: unsupported authentication method %r", info.client_id, method)
            link.protocol.refuse(ReasonCode.BAD_AUTHENTICATION_METHOD, f"unsupported method {method}")
            return None
        exchange = AuthExchange(authenticator=hook, client=info, connect=packet, assigned_client_id=assigned)
        return self._connect_step(link, exchange, packet.properties.authentication_data)

    def continue_connect(self, link: ClientLink, packet: Auth) -> Coroutine[Any, Any, Client | None]:
        """The client's AUTH 0x18 before CONNACK; returns the Client once admitted, else None."""
        exchange = link.protocol.auth_exchange
        if not isinstance(exchange, AuthExchange) or exchange.connect is None:
            raise ProtocolViolation("AUTH outside an authentication")
        return self._connect_step(link, exchange, packet.properties.authentication_data)

    async def _connect_step(
        self, link: ClientLink, exchange: AuthExchange, data: bytes | None
    ) -> Client | None:
        step = await exchange.advance(data)
        protocol = link.protocol
        if protocol.phase is not ConnectionPhase.CONNECTING:  # closed while the hook was awaited
            return None
        protocol.auth_exchange = None if step.done else exchange
        if not step.done:
            # [MQTT-4.12.0-2] the server asks for more with AUTH 0x18.
            link.send(Auth(reason_code=step.reason_code, properties=exchange.properties(step)))
            return None
        if step.reason_code is not ReasonCode.SUCCESS:
            # [MQTT-4.12.0-4] the server may reject at any point: CONNACK >= 0x80, then close.
            logger.info("client %s: %s authentication failed", exchange.client.client_id, exchange.method)
            protocol.refuse(_fitting(step.reason_code, CONNACK_REASON_CODES))
            return None
        assert exchange.connect is not None
        info = exchange.authenticated(step)
        if self.on_authenticated is not None:
            self.on_authenticated(info)
        return self._admit(
            link,
            exchange.connect,
            info,
            exchange.assigned_client_id,
            ReasonCode.SUCCESS,
            step.settings,
            exchange.properties(step),
        )

    def _on_auth(self, client: Client, packet: Auth) -> Step:
        """Re-authentication [MQTT-4.12.1]: AUTH 0x19 starts it, AUTH 0x18 continues it."""
        protocol = client.link.protocol
        if packet.reason_code == ReasonCode.RE_AUTHENTICATE:
            # The protocol checked that the method is the CONNECT's [MQTT-4.12.1-1].
            hook = self.enhanced_authenticators.get(protocol.auth_method or "")
            if hook is None:
                raise ProtocolError("method no longer offered", ReasonCode.BAD_AUTHENTICATION_METHOD)
            exchange = AuthExchange(authenticator=hook, client=client.info)
        else:
            pending = protocol.auth_exchange
            if not isinstance(pending, AuthExchange):
                raise ProtocolViolation("AUTH outside an authentication")
            exchange = pending
        return self._reauth_step(client, exchange, packet.properties.authentication_data)

    async def _reauth_step(self, client: Client, exchange: AuthExchange, data: bytes | None) -> None:
        step = await exchange.advance(data)
        link = client.link
        if link.protocol.phase is not ConnectionPhase.CONNECTED:
            return
        link.protocol.auth_exchange = None if step.done else exchange
        if step.reason_code is ReasonCode.SUCCESS and exchange.authenticated(step) != client.info:
            # Hooks, ACLs and sessions know the connection by the identity it was admitted with.
            logger.info("client %s re-authenticated as another user", client.info.client_id)
            step = AuthStep.failure(ReasonCode.NOT_AUTHORIZED)
        if step.reason_code >= 0x80:
            # [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT with the reason, then close.
            logger.info("client %s: %s re-authentication failed", client.info.client_id, exchange.method)
            client.disconnect_reason = "not_authorized"
            # DISCONNECT has no 0x86 or 0x8C (table 3.14.2.1): those become 0x87 Not authorized.
            code = _fitting(step.reason_code, DISCONNECT_REASON_CODES)
            link.protocol.disconnect(code, "re-authentication failed")
            link.close()
            return
        # 0x18 asks for more; 0x00 ends it, and packets flowed meanwhile on the old authentication.
        link.send(Auth(reason_code=step.reason_code, properties=exchange.properties(step)))

    def _unchecked_decision(self, link: ClientLink) -> ReasonCode:
        """The answer when no hook decided: ``allow_anonymous``, as in Mosquitto 2.

        A username nobody checked is no credential, so it does not get a client in;
        a certificate identity (use_identity_as_username) was checked by the TLS
        handshake and does.
        """
        if self.allow_anonymous or link.identity_as_username:
            return ReasonCode.SUCCESS
        return ReasonCode.NOT_AUTHORIZED

    # -- admission -----------------------------------------------------------------------

    def _admit(
        self,
        link: ClientLink,
        packet: Connect,
        info: ClientInfo,
        assigned: str | None,
        code: int,
        settings: AuthResult | None = None,
        authentication: Properties | None = None,
    ) -> Client | None:
        if code != ReasonCode.SUCCESS:
            link.protocol.refuse(code)
            return None
        if link.protocol.phase is not ConnectionPhase.CONNECTING:  # closed while a hook was awaited
            return None
        cfg = self.config
        client_id = info.client_id
        version = packet.protocol_version
        expiry = self._session_expiry(packet)
        keep_alive, connack_props = self._connack_properties(packet, expiry, assigned, authentication)
        if not link.protocol.fits(ConnAck(properties=connack_props)):
            # [MQTT-3.1.2-24] nothing we send may exceed the client's Maximum Packet Size, and
            # without a CONNACK the connection cannot go on: close it without sending anything,
            # before it takes over a connection or a session, or leaves a will.
            logger.info("client %s: CONNACK exceeds its maximum packet size; closing", client_id)
            link.protocol.disconnect(ReasonCode.PACKET_TOO_LARGE)
            return None
        old = self.clients.get(client_id)
        if old is not None:
            self._take_over(old)
        pending_will = self._will_timers.pop(client_id, None)
        if pending_will is not None:
            pending_will[0].cancel()  # [MQTT-3.1.3-9] a reconnect cancels a delayed will
        self._cancel_timer(self._expiry_timers, client_id)

        session = self.sessions.get(client_id)
        session_present = session is not None and not packet.clean_start
        if session is not None and packet.clean_start:
            # [MQTT-3.1.2-4] clean start discards any existing session.
            self._end_session(session, publish_will=False)
            session = None
        if session is None:
            session = Session(client_id=client_id)
            self.sessions[client_id] = session
        session.expiry_interval = expiry
        # Per-device quota from the authentication hook (persisted with the session).
        if settings is None:
            self._set_quota(session, None, None)
        else:
            self._set_quota(session, settings.max_queued_messages, settings.max_queued_bytes)
        session.disconnected_at = None
        self._persist(session, packet.will)
        receive_max = link.protocol.client_receive_maximum
        session.max_inflight = min(cfg.max_inflight_messages, receive_max)
        link.set_keep_alive(keep_alive)

        client = Client(link=link, session=session, info=info, version=version, will=packet.will)
        self.clients[client_id] = client
        self.stats.connections_total += 1
        link.protocol.accept(ConnAck(session_present=session_present, properties=connack_props))
        if session_present:
            self.router.resend_inflight(client)
        self.router.pump(client)
        if self.events.active:
            self.events.emit(ClientConnected(client=info, session_present=session_present))
        return client

    def _connack_properties(
        self, packet: Connect, expiry: int, assigned: str | None, authentication: Properties | None
    ) -> tuple[int, Properties]:
        """The keep alive the client must use, and the properties of its CONNACK."""
        keep_alive = packet.keep_alive
        if packet.protocol_version is not V5:
            return keep_alive, EMPTY_PROPERTIES
        cfg = self.config
        props: dict[str, Any] = {}
        if keep_alive > cfg.max_keepalive or (keep_alive == 0 and cfg.max_keepalive < 65535):
            # [MQTT-3.2.2-21] the client must use the Server Keep Alive we send.
            keep_alive = cfg.max_keepalive
            props["server_keep_alive"] = keep_alive
        if assigned:
            props["assigned_client_identifier"] = assigned
        props.update(self._connack_capabilities(expiry, packet))
        if authentication is not None:
            props["authentication_method"] = authentication.authentication_method
            props["authentication_data"] = authentication.authentication_data
        return keep_alive, Properties(**props) if props else EMPTY_PROPERTIES

    def _session_expiry(self, packet: Connect) -> int:
        cfg = self.config
        if packet.protocol_version is V5:
            expiry = packet.properties.session_expiry_interval or 0
            if cfg.session_expiry_max is not None:
                expiry = min(expiry, cfg.session_expiry_max)
            return expiry
        if packet.clean_start:
            return 0
        if cfg.persistent_client_expiration is not None:
            return cfg.persistent_client_expiration
        return NEVER_EXPIRES

    def _connack_capabilities(self, expiry: int, packet: Connect) -> dict[str, Any]:
        cfg = self.config
        props: dict[str, Any] = {}
        requested = packet.properties.session_expiry_interval or 0
        if expiry != requested:
            props["session_expiry_interval"] = expiry
        if cfg.receive_maximum != 65535:
            props["receive_maximum"] = cfg.receive_maximum
        if cfg.max_qos < 2:
            props["maximum_qos"] = cfg.max_qos
        if not cfg.retain_available:
            props["retain_available"] = 0
        if cfg.max_packet_size < 268_435_455:
            props["maximum_packet_size"] = cfg.max_packet_size
        if cfg.topic_alias_maximum:
            props["topic_alias_maximum"] = cfg.topic_alias_maximum
        if not cfg.wildcard_subscriptions:
            props["wildcard_subscription_available"] = 0
        if not cfg.subscription_identifiers:
            props["subscription_identifier_available"] = 0
        if not cfg.shared_subscriptions:
            props["shared_subscription_available"] = 0
        return props

    def _take_over(self, old: Client) -> None:
        """[MQTT-3.1.4-3] close the existing connection; v5 tells it why (0x8E)."""
        old.disconnect_reason = "takeover"
        old.link.protocol.disconnect(ReasonCode.SESSION_TAKEN_OVER)
        old.link.close()
        self.disconnected(old)

    # == disconnect ===============================================================

    def disconnected(self, client: Client) -> None:
        """The connection of ``client`` is gone (any reason). Idempotent."""
        cid = client.info.client_id
        if self.clients.get(cid) is not client:
            return
        del self.clients[cid]
        session = client.session
        will = client.will
        client.will = None
        if session.expiry_interval == 0:
            self._end_session(session, publish_will=False)
            if will is not None:
                self._publish_will(cid, will)
        else:
            session.disconnected_at = self.clock()
            delayed = will is not None and self._schedule_will(cid, will, session)
            # A delayed will is stored with the session, so a restart still publishes it.
            self._persist(session, will if delayed else None)
            if session.expiry_interval != NEVER_EXPIRES:
                loop = asyncio.get_running_loop()
                self._expiry_timers[cid] = loop.call_later(session.expiry_interval, self._expire_session, cid)
        if self.events.active:
            self.events.emit(ClientDisconnected(client=client.info, reason=client.disconnect_reason))

    def _schedule_will(self, cid: str, will: Will, session: Session, elapsed: float = 0.0) -> bool:
        """Publish ``will`` now, or after its delay (less ``elapsed``); True if it waits."""
        delay = (will.properties.will_delay_interval or 0) - elapsed
        if delay <= 0:
            self._publish_will(cid, will)
            return False
        # [MQTT-3.1.3-9] published after the delay or when the session ends, whichever first.
        loop = asyncio.get_running_loop()
        handle = loop.call_later(min(delay, session.expiry_interval), self._delayed_will, cid, will)
        self._will_timers[cid] = (handle, will)
        return True

    def _delayed_will(self, cid: str, will: Will) -> None:
        self._will_timers.pop(cid, None)
        self._publish_will(cid, will)
        session = self.sessions.get(cid)
        if session is not None:
            self._persist(session)  # the will is gone

    def _publish_will(self, cid: str, will: Will) -> None:
        props = will.properties
        if props is not EMPTY_PROPERTIES:
            props = props.without("will_delay_interval")
        message = self._make_message(will.topic, will.payload, will.qos, will.retain, props, cid)
        self.router.publish_message(message)

    def _expire_session(self, cid: str) -> None:
        self._expiry_timers.pop(cid, None)
        session = self.sessions.get(cid)
        if session is not None and cid not in self.clients:
            self._end_session(session, publish_will=True)

    def _end_session(self, session: Session, *, publish_will: bool) -> None:
        cid = session.client_id
        for topic_filter in list(session.subscriptions):
            self.subscriptions.remove(cid, topic_filter)
        pending = session.reset()
        self.router.discard(session, pending, "session ended")
        self.sessions.pop(cid, None)
        if self.store is not None and session.stored:
            self.store.session_delete(cid)
        pending_will = self._will_timers.pop(cid, None)
        if pending_will is not None:
            pending_will[0].cancel()
            if publish_will:
                self._publish_will(cid, pending_will[1])

    @staticmethod
    def _cancel_timer(timers: dict[str, asyncio.TimerHandle], cid: str) -> None:
        timer = timers.pop(cid, None)
        if timer is not None:
            timer.cancel()

    # == inbound packets ==========================================================

    def handle(self, client: Client, packet: Packet) -> Step | None:
        """Dispatch one packet of a connected client; may return a coroutine to await."""
        t = type(packet)
        if t is Publish:
            return self._on_publish(client, packet)  # type: ignore[arg-type]
        if t is PubAck:
            self._on_puback(client, packet)  # type: ignore[arg-type]
        elif t is PubRec:
            self._on_pubrec(client, packet)  # type: ignore[arg-type]
        elif t is PubRel:
            self._on_pubrel(client, packet)  # type: ignore[arg-type]
        elif t is PubComp:
            self._on_pubcomp(client, packet)  # type: ignore[arg-type]
        elif t is Subscribe:
            return self._on_subscribe(client, packet)  # type: ignore[arg-type]
        elif t is Unsubscribe:
            self._on_unsubscribe(client, packet)  # type: ignore[arg-type]
        elif t is PingReq:
            client.link.send(PingResp())
        elif t is Disconnect:
            self._on_disconnect(client, packet)  # type: ignore[arg-type]
        elif t is Auth:
            return self._on_auth(client, packet)  # type: ignore[arg-type]
        else:
            raise ProtocolViolation(f"unexpected {PacketType(packet.packet_type).name}")
        return None

    # -- PUBLISH (inbound) --------------------------------------------------------

    def _on_publish(self, client: Client, packet: Publish) -> Step | None:
        self.stats.messages_received += 1
        if packet.retain and not self.config.retain_available:
            raise ProtocolError("retain not supported", ReasonCode.RETAIN_NOT_SUPPORTED)  # [MQTT-3.3.1-...]
        if self.publish_authorizers:
            return self._authorize_publish(client, packet)
        self._accept_publish(client, packet, ReasonCode.SUCCESS)
        return None

    async def _authorize_publish(self, client: Client, packet: Publish) -> None:
        code: int | None = None
        for hook in self.publish_authorizers:
            code = await hook.authorize_publish(client.info, packet.topic, packet.qos, packet.retain)
            if code is not None:
                break
        self._accept_publish(client, packet, ReasonCode.SUCCESS if code is None else code)

    def _accept_publish(self, client: Client, packet: Publish, code: int) -> None:
        qos = packet.qos
        pid = packet.packet_id
        if qos == 2:
            incoming = client.session.incoming_qos2
            if pid in incoming:
                # [MQTT-4.3.3-10] a resent QoS 2 PUBLISH is not delivered again.
                self.ack_after_commit(client, PubRec(packet_id=pid))
                return
        if code >= 0x80:
            # Refused: 3.1.1 has no way to say so, the message is acknowledged and dropped.
            logger.debug("publish to %s by %s refused (0x%02x)", packet.topic, client.info.client_id, code)
            if qos == 1:
                client.link.send(PubAck(packet_id=pid, reason_code=code))  # type: ignore[arg-type]
            elif qos == 2:
                client.link.send(PubRec(packet_id=pid, reason_code=code))  # type: ignore[arg-type]
            return
        props = packet.properties
        message = self._make_message(
            packet.topic, packet.payload, qos, packet.retain, props, client.info.client_id
        )
        matched = self.router.publish_message(message)
        if not qos:
            return
        assert pid is not None
        v5 = client.version is V5
        rc = 0 if matched or not v5 else ReasonCode.NO_MATCHING_SUBSCRIBERS
        ack_props = EMPTY_PROPERTIES
        if v5 and self.push.ack_message_id and message.message_id is not None:
            # The publisher learns the id under which it can look up delivery receipts.  A user
            # property: protocol.send strips it for a client that asked for no diagnostics
            # ([MQTT-3.1.2-29]) or whose Maximum Packet Size it would exceed ([MQTT-3.4.2-3],
            # [MQTT-3.5.2-3]).
            ack_props = Properties(user_properties=(("message-id", message.message_id),))
        error = ReasonCode.UNSPECIFIED_ERROR
        failed: Packet | None
        if qos == 1:
            failed = PubAck(packet_id=pid, reason_code=error, properties=_UNSTORED) if v5 else None
            self.ack_after_commit(client, PubAck(packet_id=pid, reason_code=rc, properties=ack_props), failed)
            return
        session = client.session
        session.incoming_qos2.add(pid)
        if self.store is not None and session.expiry_interval:
            # [MQTT-4.3.3] the packet id survives a restart, so a resend is not delivered twice.
            self.store.incoming_put(session.client_id, pid)
        failed = PubRec(packet_id=pid, reason_code=error, properties=_UNSTORED) if v5 else None
        self.ack_after_commit(client, PubRec(packet_id=pid, reason_code=rc, properties=ack_props), failed)

    def _make_message(
        self,
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
        now = self.clock()
        expires_at = None
        if props is not EMPTY_PROPERTIES:
            if props.message_expiry_interval is not None:
                expires_at = now + props.message_expiry_interval
            if props.topic_alias is not None or props.message_expiry_interval is not None:
                props = props.without(*_PUBLISH_KEEP)
            for key, value in props.user_properties:
                # Push metadata from MQTT 5 publishers; the properties are forwarded unchanged.
                if key == "priority" and priority is None:
                    priority = _parse_priority(value)
                elif key == "collapse-key" and collapse_key is None:
                    collapse_key = value
        if expires_at is None or priority is None:
            rule_priority, rule_ttl = self._topic_rules(topic)
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

    def _topic_rules(self, topic: str) -> tuple[int, int | None]:
        """(priority, ttl) from the [push] topic rules; first match wins, cached per topic."""
        cached = self._rules_cache.get(topic)
        if cached is not None:
            return cached
        push = self.push
        priority = next((r.priority for r in push.priority if matches(r.topic, topic)), 0)
        ttl = next((r.ttl for r in push.ttl if matches(r.topic, topic)), push.default_ttl)
        if len(self._rules_cache) > 10_000:
            self._rules_cache.clear()
        result = self._rules_cache[topic] = (priority, ttl)
        return result

    # -- acknowledgements from the client -------------------------------------------

    def _on_puback(self, client: Client, packet: PubAck) -> None:
        self.handle_pubacks(client, [packet])

    def handle_pubacks(self, client: Client, packets: list[PubAck]) -> None:
        """PUBACKs (several when read together): each completes its message, then one refill of the window."""
        session = client.session
        done = []
        for packet in packets:
            out = session.acknowledge(packet.packet_id, OutState.WAIT_PUBACK)
            if out is not None:
                if packet.reason_code >= 0x80:
                    _refused(out, packet)
                done.append(out)
            elif packet.packet_id in session.inflight:
                # Looked up only here, off the common path: the acks before it still count.
                if done:
                    self.router.completed(client, done)
                raise _wrong_ack(packet, session.inflight[packet.packet_id])
            # else an id not in flight at all: a resend after a reconnect, ignored.
        if done:
            self.router.completed(client, done)
            self.router.pump(client)

    def _on_pubrec(self, client: Client, packet: PubRec) -> None:
        session = client.session
        if packet.reason_code >= 0x80:
            # MQTT 5 section 4.3.3: a PUBREC with a reason code of 0x80 or more ends the flow
            # (no PUBREL); the message is not resent, and its receipt says the client refused it.
            done = session.acknowledge(packet.packet_id, OutState.WAIT_PUBREC)
            if done is not None:
                _refused(done, packet)
                self.router.completed(client, [done])
                self.router.pump(client)
            elif packet.packet_id in session.inflight:
                raise _wrong_ack(packet, session.inflight[packet.packet_id])
            return
        out = session.received_pubrec(packet.packet_id)
        if out is None:
            waiting = session.inflight.get(packet.packet_id)
            if waiting is None:
                # Not in flight (a resend after a reconnect): 0x92 Packet Identifier not found.
                client.link.send(PubRel(packet_id=packet.packet_id, reason_code=_not_found(client)))
                return
            if waiting.state is not OutState.WAIT_PUBCOMP:
                # A PUBREC for a QoS 1 message: answering PUBREL would start a QoS 2 exchange
                # the client never began.
                raise _wrong_ack(packet, waiting)
            # A PUBREC repeated after our PUBREL gets the PUBREL again (as in Mosquitto).
            client.link.send(PubRel(packet_id=packet.packet_id))
            return
        if self.store is not None and session.expiry_interval and out.message.message_id:
            self.store.outgoing_update(session.client_id, out.message.message_id, out.state, out.packet_id)
            # MQTT 5 section 4.3.3: once the PUBREL is sent, the PUBLISH must never be sent again.
            # So the PUBREL waits for the "PUBREC received" state to be durable: after a crash
            # the broker resends the PUBREL, not the PUBLISH the client already released (which
            # it would deliver twice).  A failed commit sends nothing; a reconnect resends it.
            self.ack_after_commit(client, PubRel(packet_id=packet.packet_id))
            return
        client.link.send(PubRel(packet_id=packet.packet_id))

    def _on_pubcomp(self, client: Client, packet: PubComp) -> None:
        session = client.session
        out = session.acknowledge(packet.packet_id, OutState.WAIT_PUBCOMP)
        if out is not None:
            if packet.reason_code >= 0x80:
                _refused(out, packet)
            self.router.completed(client, [out])
            self.router.pump(client)
        elif packet.packet_id in session.inflight:
            raise _wrong_ack(packet, session.inflight[packet.packet_id])

    def _on_pubrel(self, client: Client, packet: PubRel) -> None:
        incoming = client.session.incoming_qos2
        if packet.packet_id in incoming:
            incoming.discard(packet.packet_id)
            if self.store is not None and client.session.expiry_interval:
                self.store.incoming_delete(client.session.client_id, packet.packet_id)
                # After PUBCOMP the client may reuse the packet id for a new message, which the
                # broker must accept [MQTT-4.3.3]: the id's release is durable first, or a
                # restart would drop that new message as a resend.
                self.ack_after_commit(client, PubComp(packet_id=packet.packet_id))
                return
            client.link.send(PubComp(packet_id=packet.packet_id))
        else:
            client.link.send(PubComp(packet_id=packet.packet_id, reason_code=_not_found(client)))

    # -- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------------

    def _on_subscribe(self, client: Client, packet: Subscribe) -> Step | None:
        codes = [self._check_subscription(client, sub) for sub in packet.subscriptions]
        if self.subscribe_authorizers:
            return self._authorize_subscribe(client, packet, codes)
        self._complete_subscribe(client, packet, codes)
        return None

    async def _authorize_subscribe(self, client: Client, packet: Subscribe, codes: list[int]) -> None:
        for i, sub in enumerate(packet.subscriptions):
            if codes[i] >= 0x80:
                continue
            for hook in self.subscribe_authorizers:
                code = await hook.authorize_subscribe(client.info, sub)
                if code is not None:
                    if code >= 0x80:
                        codes[i] = code
                    elif code < codes[i]:
                        codes[i] = code  # the hook may downgrade the granted QoS
                    break
        self._complete_subscribe(client, packet, codes)

    def _check_subscription(self, client: Client, sub: Subscription) -> int:
        """The granted QoS, or a failure reason code [MQTT-3.9.3]."""
        cfg = self.config
        try:
            validate_topic_filter(
                sub.topic_filter, max_levels=cfg.max_topic_levels, max_length=cfg.max_topic_length
            )
        except ProtocolViolation:
            # A malformed filter ([MQTT-4.7.1-1..3], [MQTT-4.7.3-1], [MQTT-4.8.2-1/2]) is a
            # Protocol Error: MQTT 5 section 4.13 DISCONNECT 0x82, 3.1.1 [MQTT-4.8.0-1] close.
            raise
        except ProtocolError as exc:
            # A filter beyond max_topic_length or max_topic_levels is "correctly formed
            # but not allowed": SUBACK 0x8F (section 3.9.3, Table 3-8).
            return exc.reason_code
        group, _ = parse_shared(sub.topic_filter)
        if group is not None:
            if not cfg.shared_subscriptions:
                return ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
            if sub.no_local:
                # [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
                raise ProtocolViolation("no local on a shared subscription")
        if not cfg.wildcard_subscriptions and ("+" in sub.topic_filter or "#" in sub.topic_filter):
            return ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
        return min(sub.qos, cfg.max_qos)

    def _complete_subscribe(self, client: Client, packet: Subscribe, codes: list[int]) -> None:
        session = client.session
        sub_ids = packet.properties.subscription_identifiers
        sub_id = sub_ids[0] if sub_ids else None
        retained: list[tuple[Subscription, int, bool]] = []
        room = self._subscription_room(session)
        for i, sub in enumerate(packet.subscriptions):
            code = codes[i]
            if code >= 0x80:
                continue
            if room is not None and sub.topic_filter not in session.subscriptions:
                if room == 0:
                    # max_subscriptions: "an implementation or administrative imposed limit
                    # has been exceeded", SUBACK 0x97 (section 3.9.3, Table 3-8); 3.1.1 0x80.
                    codes[i] = ReasonCode.QUOTA_EXCEEDED
                    continue
                room -= 1
            group, _ = parse_shared(sub.topic_filter)
            entry = SubscriptionEntry(
                client_id=session.client_id,
                topic_filter=sub.topic_filter,
                qos=code,
                no_local=sub.no_local,
                retain_as_published=sub.retain_as_published,
                subscription_id=sub_id,
                share_group=group,
            )
            is_new = self.subscriptions.add(entry)
            session.subscriptions[sub.topic_filter] = entry
            if self.store is not None and session.expiry_interval:
                self.store.subscription_put(entry)
            if group is None:
                retained.append((sub, code, is_new))
        if client.version is not V5:
            codes = [c if c < 0x80 else 0x80 for c in codes]

        def finish() -> None:
            client.link.send(SubAck(packet_id=packet.packet_id, reason_codes=tuple(codes)))
            for sub, granted, is_new in retained:
                handling = sub.retain_handling
                if handling is RetainHandling.DO_NOT_SEND or (
                    handling is RetainHandling.SEND_IF_NEW_SUBSCRIPTION and not is_new
                ):
                    continue
                self.router.send_retained(client, sub.topic_filter, granted, sub_id)
            if self.events.active:
                self.events.emit(
                    Subscribed(
                        client=client.info, subscriptions=packet.subscriptions, reason_codes=tuple(codes)
                    )
                )

        def failed() -> None:
            # Not durable: refuse every filter rather than acknowledge what a restart would forget.
            client.link.send(SubAck(packet_id=packet.packet_id, reason_codes=(0x80,) * len(codes)))

        self.after_commit(client, finish, failed)

    def _subscription_room(self, session: Session) -> int | None:
        """How many more filters ``session`` may hold; None: no limit."""
        cap = self.config.max_subscriptions
        if not cap:
            return None
        # Never negative: a session restored with more than a since lowered cap keeps them.
        return max(cap - len(session.subscriptions), 0)

    def _on_unsubscribe(self, client: Client, packet: Unsubscribe) -> None:
        for topic_filter in packet.topic_filters:
            # A malformed filter is a Protocol Error here as in SUBSCRIBE (MQTT 5 section 4.13,
            # 3.1.1 [MQTT-4.8.0-1]), checked before anything is removed.  Our limits are not
            # checked: a filter beyond them was never subscribed, and gets 0x11 below.
            validate_topic_filter_syntax(topic_filter)
        session = client.session
        codes = []
        for topic_filter in packet.topic_filters:
            existed = self.subscriptions.remove(session.client_id, topic_filter)
            session.subscriptions.pop(topic_filter, None)
            if existed and self.store is not None and session.expiry_interval:
                self.store.subscription_delete(session.client_id, topic_filter)
            codes.append(ReasonCode.SUCCESS if existed else ReasonCode.NO_SUBSCRIPTION_EXISTED)
        # [MQTT-3.10.4-4] UNSUBACK even when nothing was removed; for a stored session, once the
        # removal is durable (as SUBACK waits for subscriptions), so a restart cannot bring back
        # a subscription the client was told is gone.
        self.ack_after_commit(client, UnsubAck(packet_id=packet.packet_id, reason_codes=tuple(codes)))
        if self.events.active:
            self.events.emit(Unsubscribed(client=client.info, topic_filters=packet.topic_filters))

    # -- DISCONNECT ---------------------------------------------------------------

    def _on_disconnect(self, client: Client, packet: Disconnect) -> None:
        expiry = packet.properties.session_expiry_interval
        if expiry is not None:
            if client.session.expiry_interval == 0 and expiry != 0:
                # [MQTT-3.14.2-2] a session that ends with the connection cannot be extended.
                raise ProtocolViolation("session expiry set on DISCONNECT after 0 in CONNECT")
            client.session.expiry_interval = expiry
        if packet.reason_code != ReasonCode.DISCONNECT_WITH_WILL_MESSAGE:
            client.will = None  # [MQTT-3.1.2-10] a normal DISCONNECT discards the will
        client.disconnect_reason = "disconnect"
        client.link.close()

    # == embedded API ==============================================================

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
    ) -> PublishResult:
        """Publish from the server side (embedded API, admin API)."""
        cfg = self.config
        validate_topic_name(topic, max_levels=cfg.max_topic_levels, max_length=cfg.max_topic_length)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        if priority is not None and not 0 <= priority <= 255:
            raise ValueError(f"priority must be 0..255, not {priority!r}")
        message = self._make_message(
            topic,
            payload,
            qos,
            retain,
            properties,
            None,
            priority=priority,
            collapse_key=collapse_key,
            ttl=ttl,
        )
        matched = self.router.publish_message(message)
        return PublishResult(message_id=message.message_id, matched=matched)

    # == subscription plans =========================================================

    async def close(self) -> None:
        for timer in self._expiry_timers.values():
            timer.cancel()
        self._expiry_timers.clear()
        if self._purge_timer is not None:
            self._purge_timer.cancel()
        for handle, _ in self._will_timers.values():
            handle.cancel()
        self._will_timers.clear()
        await self.events.close()


# v5 publishers learn that the message reached live subscribers but is not durable.
_UNSTORED = Properties(reason_string="store unavailable")


def _fitting(code: int, allowed: frozenset[int]) -> int:
    """``code`` if the packet can carry it, else Not authorized (a hook's code, any packet)."""
    return code if code in allowed else ReasonCode.NOT_AUTHORIZED


def _not_found(client: Client) -> int:
    return ReasonCode.PACKET_IDENTIFIER_NOT_FOUND if client.version is V5 else 0


def _parse_priority(value: str) -> int | None:
    try:
        priority = int(value)
    except ValueError:
        return None
    return min(max(priority, 0), 255)


def _call(then: Callable[[], None]) -> None:
    then()


def _release_acks(client: Client, pending: deque[Any], _: asyncio.Future[None]) -> None:
    """Run the acks whose commits are done, in order, up to the first that is not."""
    while pending:
        fut, action, arg, failed = pending[0]
        if not fut.done():
            fut.add_done_callback(partial(_release_acks, client, pending))
            return
        pending.popleft()
        if fut.exception() is None:
            action(arg)
        elif failed is not None:
            action(failed)
        else:
            _give_up(client)


def _give_up(client: Client) -> None:
    """A commit failed and the client cannot be told: close, so that it resends after reconnecting."""
    link = client.link
    if link.protocol.phase is ConnectionPhase.CLOSED:
        return
    logger.warning("closing %s: an acknowledgement could not be made durable", client.info.client_id)
    client.disconnect_reason = "store_failure"
    link.protocol.disconnect(ReasonCode.UNSPECIFIED_ERROR, "store unavailable")
    link.close()


def _wrong_ack(packet: PubAck | PubRec | PubComp, out: Outgoing) -> ProtocolViolation:
    """An acknowledgement of the wrong type for a message in flight to the client.

    The client answers a QoS 1 PUBLISH with PUBACK ([MQTT-4.3.2-4]; 3.1.1 [MQTT-4.3.2-2]), a
    QoS 2 PUBLISH with PUBREC and our PUBREL with PUBCOMP ([MQTT-4.3.3-8], [MQTT-4.3.3-11];
    3.1.1 [MQTT-4.3.3-2]).  Any other answer is a Protocol Error: MQTT 5 section 4.13
    DISCONNECT 0x82, 3.1.1 close [MQTT-4.8.0-1] (as Mosquitto does).
    """
    got = type(packet).__name__.upper()
    return ProtocolViolation(f"{got} for packet id {packet.packet_id}, which is in {out.state.value}")


def _refused(out: Outgoing, packet: PubAck | PubRec | PubComp) -> None:
    """A v5 client ended a delivery's flow with an error reason code: its receipt says which."""
    code = packet.reason_code
    try:
        name = ReasonCode(code).name.lower().replace("_", " ")
    except ValueError:
        name = "not a reason code of the spec"
    out.reason = f"{type(packet).__name__.upper()} reason code 0x{code:02X} ({name})"
