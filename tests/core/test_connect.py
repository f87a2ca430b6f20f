"""CONNECT and CONNACK as the core decides them (MQTT 5.0 sections 3.1, 3.2; 3.1.1 the same).

Client identifiers (3.1.3.1), Clean Start and Session Present (3.1.2.4, 3.2.2.1.1),
Keep Alive (3.1.2.10, 3.2.2.3.14), who may connect (allow_anonymous, as
Mosquitto 2), and taking over a connected client id (3.1.4).
"""

from __future__ import annotations

from zanzara.core import Awaiting, Core, Refused
from zanzara.hooks import AuthResult, ConnectRequest
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import ConnAck, Connect, Disconnect, PingResp, Subscription
from zanzara.mqtt.properties import Properties
from zanzara.protocol import ConnectionPhase

from .conftest import (
    RC,
    V5,
    V31,
    V311,
    CoreFactory,
    FakeLink,
    Pause,
    both_versions,
    connect,
    connect_packet,
    disconnect,
    drop,
    finish,
    message,
    open_connection,
    receive,
    refused,
    sent,
    subscribe,
    will,
)


def connack_code(packets: list[object]) -> int:
    [connack] = packets
    assert isinstance(connack, ConnAck)
    return connack.reason_code


class TestClientIdentifier_3_1_3_1:
    def test_23_alphanumeric_characters_are_accepted(self, make_core: CoreFactory) -> None:
        """[MQTT-3.1.3-5] the server must allow 1 to 23 characters of 0-9a-zA-Z (even at the cap)."""
        core = make_core(max_client_id_length=23)
        client = connect(core, "0123456789abcdefghijXYZ")
        assert client.info.client_id == "0123456789abcdefghijXYZ"
        assert core.clients["0123456789abcdefghijXYZ"] is client

    def test_longer_than_the_cap_is_refused(self, make_core: CoreFactory) -> None:
        """[MQTT-3.1.3-8] a rejected client id: CONNACK 0x85 Client Identifier not valid, then close."""
        core = make_core(max_client_id_length=23)
        assert connack_code(refused(core, connect_packet("x" * 24))) == RC.CLIENT_IDENTIFIER_NOT_VALID
        assert core.sessions == {}

    def test_mqtt31_ids_are_1_to_23_characters(self, core: Core) -> None:
        """MQTT 3.1 (3.1, CONNECT payload): 1-23 characters, else return code 2, identifier rejected."""
        assert connack_code(refused(core, connect_packet("x" * 24, version=V31))) == 2
        assert connack_code(refused(core, connect_packet("", version=V31))) == 2
        assert connect(core, "x" * 23, version=V31).version is V31

    def test_empty_id_is_assigned_one_v5(self, core: Core) -> None:
        """[MQTT-3.1.3-6], [MQTT-3.1.3-7] an empty id gets a unique one, told in the CONNACK."""
        first = connect(core, "")
        second = connect(core, "")
        assert first.link.connack is not None
        assigned = first.link.connack.properties.assigned_client_identifier
        assert assigned == first.info.client_id
        assert first.info.client_id != second.info.client_id
        assert set(core.clients) == {first.info.client_id, second.info.client_id}

    def test_empty_id_with_clean_session_v311(self, core: Core) -> None:
        """3.1.1 [MQTT-3.1.3-6] the server assigns an id; 3.1.1 has no property to tell it."""
        client = connect(core, "", version=V311)
        assert client.info.client_id
        assert client.link.connack == ConnAck()

    def test_empty_id_without_clean_session_v311_is_refused(self, core: Core) -> None:
        """3.1.1 [MQTT-3.1.3-8] empty id with CleanSession 0: CONNACK 0x02 Identifier rejected."""
        assert connack_code(refused(core, connect_packet("", version=V311, clean_start=False))) == 2

    def test_empty_id_without_clean_start_v5_is_assigned(self, core: Core) -> None:
        """5.0 has no [MQTT-3.1.3-8] of 3.1.1: Clean Start 0 with an empty id is given a new session."""
        client = connect(core, "", clean_start=False)
        assert client.link.connack is not None
        assert client.link.connack.session_present is False

    @both_versions
    def test_empty_id_refused_when_not_allowed(
        self, make_core: CoreFactory, version: ProtocolVersion
    ) -> None:
        """[MQTT-3.1.3-8] (3.1.1 [MQTT-3.1.3-9]) a server that assigns no ids: 0x85 (3.1.1: 0x02)."""
        core = make_core(allow_zero_length_clientid=False)
        code = connack_code(refused(core, connect_packet("", version=version)))
        assert code == (RC.CLIENT_IDENTIFIER_NOT_VALID if version is V5 else 2)


