"""zanzara.mqtt.codec: one test per wire-format rule, each citing its conformance statement.

Statement numbers are MQTT 5.0 ones unless marked 3.1.1.  Every rejection asserts
the exact exception class and the reason code it carries: MalformedPacket
(0x81), ProtocolViolation (0x82, or the more specific code the spec names),
PacketTooLarge (0x95), UnsupportedProtocolVersion (0x84).  The last part feeds
valid streams byte by byte, in random chunks and coalesced.
"""

from __future__ import annotations

import random

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
from zanzara.mqtt.properties import Properties
from zanzara.mqtt.topics import validate_topic_name
from zanzara.protocol import ServerProtocol

from .wire import V5, V31, V311, Role, frame, h, mqtt_str


def read(
    data: bytes,
    *,
    role: Role = "server",
    version: ProtocolVersion | None = V5,
    max_packet_size: int | None = None,
) -> list[Packet]:
    reader = (
        Reader(role=role, version=version)
        if max_packet_size is None
        else Reader(role=role, version=version, max_packet_size=max_packet_size)
    )
    reader.feed(data)
    return list(reader.read_packets())


def rejected(
    data: bytes,
    exc_type: type[ProtocolError],
    reason_code: int,
    *,
    role: Role = "server",
    version: ProtocolVersion | None = V5,
    max_packet_size: int | None = None,
    match: str | None = None,
) -> ProtocolError:
    """Assert the exact exception class and reason code (and, with ``match``, which check fired)."""
    with pytest.raises(ProtocolError, match=match) as info:
        read(data, role=role, version=version, max_packet_size=max_packet_size)
    assert type(info.value) is exc_type, repr(info.value)
    assert info.value.reason_code == reason_code
    return info.value


# -- fixed header flags ------------------------------------------------------------------------


# One valid packet per type (and the role that receives it); the first byte is replaced below.
VALID: dict[str, tuple[bytes, Role]] = {
    "CONNECT": (encode(Connect(protocol_version=V5, client_id="c"), V5), "server"),
    "CONNACK": (h("20 03 00 00 00"), "client"),
    "PUBACK": (h("40 02 00 01"), "server"),
    "PUBREC": (h("50 02 00 01"), "server"),
    "PUBREL": (h("62 02 00 01"), "server"),
    "PUBCOMP": (h("70 02 00 01"), "server"),
    "SUBSCRIBE": (h("82 07 00 01 00 00 01 23 00"), "server"),
    "SUBACK": (h("90 04 00 01 00 00"), "client"),
    "UNSUBSCRIBE": (h("a2 06 00 01 00 00 01 23"), "server"),
    "UNSUBACK": (h("b0 04 00 01 00 00"), "client"),
    "PINGREQ": (h("c0 00"), "server"),
    "PINGRESP": (h("d0 00"), "client"),
    "DISCONNECT": (h("e0 00"), "server"),
    "AUTH": (h("f0 00"), "server"),
}
FLAGS_0010 = ["PUBREL", "SUBSCRIBE", "UNSUBSCRIBE"]
FLAGS_0000 = [name for name in VALID if name not in FLAGS_0010]


@pytest.mark.parametrize("name", list(VALID))
def test_valid_fixed_headers_are_accepted(name: str) -> None:
    data, role = VALID[name]
    assert len(read(data, role=role)) == 1


@pytest.mark.parametrize("name", FLAGS_0010)
@pytest.mark.parametrize("flags", [f for f in range(16) if f != 0b0010])
def test_reserved_flags_must_be_0010(name: str, flags: int) -> None:
    """[MQTT-3.6.1-1] PUBREL, [MQTT-3.8.1-1] SUBSCRIBE, [MQTT-3.10.1-1] UNSUBSCRIBE: bits 3-0 are 0,0,1,0
    and any other value is malformed ([MQTT-2.1.3-1]; 3.1.1 [MQTT-2.2.2-1], [MQTT-2.2.2-2])."""
    data, role = VALID[name]
    bad = bytes((data[0] & 0xF0 | flags,)) + data[1:]
    rejected(bad, MalformedPacket, 0x81, role=role, match="reserved flags")
    rejected(bad, MalformedPacket, 0x81, role=role, version=V311, match="reserved flags")


@pytest.mark.parametrize("name", FLAGS_0000)
@pytest.mark.parametrize("flags", range(1, 16))
def test_reserved_flags_must_be_0000(name: str, flags: int) -> None:
    """[MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-1]): the other packets (PUBLISH excepted) have flags 0000."""
    data, role = VALID[name]
    rejected(bytes((data[0] | flags,)) + data[1:], MalformedPacket, 0x81, role=role, match="reserved flags")


def test_reserved_packet_type_0() -> None:
    """5.0 §2.1.2 Table 2-1 / 3.1.1 §2.2.1 Table 2.1: type 0 is Reserved (Forbidden)."""
    rejected(h("00 00"), MalformedPacket, 0x81)
    rejected(h("00 00"), MalformedPacket, 0x81, role="client", version=V311)


@pytest.mark.parametrize("version", [V31, V311])
def test_packet_type_15_is_reserved_before_5_0(version: ProtocolVersion) -> None:
    """3.1.1 §2.2.1 Table 2.1: type 15 is Reserved (Forbidden); AUTH exists only in 5.0 (§3.15)."""
    rejected(h("f0 00"), MalformedPacket, 0x81, version=version)


