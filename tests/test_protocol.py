"""Sans-I/O tests of :class:`zanzara.protocol.ServerProtocol`: bytes in, packets out, bytes to send.

No sockets, threads or event loop: each test feeds wire bytes built with zanzara's
encoder to ``receive_data`` and decodes what ``data_to_send`` returns with a
client-side :class:`~zanzara.mqtt.codec.Reader`.  Classes follow the sections of
MQTT 5.0; each test names, in its docstring, the normative statement it checks
(the 3.1.1 one too where the rule differs).
"""

from __future__ import annotations

import pytest

from zanzara.errors import (
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    ProtocolViolation,
    UnsupportedProtocolVersion,
)
from zanzara.mqtt.codec import Reader, encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
)
from zanzara.mqtt.properties import EMPTY_PROPERTIES, Properties
from zanzara.protocol import ConnectionPhase, Event, Hold, PubAcks, ServerProtocol

V31 = ProtocolVersion.MQTT31
V311 = ProtocolVersion.MQTT311
V5 = ProtocolVersion.MQTT5
RC = ReasonCode

# Reason codes a CONNACK may carry (MQTT 5.0 table 3-1) and a DISCONNECT may carry (table 3-10).
CONNACK_CODES = frozenset(
    {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97}
    | {0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
)
DISCONNECT_CODES = frozenset(
    {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90} | set(range(0x93, 0xA3))
)

both_versions = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
all_versions = pytest.mark.parametrize("version", [V31, V311, V5], ids=["3.1", "3.1.1", "5.0"])

# -- helpers ---------------------------------------------------------------------------------------


def connect(version: ProtocolVersion = V5, properties: Properties = EMPTY_PROPERTIES) -> Connect:
    """A minimal CONNECT of ``version`` (protocol name "MQIsdp" for 3.1)."""
    name = "MQIsdp" if version is V31 else "MQTT"
    return Connect(protocol_version=version, protocol_name=name, client_id="c", properties=properties)


def wire(*packets: Packet, version: ProtocolVersion = V5) -> bytes:
    """The bytes a client sends for ``packets`` (a CONNECT in its own protocol version)."""
    return b"".join(
        encode(packet, packet.protocol_version if isinstance(packet, Connect) else version)
        for packet in packets
    )


def receive(proto: ServerProtocol, *packets: Packet) -> list[Event]:
    """Feed ``packets``, encoded in the connection's version, and return what came out."""
    return proto.receive_data(wire(*packets, version=proto.version))


def sent(proto: ServerProtocol) -> list[Packet]:
    """Decode what the connection has to send, as its client would (and empty the output).

    The client Reader is strict (reason codes per packet, properties per packet), so
    whatever the server sends must also be a well-formed packet for its client.
    """
    reader = Reader(role="client", version=proto.version)
    reader.feed(b"".join(proto.data_to_send()))
    packets = list(reader.read_packets())
    assert reader.buffered == 0, "a partial packet was queued"
    return packets


def assert_sent(proto: ServerProtocol, *expected: Packet) -> None:
    """``proto`` has exactly ``expected`` to send (websockets' assertFrameSent)."""
    assert sent(proto) == list(expected)


def assert_nothing_sent(proto: ServerProtocol) -> None:
    """``proto`` has no bytes to send."""
    assert proto.data_to_send() == []


def connecting(
    version: ProtocolVersion = V5, properties: Properties = EMPTY_PROPERTIES, **settings: int
) -> ServerProtocol:
    """A connection that has received CONNECT and not answered yet."""
    proto = ServerProtocol(**settings)  # type: ignore[arg-type]
    assert receive(proto, connect(version, properties)) == [connect(version, properties)]
    assert proto.phase is ConnectionPhase.CONNECTING
    return proto


def connected(
    version: ProtocolVersion = V5, properties: Properties = EMPTY_PROPERTIES, **settings: int
) -> ServerProtocol:
    """A connection past its successful CONNACK, output drained (TestConnAck_3_2 checks the CONNACK)."""
    proto = connecting(version, properties, **settings)
    proto.accept(ConnAck())
    proto.data_to_send()
    assert proto.phase is ConnectionPhase.CONNECTED
    return proto


def deferred(proto: ServerProtocol, *packets: Packet, good: int = 0) -> ProtocolError:
    """Feed ``packets``; exactly ``good`` come out before a protocol error, which is returned."""
    out = receive(proto, *packets)
    assert len(out) == good
    error = proto.deferred_error
    assert error is not None, "no protocol error"
    return error


def answer_to(proto: ServerProtocol, *packets: Packet) -> list[Packet]:
    """Feed ``packets`` that end in a protocol error; fail as the transport would; what is sent."""
    receive(proto, *packets)
    error = proto.deferred_error
    assert error is not None, "no protocol error"
    proto.fail(error)
    assert proto.phase is ConnectionPhase.CLOSED
    return sent(proto)


def disconnect_code(packets: list[Packet]) -> int:
    """The reason code of the single DISCONNECT in ``packets``."""
    [packet] = packets
    assert isinstance(packet, Disconnect)
    return packet.reason_code


def publish(topic: str = "t", qos: int = 0, packet_id: int | None = None, **props: object) -> Publish:
    """A PUBLISH from a client; keyword arguments are its properties."""
    if qos and packet_id is None:
        packet_id = 1
    properties = Properties(**props) if props else EMPTY_PROPERTIES  # type: ignore[arg-type]
    return Publish(topic=topic, payload=b"p", qos=qos, packet_id=packet_id, properties=properties)


# -- 3.1 CONNECT -------------------------------------------------------------------------------------


class TestConnect_3_1:
    @all_versions
    def test_connect_is_returned_and_the_version_recorded(self, version: ProtocolVersion) -> None:
        """[MQTT-3.1.0-1] the first packet is CONNECT; the connection speaks its protocol level."""
        proto = ServerProtocol()
        assert proto.phase is ConnectionPhase.AWAIT_CONNECT
        assert receive(proto, connect(version)) == [connect(version)]
        assert proto.phase is ConnectionPhase.CONNECTING
        assert proto.version is version
        assert_nothing_sent(proto)

    def test_connect_split_across_reads(self) -> None:
        """[MQTT-4.2-1] the transport is a byte stream: a CONNECT may arrive a byte at a time."""
        proto = ServerProtocol()
        data = wire(connect())
        for byte in data[:-1]:
            assert proto.receive_data(bytes([byte])) == []
        assert proto.receive_data(data[-1:]) == [connect()]

    @pytest.mark.parametrize("first", [PingReq(), publish()], ids=["PINGREQ", "PUBLISH"])
    def test_first_packet_not_connect_is_a_protocol_error(self, first: Packet) -> None:
        """[MQTT-3.1.0-1] anything before CONNECT is a Protocol Error; no version is known, no CONNACK."""
        proto = ServerProtocol()
        error = deferred(proto, first)
        assert isinstance(error, ProtocolViolation)
        proto.fail(error)
        assert_nothing_sent(proto)
        assert proto.phase is ConnectionPhase.CLOSED

    def test_second_connect_before_connack(self) -> None:
        """[MQTT-3.1.0-2] a second CONNECT is a Protocol Error (5.0: CONNACK 0x82)."""
        proto = connecting()
        [connack] = answer_to(proto, connect())
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == RC.PROTOCOL_ERROR

    def test_second_connect_after_connack_v5(self) -> None:
        """[MQTT-3.1.0-2], [MQTT-4.13.1-1] a second CONNECT is a Protocol Error: DISCONNECT 0x82."""
        assert disconnect_code(answer_to(connected(), connect())) == RC.PROTOCOL_ERROR

    def test_second_connect_after_connack_v311(self) -> None:
        """3.1.1 [MQTT-3.1.0-2] a second CONNECT is a protocol violation: close, nothing sent."""
        assert answer_to(connected(V311), connect(V311)) == []

    def test_second_connect_of_unknown_level_uses_a_disconnect_reason_code(self) -> None:
        """[MQTT-3.14.2-1] a DISCONNECT carries a DISCONNECT reason code (0x84 is CONNACK-only)."""
        proto = connected()
        data = bytearray(wire(connect()))
        data[8] = 6  # the protocol level byte
        proto.receive_data(bytes(data))
        assert isinstance(proto.deferred_error, UnsupportedProtocolVersion)
        proto.fail(proto.deferred_error)
        assert disconnect_code(sent(proto)) in DISCONNECT_CODES

    def test_packets_pipelined_behind_connect_are_returned(self) -> None:
        """3.1.4: clients need not wait for CONNACK; later packets come out in order, checked."""
        proto = ServerProtocol()
        subscribe = Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a/#"),))
        out = proto.receive_data(wire(connect(), subscribe, publish("a/b", qos=1)))
        assert out == [connect(), subscribe, publish("a/b", qos=1)]
        assert proto.deferred_error is None

    @pytest.mark.parametrize("level", [2, 6, 0xFF])
    def test_unsupported_protocol_level(self, level: int) -> None:
        """[MQTT-3.1.2-2] an unsupported level: CONNACK 0x01 in the 3.1.1 form (the 0x84 of 5.0), close."""
        proto = ServerProtocol()
        data = bytearray(wire(connect()))
        data[8] = level
        proto.receive_data(bytes(data))
        assert isinstance(proto.deferred_error, UnsupportedProtocolVersion)
        proto.fail(proto.deferred_error)
        assert proto.data_to_send() == [b"\x20\x02\x00\x01"]
        assert proto.phase is ConnectionPhase.CLOSED

    @both_versions
    def test_reserved_connect_flag_closes_without_connack(self, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-3] the reserved flag is 0; [MQTT-3.1.4-1] a malformed CONNECT closes the connection."""
        proto = ServerProtocol()
        data = bytearray(wire(connect(version), version=version))
        data[9] |= 0x01  # connect flags
        proto.receive_data(bytes(data))
        assert isinstance(proto.deferred_error, MalformedPacket)
        proto.fail(proto.deferred_error)
        assert_nothing_sent(proto)  # 3.1.1 [MQTT-3.1.4-1]: without a CONNACK
        assert proto.phase is ConnectionPhase.CLOSED

    def test_authentication_data_without_method(self) -> None:
        """3.1.2.11.10: Authentication Data without a method is a Protocol Error (CONNACK 0x82)."""
        proto = ServerProtocol()
        [connack] = answer_to(proto, connect(properties=Properties(authentication_data=b"x")))
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == RC.PROTOCOL_ERROR

    def test_v5_connect_properties_are_recorded(self) -> None:
        """3.1.2.11: Receive Maximum, Maximum Packet Size, Topic Alias Maximum, Request Problem Info."""
        props = Properties(
            receive_maximum=10, maximum_packet_size=1000, topic_alias_maximum=5, request_problem_information=0
        )
        proto = connecting(V5, props)
        assert proto.client_receive_maximum == 10
        assert proto.client_max_packet_size == 1000
        assert proto.client_topic_alias_maximum == 5
        assert proto.problem_information is False

    @pytest.mark.parametrize("version", [V31, V311], ids=["3.1", "3.1.1"])
    def test_v3_defaults(self, version: ProtocolVersion) -> None:
        """3.1.1 has no properties: no topic aliases to the client, problem information allowed."""
        proto = connecting(version)
        assert proto.client_topic_alias_maximum == 0
        assert proto.problem_information is True
        assert proto.client_receive_maximum == 65535


# -- 3.2 CONNACK -------------------------------------------------------------------------------------


class TestConnAck_3_2:
    @all_versions
    def test_accept_sends_connack_and_connects(self, version: ProtocolVersion) -> None:
        """[MQTT-3.2.0-1] CONNACK 0x00 before any other packet; then the connection is CONNECTED."""
        proto = connecting(version)
        proto.accept(ConnAck(session_present=True))
        # 3.1 has no Session Present flag: its first CONNACK byte is reserved (0).
        assert_sent(proto, ConnAck(session_present=version is not V31))
        assert proto.phase is ConnectionPhase.CONNECTED

    def test_refuse_v5_sends_the_reason_code_and_string(self) -> None:
        """[MQTT-3.2.2-6] a non-zero code has Session Present 0; [MQTT-3.2.2-7] 0x80 or more closes."""
        proto = connecting()
        proto.refuse(RC.NOT_AUTHORIZED, "no")
        assert_sent(proto, ConnAck(reason_code=RC.NOT_AUTHORIZED, properties=Properties(reason_string="no")))
        assert proto.phase is ConnectionPhase.CLOSED
        assert isinstance(proto.error, ProtocolError)
        assert proto.error.reason_code == RC.NOT_AUTHORIZED

    def test_refuse_without_a_string_names_the_code(self) -> None:
        """3.2.2.3.7: the Reason String is human readable; by default it names the reason code."""
        proto = connecting()
        proto.refuse(RC.BANNED)
        assert_sent(proto, ConnAck(reason_code=RC.BANNED, properties=Properties(reason_string="BANNED")))

    @pytest.mark.parametrize(
        ("code", "return_code"),
        [
            (RC.UNSUPPORTED_PROTOCOL_VERSION, 1),
            (RC.CLIENT_IDENTIFIER_NOT_VALID, 2),
            (RC.SERVER_UNAVAILABLE, 3),
            (RC.SERVER_BUSY, 3),
            (RC.QUOTA_EXCEEDED, 3),
            (RC.BAD_USER_NAME_OR_PASSWORD, 4),
            (RC.NOT_AUTHORIZED, 5),
            (RC.BANNED, 5),
            (RC.BAD_AUTHENTICATION_METHOD, 5),
        ],
    )
    @pytest.mark.parametrize("version", [V31, V311], ids=["3.1", "3.1.1"])
    def test_refuse_v3_maps_to_a_return_code(
        self, version: ProtocolVersion, code: int, return_code: int
    ) -> None:
        """3.1.1 [MQTT-3.2.2-4], [MQTT-3.2.2-5], [MQTT-3.1.3-9]: table 3.1 return codes, Session Present 0."""
        proto = connecting(version)
        proto.refuse(code, "reason strings do not exist in 3.1.1")
        assert_sent(proto, ConnAck(reason_code=return_code))
        assert proto.phase is ConnectionPhase.CLOSED

    @pytest.mark.parametrize("code", [RC.PAYLOAD_FORMAT_INVALID, RC.PROTOCOL_ERROR, RC.MALFORMED_PACKET])
    def test_refuse_v311_without_a_return_code_closes_silently(self, code: int) -> None:
        """3.1.1 [MQTT-3.2.2-6] when no return code of table 3.1 applies, close without CONNACK."""
        proto = connecting(V311)
        proto.refuse(code)
        assert_nothing_sent(proto)
        assert proto.phase is ConnectionPhase.CLOSED

    def test_nothing_is_read_after_a_refusal(self) -> None:
        """[MQTT-3.1.4-6] after rejecting a CONNECT the server processes no data the client sent after it."""
        proto = connecting()
        proto.refuse(RC.NOT_AUTHORIZED)
        assert receive(proto, publish(), PingReq()) == []
        assert proto.deferred_error is None

    def test_refusing_connack_drops_its_reason_string_to_fit(self) -> None:
        """[MQTT-3.2.2-19] no Reason String that takes the CONNACK over the client's Maximum Packet Size."""
        proto = connecting(V5, Properties(maximum_packet_size=10))
        proto.refuse(RC.NOT_AUTHORIZED, "a reason string far longer than ten bytes")
        assert_sent(proto, ConnAck(reason_code=RC.NOT_AUTHORIZED))

    def test_refusing_connack_too_large_even_bare_is_not_sent(self) -> None:
        """[MQTT-3.1.2-24] nothing over the client's Maximum Packet Size is sent (a bare CONNACK: 5 bytes)"""
        proto = connecting(V5, Properties(maximum_packet_size=4))
        proto.refuse(RC.NOT_AUTHORIZED, "no")
        assert_nothing_sent(proto)
        assert proto.phase is ConnectionPhase.CLOSED

    def test_fits_tells_whether_the_connack_can_be_sent(self) -> None:
        """[MQTT-3.2.2-19], [MQTT-3.2.2-20] a CONNACK fits if it fits without its diagnostics"""
        proto = connecting(V5, Properties(maximum_packet_size=20))
        bare = ConnAck(properties=Properties(assigned_client_identifier="x" * 8))
        assert len(encode(bare, V5)) <= 20
        wordy = ConnAck(
            properties=Properties(
                assigned_client_identifier="x" * 8, reason_string="r" * 50, user_properties=(("k", "v" * 50),)
            )
        )
        assert proto.fits(wordy)
        assert not proto.fits(ConnAck(properties=Properties(assigned_client_identifier="x" * 30)))

    @both_versions
    def test_fits_without_a_client_limit(self, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-24] with no Maximum Packet Size (and always in 3.1.1) every packet fits."""
        proto = connecting(version)
        assert proto.fits(ConnAck(properties=Properties(reason_string="r" * 10_000)))

    def test_error_before_connack_uses_a_connack_reason_code(self) -> None:
        """[MQTT-3.2.2-8] the server sending CONNACK uses one of the Connect Reason Code values."""
        proto = connecting()
        [connack] = answer_to(proto, publish(topic_alias=1))  # pipelined before CONNACK; no alias allowed
        assert isinstance(connack, ConnAck)
        assert connack.reason_code in CONNACK_CODES


# -- 3.3 PUBLISH -------------------------------------------------------------------------------------


class TestPublish_3_3:
    @all_versions
    @pytest.mark.parametrize("qos", [0, 1, 2])
    def test_publish_is_returned(self, version: ProtocolVersion, qos: int) -> None:
        """[MQTT-3.3.4-1] a valid PUBLISH reaches the broker as it was sent."""
        proto = connected(version)
        packet = Publish(topic="a/b", payload=b"x", qos=qos, retain=True, packet_id=7 if qos else None)
        assert receive(proto, packet) == [packet]

    def test_publish_before_connack_without_authentication_is_returned(self) -> None:
        """3.1.4: a client may send packets right after CONNECT; the broker decides once it answers."""
        proto = connecting()
        assert receive(proto, publish()) == [publish()]

    @both_versions
    @pytest.mark.parametrize("topic", ["a/+", "#", "a/#", "+"])
    def test_wildcard_in_topic_name(self, version: ProtocolVersion, topic: str) -> None:
        """[MQTT-3.3.2-2] no wildcards in a Topic Name: 5.0 DISCONNECT 0x90; 3.1.1 [MQTT-4.8.0-1] close."""
        packets = answer_to(connected(version), publish(topic))
        if version is V5:
            assert disconnect_code(packets) == RC.TOPIC_NAME_INVALID
        else:
            assert packets == []

    @both_versions
    def test_empty_topic_name_without_alias(self, version: ProtocolVersion) -> None:
        """[MQTT-4.7.3-1] a Topic Name is at least one character long (5.0: unless a Topic Alias stands in)"""
        error = deferred(connected(version), publish(""))
        assert error.reason_code == RC.TOPIC_NAME_INVALID

    def test_too_many_topic_levels(self) -> None:
        """3.3.2.1, 4.13: a topic the server refuses is Topic Name invalid (0x90); the limit is ours"""
        proto = connected(max_topic_levels=3)
        assert receive(proto, publish("a/b/c")) == [publish("a/b/c")]
        assert deferred(proto, publish("a/b/c/d")).reason_code == RC.TOPIC_NAME_INVALID

    def test_topic_too_long(self) -> None:
        """[MQTT-4.7.3-3] and our lower max_topic_length: a longer Topic Name is invalid (0x90)."""
        proto = connected(max_topic_length=16)
        assert receive(proto, publish("x" * 16)) == [publish("x" * 16)]
        assert deferred(proto, publish("é" * 9)).reason_code == RC.TOPIC_NAME_INVALID  # 18 bytes

    def test_subscription_identifier_from_a_client(self) -> None:
        """[MQTT-3.3.4-6] a PUBLISH from a client must not carry a Subscription Identifier (0x82)."""
        proto = connected()
        error = deferred(proto, publish(subscription_identifiers=(1,)))
        assert isinstance(error, ProtocolViolation)
        assert error.reason_code == RC.PROTOCOL_ERROR

    @pytest.mark.parametrize("max_qos", [0, 1])
    def test_qos_above_maximum_qos(self, max_qos: int) -> None:
        """[MQTT-3.2.2-11] and 3.2.2.3.4: a PUBLISH above Maximum QoS gets DISCONNECT 0x9B."""
        proto = connected(max_qos=max_qos)
        assert receive(proto, publish(qos=max_qos)) == [publish(qos=max_qos)]
        packets = answer_to(proto, publish(qos=max_qos + 1, packet_id=2))
        assert disconnect_code(packets) == RC.QOS_NOT_SUPPORTED

    def test_qos_above_maximum_qos_v311_closes(self) -> None:
        """3.1.1 [MQTT-4.8.0-1]: 3.1.1 cannot say "QoS not supported"; the connection is closed."""
        assert answer_to(connected(V311, max_qos=1), publish(qos=2)) == []

    @both_versions
    def test_qos_3_is_malformed(self, version: ProtocolVersion) -> None:
        """[MQTT-3.3.1-4] a PUBLISH must not have both QoS bits set: Malformed Packet (0x81)."""
        proto = connected(version)
        proto.receive_data(b"\x36\x06\x00\x01t\x00\x01p")
        assert isinstance(proto.deferred_error, MalformedPacket)


# -- 3.3.2.3.4 Topic Alias -------------------------------------------------------------------------


class TestTopicAlias_3_3_2_3_4:
    def test_alias_with_a_topic_sets_the_mapping(self) -> None:
        """[MQTT-3.3.2-12] the server accepts Topic Alias 1..its maximum; the alias is not passed on."""
        proto = connected(topic_alias_maximum=2)
        [packet] = receive(proto, publish("a/b", topic_alias=2))
        assert isinstance(packet, Publish)
        assert packet.topic == "a/b"
        assert packet.properties.topic_alias is None

    def test_alias_with_an_empty_topic_is_resolved(self) -> None:
        """3.3.2.3.4: a zero-length Topic Name with a known alias means the alias's topic."""
        proto = connected(topic_alias_maximum=2)
        receive(proto, publish("a/b", topic_alias=1))
        [packet] = receive(proto, publish("", topic_alias=1, user_properties=(("k", "v"),)))
        assert isinstance(packet, Publish)
        assert packet.topic == "a/b"
        assert packet.properties.topic_alias is None
        assert packet.properties.user_properties == (("k", "v"),)  # the other properties stay

    def test_alias_can_be_remapped(self) -> None:
        """3.3.2.3.4: a new non-empty Topic Name with an alias in use replaces the mapping."""
        proto = connected(topic_alias_maximum=1)
        receive(proto, publish("first", topic_alias=1))
        receive(proto, publish("second", topic_alias=1))
        [packet] = receive(proto, publish("", topic_alias=1))
        assert isinstance(packet, Publish)
        assert packet.topic == "second"

    def test_alias_above_the_maximum(self) -> None:
        """[MQTT-3.3.2-9] no alias above the server's Topic Alias Maximum: DISCONNECT 0x94."""
        proto = connected(topic_alias_maximum=2)
        assert disconnect_code(answer_to(proto, publish("a", topic_alias=3))) == RC.TOPIC_ALIAS_INVALID

    def test_alias_when_the_server_allows_none(self) -> None:
        """[MQTT-3.2.2-18] with Topic Alias Maximum 0 (the default) the client sends no alias: 0x94."""
        proto = connected()
        assert disconnect_code(answer_to(proto, publish("a", topic_alias=1))) == RC.TOPIC_ALIAS_INVALID

    def test_alias_zero(self) -> None:
        """[MQTT-3.3.2-8] a Topic Alias of 0 is not allowed: 0x94."""
        proto = connected(topic_alias_maximum=2)
        assert disconnect_code(answer_to(proto, publish("a", topic_alias=0))) == RC.TOPIC_ALIAS_INVALID

    def test_unknown_alias_with_an_empty_topic(self) -> None:
        """3.3.2.3.4: an alias with no mapping and an empty topic is a Protocol Error (0x82)."""
        proto = connected(topic_alias_maximum=2)
        assert disconnect_code(answer_to(proto, publish("", topic_alias=1))) == RC.PROTOCOL_ERROR

    def test_aliases_do_not_outlive_the_connection(self) -> None:
        """[MQTT-3.3.2-7] no Topic Alias mapping is carried from one Network Connection to another."""
        first = connected(topic_alias_maximum=2)
        receive(first, publish("a/b", topic_alias=1))
        second = connected(topic_alias_maximum=2)
        assert deferred(second, publish("", topic_alias=1)).reason_code == RC.PROTOCOL_ERROR

    def test_aliased_topic_is_validated(self) -> None:
        """[MQTT-3.3.2-2] a Topic Name given with an alias is still checked for wildcards."""
        proto = connected(topic_alias_maximum=2)
        assert deferred(proto, publish("a/#", topic_alias=1)).reason_code == RC.TOPIC_NAME_INVALID

    # -- outbound: aliases the server gives the client --

    def test_outgoing_aliases_up_to_the_client_maximum(self) -> None:
        """[MQTT-3.3.2-11], [MQTT-3.1.2-26] no alias above the client's Topic Alias Maximum."""
        proto = connected(V5, Properties(topic_alias_maximum=2))
        assert proto.outgoing_alias("a") == (1, False)  # new: send the topic with it
        assert proto.outgoing_alias("b") == (2, False)
        assert proto.outgoing_alias("c") is None  # none free: send the topic in full
        assert proto.outgoing_alias("a") == (1, True)  # known: the topic may be left empty
        assert proto.outgoing_alias("b") == (2, True)

    @pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
    def test_no_outgoing_alias_without_a_client_maximum(self, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-27] without (or with 0) Topic Alias Maximum, the server sends no Topic Alias."""
        proto = connected(version, Properties(topic_alias_maximum=0) if version is V5 else EMPTY_PROPERTIES)
        assert proto.outgoing_alias("a") is None

    def test_forget_alias_of_an_unsent_publish(self) -> None:
        """[MQTT-3.1.2-25] a PUBLISH not sent taught the client nothing: its alias is offered as new again."""
        proto = connected(V5, Properties(topic_alias_maximum=2))
        assert proto.outgoing_alias("a") == (1, False)
        proto.forget_alias("a")
        assert proto.outgoing_alias("b") == (1, False)
        assert proto.outgoing_alias("a") == (2, False)

    def test_forget_alias_of_an_unknown_topic_is_harmless(self) -> None:
        """[MQTT-3.3.2-11] forgetting a topic with no alias changes no mapping."""
        proto = connected(V5, Properties(topic_alias_maximum=2))
        proto.outgoing_alias("a")
        proto.forget_alias("z")
        assert proto.outgoing_alias("a") == (1, True)


# -- 3.4 - 3.7 the acknowledgements ------------------------------------------------------------------


class TestAcknowledgements_3_4_to_3_7:
    @both_versions
    def test_acks_from_the_client_are_returned(self, version: ProtocolVersion) -> None:
        """[MQTT-2.2.1-5] PUBACK, PUBREC, PUBREL, PUBCOMP reach the broker with their Packet Identifier."""
        proto = connected(version)
        acks: list[Packet] = [
            PubAck(packet_id=1),
            PubRec(packet_id=2),
            PubRel(packet_id=3),
            PubComp(packet_id=4),
        ]
        assert receive(proto, *acks) == acks

    @both_versions
    def test_pubacks_read_together_come_out_as_one_run(self, version: ProtocolVersion) -> None:
        """PUBACKs in one read (a window answered in one write) come as one PubAcks, in order, so
        the broker completes them and refills the window once; a lone PUBACK stays a PUBACK."""
        proto = connected(version)
        run = [PubAck(packet_id=i) for i in (1, 2, 3)]
        got = receive(proto, *run, PubRec(packet_id=4), PubAck(packet_id=5))
        assert got == [PubAcks(run), PubRec(packet_id=4), PubAck(packet_id=5)]

    def test_v5_ack_keeps_its_reason_code(self) -> None:
        """[MQTT-3.4.2-1] 5.0: the PUBACK carries one of the PUBACK reason codes."""
        proto = connected()
        proto.send(PubAck(packet_id=1, reason_code=RC.NO_MATCHING_SUBSCRIBERS))
        assert_sent(proto, PubAck(packet_id=1, reason_code=RC.NO_MATCHING_SUBSCRIBERS))

    def test_v311_ack_has_no_reason_code(self) -> None:
        """3.1.1 3.4: the PUBACK is the Packet Identifier alone (remaining length 2)."""
        proto = connected(V311)
        proto.send(PubAck(packet_id=1, reason_code=RC.NO_MATCHING_SUBSCRIBERS))
        assert proto.data_to_send() == [b"\x40\x02\x00\x01"]


# -- 3.1.2.11.4 / 3.2.2.3.6 Maximum Packet Size ------------------------------------------------------


class TestMaximumPacketSize_3_1_2_11_4:
    @both_versions
    def test_inbound_packet_over_the_server_maximum(self, version: ProtocolVersion) -> None:
        """3.2.2.3.6: a packet over the server's Maximum Packet Size gets DISCONNECT 0x95 (3.1.1: close)."""
        proto = connected(version, max_packet_size=64)
        packets = answer_to(proto, Publish(topic="t", payload=b"x" * 100))
        assert isinstance(proto.error, PacketTooLarge)
        if version is V5:
            assert disconnect_code(packets) == RC.PACKET_TOO_LARGE
        else:
            assert packets == []

    def test_inbound_packet_at_the_server_maximum(self) -> None:
        """3.2.2.3.6: the limit is inclusive; a packet of exactly the maximum is accepted."""
        packet = Publish(topic="t", payload=b"x" * 50)
        proto = connected(max_packet_size=len(encode(packet, V5)))
        assert receive(proto, packet) == [packet]

    def test_ack_drops_reason_string_and_user_properties_to_fit(self) -> None:
        """[MQTT-3.4.2-2], [MQTT-3.4.2-3] no Reason String or User Property beyond the client's maximum."""
        bare = PubAck(packet_id=1, reason_code=RC.NOT_AUTHORIZED)
        proto = connected(V5, Properties(maximum_packet_size=len(encode(bare, V5))))
        props = Properties(reason_string="not allowed", user_properties=(("k", "v"),))
        proto.send(PubAck(packet_id=1, reason_code=RC.NOT_AUTHORIZED, properties=props))
        assert_sent(proto, bare)

    def test_ack_within_the_maximum_keeps_its_properties(self) -> None:
        """[MQTT-3.4.2-2] the Reason String goes only if it would exceed the maximum."""
        props = Properties(reason_string="not allowed")
        ack = PubAck(packet_id=1, reason_code=RC.NOT_AUTHORIZED, properties=props)
        proto = connected(V5, Properties(maximum_packet_size=len(encode(ack, V5))))
        proto.send(ack)
        assert_sent(proto, ack)

    def test_packet_too_large_even_bare_is_not_sent(self) -> None:
        """[MQTT-3.1.2-24] a packet still over the client's maximum without its optional parts is dropped."""
        proto = connected(V5, Properties(maximum_packet_size=20))
        suback = SubAck(packet_id=1, reason_codes=(0,) * 30, properties=Properties(reason_string="r"))
        proto.send(suback)
        assert_nothing_sent(proto)

    def test_packet_without_properties_too_large_is_not_sent(self) -> None:
        """[MQTT-3.1.2-24] the server must not send packets over the client's Maximum Packet Size."""
        proto = connected(V5, Properties(maximum_packet_size=20))
        suback = SubAck(packet_id=1, reason_codes=(0,) * 30)  # 34 bytes, no properties
        assert not proto.fits(suback)
        proto.send(suback)
        assert_nothing_sent(proto)

    def test_fits_agrees_for_a_packet_without_properties(self) -> None:
        """[MQTT-3.1.2-24] ``fits`` measures the whole packet, properties or not."""
        proto = connected(V5, Properties(maximum_packet_size=20))
        assert proto.fits(SubAck(packet_id=1, reason_codes=(0,) * 10))
        assert not proto.fits(SubAck(packet_id=1, reason_codes=(0,) * 30))

    def test_send_bytes_refuses_what_is_too_large(self) -> None:
        """[MQTT-3.1.2-25] an encoded PUBLISH over the client's maximum is not queued (the caller drops it)"""
        proto = connected(V5, Properties(maximum_packet_size=20))
        small = encode(Publish(topic="t", payload=b"x" * 10), V5)
        large = encode(Publish(topic="t", payload=b"x" * 20), V5)
        assert proto.send_bytes(large) is False
        assert proto.send_bytes(small) is True
        assert proto.data_to_send() == [small]

    def test_disconnect_drops_its_reason_string_to_fit(self) -> None:
        """[MQTT-3.14.2-3] no Reason String that would take the DISCONNECT over the client's maximum."""
        proto = connected(V5, Properties(maximum_packet_size=5))
        proto.disconnect(RC.ADMINISTRATIVE_ACTION, "a reason string longer than five bytes")
        assert_sent(proto, Disconnect(reason_code=RC.ADMINISTRATIVE_ACTION))

    def test_disconnect_too_large_even_bare_is_not_sent(self) -> None:
        """[MQTT-3.1.2-24] with a maximum of 2 bytes not even a bare DISCONNECT (3 bytes) is sent."""
        proto = connected(V5, Properties(maximum_packet_size=2))
        proto.disconnect(RC.ADMINISTRATIVE_ACTION)
        assert_nothing_sent(proto)
        assert proto.phase is ConnectionPhase.CLOSED


# -- 3.1.2.11.7 Request Problem Information ----------------------------------------------------------


class TestRequestProblemInformation_3_1_2_11_7:
    DIAGNOSTICS = Properties(reason_string="why", user_properties=(("k", "v"),))

    def quiet(self) -> ServerProtocol:
        return connected(V5, Properties(request_problem_information=0))

    @pytest.mark.parametrize(
        "packet",
        [
            PubAck(packet_id=1, reason_code=RC.NOT_AUTHORIZED, properties=DIAGNOSTICS),
            PubRec(packet_id=1, reason_code=RC.NOT_AUTHORIZED, properties=DIAGNOSTICS),
            PubRel(packet_id=1, properties=DIAGNOSTICS),
            PubComp(packet_id=1, properties=DIAGNOSTICS),
            SubAck(packet_id=1, reason_codes=(0x80,), properties=DIAGNOSTICS),
        ],
        ids=["PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK"],
    )
    def test_no_diagnostics_on_other_packets(self, packet: Packet) -> None:
        """[MQTT-3.1.2-29] with Request Problem Information 0, no Reason String or User Property here."""
        proto = self.quiet()
        proto.send(packet)
        [got] = sent(proto)
        assert type(got) is type(packet)
        assert getattr(got, "properties", None) == EMPTY_PROPERTIES

    def test_no_diagnostics_on_auth(self) -> None:
        """[MQTT-3.1.2-29] AUTH is not among PUBLISH, CONNACK, DISCONNECT: its diagnostics go too."""
        proto = connected(V5, Properties(request_problem_information=0, authentication_method="M"))
        props = Properties(authentication_method="M", reason_string="why")
        proto.send(Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=props))
        assert_sent(
            proto,
            Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=Properties(authentication_method="M")),
        )

    def test_diagnostics_allowed_on_publish_connack_disconnect(self) -> None:
        """[MQTT-3.1.2-29] PUBLISH, CONNACK and DISCONNECT may still carry them."""
        proto = connecting(V5, Properties(request_problem_information=0))
        proto.accept(ConnAck(properties=self.DIAGNOSTICS))
        message = Publish(topic="t", properties=Properties(user_properties=(("k", "v"),)))
        proto.send(message)
        proto.send(Disconnect(reason_code=RC.ADMINISTRATIVE_ACTION, properties=self.DIAGNOSTICS))
        assert_sent(
            proto,
            ConnAck(properties=self.DIAGNOSTICS),
            message,
            Disconnect(reason_code=RC.ADMINISTRATIVE_ACTION, properties=self.DIAGNOSTICS),
        )

    def test_diagnostics_kept_by_default(self) -> None:
        """[MQTT-3.1.2-29] only a value of 0 withholds them: by default a PUBACK keeps its Reason String."""
        proto = connected()
        ack = PubAck(packet_id=1, reason_code=RC.NOT_AUTHORIZED, properties=self.DIAGNOSTICS)
        proto.send(ack)
        assert_sent(proto, ack)

    def test_error_disconnect_has_a_reason_string_unless_asked_not_to(self) -> None:
        """[MQTT-4.13.1-1] the DISCONNECT names the error; with Request Problem Information 0, no string"""
        talkative = connected()
        [packet] = answer_to(talkative, publish("a/+"))
        assert isinstance(packet, Disconnect)
        assert packet.properties.reason_string
        [packet] = answer_to(self.quiet(), publish("a/+"))
        assert packet == Disconnect(reason_code=RC.TOPIC_NAME_INVALID)