class TestSessionPresent_3_2_2_1_1:
    @both_versions
    def test_no_session_no_session_present(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.2.2-3] Clean Start 0 without session state: Session Present 0 (3.1.1 [MQTT-3.2.2-3])."""
        client = connect(core, "c", version=version, clean_start=False, session_expiry_interval=60)
        assert client.link.connack is not None
        assert client.link.connack.session_present is False

    @both_versions
    def test_resumed_session_is_present(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.2.2-3] Clean Start 0 with session state: Session Present 1, its subscriptions kept.

        3.1.1 [MQTT-3.2.2-2]; the session outlives its connection because CleanSession is 0
        (3.1.1 [MQTT-3.1.2-4]) or its Session Expiry Interval is above 0 (5.0 [MQTT-3.1.2-23]).
        """
        props = {"session_expiry_interval": 60} if version is V5 else {}
        first = connect(core, "c", version=version, clean_start=False, **props)
        subscribe(core, first, "a/b", qos=1)
        drop(core, first)
        again = connect(core, "c", version=version, clean_start=False, **props)
        assert again.link.connack is not None
        assert again.link.connack.session_present is True
        assert again.session is first.session
        assert set(again.session.subscriptions) == {"a/b"}

    @both_versions
    def test_clean_start_discards_the_session(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-4] Clean Start 1 discards the session; [MQTT-3.2.2-2] Session Present 0.

        3.1.1: [MQTT-3.1.2-6] and [MQTT-3.2.2-1].
        """
        props = {"session_expiry_interval": 60} if version is V5 else {}
        first = connect(core, "c", version=version, clean_start=False, **props)
        subscribe(core, first, "a/b", qos=1)
        drop(core, first)
        again = connect(core, "c", version=version, clean_start=True)
        assert again.link.connack is not None
        assert again.link.connack.session_present is False
        assert again.session is not first.session
        assert again.session.subscriptions == {}
        core.publish("a/b", b"x", qos=1)
        assert sent(again.link) == []

    def test_session_that_ended_with_its_connection_is_not_present(self, core: Core) -> None:
        """[MQTT-3.1.2-11] (5.0) Session Expiry Interval 0: the session ends when the connection closes."""
        first = connect(core, "c", clean_start=False)
        subscribe(core, first, "a/b")
        drop(core, first)
        again = connect(core, "c", clean_start=False)
        assert again.link.connack is not None
        assert again.link.connack.session_present is False
        assert again.session.subscriptions == {}


class TestKeepAlive_3_1_2_10:
    def test_above_the_cap_v5_gets_server_keep_alive(self, make_core: CoreFactory) -> None:
        """[MQTT-3.2.2-21] the client must use the Server Keep Alive of CONNACK: ours, the cap."""
        core = make_core(max_keepalive=60)
        client = connect(core, "c", keep_alive=120)
        assert client.link.connack is not None
        assert client.link.connack.properties.server_keep_alive == 60
        assert client.link.keep_alive == 60  # type: ignore[attr-defined]

    def test_zero_means_none_unless_capped_v5(self, make_core: CoreFactory) -> None:
        """3.1.2.10: Keep Alive 0 switches it off; a server with a cap tells the client to use it."""
        core = make_core(max_keepalive=60)
        client = connect(core, "c", keep_alive=0)
        assert client.link.connack is not None
        assert client.link.connack.properties.server_keep_alive == 60
        uncapped = connect(make_core(), "d", keep_alive=0)
        assert uncapped.link.connack is not None
        assert uncapped.link.connack.properties.server_keep_alive is None
        assert uncapped.link.keep_alive == 0  # type: ignore[attr-defined]

    def test_within_the_cap_is_used_as_asked(self, make_core: CoreFactory) -> None:
        """3.1.2.10: no Server Keep Alive, the client's own value is enforced."""
        core = make_core(max_keepalive=60)
        client = connect(core, "c", keep_alive=30)
        assert client.link.connack is not None
        assert client.link.connack.properties.server_keep_alive is None
        assert client.link.keep_alive == 30  # type: ignore[attr-defined]

    def test_above_the_cap_v311_is_refused(self, make_core: CoreFactory) -> None:
        """3.1.1 cannot be told a lower keep alive: refused with return code 2 (as Mosquitto)."""
        core = make_core(max_keepalive=60)
        assert connack_code(refused(core, connect_packet("c", version=V311, keep_alive=61))) == 2
        assert connect(core, "c", version=V311, keep_alive=60).link.keep_alive == 60  # type: ignore[attr-defined]