@pytest.mark.parametrize(
    ("data", "role"),
    [
        (h("20 03 00 00 00"), "server"),  # CONNACK received by a server
        (h("90 04 00 01 00 00"), "server"),  # SUBACK
        (h("d0 00"), "server"),  # PINGRESP
        (h("82 07 00 01 00 00 01 23 00"), "client"),  # SUBSCRIBE received by a client
        (h("c0 00"), "client"),  # PINGREQ
        (encode(Connect(protocol_version=V5), V5), "client"),
    ],
    ids=[
        "connack-to-server",
        "suback-to-server",
        "pingresp-to-server",
        "subscribe-to-client",
        "pingreq-to-client",
        "connect-to-client",
    ],
)
def test_packet_sent_in_the_wrong_direction(data: bytes, role: Role) -> None:
    """5.0 §2.1.2 Table 2-1 "Direction of flow": a packet from the wrong side is a Protocol Error."""
    rejected(data, ProtocolViolation, 0x82, role=role)


def test_first_packet_must_be_connect() -> None:
    """[MQTT-3.1.0-1] the first packet from the client to the server MUST be a CONNECT."""
    rejected(h("c0 00"), ProtocolViolation, 0x82, version=None)
    rejected(h("30 03 00 01 61"), ProtocolViolation, 0x82, version=None)


# -- remaining length --------------------------------------------------------------------------


def test_remaining_length_of_five_bytes_is_malformed() -> None:
    """5.0 §1.5.5 / 3.1.1 §2.2.3: at most four bytes; the error comes at the fourth continuation byte."""
    reader = Reader(role="server", version=V5)
    for byte in h("30 ff ff ff"):
        reader.feed(bytes((byte,)))
        assert list(reader.read_packets()) == []
    reader.feed(b"\xff")
    with pytest.raises(MalformedPacket):
        list(reader.read_packets())


@pytest.mark.parametrize("wire", ["c0 80 00", "30 83 80 00", "30 80 80 80 00"])
def test_remaining_length_not_minimally_encoded(wire: str) -> None:
    """[MQTT-1.5.5-1] the encoded value MUST use the minimum number of bytes necessary."""
    rejected(h(wire), MalformedPacket, 0x81)


def test_property_length_not_minimally_encoded() -> None:
    """[MQTT-1.5.5-1] applies to every Variable Byte Integer, the property length included."""
    rejected(h("30 07 00 01 61 80 00 68 69"), MalformedPacket, 0x81)


# -- PUBLISH -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [V311, V5])
@pytest.mark.parametrize("first", [0x36, 0x37, 0x3E, 0x3F])
def test_publish_qos_3(version: ProtocolVersion, first: int) -> None:
    """[MQTT-3.3.1-4] a PUBLISH MUST NOT have both QoS bits set; it is a Malformed Packet."""
    body = h("00 01 61 00 01") + (b"\x00" if version is V5 else b"")
    rejected(frame(first, body), MalformedPacket, 0x81, version=version)


@pytest.mark.parametrize("version", [V311, V5])
@pytest.mark.parametrize("first", [0x38, 0x39])
def test_publish_dup_on_qos_0(version: ProtocolVersion, first: int) -> None:
    """[MQTT-3.3.1-2] the DUP flag MUST be set to 0 for all QoS 0 messages (5.0 and 3.1.1)."""
    body = h("00 01 61") + (b"\x00" if version is V5 else b"")
    rejected(frame(first, body), MalformedPacket, 0x81, version=version)


@pytest.mark.parametrize("version", [V31, V311, V5])
@pytest.mark.parametrize("first", [0x32, 0x34, 0x3A])
def test_publish_packet_id_0(version: ProtocolVersion, first: int) -> None:
    """[MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]) a QoS > 0 PUBLISH carries a non-zero Packet Identifier."""
    body = h("00 01 61 00 00") + (b"\x00" if version is V5 else b"")
    rejected(frame(first, body), MalformedPacket, 0x81, version=version)


def test_publish_truncated_topic() -> None:
    """[MQTT-3.3.2-1] the Topic Name MUST be a UTF-8 Encoded String; its length runs past the packet."""
    rejected(h("30 04 00 05 61 62"), MalformedPacket, 0x81)
    rejected(h("32 04 00 01 61 00"), MalformedPacket, 0x81)  # packet identifier cut short


def test_publish_topic_with_wildcards() -> None:
    """[MQTT-3.3.2-2] the Topic Name in a PUBLISH MUST NOT contain wildcard characters.

    The codec parses the string (it is well-formed UTF-8); topic rules live in
    zanzara.mqtt.topics and the connection applies them: 0x90 Topic Name invalid.
    """
    for topic in ("a/+", "#", "a/#", "+"):
        data = frame(0x30, mqtt_str(topic.encode()) + b"\x00")
        assert read(data) == [Publish(topic=topic)]
        with pytest.raises(ProtocolError) as info:
            validate_topic_name(topic)
        assert info.value.reason_code == ReasonCode.TOPIC_NAME_INVALID
        conn = ServerProtocol()
        conn.receive_data(encode(Connect(protocol_version=V5, client_id="c"), V5) + data)
        assert conn.deferred_error is not None
        assert conn.deferred_error.reason_code == ReasonCode.TOPIC_NAME_INVALID


# -- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------------------


@pytest.mark.parametrize("version", [V31, V311, V5])
def test_subscribe_packet_id_0(version: ProtocolVersion) -> None:
    """[MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]) SUBSCRIBE carries a non-zero Packet Identifier."""
    props = b"\x00" if version is V5 else b""
    rejected(frame(0x82, h("00 00") + props + h("00 01 23 00")), MalformedPacket, 0x81, version=version)