# -- 3.1.2.10 Keep Alive ------------------------------------------------------------------------------


class TestKeepAlive_3_1_2_10:
    def test_the_deadline_is_one_and_a_half_keep_alives_after_the_client_was_last_heard(self) -> None:
        """[MQTT-3.1.2-22] the server may close after 1.5 times the keep alive without a packet."""
        proto = connected()
        proto.set_keep_alive(10)
        proto.heard(100.0)
        assert proto.keep_alive_deadline() == 115.0
        proto.heard(112.0)
        assert proto.keep_alive_deadline() == 127.0

    def test_keep_alive_zero_has_no_deadline(self) -> None:
        """Section 3.1.2.10: a Keep Alive of 0 turns the mechanism off."""
        proto = connected()
        proto.set_keep_alive(0)
        proto.heard(100.0)
        assert proto.keep_alive_deadline() is None


# -- 3.1.4 CONNECT actions: reading limits against denial of service ------------------------------


class TestPublishRate_3_1_4:
    """The non-normative comment of section 3.1.4 suggests limiting how fast a client is read
    against denial of service.  zanzara's ``max_publish_rate`` delays a PUBLISH over the rate
    with a :class:`Hold` in front of it: nothing is dropped or reordered, nobody is cut off."""

    def test_publish_within_the_rate_come_without_holds(self) -> None:
        """Up to one second's worth at once: no hold; each PUBLISH is counted."""
        proto = connected(max_publish_rate=2.0)
        events = proto.receive_data(wire(publish(), publish()), 100.0)
        assert events == [publish(), publish()]
        assert proto.publishes_received == 2

    def test_publish_over_the_rate_wait_until_the_rate_paid_for_them(self) -> None:
        """Each PUBLISH over the rate comes after a Hold until its own turn, on the caller's clock."""
        proto = connected(max_publish_rate=2.0)
        events = proto.receive_data(wire(*[publish(topic=f"t/{i}") for i in range(4)]), 100.0)
        assert events == [
            publish(topic="t/0"),
            publish(topic="t/1"),
            Hold(100.5),
            publish(topic="t/2"),
            Hold(101.0),
            publish(topic="t/3"),
        ]
        # At 101.0 the debt is just paid: the next one waits half a second again.
        assert proto.receive_data(wire(publish(topic="t/4")), 101.0) == [Hold(101.5), publish(topic="t/4")]
        # A quiet second and a half refills the bucket (one second's worth at most).
        assert proto.receive_data(wire(publish(topic="t/5")), 102.5) == [publish(topic="t/5")]

    def test_other_packets_are_not_held(self) -> None:
        """Only PUBLISH count against max_publish_rate."""
        proto = connected(max_publish_rate=1.0)
        events = proto.receive_data(wire(PingReq(), PingReq(), PingReq()), 100.0)
        assert events == [PingReq(), PingReq(), PingReq()]
        assert proto.publishes_received == 0

    def test_receiving_at_a_time_counts_as_hearing_from_the_client(self) -> None:
        """Keep alive (section 3.1.2.10) counts from the last bytes received."""
        proto = connected()
        proto.set_keep_alive(10)
        proto.receive_data(wire(PingReq()), 200.0)
        assert proto.keep_alive_deadline() == 215.0