class TestWhoMayConnect:
    @both_versions
    def test_anonymous_refused_when_not_allowed(
        self, make_core: CoreFactory, version: ProtocolVersion
    ) -> None:
        """allow_anonymous = false and no hook decides: 0x87 Not authorized (3.1.1: 5), as Mosquitto 2."""
        core = make_core(allow_anonymous=False)
        code = connack_code(refused(core, connect_packet("c", version=version, username="u", password=b"p")))
        assert code == (RC.NOT_AUTHORIZED if version is V5 else 5)
        assert core.clients == {}

    def test_a_certificate_identity_is_enough(self, make_core: CoreFactory) -> None:
        """use_identity_as_username: the TLS handshake checked who it is, no password hook needed."""
        core = make_core(allow_anonymous=False)
        link = FakeLink(core.config)
        link.identity_as_username = True
        link.certificate_username = "device-7"
        _, client = open_connection(core, connect_packet("c", username="forged", password=b"x"), link)
        assert client is not None
        assert sent(link) == [ConnAck(properties=sent_props(core))]
        # The certificate's Common Name replaces what the CONNECT said, password and all.
        assert client.info.username == "device-7"

    @both_versions
    def test_no_certificate_identity_no_entry(self, make_core: CoreFactory, version: ProtocolVersion) -> None:
        """use_identity_as_username, no usable Common Name: refused with 0x86 (3.1.1: 4), as Mosquitto."""
        core = make_core()
        link = FakeLink(core.config)
        link.identity_as_username = True
        _, client = open_connection(core, connect_packet("c", version=version, username="u"), link)
        assert client is None
        assert connack_code(sent(link)) == (RC.BAD_USER_NAME_OR_PASSWORD if version is V5 else 4)
        assert core.clients == {}

    @both_versions
    def test_over_max_connections_refused(self, make_core: CoreFactory, version: ProtocolVersion) -> None:
        """Over max_connections: "an implementation or administrative imposed limit has been exceeded",
        CONNACK 0x97 (section 3.2.2.2, Table 3-1); 3.1.1: 3 Server unavailable (section 3.2.2.3)."""
        core = make_core()
        link = FakeLink(core.config)
        link.over_connection_limit = True
        _, client = open_connection(core, connect_packet("c", version=version), link)
        assert client is None
        assert connack_code(sent(link)) == (RC.QUOTA_EXCEEDED if version is V5 else 3)
        assert core.clients == {}

    def test_the_first_hook_that_decides_wins(self, make_core: CoreFactory) -> None:
        """Authenticators in order: None abstains, the next one decides; none deciding: allow_anonymous."""
        core = make_core(allow_anonymous=False)
        asked: list[str] = []

        class Abstains:
            async def authenticate(self, request: ConnectRequest) -> ReasonCode | None:
                asked.append("abstains")
                return None

        class Knows:
            async def authenticate(self, request: ConnectRequest) -> ReasonCode | None:
                asked.append("knows")
                return RC.SUCCESS if request.password == b"right" else RC.BAD_USER_NAME_OR_PASSWORD

        core.add_authenticator(Abstains())
        core.add_authenticator(Knows())
        assert connect(core, "c", username="u", password=b"right").info.username == "u"
        code = connack_code(refused(core, connect_packet("d", username="u", password=b"wrong")))
        assert code == RC.BAD_USER_NAME_OR_PASSWORD
        assert asked == ["abstains", "knows"] * 2

    def test_a_hook_may_set_the_queue_quota(self, core: Core) -> None:
        """An AuthResult admits with per-device settings: the session's queue quota."""

        class Quota:
            async def authenticate(self, request: ConnectRequest) -> AuthResult:
                return AuthResult(max_queued_messages=3, max_queued_bytes=1000)

        core.add_authenticator(Quota())
        client = connect(core, "c")
        assert (client.session.max_queued, client.session.max_queued_bytes) == (3, 1000)

    def test_connection_closed_while_the_hook_decides(self, core: Core) -> None:
        """A connection that went away while its authenticator was awaited is not admitted."""

        class Slow:
            async def authenticate(self, request: ConnectRequest) -> ReasonCode | None:
                await Pause()
                return RC.SUCCESS

        core.add_authenticator(Slow())
        link = FakeLink(core.config)
        [received] = link.protocol.receive_data(encode(connect_packet("c"), V5))
        assert isinstance(received, Connect)
        result = core.connecting(link, received)
        assert isinstance(result, Awaiting)
        result.pending.send(None)  # now waiting in the hook
        link.protocol.disconnect(RC.NORMAL_DISCONNECTION)  # the socket went away meanwhile
        assert isinstance(finish(result.pending), Refused)
        assert core.clients == {}
        assert core.sessions == {}