@pytest.mark.parametrize("version", [V31, V311, V5])
def test_unsubscribe_packet_id_0(version: ProtocolVersion) -> None:
    """[MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]) UNSUBSCRIBE carries a non-zero Packet Identifier."""
    props = b"\x00" if version is V5 else b""
    rejected(frame(0xA2, h("00 00") + props + h("00 01 23")), MalformedPacket, 0x81, version=version)


@pytest.mark.parametrize("version", [V311, V5])
def test_subscribe_without_topic_filters(version: ProtocolVersion) -> None:
    """[MQTT-3.8.3-2] (3.1.1 [MQTT-3.8.3-3]) at least one Topic Filter; none is a Protocol Error."""
    props = b"\x00" if version is V5 else b""
    rejected(frame(0x82, h("00 01") + props), ProtocolViolation, 0x82, version=version)


@pytest.mark.parametrize("version", [V311, V5])
def test_unsubscribe_without_topic_filters(version: ProtocolVersion) -> None:
    """[MQTT-3.10.3-2] the Payload of an UNSUBSCRIBE MUST contain at least one Topic Filter."""
    props = b"\x00" if version is V5 else b""
    rejected(frame(0xA2, h("00 01") + props), ProtocolViolation, 0x82, version=version)


def test_subscribe_without_options_byte() -> None:
    """[MQTT-3.8.3-1]: each Topic Filter is followed by a Subscription Options byte."""
    rejected(h("82 06 00 01 00 00 01 23"), MalformedPacket, 0x81)


@pytest.mark.parametrize("options", [0x04, 0x08, 0x10, 0x20, 0x40, 0x80])
def test_subscribe_reserved_bits_3_1_1(options: int) -> None:
    """3.1.1 [MQTT-3-8.3-4]: the upper 6 bits of the Requested QoS byte are reserved: malformed."""
    rejected(h("82 06 00 01 00 01 23") + bytes((options,)), MalformedPacket, 0x81, version=V311)


@pytest.mark.parametrize("options", [0x40, 0x80, 0xC1])
def test_subscribe_reserved_bits_5_0(options: int) -> None:
    """[MQTT-3.8.3-5] bits 6 and 7 of the Subscription Options are reserved: malformed."""
    rejected(h("82 07 00 01 00 00 01 23") + bytes((options,)), MalformedPacket, 0x81)


def test_subscribe_qos_3_in_3_1_1_is_malformed() -> None:
    """3.1.1 [MQTT-3-8.3-4]: malformed "if ... QoS is not 0, 1 or 2"."""
    rejected(h("82 06 00 01 00 01 23 03"), MalformedPacket, 0x81, version=V311)


def test_subscribe_qos_3_in_5_0_is_a_protocol_error() -> None:
    """5.0 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3"."""
    rejected(h("82 07 00 01 00 00 01 23 03"), ProtocolViolation, 0x82)


def test_subscribe_retain_handling_3() -> None:
    """5.0 §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3"."""
    rejected(h("82 07 00 01 00 00 01 23 30"), ProtocolViolation, 0x82)


def test_subscribe_subscription_identifier_0() -> None:
    """5.0 §3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a value of 0"."""
    rejected(h("82 09 00 01 02 0b 00 00 01 23 00"), ProtocolViolation, 0x82)


def test_subscribe_with_two_subscription_identifiers() -> None:
    """5.0 §3.8.2.1.2: "It is a Protocol Error to include the Subscription Identifier more than once".

    The codec keeps both (PUBLISH may repeat it, [MQTT-3.3.4-4]); the connection rejects the SUBSCRIBE.
    """
    data = h("82 0b 00 01 04 0b 01 0b 02 00 01 23 00")
    [packet] = read(data)
    assert isinstance(packet, Subscribe)
    assert packet.properties.subscription_identifiers == (1, 2)
    conn = ServerProtocol()
    conn.receive_data(encode(Connect(protocol_version=V5, client_id="c"), V5) + data)
    assert isinstance(conn.deferred_error, ProtocolViolation)
    assert conn.deferred_error.reason_code == 0x82


# -- UTF-8 -------------------------------------------------------------------------------------

ILL_FORMED_UTF8 = {
    "lone-continuation": b"\x80",
    "invalid-byte-ff": b"a\xff",
    "invalid-byte-c0": b"\xc0\xaf",  # overlong "/"
    "overlong-3-bytes": b"\xe0\x80\xaf",
    "overlong-null": b"\xc0\x80",  # "modified UTF-8" U+0000
    "truncated-2-of-3": b"\xe2\x82",
    "truncated-at-end": b"ab\xf0\x9f\x98",
    "above-u10ffff": b"\xf4\x90\x80\x80",
    "5-byte-form": b"\xf8\x88\x80\x80\x80",
}
SURROGATES = {
    "u+d800": b"\xed\xa0\x80",
    "u+dbff": b"\xed\xaf\xbf",
    "u+dc00": b"\xed\xb0\x80",
    "u+dfff": b"\xed\xbf\xbf",
    "cesu-8-pair": b"\xed\xa0\xbd\xed\xb8\x80",  # U+1F600 as two encoded surrogates
}


