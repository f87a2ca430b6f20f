"""zanzara.mqtt.codec round trips, property-based: decode(encode(p)) == p for every packet type.

Strategies build only *valid* packets for the version at hand: 5.0 packets carry
random properties drawn from the identifiers each packet type allows (5.0
§2.2.2.2 Table 2-4) and reason codes from each packet's table; 3.1 and 3.1.1
packets have neither.  Strings are well-formed UTF-8 without U+0000 or
surrogates [MQTT-1.5.4-1, MQTT-1.5.4-2].  The second half encodes a sequence of
packets, cuts the byte stream at arbitrary points and checks that the Reader
yields the same packets.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zanzara.mqtt.codec import Reader, decode_properties, encode, encode_properties, encode_publish
from zanzara.mqtt.enums import PacketType, ProtocolVersion, RetainHandling
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
from zanzara.mqtt.properties import WILL, Properties

from .wire import V5, V31, V311, Role

VERSIONS = [V31, V311, V5]
Where = PacketType | str

SETTINGS = settings(max_examples=200, deadline=None)

# Reason codes from the 5.0 tables (written out here, independently of the codec's own sets).
CONNACK_CODES = [
    0x00,
    *range(0x80, 0x8B),
    0x8C,
    0x90,
    0x95,
    0x97,
    0x99,
    0x9A,
    0x9B,
    0x9C,
    0x9D,
    0x9F,
]  # 3.2.2.2
PUBACK_CODES = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]  # 3.4.2.1, 3.5.2.1
PUBREL_CODES = [0x00, 0x92]  # 3.6.2.1, 3.7.2.1
SUBACK_CODES = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2]  # 3.9.3
UNSUBACK_CODES = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]  # 3.11.3
DISCONNECT_CODES = [  # 3.14.2.1
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96,
    0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
]  # fmt: skip
AUTH_CODES = [0x00, 0x18, 0x19]  # 3.15.2.1

# -- primitives --------------------------------------------------------------------------------

texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
binaries = st.binary(max_size=24)
packet_ids = st.integers(1, 65535)
u16 = st.integers(0, 65535)
u32 = st.integers(0, 2**32 - 1)
flags01 = st.integers(0, 1)
# Mostly small, sometimes past 127 and 16383 bytes: a 2- and 3-byte Remaining Length (3.1.1 §2.2.3).
payloads = binaries | st.integers(100, 17_000).map(lambda n: (bytes(range(256)) * (n // 256 + 1))[:n])
pairs = st.lists(st.tuples(texts, texts), max_size=3).map(tuple)

# Which properties each packet type (or the will) may carry: 5.0 §2.2.2.2 Table 2-4.
ALLOWED: dict[Where, dict[str, st.SearchStrategy[Any]]] = {}


def _allow(where: list[Where], **props: st.SearchStrategy[Any]) -> None:
    for w in where:
        ALLOWED.setdefault(w, {}).update(props)


_P = PacketType
_ACKS: list[Where] = [_P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP]
_allow(
    [_P.PUBLISH, WILL],
    payload_format_indicator=flags01,
    message_expiry_interval=u32,
    content_type=texts,
    response_topic=texts,
    correlation_data=binaries,
)
_allow([_P.PUBLISH], subscription_identifiers=st.lists(st.integers(1, 268_435_455), max_size=3).map(tuple))
_allow([_P.PUBLISH], topic_alias=st.integers(1, 65535))
_allow([_P.SUBSCRIBE], subscription_identifiers=st.lists(st.integers(1, 268_435_455), max_size=1).map(tuple))
_allow([_P.CONNECT, _P.CONNACK, _P.DISCONNECT], session_expiry_interval=u32)
_allow(
    [_P.CONNACK],
    assigned_client_identifier=texts,
    server_keep_alive=u16,
    response_information=texts,
    maximum_qos=flags01,
    retain_available=flags01,
    wildcard_subscription_available=flags01,
    subscription_identifier_available=flags01,
    shared_subscription_available=flags01,
)
_allow([_P.CONNECT, _P.CONNACK, _P.AUTH], authentication_method=texts, authentication_data=binaries)
_allow([_P.CONNECT], request_problem_information=flags01, request_response_information=flags01)
_allow([WILL], will_delay_interval=u32)
_allow([_P.CONNACK, _P.DISCONNECT], server_reference=texts)
_allow([_P.CONNACK, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH, *_ACKS], reason_string=texts)
_allow(
    [_P.CONNECT, _P.CONNACK],
    receive_maximum=st.integers(1, 65535),
    topic_alias_maximum=u16,
    maximum_packet_size=st.integers(1, 2**32 - 1),
)
_allow([*PacketType, WILL], user_properties=pairs)
for _ping in (_P.PINGREQ, _P.PINGRESP):
    ALLOWED.pop(_ping)


def properties(where: Where, version: ProtocolVersion) -> st.SearchStrategy[Properties]:
    if version is not V5:
        return st.just(Properties())
    return st.fixed_dictionaries({}, optional=ALLOWED[where]).map(lambda kw: Properties(**kw))


def reason_code(v5_codes: list[int], version: ProtocolVersion) -> st.SearchStrategy[int]:
    return st.sampled_from(v5_codes) if version is V5 else st.just(0)


# -- packets -----------------------------------------------------------------------------------


@st.composite
def connects(draw: st.DrawFn, version: ProtocolVersion) -> Connect:
    will = None
    if draw(st.booleans()):
        will = Will(
            topic=draw(texts),
            payload=draw(binaries),
            qos=draw(st.integers(0, 2)),
            retain=draw(st.booleans()),
            properties=draw(properties(WILL, version)),
        )
    username = draw(st.none() | texts)
    # 3.1.1 [MQTT-3.1.2-22]: no password without a user name (5.0 allows it, §3.1.2.9).
    password = draw(st.none() | binaries) if username is not None or version is V5 else None
    return Connect(
        protocol_version=version,
        protocol_name="MQIsdp" if version is V31 else "MQTT",
        clean_start=draw(st.booleans()),
        keep_alive=draw(u16),
        client_id=draw(texts),
        username=username,
        password=password,
        will=will,
        properties=draw(properties(_P.CONNECT, version)),
    )


def connacks(version: ProtocolVersion) -> st.SearchStrategy[ConnAck]:
    codes = st.sampled_from(CONNACK_CODES) if version is V5 else st.integers(0, 5)
    return st.builds(
        ConnAck,
        # 3.1 has no Session Present: its first byte is reserved, always 0.
        session_present=st.just(False) if version is V31 else st.booleans(),
        reason_code=codes,
        properties=properties(_P.CONNACK, version),
    )


@st.composite
def publishes(draw: st.DrawFn, version: ProtocolVersion, role: Role) -> Publish:
    qos = draw(st.integers(0, 2))
    props = draw(properties(_P.PUBLISH, version))
    if role == "server":  # [MQTT-3.3.4-6] no Subscription Identifier from a client
        props = props.without("subscription_identifiers")
    return Publish(
        topic=draw(texts),
        payload=draw(payloads),
        qos=qos,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if qos else False,  # [MQTT-3.3.1-2]
        packet_id=draw(packet_ids) if qos else None,  # [MQTT-2.2.1-2]
        properties=props,
    )


def acks(version: ProtocolVersion) -> st.SearchStrategy[Packet]:
    def ack(cls: type[Any], where: PacketType, codes: list[int]) -> st.SearchStrategy[Packet]:
        return st.builds(
            cls,
            packet_id=packet_ids,
            reason_code=reason_code(codes, version),
            properties=properties(where, version),
        )

    return st.one_of(
        ack(PubAck, _P.PUBACK, PUBACK_CODES),
        ack(PubRec, _P.PUBREC, PUBACK_CODES),
        ack(PubRel, _P.PUBREL, PUBREL_CODES),
        ack(PubComp, _P.PUBCOMP, PUBREL_CODES),
    )


def subscriptions(version: ProtocolVersion) -> st.SearchStrategy[Subscription]:
    if version is not V5:
        return st.builds(Subscription, topic_filter=texts, qos=st.integers(0, 2))
    return st.builds(
        Subscription,
        topic_filter=texts,
        qos=st.integers(0, 2),
        no_local=st.booleans(),
        retain_as_published=st.booleans(),
        retain_handling=st.sampled_from(RetainHandling),
    )


def subscribes(version: ProtocolVersion) -> st.SearchStrategy[Subscribe]:
    return st.builds(
        Subscribe,
        packet_id=packet_ids,
        subscriptions=st.lists(subscriptions(version), min_size=1, max_size=4).map(tuple),
        properties=properties(_P.SUBSCRIBE, version),
    )


def subacks(version: ProtocolVersion) -> st.SearchStrategy[SubAck]:
    codes = st.sampled_from(SUBACK_CODES) if version is V5 else st.sampled_from([0, 1, 2, 0x80])
    return st.builds(
        SubAck,
        packet_id=packet_ids,
        reason_codes=st.lists(codes, min_size=1, max_size=4).map(tuple),
        properties=properties(_P.SUBACK, version),
    )


def unsubscribes(version: ProtocolVersion) -> st.SearchStrategy[Unsubscribe]:
    return st.builds(
        Unsubscribe,
        packet_id=packet_ids,
        topic_filters=st.lists(texts, min_size=1, max_size=4).map(tuple),
        properties=properties(_P.UNSUBSCRIBE, version),
    )


def unsubacks(version: ProtocolVersion) -> st.SearchStrategy[UnsubAck]:
    if version is not V5:  # 3.1.1 §3.11.3: no payload
        return st.builds(UnsubAck, packet_id=packet_ids)
    return st.builds(
        UnsubAck,
        packet_id=packet_ids,
        reason_codes=st.lists(st.sampled_from(UNSUBACK_CODES), min_size=1, max_size=4).map(tuple),
        properties=properties(_P.UNSUBACK, version),
    )


def disconnects(version: ProtocolVersion) -> st.SearchStrategy[Disconnect]:
    return st.builds(
        Disconnect,
        reason_code=reason_code(DISCONNECT_CODES, version),
        properties=properties(_P.DISCONNECT, version),
    )


def auths() -> st.SearchStrategy[Auth]:
    return st.builds(Auth, reason_code=st.sampled_from(AUTH_CODES), properties=properties(_P.AUTH, V5))


def packets(version: ProtocolVersion, role: Role) -> st.SearchStrategy[Packet]:
    """Packets a Reader in ``role`` receives: from clients for "server", from servers for "client"."""
    common: list[st.SearchStrategy[Any]] = [publishes(version, role), acks(version)]
    if version is V5:
        common += [disconnects(version), auths()]
    if role == "server":
        only = [connects(version), subscribes(version), unsubscribes(version), st.just(PingReq())]
        if version is not V5:
            only.append(disconnects(version))  # 3.1.1: only the client sends DISCONNECT
    else:
        only = [connacks(version), subacks(version), unsubacks(version), st.just(PingResp())]
    return st.one_of(*common, *only)


ROLES: list[Role] = ["server", "client"]


def decode_all(data: bytes, role: Role, version: ProtocolVersion) -> list[Packet]:
    reader = Reader(role=role, version=version)
    reader.feed(data)
    out = list(reader.read_packets())
    assert reader.buffered == 0
    return out


# -- round trips -------------------------------------------------------------------------------


@SETTINGS
@given(st.sampled_from(VERSIONS).flatmap(lambda v: st.tuples(st.just(v), packets(v, "server"))))
def test_client_packets_round_trip(case: tuple[ProtocolVersion, Packet]) -> None:
    """decode(encode(p)) == p, and the encoding is canonical: encode(decode(b)) == b."""
    version, packet = case
    data = encode(packet, version)
    [decoded] = decode_all(data, "server", version)
    assert decoded == packet
    assert encode(decoded, version) == data


@SETTINGS
@given(st.sampled_from(VERSIONS).flatmap(lambda v: st.tuples(st.just(v), packets(v, "client"))))
def test_server_packets_round_trip(case: tuple[ProtocolVersion, Packet]) -> None:
    version, packet = case
    data = encode(packet, version)
    [decoded] = decode_all(data, "client", version)
    assert decoded == packet
    assert encode(decoded, version) == data


@SETTINGS
@given(st.sampled_from(VERSIONS).flatmap(lambda v: st.tuples(st.just(v), connects(v))))
def test_connect_teaches_the_reader_its_version(case: tuple[ProtocolVersion, Connect]) -> None:
    """A server Reader without a version learns it from CONNECT (3.1.1/5.0 §3.1.2.2)."""
    version, packet = case
    reader = Reader(role="server")
    reader.feed(encode(packet, version))
    assert list(reader.read_packets()) == [packet]
    assert reader.version is version


@SETTINGS
@given(st.sampled_from([*ALLOWED]).flatmap(lambda w: st.tuples(st.just(w), properties(w, V5))))
def test_property_blocks_round_trip(case: tuple[Where, Properties]) -> None:
    where, props = case
    assert decode_properties(encode_properties(props, where), where) == props


@SETTINGS
@given(st.sampled_from(VERSIONS).flatmap(lambda v: st.tuples(st.just(v), publishes(v, "client"))))
def test_the_single_recipient_encoding_is_the_general_one(case: tuple[ProtocolVersion, Publish]) -> None:
    """encode_publish (a message leaving a queue) writes the same bytes as encode(Publish)."""
    version, p = case
    block = encode_properties(p.properties, PacketType.PUBLISH) if version is V5 else None
    data = encode_publish(p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id or 0, block, version)
    assert data == encode(p, version)


# -- arbitrary chunking ------------------------------------------------------------------------


@st.composite
def chunked_streams(draw: st.DrawFn) -> tuple[ProtocolVersion, Role, list[Packet], list[bytes]]:
    version = draw(st.sampled_from(VERSIONS))
    role = draw(st.sampled_from(ROLES))
    sent = draw(st.lists(packets(version, role), min_size=1, max_size=8))
    data = b"".join(encode(p, version) for p in sent)
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    return version, role, sent, chunks


@SETTINGS
@given(chunked_streams())
def test_arbitrary_chunking_yields_the_same_packets(
    case: tuple[ProtocolVersion, Role, list[Packet], list[bytes]],
) -> None:
    """Random cut points, then (for streams of modest size) the extreme case: one byte per read."""
    version, role, sent, chunks = case
    reader = Reader(role=role, version=version)
    received: list[Packet] = []
    for chunk in chunks:
        reader.feed(chunk)
        received += reader.read_packets()
    assert received == sent
    assert reader.buffered == 0

    data = b"".join(chunks)
    if len(data) > 4096:
        return
    reader = Reader(role=role, version=version)
    received = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        received += reader.read_packets()
    assert received == sent
    assert reader.buffered == 0