# -- 3.14 DISCONNECT ---------------------------------------------------------------------------------


class TestDisconnect_3_14:
    def test_server_disconnect_v5(self) -> None:
        """3.14: the server may DISCONNECT with a reason code and string; then the connection is closed."""
        proto = connected()
        proto.disconnect(RC.SESSION_TAKEN_OVER, "another connection")
        assert_sent(
            proto,
            Disconnect(
                reason_code=RC.SESSION_TAKEN_OVER, properties=Properties(reason_string="another connection")
            ),
        )
        assert proto.phase is ConnectionPhase.CLOSED

    @pytest.mark.parametrize("version", [V31, V311], ids=["3.1", "3.1.1"])
    def test_server_disconnect_v3_sends_nothing(self, version: ProtocolVersion) -> None:
        """3.1.1 3.14: DISCONNECT is client to server only; the server just closes."""
        proto = connected(version)
        proto.disconnect(RC.SESSION_TAKEN_OVER)
        assert_nothing_sent(proto)
        assert proto.phase is ConnectionPhase.CLOSED

    def test_no_disconnect_before_connack(self) -> None:
        """[MQTT-3.14.0-1] no DISCONNECT until a CONNACK with a code below 0x80 was sent."""
        proto = connecting()
        proto.disconnect(RC.SERVER_SHUTTING_DOWN)
        assert_nothing_sent(proto)
        assert proto.phase is ConnectionPhase.CLOSED

    def test_nothing_is_sent_after_disconnect(self) -> None:
        """[MQTT-3.14.4-1] after DISCONNECT the sender sends no more packets."""
        proto = connected()
        proto.disconnect(RC.SERVER_SHUTTING_DOWN)
        proto.send(PubAck(packet_id=1))
        proto.disconnect(RC.ADMINISTRATIVE_ACTION)
        proto.fail(ProtocolViolation("late"))
        assert_sent(proto, Disconnect(reason_code=RC.SERVER_SHUTTING_DOWN))
        assert proto.error is None

    def test_no_encoded_publish_after_disconnect(self) -> None:
        """[MQTT-3.14.4-1] after DISCONNECT no PUBLISH either, even one encoded once for many subscribers."""
        proto = connected()
        proto.disconnect(RC.SERVER_SHUTTING_DOWN)
        proto.send_bytes(encode(Publish(topic="t"), V5))
        assert_sent(proto, Disconnect(reason_code=RC.SERVER_SHUTTING_DOWN))

    def test_nothing_is_read_after_disconnect(self) -> None:
        """[MQTT-3.14.4-2] the connection closes after DISCONNECT: later input is discarded."""
        proto = connected()
        proto.disconnect(RC.SERVER_SHUTTING_DOWN)
        assert receive(proto, publish(), PingReq()) == []

    @both_versions
    def test_client_disconnect_is_returned(self, version: ProtocolVersion) -> None:
        """3.14.4: the client's DISCONNECT reaches the broker, which decides about the will."""
        proto = connected(version)
        packet = Disconnect(reason_code=RC.DISCONNECT_WITH_WILL_MESSAGE if version is V5 else 0)
        assert receive(proto, packet) == [packet]