def _string_sites(text: bytes) -> dict[str, tuple[bytes, Role, ProtocolVersion | None]]:
    """The same UTF-8 string placed in each kind of field the codec reads."""
    s = mqtt_str(text)
    connect_head = h("00 04 4d 51 54 54 04")
    return {
        "publish-topic": (frame(0x30, s + b"\x00"), "server", V5),
        "publish-topic-3.1.1": (frame(0x30, s), "server", V311),
        "client-id-3.1.1": (frame(0x10, connect_head + h("02 00 00") + s), "server", None),
        "will-topic-3.1.1": (
            frame(0x10, connect_head + h("06 00 00") + mqtt_str(b"c") + s + mqtt_str(b"x")),
            "server",
            None,
        ),
        "user-name-3.1.1": (
            frame(0x10, connect_head + h("82 00 00") + mqtt_str(b"c") + s),
            "server",
            None,
        ),
        "subscribe-filter": (frame(0x82, h("00 01 00") + s + b"\x00"), "server", V5),
        "unsubscribe-filter": (frame(0xA2, h("00 01") + s), "server", V311),
        "user-property-name": (
            frame(0x30, mqtt_str(b"a") + bytes((len(s) + 4,)) + b"\x26" + s + mqtt_str(b"v")),
            "server",
            V5,
        ),
        "user-property-value": (
            frame(0x30, mqtt_str(b"a") + bytes((len(s) + 4,)) + b"\x26" + mqtt_str(b"k") + s),
            "server",
            V5,
        ),
        "reason-string": (
            frame(0x40, h("00 01 80") + bytes((len(s) + 1,)) + b"\x1f" + s),
            "client",
            V5,
        ),
    }


SITES = list(_string_sites(b""))


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("text", list(ILL_FORMED_UTF8.values()), ids=list(ILL_FORMED_UTF8))
def test_ill_formed_utf8(site: str, text: bytes) -> None:
    """[MQTT-1.5.4-1] (3.1.1 [MQTT-1.5.3-1]) character data MUST be well-formed UTF-8: malformed."""
    data, role, version = _string_sites(text)[site]
    rejected(data, MalformedPacket, 0x81, role=role, version=version, match="invalid UTF-8")


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("text", list(SURROGATES.values()), ids=list(SURROGATES))
def test_utf8_encoded_surrogates(site: str, text: bytes) -> None:
    """[MQTT-1.5.4-1] (3.1.1 [MQTT-1.5.3-1]) MUST NOT include encodings of U+D800..U+DFFF."""
    data, role, version = _string_sites(text)[site]
    rejected(data, MalformedPacket, 0x81, role=role, version=version, match="invalid UTF-8")


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("text", [b"\x00", b"a\x00", b"a\x00b"], ids=["alone", "end", "middle"])
def test_utf8_null_character(site: str, text: bytes) -> None:
    """[MQTT-1.5.4-2] (3.1.1 [MQTT-1.5.3-2]) a UTF-8 string MUST NOT include U+0000."""
    data, role, version = _string_sites(text)[site]
    rejected(data, MalformedPacket, 0x81, role=role, version=version, match="U\\+0000")


@pytest.mark.parametrize("site", SITES)
def test_well_formed_utf8_is_accepted_everywhere(site: str) -> None:
    """The control for the three tests above: the same sites with a valid 4-byte character."""
    data, role, version = _string_sites("é\U0001f600".encode())[site]
    assert len(read(data, role=role, version=version)) == 1


def test_utf8_bom_is_not_stripped() -> None:
    """[MQTT-1.5.4-3] (3.1.1 [MQTT-1.5.3-3]) 0xEF 0xBB 0xBF is U+FEFF and MUST NOT be skipped or stripped."""
    [packet] = read(frame(0x30, mqtt_str(b"\xef\xbb\xbfa/b") + b"\x00"))
    assert packet == Publish(topic="\ufeffa/b")


def test_encoder_refuses_surrogates() -> None:
    """[MQTT-1.5.4-1] a sender cannot produce a string with a surrogate code point."""
    with pytest.raises(UnicodeEncodeError):
        encode(Publish(topic="a\ud800"), V5)


# -- properties --------------------------------------------------------------------------------


def publish_with_properties(props: bytes, *, first: int = 0x30) -> bytes:
    return frame(first, mqtt_str(b"a") + bytes((len(props),)) + props)


@pytest.mark.parametrize(
    ("data", "role"),
    [
        # 5.0 §3.3.2.3.3: Message Expiry Interval twice.
        (publish_with_properties(h("02 00 00 00 01 02 00 00 00 02")), "server"),
        # 5.0 §3.3.2.3.2: Payload Format Indicator twice.
        (publish_with_properties(h("01 00 01 01")), "server"),
        # 5.0 §3.3.2.3.4: Topic Alias twice.
        (publish_with_properties(h("23 00 01 23 00 01")), "server"),
        # 5.0 §3.1.2.11.2: Session Expiry Interval twice in CONNECT.
        (
            frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 0a 11 00 00 00 01 11 00 00 00 02 00 00")),
            "server",
        ),
        # 5.0 §3.2.2.3.4: Maximum QoS twice in CONNACK.
        (h("20 07 00 00 04 24 00 24 01"), "client"),
        # 5.0 §3.4.2.2.2: Reason String twice in PUBACK.
        (h("40 0c 00 01 80 08 1f 00 01 61 1f 00 01 62"), "server"),
        # 5.0 §3.15.2.2.2: Authentication Method twice in AUTH.
        (h("f0 0c 18 0a 15 00 02 61 62 15 00 02 61 62"), "server"),
    ],
    ids=[
        "message-expiry",
        "payload-format",
        "topic-alias",
        "session-expiry",
        "maximum-qos",
        "reason-string",
        "authentication-method",
    ],
)
def test_property_included_twice(data: bytes, role: Role) -> None:
    """5.0 §2.2.2.2 and each property's section: "It is a Protocol Error to include ... more than once"."""
    rejected(data, ProtocolViolation, 0x82, role=role, match="included twice")