def sent_props(core: Core) -> Properties:
    """The capabilities a default core announces in every v5 CONNACK (receive maximum, aliases)."""
    return Properties(receive_maximum=core.config.receive_maximum, topic_alias_maximum=10)


class TestConnAck_3_2_2_3:
    def test_capabilities_are_announced(self, make_core: CoreFactory) -> None:
        """3.2.2.3: Receive Maximum, Maximum QoS, Retain Available, ... where not the defaults."""
        core = make_core(
            max_qos=1,
            retain_available=False,
            receive_maximum=20,
            topic_alias_maximum=0,
            wildcard_subscriptions=False,
            shared_subscriptions=False,
            subscription_identifiers=False,
            max_packet_size=1000,
        )
        client = connect(core, "c")
        assert client.link.connack == ConnAck(
            properties=Properties(
                receive_maximum=20,
                maximum_qos=1,
                retain_available=0,
                maximum_packet_size=1000,
                wildcard_subscription_available=0,
                subscription_identifier_available=0,
                shared_subscription_available=0,
            )
        )

    def test_session_expiry_above_the_cap_is_lowered_and_told(self, make_core: CoreFactory) -> None:
        """3.2.2.3.2: the server tells the Session Expiry Interval it uses when not the client's."""
        core = make_core(session_expiry_max=100)
        client = connect(core, "c", session_expiry_interval=1000)
        assert client.link.connack is not None
        assert client.link.connack.properties.session_expiry_interval == 100
        assert client.session.expiry_interval == 100

    @both_versions
    def test_will_topic_beyond_our_limits(self, make_core: CoreFactory, version: ProtocolVersion) -> None:
        """3.2.2.2: 0x90 Topic Name invalid for a will topic not accepted; 3.1.1 closes [MQTT-3.1.4-1]."""
        core = make_core(max_topic_length=10)
        answer = refused(core, connect_packet("c", version=version, will=will("w" * 11)))
        if version is V5:
            assert connack_code(answer) == RC.TOPIC_NAME_INVALID
        else:
            assert answer == []

    def test_connack_over_the_client_maximum_packet_size(self, core: Core) -> None:
        """[MQTT-3.1.2-24] nothing over the client's Maximum Packet Size: closed without CONNACK.

        Nor does the refused connection take over the connected one with its client id.
        """
        old = connect(core, "c")
        link, client = open_connection(core, connect_packet("c", maximum_packet_size=5))
        assert client is None
        assert link.protocol.phase is ConnectionPhase.CLOSED
        assert sent(link) == []
        assert core.clients["c"] is old
        assert not old.link.closed  # type: ignore[attr-defined]