# -- 4.9 Flow Control (Receive Maximum) --------------------------------------------------------------


class TestReceiveMaximum_4_9:
    """zanzara pauses reading at Receive Maximum (default) or, if asked, disconnects v5 clients over it."""

    @both_versions
    def test_pause_when_receive_maximum_publish_are_unanswered(self, version: ProtocolVersion) -> None:
        """4.9: at Receive Maximum unanswered QoS>0 PUBLISH the server stops reading (``inbound_full``)."""
        proto = connected(version, receive_maximum=2)
        receive(proto, publish(qos=1, packet_id=1))
        assert not proto.inbound_full
        receive(proto, publish(qos=1, packet_id=2))
        assert proto.inbound_full
        proto.send(PubAck(packet_id=1))
        assert not proto.inbound_full

    def test_qos0_is_not_counted(self) -> None:
        """[MQTT-3.3.4-7] only QoS 1 and QoS 2 PUBLISH count towards Receive Maximum."""
        proto = connected(receive_maximum=1)
        receive(proto, *[publish(qos=0) for _ in range(5)])
        assert not proto.inbound_full

    def test_a_resent_packet_id_counts_once(self) -> None:
        """[MQTT-3.3.1-1] a re-delivery (DUP) is the same PUBLISH: its id is counted once."""
        proto = connected(receive_maximum=2)
        first = publish(qos=1, packet_id=1)
        resent = Publish(topic="t", payload=b"p", qos=1, packet_id=1, dup=True)
        receive(proto, first, resent)
        assert not proto.inbound_full

    def test_qos2_is_freed_by_pubrec_when_pausing(self) -> None:
        """4.9: pausing counts up to the PUBREC, or a paused connection could not read the PUBREL."""
        proto = connected(receive_maximum=1)
        receive(proto, publish(qos=2, packet_id=1))
        assert proto.inbound_full
        proto.send(PubRec(packet_id=1))
        assert not proto.inbound_full

    def test_over_the_maximum_while_pausing_is_noted_not_refused(self) -> None:
        """[MQTT-3.3.4-7] going over Receive Maximum is noted (``exceeded_receive_maximum``), not refused."""
        proto = connected(receive_maximum=2)
        packets = [publish(qos=1, packet_id=i) for i in (1, 2, 3)]
        assert receive(proto, *packets) == packets
        assert proto.exceeded_receive_maximum
        assert proto.deferred_error is None
        assert proto.inbound_full

    def test_strict_v5_disconnects_over_the_maximum(self) -> None:
        """[MQTT-3.3.4-7] and 3.3.4: more than Receive Maximum unanswered QoS>0 PUBLISH: DISCONNECT 0x93."""
        proto = connected(receive_maximum=2, disconnect_over_receive_maximum=True)
        packets = [publish(qos=1, packet_id=i) for i in (1, 2, 3)]
        error = deferred(proto, *packets, good=2)
        assert error.reason_code == RC.RECEIVE_MAXIMUM_EXCEEDED
        proto.fail(error)
        assert disconnect_code(sent(proto)) == RC.RECEIVE_MAXIMUM_EXCEEDED

    def test_strict_v5_never_pauses(self) -> None:
        """4.9: a strict connection enforces the limit by DISCONNECT, so ``inbound_full`` stays False."""
        proto = connected(receive_maximum=2, disconnect_over_receive_maximum=True)
        receive(proto, publish(qos=1, packet_id=1), publish(qos=1, packet_id=2))
        assert not proto.inbound_full
        assert proto.deferred_error is None

    def test_strict_v5_counts_qos2_until_pubcomp(self) -> None:
        """[MQTT-3.3.4-7] a QoS 2 PUBLISH is unanswered until PUBCOMP (or a PUBREC of 0x80 or more)."""
        proto = connected(receive_maximum=1, disconnect_over_receive_maximum=True)
        receive(proto, publish(qos=2, packet_id=1))
        proto.send(PubRec(packet_id=1))
        assert deferred(proto, publish(qos=2, packet_id=2)).reason_code == RC.RECEIVE_MAXIMUM_EXCEEDED

    def test_strict_v5_pubcomp_frees_the_place(self) -> None:
        """[MQTT-3.3.4-7] after the PUBCOMP the client may send another QoS 2 PUBLISH."""
        proto = connected(receive_maximum=1, disconnect_over_receive_maximum=True)
        receive(proto, publish(qos=2, packet_id=1))
        proto.send(PubRec(packet_id=1))
        receive(proto, PubRel(packet_id=1))
        proto.send(PubComp(packet_id=1))
        assert receive(proto, publish(qos=2, packet_id=2)) == [publish(qos=2, packet_id=2)]
        assert proto.deferred_error is None

    def test_strict_v5_failed_pubrec_frees_the_place(self) -> None:
        """[MQTT-3.3.4-7] a PUBREC of 0x80 or more ends the flow and frees its place."""
        proto = connected(receive_maximum=1, disconnect_over_receive_maximum=True)
        receive(proto, publish(qos=2, packet_id=1))
        proto.send(PubRec(packet_id=1, reason_code=RC.NOT_AUTHORIZED))
        assert receive(proto, publish(qos=2, packet_id=2)) == [publish(qos=2, packet_id=2)]
        assert proto.deferred_error is None

    def test_strict_v5_puback_frees_the_place(self) -> None:
        """[MQTT-3.3.4-7] a PUBACK answers a QoS 1 PUBLISH."""
        proto = connected(receive_maximum=1, disconnect_over_receive_maximum=True)
        receive(proto, publish(qos=1, packet_id=1))
        proto.send(PubAck(packet_id=1))
        assert receive(proto, publish(qos=1, packet_id=2)) == [publish(qos=1, packet_id=2)]

    def test_strict_setting_pauses_v311(self) -> None:
        """3.1.1 has no Receive Maximum: a pipelining 3.1.1 client broke no rule; paused, never refused."""
        proto = connected(V311, receive_maximum=2, disconnect_over_receive_maximum=True)
        packets = [publish(qos=1, packet_id=i) for i in (1, 2, 3)]
        assert receive(proto, *packets) == packets
        assert proto.deferred_error is None
        assert proto.inbound_full