def test_user_property_may_repeat() -> None:
    """5.0 §3.3.2.3.7: User Property may appear multiple times, the same name more than once;
    [MQTT-3.3.2-18] their order is kept."""
    props = h("26 00 01 6b 00 01 31  26 00 01 6b 00 01 32  26 00 01 6a 00 00")
    [packet] = read(publish_with_properties(props))
    assert packet.properties.user_properties == (("k", "1"), ("k", "2"), ("j", ""))  # type: ignore[union-attr]


def test_subscription_identifier_may_repeat_in_publish_to_client() -> None:
    """[MQTT-3.3.4-4] a PUBLISH may carry several Subscription Identifiers (in any order, §3.3.4)."""
    data = publish_with_properties(h("0b 03 0b 01 0b 03"))
    [packet] = read(data, role="client")
    assert packet.properties.subscription_identifiers == (3, 1, 3)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "role"),
    [
        # Session Expiry Interval (0x11) in PUBLISH.
        (publish_with_properties(h("11 00 00 00 01")), "server"),
        # Reason String (0x1F) in PUBLISH.
        (publish_with_properties(h("1f 00 01 61")), "server"),
        # Authentication Method (0x15) in PUBLISH.
        (publish_with_properties(h("15 00 01 61")), "server"),
        # Will Delay Interval (0x18) among the CONNECT properties (it belongs to the will).
        (frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 05 18 00 00 00 01 00 00")), "server"),
        # Topic Alias (0x23) in CONNECT.
        (frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 03 23 00 01 00 00")), "server"),
        # Assigned Client Identifier (0x12) in CONNECT (CONNACK only).
        (frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 04 12 00 01 61 00 00")), "server"),
        # Session Expiry Interval (0x11) among the will properties.
        (
            frame(
                0x10,
                h("00 04 4d 51 54 54 05 06 00 00 00 00 01 63 05 11 00 00 00 01 00 01 74 00 00"),
            ),
            "server",
        ),
        # Subscription Identifier (0x0B) in PUBACK.
        (h("40 06 00 01 00 02 0b 01"), "server"),
        # Server Keep Alive (0x13) in DISCONNECT (CONNACK only).
        (h("e0 05 00 03 13 00 0a"), "client"),
        # Topic Alias (0x23) in SUBSCRIBE.
        (h("82 0a 00 01 03 23 00 01 00 01 23 00"), "server"),
        # Payload Format Indicator (0x01) in AUTH.
        (h("f0 04 18 02 01 01"), "server"),
    ],
    ids=[
        "session-expiry-in-publish",
        "reason-string-in-publish",
        "auth-method-in-publish",
        "will-delay-in-connect",
        "topic-alias-in-connect",
        "assigned-id-in-connect",
        "session-expiry-in-will",
        "subscription-id-in-puback",
        "server-keep-alive-in-disconnect",
        "topic-alias-in-subscribe",
        "payload-format-in-auth",
    ],
)
def test_property_not_allowed_in_the_packet(data: bytes, role: Role) -> None:
    """5.0 §2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its packet type
    ... is a Malformed Packet"."""
    rejected(data, MalformedPacket, 0x81, role=role, match="not allowed in")


@pytest.mark.parametrize("ident", ["00", "04", "0a", "2b", "7f", "80 01"])
def test_unknown_property_identifier(ident: str) -> None:
    """5.0 §2.2.2.2 Table 2-4 lists every identifier; any other is not valid: Malformed Packet."""
    rejected(publish_with_properties(h(ident + " 00")), MalformedPacket, 0x81, match="not allowed in")


@pytest.mark.parametrize(
    ("data", "role"),
    [
        (publish_with_properties(h("01 02")), "server"),  # Payload Format Indicator 2 (§3.3.2.3.2)
        (frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 02 17 02 00 00")), "server"),  # Request Problem Inf. 2
        (frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 02 19 05 00 00")), "server"),  # Request Response Inf. 5
        (h("20 05 00 00 02 24 02"), "client"),  # Maximum QoS 2 (§3.2.2.3.4)
        (h("20 05 00 00 02 25 02"), "client"),  # Retain Available 2 (§3.2.2.3.5)
        (h("20 05 00 00 02 28 ff"), "client"),  # Wildcard Subscription Available (§3.2.2.3.11)
    ],
    ids=[
        "payload-format",
        "request-problem",
        "request-response",
        "maximum-qos",
        "retain-available",
        "wildcard-available",
    ],
)
def test_byte_property_other_than_0_or_1(data: bytes, role: Role) -> None:
    """5.0 §3.1.2.11.6/7, §3.2.2.3.4/5/11: "It is a Protocol Error to ... have a value other than 0 or 1"."""
    rejected(data, ProtocolViolation, 0x82, role=role, match="must be 0 or 1")


def test_receive_maximum_0() -> None:
    """5.0 §3.1.2.11.3: "It is a Protocol Error to include ... a value of 0" for Receive Maximum."""
    rejected(frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 03 21 00 00 00 00")), ProtocolViolation, 0x82)


def test_maximum_packet_size_0() -> None:
    """5.0 §3.1.2.11.4: "It is a Protocol Error to include ... the value 0" for Maximum Packet Size."""
    data = frame(0x10, h("00 04 4d 51 54 54 05 02 00 00 05 27 00 00 00 00 00 00"))
    rejected(data, ProtocolViolation, 0x82)


def test_topic_alias_0() -> None:
    """[MQTT-3.3.2-8] a Topic Alias of 0 is not permitted; §3.3.4: "A Topic Alias value of 0 ... is a
    Protocol Error, the receiver uses DISCONNECT with Reason Code of 0x94 (Topic Alias invalid)"."""
    rejected(publish_with_properties(h("23 00 00")), ProtocolViolation, 0x94)


@pytest.mark.parametrize(
    "props",
    [
        "02 00 00",  # Message Expiry Interval cut after two of four bytes
        "23 00",  # Topic Alias cut after one of two bytes
        "03 00 05 61",  # Content Type longer than the block
        "09 00",  # Correlation Data without its length
        "26 00 01 6b",  # User Property without its value
        "0b 80",  # Subscription Identifier VBI cut short
        "01",  # Payload Format Indicator without its byte
    ],
)
def test_truncated_property(props: str) -> None:
    """5.0 §2.2.2.2: a value not of the specified data type (here: cut short) is a Malformed Packet."""
    rejected(publish_with_properties(h(props)), MalformedPacket, 0x81, role="client")


def test_property_length_beyond_the_packet() -> None:
    """5.0 §2.2.2.1: the Property Length counts bytes that must be in the packet."""
    rejected(frame(0x30, mqtt_str(b"a") + h("09 01 01")), MalformedPacket, 0x81)


# -- CONNECT / CONNACK -------------------------------------------------------------------------


def connect_bytes(flags: int, payload: bytes, *, level: int = 4, name: bytes = b"MQTT") -> bytes:
    props = b"\x00" if level == 5 else b""
    return frame(0x10, mqtt_str(name) + bytes((level, flags)) + h("00 00") + props + payload)


@pytest.mark.parametrize("level", [3, 4, 5])
def test_connect_reserved_flag(level: int) -> None:
    """[MQTT-3.1.2-3] the Server MUST validate that the reserved flag in CONNECT is set to 0."""
    name = b"MQIsdp" if level == 3 else b"MQTT"
    rejected(connect_bytes(0x03, mqtt_str(b"c"), level=level, name=name), MalformedPacket, 0x81, version=None)


@pytest.mark.parametrize("level", [4, 5])
def test_connect_will_qos_3(level: int) -> None:
    """[MQTT-3.1.2-12] (3.1.1 [MQTT-3.1.2-14]) Will QoS MUST NOT be 3."""
    will = (b"\x00" if level == 5 else b"") + mqtt_str(b"t") + mqtt_str(b"m")
    data = connect_bytes(0x1E, mqtt_str(b"c") + will, level=level)
    rejected(data, MalformedPacket, 0x81, version=None)


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("flags", [0x0A, 0x12, 0x22, 0x2A])
def test_connect_will_qos_or_retain_without_will(level: int, flags: int) -> None:
    """[MQTT-3.1.2-11], [MQTT-3.1.2-13] (3.1.1 [MQTT-3.1.2-13], [MQTT-3.1.2-15]): with Will Flag 0 the
    Will QoS and Will Retain MUST be 0."""
    data = connect_bytes(flags, mqtt_str(b"c"), level=level)
    rejected(data, MalformedPacket, 0x81, version=None, match="without a will")


def test_connect_password_without_user_name_3_1_1() -> None:
    """3.1.1 [MQTT-3.1.2-22]: if the User Name Flag is 0, the Password Flag MUST be 0."""
    data = connect_bytes(0x42, mqtt_str(b"c") + mqtt_str(b"pw"))
    rejected(data, MalformedPacket, 0x81, version=None)


def test_connect_password_without_user_name_5_0() -> None:
    """5.0 §3.1.2.9: a Password without a User Name is allowed."""
    [packet] = read(connect_bytes(0x42, mqtt_str(b"c") + mqtt_str(b"pw"), level=5), version=None)
    assert packet == Connect(protocol_version=V5, client_id="c", password=b"pw")


@pytest.mark.parametrize(
    ("name", "level"),
    [(b"MQTT", 3), (b"MQIsdp", 4), (b"MQIsdp", 5), (b"MQTX", 4), (b"MQTT", 6), (b"MQTT", 2), (b"MQTT", 0)],
)
def test_connect_protocol_name_or_level(name: bytes, level: int) -> None:
    """[MQTT-3.1.2-1] protocol name, [MQTT-3.1.2-2] unsupported level: 0x84 Unsupported Protocol Version
    (3.1.1 CONNACK return code 0x01)."""
    data = connect_bytes(0x02, mqtt_str(b"c"), level=level, name=name)
    rejected(data, UnsupportedProtocolVersion, 0x84, version=None)


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # no Client Identifier [MQTT-3.1.3-3]
        mqtt_str(b"c") + b"\x00",  # a byte after the last field
        mqtt_str(b"c") + mqtt_str(b"extra"),
    ],
)
def test_connect_payload_fields(payload: bytes) -> None:
    """[MQTT-3.1.3-1] the payload holds exactly the fields the flags announce, in order."""
    rejected(connect_bytes(0x02, payload), MalformedPacket, 0x81, version=None)


@pytest.mark.parametrize("flags", [0x02, 0x80, 0xFE])
def test_connack_reserved_flags(flags: int) -> None:
    """[MQTT-3.2.2-1] (5.0 §3.2.2.1) bits 7-1 of the Connect Acknowledge Flags are reserved, set to 0."""
    rejected(bytes((0x20, 2, flags, 0)), MalformedPacket, 0x81, role="client", version=V311)
    rejected(bytes((0x20, 3, flags, 0, 0)), MalformedPacket, 0x81, role="client", version=V5)


def test_connack_unknown_return_code() -> None:
    """3.1.1 §3.2.2.3 Table 3.1: 6-255 reserved; 5.0 §3.2.2.2 Table 3-1 lists the CONNACK reason codes."""
    rejected(h("20 02 00 06"), MalformedPacket, 0x81, role="client", version=V311)
    rejected(h("20 03 00 04 00"), MalformedPacket, 0x81, role="client", version=V5)
    rejected(h("20 03 00 01 00"), MalformedPacket, 0x81, role="client", version=V5)


# -- acknowledgements and the short packets --------------------------------------------------


@pytest.mark.parametrize("first", [0x40, 0x50, 0x62, 0x70])
def test_acknowledgement_packet_id_0(first: int) -> None:
    """[MQTT-2.2.1-3] packet identifiers are non-zero; 0 never names an outstanding PUBLISH."""
    rejected(bytes((first, 2, 0, 0)), MalformedPacket, 0x81)


@pytest.mark.parametrize(
    "data",
    [
        "40 03 00 01 92",  # PUBACK: 0x92 is a PUBREL/PUBCOMP code (§3.4.2.1 Table 3-4)
        "50 03 00 01 01",  # PUBREC: 0x01 (§3.5.2.1 Table 3-5)
        "62 03 00 01 10",  # PUBREL: only 0x00 and 0x92 (§3.6.2.1 Table 3-6)
        "70 03 00 01 80",  # PUBCOMP: only 0x00 and 0x92 (§3.7.2.1 Table 3-7)
        "e0 01 91",  # DISCONNECT: 0x91 is not a DISCONNECT code (§3.14.2.1 Table 3-10)
        "f0 01 01",  # AUTH: only 0x00, 0x18, 0x19 (§3.15.2.1 Table 3-13)
    ],
)
def test_reason_code_not_defined_for_the_packet(data: str) -> None:
    """5.0 §2.4: each packet uses the reason codes its section lists; others are malformed here."""
    rejected(h(data), MalformedPacket, 0x81)


def test_suback_and_unsuback_reason_codes() -> None:
    """3.1.1 [MQTT-3.9.3-2]: SUBACK codes other than 0x00-0x02 and 0x80 are reserved; 5.0 §3.9.3, §3.11.3."""
    rejected(h("90 03 00 01 03"), MalformedPacket, 0x81, role="client", version=V311)
    rejected(h("90 04 00 01 00 11"), MalformedPacket, 0x81, role="client", version=V5)
    rejected(h("b0 04 00 01 00 02"), MalformedPacket, 0x81, role="client", version=V5)


@pytest.mark.parametrize("version", [V31, V311])
@pytest.mark.parametrize("first", [0x40, 0x50, 0x62, 0x70])
def test_acknowledgement_longer_than_2_bytes_before_5_0(version: ProtocolVersion, first: int) -> None:
    """3.1.1 §3.4-§3.7: the Remaining Length of PUBACK, PUBREC, PUBREL and PUBCOMP is 2."""
    rejected(bytes((first, 3, 0, 1, 0)), MalformedPacket, 0x81, version=version)
    rejected(bytes((first, 1, 0)), MalformedPacket, 0x81, version=version)


@pytest.mark.parametrize(("data", "role"), [("c0 01 00", "server"), ("d0 01 00", "client")])
def test_ping_with_a_body(data: str, role: Role) -> None:
    """5.0 §3.12.2 / §3.13.2 (3.1.1 §3.12, §3.13): PINGREQ and PINGRESP have no variable header or payload."""
    rejected(h(data), MalformedPacket, 0x81, role=role)


def test_disconnect_with_a_body_before_5_0() -> None:
    """3.1.1 §3.14.2: the DISCONNECT Packet has no variable header (Remaining Length 0)."""
    rejected(h("e0 01 00"), MalformedPacket, 0x81, version=V311)


def test_unsuback_with_reason_codes_before_5_0() -> None:
    """3.1.1 §3.11: UNSUBACK has Remaining Length 2 and no payload."""
    rejected(h("b0 03 00 01 00"), MalformedPacket, 0x81, role="client", version=V311)


# -- maximum packet size -----------------------------------------------------------------------


def test_packet_of_exactly_the_maximum_size_is_accepted() -> None:
    """5.0 §3.1.2.11.4: the packet size is the total number of bytes of the packet; the limit is inclusive."""
    data = encode(Publish(topic="a", payload=b"x" * 100), V5)
    assert read(data, max_packet_size=len(data)) == [Publish(topic="a", payload=b"x" * 100)]


def test_packet_larger_than_the_maximum_size() -> None:
    """5.0 §3.2.2.3.6 / §4.13: a packet above the Maximum Packet Size: DISCONNECT 0x95 Packet too large."""
    data = encode(Publish(topic="a", payload=b"x" * 100), V5)
    error = rejected(data, PacketTooLarge, 0x95, max_packet_size=len(data) - 1)
    assert error.reason_code == ReasonCode.PACKET_TOO_LARGE


def test_packet_too_large_is_detected_from_the_fixed_header() -> None:
    """The limit is enforced before the body is buffered (the sender may never finish it)."""
    reader = Reader(role="server", version=V5, max_packet_size=1000)
    reader.feed(h("30 e9"))  # Remaining Length continues
    assert list(reader.read_packets()) == []
    reader.feed(h("07"))  # Remaining Length = 0x69 + 7 * 128 = 1001
    with pytest.raises(PacketTooLarge):
        list(reader.read_packets())


def test_reader_discards_everything_after_an_error() -> None:
    """After a protocol error the connection is closed ([MQTT-4.13.1-1]): nothing more is parsed."""
    reader = Reader(role="server", version=V5)
    reader.feed(h("c0 00  00 00  c0 00"))
    packets: list[Packet] = []
    with pytest.raises(MalformedPacket):
        packets.extend(reader.read_packets())
    assert packets == [PingReq()]
    reader.feed(h("c0 00"))
    assert list(reader.read_packets()) == []
    assert reader.buffered == 0


# -- incremental parsing -----------------------------------------------------------------------

CLIENT_STREAM: list[Packet] = [
    Connect(
        protocol_version=V5,
        client_id="inc",
        username="u",
        password=b"p",
        will=Will(topic="w", payload=b"bye", properties=Properties(will_delay_interval=3)),
        properties=Properties(session_expiry_interval=60, receive_maximum=10),
    ),
    Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a/#", qos=2),)),
    Publish(topic="a/b", payload=b"x" * 300, qos=1, packet_id=2),  # two-byte Remaining Length
    Publish(topic="a/c", payload=b"", properties=Properties(user_properties=(("k", "v"),))),
    PubRec(packet_id=3),
    PubRel(packet_id=3, reason_code=0x92),
    PubComp(packet_id=4),
    PubAck(packet_id=5, reason_code=0x10, properties=Properties(reason_string="ok")),
    Unsubscribe(packet_id=6, topic_filters=("a/#", "b")),
    PingReq(),
    Publish(topic="big", payload=bytes(range(256)) * 70, qos=2, packet_id=7),  # three-byte Remaining Length
    Auth(reason_code=0x19, properties=Properties(authentication_method="m")),
    Disconnect(reason_code=0x04),
]
SERVER_STREAM: list[Packet] = [
    ConnAck(session_present=True, properties=Properties(topic_alias_maximum=4)),
    SubAck(packet_id=1, reason_codes=(2, 0x80)),
    Publish(
        topic="a/b",
        payload=b"y" * 200,
        qos=1,
        packet_id=9,
        properties=Properties(subscription_identifiers=(4,)),
    ),
    UnsubAck(packet_id=6, reason_codes=(0, 0x11)),
    PingResp(),
    Disconnect(reason_code=0x8B),
]
STREAMS = {
    "client-to-server": (CLIENT_STREAM, "server", None),
    "server-to-client": (SERVER_STREAM, "client", V5),
}


def _stream(name: str) -> tuple[list[Packet], bytes, Reader]:
    packets, role, version = STREAMS[name]
    data = b"".join(encode(p, V5) for p in packets)
    return packets, data, Reader(role=role, version=version)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_one_byte_at_a_time(name: str) -> None:
    """Each packet comes out exactly when its last byte arrives, not before."""
    packets, data, reader = _stream(name)
    boundaries = []
    offset = 0
    for p in packets:
        offset += len(encode(p, V5))
        boundaries.append(offset)
    got: list[Packet] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        new = list(reader.read_packets())
        if i + 1 in boundaries:
            assert len(new) == 1, i
        else:
            assert new == [], i
        got += new
    assert got == packets
    assert reader.buffered == 0


@pytest.mark.parametrize("name", list(STREAMS))
@pytest.mark.parametrize("seed", range(20))
def test_stream_in_random_chunks(name: str, seed: int) -> None:
    packets, data, reader = _stream(name)
    rng = random.Random(seed)
    got: list[Packet] = []
    i = 0
    while i < len(data):
        n = rng.choice([1, 2, 3, rng.randrange(1, 64), rng.randrange(1, 4096)])
        reader.feed(data[i : i + n])
        i += n
        got += reader.read_packets()
    assert got == packets
    assert reader.buffered == 0


@pytest.mark.parametrize("name", list(STREAMS))
def test_coalesced_packets_in_one_read(name: str) -> None:
    packets, data, reader = _stream(name)
    reader.feed(data)
    assert list(reader.read_packets()) == packets
    assert reader.buffered == 0


@pytest.mark.parametrize("name", list(STREAMS))
def test_coalesced_with_a_partial_tail(name: str) -> None:
    """Complete packets come out; the incomplete last one stays buffered until its rest arrives."""
    packets, data, reader = _stream(name)
    reader.feed(data[:-1])
    assert list(reader.read_packets()) == packets[:-1]
    assert reader.buffered == len(encode(packets[-1], V5)) - 1
    reader.feed(data[-1:])
    assert list(reader.read_packets()) == packets[-1:]


def test_reading_can_stop_early_without_losing_packets() -> None:
    """A consumer may stop iterating (break, next()); the packets it did not read stay buffered."""
    reader = Reader(role="server", version=V5)
    reader.feed(h("c0 00  40 02 00 01  e0 00"))
    packets = reader.read_packets()
    assert next(packets) == PingReq()
    packets.close()
    assert reader.buffered == 6
    assert list(reader.read_packets()) == [PubAck(packet_id=1), Disconnect()]
    for packet in reader.read_packets():  # nothing left
        raise AssertionError(packet)