class TestTakeover_3_1_4:
    def test_existing_connection_gets_0x8e_v5(self, core: Core) -> None:
        """[MQTT-3.1.4-3] the existing connection gets DISCONNECT 0x8E Session taken over and closes."""
        old = connect(core, "c", clean_start=False, session_expiry_interval=60)
        new = connect(core, "c", clean_start=False, session_expiry_interval=60)
        assert sent(old.link) == [Disconnect(reason_code=RC.SESSION_TAKEN_OVER)]
        assert old.link.closed  # type: ignore[attr-defined]
        assert core.clients["c"] is new
        assert new.link.connack is not None
        assert new.link.connack.session_present is True
        assert new.session is old.session

    def test_existing_connection_is_closed_v311(self, core: Core) -> None:
        """3.1.1 [MQTT-3.1.4-2] the existing client is disconnected; 3.1.1 has no DISCONNECT to send."""
        old = connect(core, "c", version=V311)
        new = connect(core, "c", version=V311)
        assert sent(old.link) == []
        assert old.link.closed  # type: ignore[attr-defined]
        assert old.link.protocol.phase is ConnectionPhase.CLOSED
        assert core.clients["c"] is new

    def test_the_old_connection_going_away_later_changes_nothing(self, core: Core) -> None:
        """The transport reports the old connection's end after the takeover: the new client stays."""
        old = connect(core, "c", clean_start=False, session_expiry_interval=60)
        new = connect(core, "c", clean_start=False, session_expiry_interval=60)
        drop(core, old)
        assert core.clients["c"] is new
        assert core.sessions["c"] is new.session

    def test_the_old_connections_will_is_published(self, core: Core) -> None:
        """The old connection ended without DISCONNECT: its will goes out [MQTT-3.1.2-8]."""
        watcher = connect(core, "w")
        subscribe(core, watcher, "will/#")
        connect(core, "c", will=will("will/c", b"gone"))
        connect(core, "c")
        assert sent(watcher.link) == [message("will/c", b"gone")]

    def test_takeover_with_clean_start_ends_the_old_session(self, core: Core) -> None:
        """[MQTT-3.1.2-4] the new connection's Clean Start 1 discards what the old one subscribed."""
        old = connect(core, "c", clean_start=False, session_expiry_interval=60)
        subscribe(core, old, Subscription(topic_filter="a", qos=1))
        new = connect(core, "c", clean_start=True)
        assert new.session.subscriptions == {}
        assert new.link.connack is not None
        assert new.link.connack.session_present is False


class TestPing_3_12:
    @both_versions
    def test_pingreq_gets_pingresp(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.12.4-1] the server must send PINGRESP in response to PINGREQ."""
        from zanzara.mqtt.packets import PingReq

        client = connect(core, "c", version=version)
        receive(core, client, PingReq())
        assert sent(client.link) == [PingResp()]


class TestDisconnect_3_14:
    def test_disconnect_closes_the_connection(self, core: Core) -> None:
        """[MQTT-3.14.4-1] after DISCONNECT the server closes; the client is gone, its session ends."""
        client = connect(core, "c")
        disconnect(core, client)
        assert client.link.closed  # type: ignore[attr-defined]
        assert core.clients == {}
        assert core.sessions == {}