# -- 4.12 Enhanced authentication --------------------------------------------------------------------


class TestEnhancedAuth_4_12:
    METHOD = Properties(authentication_method="SCRAM-SHA-256")

    def authenticating(self) -> ServerProtocol:
        """CONNECT with an Authentication Method received; the server has sent AUTH 0x18."""
        proto = connecting(V5, Properties(authentication_method="SCRAM-SHA-256", authentication_data=b"1"))
        assert proto.auth_method == "SCRAM-SHA-256"
        proto.send(Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        assert proto.auth_awaited
        assert_sent(proto, Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        return proto

    def authenticated(self) -> ServerProtocol:
        """CONNECT with an Authentication Method, CONNACK sent."""
        return connected(V5, self.METHOD)

    def test_client_continues_with_auth_0x18(self) -> None:
        """[MQTT-4.12.0-3] the client answers the server's AUTH with AUTH 0x18 (and [MQTT-4.12.0-5])"""
        proto = self.authenticating()
        answer = Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD)
        assert receive(proto, answer) == [answer]
        assert not proto.auth_awaited
        assert proto.deferred_error is None

    def test_auth_0x18_that_answers_nothing(self) -> None:
        """[MQTT-4.12.0-3] the client sends AUTH 0x18 only in answer to the server's AUTH: CONNACK 0x82."""
        proto = connecting(V5, self.METHOD)
        [connack] = answer_to(proto, Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == RC.PROTOCOL_ERROR

    def test_two_answers_to_one_challenge(self) -> None:
        """[MQTT-4.12.0-3] one AUTH from the client per AUTH from the server."""
        proto = self.authenticating()
        answer = Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD)
        assert deferred(proto, answer, answer, good=1).reason_code == RC.PROTOCOL_ERROR

    def test_auth_with_another_method(self) -> None:
        """[MQTT-4.12.0-5] every AUTH carries the Authentication Method of the CONNECT."""
        proto = self.authenticating()
        other = Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=Properties(authentication_method="X"))
        assert isinstance(deferred(proto, other), ProtocolViolation)

    def test_auth_without_a_method_in_connect(self) -> None:
        """[MQTT-4.12.0-7] a client that gave no Authentication Method sends no AUTH: DISCONNECT 0x82."""
        proto = connected()
        packets = answer_to(proto, Auth(reason_code=RC.RE_AUTHENTICATE, properties=self.METHOD))
        assert disconnect_code(packets) == RC.PROTOCOL_ERROR

    def test_auth_success_from_a_client(self) -> None:
        """[MQTT-4.12.0-3], 3.15.2.1: a client's AUTH is 0x18 or 0x19; Success (0x00) is the server's."""
        proto = self.authenticating()
        assert isinstance(
            deferred(proto, Auth(reason_code=RC.SUCCESS, properties=self.METHOD)), ProtocolViolation
        )

    @pytest.mark.parametrize(
        "packet",
        [
            publish(),
            publish(qos=1),
            PingReq(),
            Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a"),)),
        ],
        ids=["PUBLISH", "PUBLISH-qos1", "PINGREQ", "SUBSCRIBE"],
    )
    def test_only_auth_or_disconnect_before_connack(self, packet: Packet) -> None:
        """[MQTT-3.1.2-30] with an Authentication Method, nothing but AUTH or DISCONNECT before CONNACK."""
        proto = self.authenticating()
        [connack] = answer_to(proto, packet)
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == RC.PROTOCOL_ERROR

    def test_disconnect_allowed_while_authenticating(self) -> None:
        """[MQTT-3.1.2-30] a client may give up with DISCONNECT during the authentication."""
        proto = self.authenticating()
        assert receive(proto, Disconnect()) == [Disconnect()]
        assert proto.deferred_error is None

    def test_reauthentication_after_connack(self) -> None:
        """[MQTT-4.12.1-1] after CONNACK the client may re-authenticate: AUTH 0x19, same method."""
        proto = self.authenticated()
        start = Auth(reason_code=RC.RE_AUTHENTICATE, properties=self.METHOD)
        assert receive(proto, start) == [start]
        proto.send(Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        answer = Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD)
        assert receive(proto, answer) == [answer]
        assert proto.deferred_error is None

    def test_reauthentication_before_connack(self) -> None:
        """[MQTT-4.12.1-1] re-authentication starts after CONNACK: AUTH 0x19 before it is a Protocol Error."""
        proto = self.authenticating()
        start = Auth(reason_code=RC.RE_AUTHENTICATE, properties=self.METHOD)
        assert deferred(proto, start).reason_code == RC.PROTOCOL_ERROR

    def test_reauthentication_during_an_exchange(self) -> None:
        """[MQTT-4.12.0-3] while the server awaits AUTH 0x18, a new AUTH 0x19 is a Protocol Error."""
        proto = self.authenticated()
        proto.send(Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        proto.data_to_send()
        start = Auth(reason_code=RC.RE_AUTHENTICATE, properties=self.METHOD)
        assert disconnect_code(answer_to(proto, start)) == RC.PROTOCOL_ERROR

    def test_reauthentication_with_another_method(self) -> None:
        """[MQTT-4.12.1-1] re-authentication uses the method that authenticated the connection."""
        proto = self.authenticated()
        other = Auth(reason_code=RC.RE_AUTHENTICATE, properties=Properties(authentication_method="X"))
        assert deferred(proto, other).reason_code == RC.PROTOCOL_ERROR

    def test_other_packets_flow_during_reauthentication(self) -> None:
        """4.12.1: during re-authentication the client may go on sending other packets."""
        proto = self.authenticated()
        receive(proto, Auth(reason_code=RC.RE_AUTHENTICATE, properties=self.METHOD))
        proto.send(Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        assert receive(proto, publish(qos=1), PingReq()) == [publish(qos=1), PingReq()]

    def test_server_success_ends_the_exchange(self) -> None:
        """3.15.2.1: after the server's AUTH 0x00 no answer is awaited; a new 0x19 may start."""
        proto = self.authenticated()
        receive(proto, Auth(reason_code=RC.RE_AUTHENTICATE, properties=self.METHOD))
        proto.send(Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        receive(proto, Auth(reason_code=RC.CONTINUE_AUTHENTICATION, properties=self.METHOD))
        proto.send(Auth(reason_code=RC.SUCCESS, properties=self.METHOD))
        assert not proto.auth_awaited
        again = Auth(reason_code=RC.RE_AUTHENTICATE, properties=self.METHOD)
        assert receive(proto, again) == [again]

    def test_auth_packet_in_v311_is_malformed(self) -> None:
        """3.1.1 2.2.1: packet type 15 is reserved (forbidden); [MQTT-4.8.0-1] the connection is closed."""
        proto = connected(V311)
        proto.receive_data(b"\xf0\x00")
        assert isinstance(proto.deferred_error, MalformedPacket)
        proto.fail(proto.deferred_error)
        assert_nothing_sent(proto)


# -- 4.13 Handling errors ----------------------------------------------------------------------------


class TestErrors_4_13:
    def test_good_packets_before_an_error_are_returned(self) -> None:
        """[MQTT-4.13.1-1] packets before the bad one are handled; the error waits in ``deferred_error``."""
        proto = connected()
        good: list[Packet] = [publish(qos=1, packet_id=1), PingReq()]
        data = wire(*good, publish("a/+"), publish("after"))
        assert proto.receive_data(data) == good
        assert proto.deferred_error is not None
        assert proto.deferred_error.reason_code == RC.TOPIC_NAME_INVALID
        assert proto.phase is ConnectionPhase.CONNECTED  # until the caller fails it
        assert proto.error is None

    def test_nothing_is_parsed_after_the_error(self) -> None:
        """[MQTT-4.13.1-1] the connection is closed after an error: later bytes are not read."""
        proto = connected()
        receive(proto, publish("a/+"))
        assert receive(proto, publish("later"), PingReq()) == []

    def test_acks_of_good_packets_precede_the_disconnect(self) -> None:
        """[MQTT-4.13.1-1] the broker answers the good packets first, then ``fail`` sends DISCONNECT."""
        proto = connected()
        assert proto.receive_data(wire(publish(qos=1, packet_id=5), publish("a/+"))) == [
            publish(qos=1, packet_id=5)
        ]
        proto.send(PubAck(packet_id=5))
        assert proto.deferred_error is not None
        proto.fail(proto.deferred_error)
        [ack, disconnect] = sent(proto)
        assert ack == PubAck(packet_id=5)
        assert isinstance(disconnect, Disconnect)
        assert disconnect.reason_code == RC.TOPIC_NAME_INVALID

    def test_fail_v5_sends_disconnect_with_the_reason(self) -> None:
        """[MQTT-4.13.1-1] after CONNACK, the reason code goes in a DISCONNECT, with a Reason String."""
        proto = connected()
        proto.fail(ProtocolViolation("bad thing"))
        assert_sent(
            proto, Disconnect(reason_code=RC.PROTOCOL_ERROR, properties=Properties(reason_string="bad thing"))
        )
        assert isinstance(proto.error, ProtocolViolation)

    def test_fail_v311_closes_silently(self) -> None:
        """3.1.1 [MQTT-4.8.0-1] a protocol violation closes the connection; 3.1.1 has no server DISCONNECT."""
        proto = connected(V311)
        proto.fail(ProtocolViolation("bad thing"))
        assert_nothing_sent(proto)
        assert proto.phase is ConnectionPhase.CLOSED

    def test_fail_before_connack_sends_connack(self) -> None:
        """[MQTT-4.13.1-1] an error in CONNECT (before CONNACK) may be answered by CONNACK with the code."""
        proto = connecting()
        proto.fail(MalformedPacket("bad will"))
        assert_sent(
            proto, ConnAck(reason_code=RC.MALFORMED_PACKET, properties=Properties(reason_string="bad will"))
        )

    def test_fail_is_answered_once(self) -> None:
        """[MQTT-3.14.4-1] one DISCONNECT; a second failure sends nothing and keeps the first error."""
        proto = connected()
        first = ProtocolViolation("first")
        proto.fail(first)
        proto.fail(MalformedPacket("second"))
        assert disconnect_code(sent(proto)) == RC.PROTOCOL_ERROR
        assert proto.error is first

    def test_malformed_packet(self) -> None:
        """[MQTT-2.1.3-1] wrong reserved flags make a Malformed Packet: DISCONNECT 0x81."""
        proto = connected()
        proto.receive_data(b"\xc1\x00")  # PINGREQ with a flag bit set
        assert isinstance(proto.deferred_error, MalformedPacket)
        proto.fail(proto.deferred_error)
        assert disconnect_code(sent(proto)) == RC.MALFORMED_PACKET

    def test_subscribe_with_two_subscription_identifiers(self) -> None:
        """3.8.2.1.2: more than one Subscription Identifier in SUBSCRIBE is a Protocol Error (0x82)."""
        proto = connected()
        subscribe = Subscribe(
            packet_id=1,
            subscriptions=(Subscription(topic_filter="a"),),
            properties=Properties(subscription_identifiers=(1, 2)),
        )
        assert disconnect_code(answer_to(proto, subscribe)) == RC.PROTOCOL_ERROR
