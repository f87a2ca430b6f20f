"""Golden byte vectors for zanzara.mqtt.codec, from the MQTT 3.1, 3.1.1 and 5.0 specifications.

Where a specification prints a non-normative example (the CONNECT variable
header, the PUBLISH variable header, the SUBSCRIBE/SUBACK/UNSUBSCRIBE payloads,
the DISCONNECT variable header, the UTF-8 string example, the Remaining Length
table) the vector reproduces those bytes exactly; the rest of each packet is
laid out field by field from the figure the comment cites.  Every vector is
checked in both directions: the Reader decodes the bytes (server role for
packets a client sends, client role for packets a server sends, both for the
ones that travel both ways) and ``encode`` turns the packet back into the very
same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from zanzara.errors import MalformedPacket, PacketTooLarge
from zanzara.mqtt.codec import MAX_PACKET_SIZE, Reader, encode, encode_varint
from zanzara.mqtt.enums import ProtocolVersion, RetainHandling
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
from zanzara.mqtt.properties import EMPTY_PROPERTIES, Properties

from .wire import V5, V31, V311, h

Direction = Literal["c2s", "s2c", "both"]


def roles(direction: Direction) -> list[Literal["server", "client"]]:
    if direction == "c2s":
        return ["server"]
    if direction == "s2c":
        return ["client"]
    return ["server", "client"]


def decode_one(data: bytes, role: Literal["server", "client"], version: ProtocolVersion | None) -> Packet:
    reader = Reader(role=role, version=version)
    reader.feed(data)
    packets = list(reader.read_packets())
    assert len(packets) == 1, packets
    assert reader.buffered == 0
    return packets[0]


@dataclass(frozen=True)
class Vector:
    name: str
    version: ProtocolVersion
    direction: Direction
    packet: Packet
    wire: bytes


# -- the will/credentials payload shared by the CONNECT vectors ---------------------------
# Client Identifier "cid1", Will Topic "a/b", Will Payload "bye", User Name "user", Password "pw"
# (3.1.1 §3.1.3, 5.0 §3.1.3: this order [MQTT-3.1.3-1]).
_CLIENT_ID = "00 04 63 69 64 31"
_WILL_TOPIC = "00 03 61 2f 62"
_WILL_PAYLOAD = "00 03 62 79 65"
_USER = "00 04 75 73 65 72"
_PASSWORD = "00 02 70 77"

_PROPS_KV = Properties(user_properties=(("k", "v"),))
_USER_PROP_KV = "26 00 01 6b 00 01 76"  # 0x26 User Property, UTF-8 string pair "k" "v" (5.0 §2.2.2.2)

VECTORS: list[Vector] = [
    # ---- CONNECT --------------------------------------------------------------------------
    # MQTT 3.1 (IBM) §3.1 CONNECT variable header example: "MQIsdp", version 3, flags 0xCE
    # (user name, password, will QoS 1, will flag, clean session), keep alive 10.
    Vector(
        "connect-3.1",
        V31,
        "c2s",
        Connect(
            protocol_version=V31,
            protocol_name="MQIsdp",
            keep_alive=10,
            client_id="cid1",
            username="user",
            password=b"pw",
            will=Will(topic="a/b", payload=b"bye", qos=1),
        ),
        h(
            "10 26"
            "00 06 4d 51 49 73 64 70  03  ce  00 0a"
            f"{_CLIENT_ID} {_WILL_TOPIC} {_WILL_PAYLOAD} {_USER} {_PASSWORD}"
        ),
    ),
    # MQTT 3.1.1 §3.1.2.11 Figure 3.6 (variable header example): "MQTT", level 4, flags 0xCE, keep alive 10;
    # payload per §3.1.3.
    Vector(
        "connect-3.1.1",
        V311,
        "c2s",
        Connect(
            protocol_version=V311,
            keep_alive=10,
            client_id="cid1",
            username="user",
            password=b"pw",
            will=Will(topic="a/b", payload=b"bye", qos=1),
        ),
        h(
            "10 24  00 04 4d 51 54 54  04  ce  00 0a"
            f"{_CLIENT_ID} {_WILL_TOPIC} {_WILL_PAYLOAD} {_USER} {_PASSWORD}"
        ),
    ),
    # MQTT 3.1.1 §3.1.2.4-3.1.2.7: will retain (bit 5) and will QoS 2 (bits 4-3), clean session 0,
    # no credentials.
    Vector(
        "connect-3.1.1-will-retain-qos2",
        V311,
        "c2s",
        Connect(
            clean_start=False, client_id="cid1", will=Will(topic="a/b", payload=b"bye", qos=2, retain=True)
        ),
        h(f"10 1a  00 04 4d 51 54 54  04  34  00 00 {_CLIENT_ID} {_WILL_TOPIC} {_WILL_PAYLOAD}"),
    ),
    # MQTT 5.0 §3.1.2.12 Figure 3-6 (variable header example): "MQTT", version 5, flags 0xCE, keep alive 10,
    # properties length 5: Session Expiry Interval (0x11) = 10.  Payload per §3.1.3, with Will Properties
    # (§3.1.3.2) holding Will Delay Interval (0x18) = 5.
    Vector(
        "connect-5.0",
        V5,
        "c2s",
        Connect(
            protocol_version=V5,
            keep_alive=10,
            client_id="cid1",
            username="user",
            password=b"pw",
            will=Will(topic="a/b", payload=b"bye", qos=1, properties=Properties(will_delay_interval=5)),
            properties=Properties(session_expiry_interval=10),
        ),
        h(
            "10 30"
            "00 04 4d 51 54 54  05  ce  00 0a  05 11 00 00 00 0a"
            f"{_CLIENT_ID}  05 18 00 00 00 05  {_WILL_TOPIC} {_WILL_PAYLOAD} {_USER} {_PASSWORD}"
        ),
    ),
    # MQTT 5.0 §3.1.2.11: Session Expiry Interval 3600, Receive Maximum (0x21) 20, User Property;
    # user name flag only (0x80), clean start 0, keep alive 60, empty Client Identifier (§3.1.3.1).
    Vector(
        "connect-5.0-properties",
        V5,
        "c2s",
        Connect(
            protocol_version=V5,
            clean_start=False,
            keep_alive=60,
            username="u",
            properties=Properties(
                session_expiry_interval=3600, receive_maximum=20, user_properties=(("k", "v"),)
            ),
        ),
        h(
            "10 1f  00 04 4d 51 54 54  05  80  00 3c"
            f"0f 11 00 00 0e 10 21 00 14 {_USER_PROP_KV}  00 00  00 01 75"
        ),
    ),
    # ---- CONNACK --------------------------------------------------------------------------
    # MQTT 3.1 §3.2 CONNACK: reserved byte, return code 0 (Connection Accepted).
    Vector("connack-3.1", V31, "s2c", ConnAck(), h("20 02 00 00")),
    # MQTT 3.1.1 §3.2.1 Figure 3.8 / §3.2.2 Figure 3.9: remaining length 2, flags, return code.
    Vector("connack-3.1.1", V311, "s2c", ConnAck(), h("20 02 00 00")),
    # MQTT 3.1.1 §3.2.2.2 Session Present (bit 0 of the acknowledge flags).
    Vector("connack-3.1.1-session-present", V311, "s2c", ConnAck(session_present=True), h("20 02 01 00")),
    # MQTT 3.1.1 §3.2.2.3 Table 3.1: return code 5, not authorized.
    Vector("connack-3.1.1-refused", V311, "s2c", ConnAck(reason_code=5), h("20 02 00 05")),
    # MQTT 5.0 §3.2.2: flags, reason code 0x00 Success, property length 0.
    Vector("connack-5.0", V5, "s2c", ConnAck(), h("20 03 00 00 00")),
    # MQTT 5.0 §3.2.2.2 Table 3-1: 0x86 Bad User Name or Password.
    Vector("connack-5.0-refused", V5, "s2c", ConnAck(reason_code=0x86), h("20 03 00 86 00")),
    # MQTT 5.0 §3.2.2.3: Assigned Client Identifier (0x12), Receive Maximum (0x21),
    # Topic Alias Maximum (0x22), Maximum QoS (0x24), Retain Available (0x25).
    Vector(
        "connack-5.0-properties",
        V5,
        "s2c",
        ConnAck(
            session_present=True,
            properties=Properties(
                assigned_client_identifier="abc",
                receive_maximum=10,
                topic_alias_maximum=5,
                maximum_qos=1,
                retain_available=0,
            ),
        ),
        h("20 13 01 00 10  12 00 03 61 62 63  21 00 0a  22 00 05  24 01  25 00"),
    ),
    # ---- PUBLISH --------------------------------------------------------------------------
    # MQTT 3.1.1 §3.3.1 Figure 3.10 (fixed header), QoS 0: no packet identifier [MQTT-2.3.1-5].
    Vector(
        "publish-3.1.1-qos0",
        V311,
        "both",
        Publish(topic="a/b", payload=b"hi"),
        h("30 07 00 03 61 2f 62 68 69"),
    ),
    # MQTT 3.1.1 §3.3.1.3 RETAIN (bit 0).
    Vector(
        "publish-3.1.1-qos0-retain",
        V311,
        "both",
        Publish(topic="a/b", payload=b"hi", retain=True),
        h("31 07 00 03 61 2f 62 68 69"),
    ),
    # MQTT 3.1.1 §3.3.2.3 Figure 3.11: topic "a/b", packet identifier 10.
    Vector(
        "publish-3.1.1-qos1",
        V311,
        "both",
        Publish(topic="a/b", payload=b"hi", qos=1, packet_id=10),
        h("32 09 00 03 61 2f 62 00 0a 68 69"),
    ),
    # MQTT 3.1.1 §3.3.1.1 DUP (bit 3) with QoS 1.
    Vector(
        "publish-3.1.1-qos1-dup",
        V311,
        "both",
        Publish(topic="a/b", payload=b"hi", qos=1, dup=True, packet_id=10),
        h("3a 09 00 03 61 2f 62 00 0a 68 69"),
    ),
    # MQTT 3.1.1 §3.3.1.2 Table 3.2: QoS 2 (bits 2-1 = 10).
    Vector(
        "publish-3.1.1-qos2",
        V311,
        "both",
        Publish(topic="a/b", payload=b"hi", qos=2, packet_id=10),
        h("34 09 00 03 61 2f 62 00 0a 68 69"),
    ),
    # MQTT 3.1.1 §3.3.1: DUP, QoS 2 and RETAIN together (0x3D).
    Vector(
        "publish-3.1.1-qos2-dup-retain",
        V311,
        "both",
        Publish(topic="a/b", payload=b"hi", qos=2, retain=True, dup=True, packet_id=10),
        h("3d 09 00 03 61 2f 62 00 0a 68 69"),
    ),
    # MQTT 3.1.1 §1.5.3.1 Figure 1.2: "A" followed by U+2A6D4 is 00 05 41 F0 AA 9B 94.
    Vector(
        "publish-3.1.1-utf8-example",
        V311,
        "both",
        Publish(topic="A\U0002a6d4"),
        h("30 07 00 05 41 f0 aa 9b 94"),
    ),
    # MQTT 3.1.1 §3.3.3: a zero-length payload is valid; packet identifier 65535.
    Vector(
        "publish-3.1.1-empty-payload",
        V311,
        "both",
        Publish(topic="a/b", qos=1, packet_id=65535),
        h("32 07 00 03 61 2f 62 ff ff"),
    ),
    # MQTT 3.1: the PUBLISH layout is that of 3.1.1 (topic, message id for QoS > 0, payload).
    Vector(
        "publish-3.1-qos1",
        V31,
        "both",
        Publish(topic="a/b", payload=b"hi", qos=1, packet_id=10),
        h("32 09 00 03 61 2f 62 00 0a 68 69"),
    ),
    # MQTT 5.0 §3.3.2 (QoS 0: topic, property length 0).
    Vector(
        "publish-5.0-qos0",
        V5,
        "both",
        Publish(topic="a/b", payload=b"hi"),
        h("30 08 00 03 61 2f 62 00 68 69"),
    ),
    # MQTT 5.0 §3.3.2.3 Figure 3-9: topic "a/b", packet identifier 10, no properties.
    Vector(
        "publish-5.0-qos1",
        V5,
        "both",
        Publish(topic="a/b", payload=b"hi", qos=1, packet_id=10),
        h("32 0a 00 03 61 2f 62 00 0a 00 68 69"),
    ),
    # MQTT 5.0 §3.3.1: DUP + QoS 2 + RETAIN.
    Vector(
        "publish-5.0-qos2-dup-retain",
        V5,
        "both",
        Publish(topic="a/b", payload=b"hi", qos=2, retain=True, dup=True, packet_id=10),
        h("3d 0a 00 03 61 2f 62 00 0a 00 68 69"),
    ),
    # MQTT 5.0 §3.3.2.3.2-3.3.2.3.9: Payload Format Indicator (0x01), Message Expiry Interval (0x02),
    # Content Type (0x03), Response Topic (0x08), Correlation Data (0x09), Topic Alias (0x23), User Property.
    Vector(
        "publish-5.0-properties",
        V5,
        "both",
        Publish(
            topic="a/b",
            payload=b"hi",
            properties=Properties(
                payload_format_indicator=1,
                message_expiry_interval=60,
                content_type="t",
                response_topic="r",
                correlation_data=b"\x01\x02",
                topic_alias=1,
                user_properties=(("k", "v"),),
            ),
        ),
        h(
            "30 26  00 03 61 2f 62  1e"
            "01 01  02 00 00 00 3c  03 00 01 74  08 00 01 72  09 00 02 01 02  23 00 01"
            f"{_USER_PROP_KV}  68 69"
        ),
    ),
    # MQTT 5.0 §3.3.2.3.8 / [MQTT-3.3.4-4]: a PUBLISH to a client may carry several Subscription Identifiers
    # (0x0B, Variable Byte Integers 1 and 128 = 80 01); DUP + QoS 1 + RETAIN, empty payload.
    Vector(
        "publish-5.0-subscription-identifiers",
        V5,
        "s2c",
        Publish(
            topic="a/b",
            qos=1,
            retain=True,
            dup=True,
            packet_id=7,
            properties=Properties(subscription_identifiers=(1, 128)),
        ),
        h("3b 0d 00 03 61 2f 62 00 07 05 0b 01 0b 80 01"),
    ),
    # ---- PUBACK / PUBREC / PUBREL / PUBCOMP -----------------------------------------------
    # MQTT 3.1.1 §3.4.1 Figure 3.12 / §3.5.1 Figure 3.14 / §3.6.1 Figure 3.16 (flags 0010) /
    # §3.7.1 Figure 3.18: remaining length 2, packet identifier.
    Vector("puback-3.1.1", V311, "both", PubAck(packet_id=10), h("40 02 00 0a")),
    Vector("pubrec-3.1.1", V311, "both", PubRec(packet_id=10), h("50 02 00 0a")),
    Vector("pubrel-3.1.1", V311, "both", PubRel(packet_id=10), h("62 02 00 0a")),
    Vector("pubcomp-3.1.1", V311, "both", PubComp(packet_id=10), h("70 02 00 0a")),
    Vector("puback-3.1", V31, "both", PubAck(packet_id=65535), h("40 02 ff ff")),
    Vector("pubrel-3.1", V31, "both", PubRel(packet_id=1), h("62 02 00 01")),
    # MQTT 5.0 §3.4.2.1: "The Reason Code and Property Length can be omitted if the Reason Code is
    # 0x00 (Success) and there are no Properties. In this case the PUBACK has a Remaining Length of 2."
    Vector("puback-5.0-short", V5, "both", PubAck(packet_id=10), h("40 02 00 0a")),
    # MQTT 5.0 §3.4.2.2.1: "If the Remaining Length is less than 4 there is no Property Length".
    Vector("puback-5.0-reason", V5, "both", PubAck(packet_id=10, reason_code=0x10), h("40 03 00 0a 10")),
    # MQTT 5.0 §3.4.2.2.2: 0x80 Unspecified error with a Reason String (0x1F) "bad".
    Vector(
        "puback-5.0-reason-string",
        V5,
        "both",
        PubAck(packet_id=10, reason_code=0x80, properties=Properties(reason_string="bad")),
        h("40 0a 00 0a 80 06 1f 00 03 62 61 64"),
    ),
    # MQTT 5.0 §3.5.2.1 (PUBREC short form and reason code 0x80).
    Vector("pubrec-5.0-short", V5, "both", PubRec(packet_id=10), h("50 02 00 0a")),
    Vector("pubrec-5.0-reason", V5, "both", PubRec(packet_id=10, reason_code=0x80), h("50 03 00 0a 80")),
    # MQTT 5.0 §3.6.1 (flags 0010) / §3.6.2.1 Table 3-6: 0x92 Packet Identifier not found.
    Vector("pubrel-5.0-short", V5, "both", PubRel(packet_id=10), h("62 02 00 0a")),
    Vector("pubrel-5.0-reason", V5, "both", PubRel(packet_id=10, reason_code=0x92), h("62 03 00 0a 92")),
    # MQTT 5.0 §3.7.2.1 / §3.7.2.2.3: 0x92 with a User Property.
    Vector("pubcomp-5.0-short", V5, "both", PubComp(packet_id=10), h("70 02 00 0a")),
    Vector(
        "pubcomp-5.0-properties",
        V5,
        "both",
        PubComp(packet_id=10, reason_code=0x92, properties=_PROPS_KV),
        h(f"70 0b 00 0a 92 07 {_USER_PROP_KV}"),
    ),
    # ---- SUBSCRIBE ------------------------------------------------------------------------
    # MQTT 3.1.1 §3.8.2.1 Figure 3.21 (packet identifier 10) +
    # §3.8.3.1 Figure 3.23 ("a/b" QoS 1, "c/d" QoS 2).
    Vector(
        "subscribe-3.1.1",
        V311,
        "c2s",
        Subscribe(
            packet_id=10,
            subscriptions=(Subscription(topic_filter="a/b", qos=1), Subscription(topic_filter="c/d", qos=2)),
        ),
        h("82 0e 00 0a 00 03 61 2f 62 01 00 03 63 2f 64 02"),
    ),
    # MQTT 3.1: the same layout (message id, then topic/requested QoS pairs), fixed header 0x82.
    Vector(
        "subscribe-3.1",
        V31,
        "c2s",
        Subscribe(packet_id=10, subscriptions=(Subscription(topic_filter="a/b", qos=1),)),
        h("82 08 00 0a 00 03 61 2f 62 01"),
    ),
    # MQTT 5.0 §3.8.2 Figure 3-19 (packet identifier 10, property length 0) + §3.8.3.1 Figure 3-21 payload.
    Vector(
        "subscribe-5.0",
        V5,
        "c2s",
        Subscribe(
            packet_id=10,
            subscriptions=(Subscription(topic_filter="a/b", qos=1), Subscription(topic_filter="c/d", qos=2)),
        ),
        h("82 0f 00 0a 00 00 03 61 2f 62 01 00 03 63 2f 64 02"),
    ),
    # MQTT 5.0 §3.8.3.1 Figure 3-20, subscription options byte: QoS 1 (bits 1-0), No Local (bit 2),
    # Retain As Published (bit 3), Retain Handling 2 (bits 5-4) = 0x2D; §3.8.2.1.2 Subscription Identifier 5.
    Vector(
        "subscribe-5.0-options",
        V5,
        "c2s",
        Subscribe(
            packet_id=11,
            subscriptions=(
                Subscription(
                    topic_filter="a/b",
                    qos=1,
                    no_local=True,
                    retain_as_published=True,
                    retain_handling=RetainHandling.DO_NOT_SEND,
                ),
            ),
            properties=Properties(subscription_identifiers=(5,)),
        ),
        h("82 0b 00 0b 02 0b 05 00 03 61 2f 62 2d"),
    ),
    # MQTT 5.0 §3.8.3.1: Retain Handling 1 (send if the subscription is new) with QoS 2 = 0x12.
    Vector(
        "subscribe-5.0-retain-handling-1",
        V5,
        "c2s",
        Subscribe(
            packet_id=12,
            subscriptions=(
                Subscription(
                    topic_filter="#", qos=2, retain_handling=RetainHandling.SEND_IF_NEW_SUBSCRIPTION
                ),
            ),
        ),
        h("82 07 00 0c 00 00 01 23 12"),
    ),
    # ---- SUBACK ---------------------------------------------------------------------------
    # MQTT 3.1.1 §3.9.3.1 Figure 3.27: Success QoS 0, Success QoS 2, Failure (0x80).
    Vector(
        "suback-3.1.1",
        V311,
        "s2c",
        SubAck(packet_id=10, reason_codes=(0x00, 0x02, 0x80)),
        h("90 05 00 0a 00 02 80"),
    ),
    # MQTT 3.1 §3.9 SUBACK: granted QoS per topic.
    Vector("suback-3.1", V31, "s2c", SubAck(packet_id=10, reason_codes=(1,)), h("90 03 00 0a 01")),
    # MQTT 5.0 §3.9.2 (property length 0) + §3.9.3 Table 3-8: 0x00, 0x02, 0x80, 0xA2.
    Vector(
        "suback-5.0",
        V5,
        "s2c",
        SubAck(packet_id=10, reason_codes=(0x00, 0x02, 0x80, 0xA2)),
        h("90 07 00 0a 00 00 02 80 a2"),
    ),
    # MQTT 5.0 §3.9.2.1.2 Reason String "no"; reason code 0x87 Not authorized.
    Vector(
        "suback-5.0-reason-string",
        V5,
        "s2c",
        SubAck(packet_id=10, reason_codes=(0x87,), properties=Properties(reason_string="no")),
        h("90 09 00 0a 05 1f 00 02 6e 6f 87"),
    ),
    # ---- UNSUBSCRIBE ----------------------------------------------------------------------
    # MQTT 3.1.1 §3.10.1 Figure 3.28 (flags 0010) + §3.10.3.1 Figure 3.30: "a/b", "c/d".
    Vector(
        "unsubscribe-3.1.1",
        V311,
        "c2s",
        Unsubscribe(packet_id=10, topic_filters=("a/b", "c/d")),
        h("a2 0c 00 0a 00 03 61 2f 62 00 03 63 2f 64"),
    ),
    # MQTT 5.0 §3.10.2 (property length 0) + §3.10.3 Figure 3-30 payload.
    Vector(
        "unsubscribe-5.0",
        V5,
        "c2s",
        Unsubscribe(packet_id=10, topic_filters=("a/b", "c/d")),
        h("a2 0d 00 0a 00 00 03 61 2f 62 00 03 63 2f 64"),
    ),
    # MQTT 5.0 §3.10.2.1.2 User Property.
    Vector(
        "unsubscribe-5.0-user-property",
        V5,
        "c2s",
        Unsubscribe(packet_id=10, topic_filters=("#",), properties=_PROPS_KV),
        h(f"a2 0d 00 0a 07 {_USER_PROP_KV} 00 01 23"),
    ),
    # ---- UNSUBACK -------------------------------------------------------------------------
    # MQTT 3.1.1 §3.11.1 Figure 3.31 / §3.11.2 Figure 3.32: remaining length 2, no payload.
    Vector("unsuback-3.1.1", V311, "s2c", UnsubAck(packet_id=10), h("b0 02 00 0a")),
    # MQTT 5.0 §3.11.2 + §3.11.3 Table 3-9: 0x00 Success, 0x11 No subscription existed.
    Vector(
        "unsuback-5.0",
        V5,
        "s2c",
        UnsubAck(packet_id=10, reason_codes=(0x00, 0x11)),
        h("b0 05 00 0a 00 00 11"),
    ),
    Vector(
        "unsuback-5.0-reason-string",
        V5,
        "s2c",
        UnsubAck(packet_id=10, reason_codes=(0x87,), properties=Properties(reason_string="no")),
        h("b0 09 00 0a 05 1f 00 02 6e 6f 87"),
    ),
    # ---- PINGREQ / PINGRESP ---------------------------------------------------------------
    # MQTT 3.1.1 §3.12.1 Figure 3.33 and §3.13.1 Figure 3.34; MQTT 5.0 §3.12.1 and §3.13.1.
    Vector("pingreq-3.1", V31, "c2s", PingReq(), h("c0 00")),
    Vector("pingreq-3.1.1", V311, "c2s", PingReq(), h("c0 00")),
    Vector("pingreq-5.0", V5, "c2s", PingReq(), h("c0 00")),
    Vector("pingresp-3.1", V31, "s2c", PingResp(), h("d0 00")),
    Vector("pingresp-3.1.1", V311, "s2c", PingResp(), h("d0 00")),
    Vector("pingresp-5.0", V5, "s2c", PingResp(), h("d0 00")),
    # ---- DISCONNECT -----------------------------------------------------------------------
    # MQTT 3.1.1 §3.14.1 Figure 3.35: remaining length 0.
    Vector("disconnect-3.1", V31, "c2s", Disconnect(), h("e0 00")),
    Vector("disconnect-3.1.1", V311, "c2s", Disconnect(), h("e0 00")),
    # MQTT 5.0 §3.14.2.1: reason code and property length omitted for 0x00 without properties (length 0).
    Vector("disconnect-5.0-short", V5, "both", Disconnect(), h("e0 00")),
    # MQTT 5.0 §3.14.2.2.1: "If the Remaining Length is less than 2, a value of 0 is used"
    # (no property length); 0x04 Disconnect with Will Message.
    Vector("disconnect-5.0-with-will", V5, "c2s", Disconnect(reason_code=0x04), h("e0 01 04")),
    # MQTT 5.0 §3.14.2.3 Figure 3-24: reason code 0, properties length 5, Session Expiry Interval (17) = 0.
    Vector(
        "disconnect-5.0-example",
        V5,
        "c2s",
        Disconnect(properties=Properties(session_expiry_interval=0)),
        h("e0 07 00 05 11 00 00 00 00"),
    ),
    # MQTT 5.0 §3.14.2.2.5 Server Reference (0x1C) "h" with 0x9C Use another server.
    Vector(
        "disconnect-5.0-server-reference",
        V5,
        "s2c",
        Disconnect(reason_code=0x9C, properties=Properties(server_reference="h")),
        h("e0 06 9c 04 1c 00 01 68"),
    ),
    # ---- AUTH -----------------------------------------------------------------------------
    # MQTT 5.0 §3.15.2.1: reason code and property length omitted for 0x00 without properties (length 0).
    Vector("auth-5.0-short", V5, "both", Auth(), h("f0 00")),
    # MQTT 5.0 §3.15.2.1 Table 3-13 (0x18 Continue authentication) + §3.15.2.2.2 Authentication Method (0x15)
    # "SCRAM" + §3.15.2.2.3 Authentication Data (0x16).
    Vector(
        "auth-5.0-continue",
        V5,
        "both",
        Auth(
            reason_code=0x18,
            properties=Properties(authentication_method="SCRAM", authentication_data=b"\x01\x02"),
        ),
        h("f0 0f 18 0d 15 00 05 53 43 52 41 4d 16 00 02 01 02"),
    ),
]


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_encode_gives_the_spec_bytes(vector: Vector) -> None:
    assert encode(vector.packet, vector.version) == vector.wire


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_decode_gives_the_packet(vector: Vector) -> None:
    for role in roles(vector.direction):
        assert decode_one(vector.wire, role, vector.version) == vector.packet, role


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if isinstance(v.packet, Connect)], ids=lambda v: v.name
)
def test_connect_sets_the_server_reader_version(vector: Vector) -> None:
    """A server Reader learns the protocol level from CONNECT (3.1.1 §3.1.2.2, 5.0 §3.1.2.2)."""
    reader = Reader(role="server")
    reader.feed(vector.wire)
    assert list(reader.read_packets()) == [vector.packet]
    assert reader.version is vector.version


# Forms a receiver must accept although ``encode`` writes the shorter one.
DECODE_ONLY: list[Vector] = [
    # MQTT 5.0 §3.4.2.1: reason code 0x00 present, property length absent (Remaining Length 3).
    Vector("puback-5.0-explicit-success", V5, "both", PubAck(packet_id=10), h("40 03 00 0a 00")),
    # MQTT 5.0 §3.7.2.2.1: reason code 0x00 and property length 0 present (Remaining Length 4).
    Vector(
        "pubcomp-5.0-explicit-empty-properties", V5, "both", PubComp(packet_id=10), h("70 04 00 0a 00 00")
    ),
    Vector(
        "pubrel-5.0-explicit-empty-properties",
        V5,
        "both",
        PubRel(packet_id=10, reason_code=0x92),
        h("62 04 00 0a 92 00"),
    ),
    # MQTT 5.0 §3.14.2.1: reason code 0x00 written out, no property length.
    Vector("disconnect-5.0-explicit-normal", V5, "both", Disconnect(), h("e0 01 00")),
    Vector("disconnect-5.0-explicit-empty-properties", V5, "both", Disconnect(), h("e0 02 00 00")),
    # MQTT 5.0 §3.15.2.1: AUTH with reason code 0x00 and property length 0.
    Vector("auth-5.0-explicit-empty-properties", V5, "both", Auth(), h("f0 02 00 00")),
    # MQTT 5.0 §2.2.2.2: a property length may be written with any *minimal* VBI; properties in any order
    # (here Topic Alias before Payload Format Indicator).
    Vector(
        "publish-5.0-properties-out-of-order",
        V5,
        "both",
        Publish(topic="a", properties=Properties(payload_format_indicator=1, topic_alias=2)),
        h("30 09 00 01 61 05 23 00 02 01 01"),
    ),
]


@pytest.mark.parametrize("vector", DECODE_ONLY, ids=[v.name for v in DECODE_ONLY])
def test_decode_accepts_longer_equivalent_forms(vector: Vector) -> None:
    for role in roles(vector.direction):
        assert decode_one(vector.wire, role, vector.version) == vector.packet, role


def test_empty_properties_decode_to_the_shared_empty_instance() -> None:
    """Decoders hand back EMPTY_PROPERTIES (the encoder's short forms test identity against it)."""
    packet = decode_one(h("70 04 00 0a 00 00"), "server", V5)
    assert packet.properties is EMPTY_PROPERTIES  # type: ignore[union-attr]


def test_short_forms_depend_on_the_value_not_the_instance() -> None:
    """5.0 §3.4.2.1, §3.14.2.1, §3.15.2.1: an empty ``Properties()`` equal to EMPTY_PROPERTIES but not the
    same object still gets the short forms (encode is a function of the packet's value)."""
    empty = Properties()
    assert empty == EMPTY_PROPERTIES
    assert empty is not EMPTY_PROPERTIES
    assert encode(PubAck(packet_id=10, properties=empty), V5) == h("40 02 00 0a")
    assert encode(PubRel(packet_id=10, reason_code=0x92, properties=empty), V5) == h("62 03 00 0a 92")
    assert encode(Disconnect(properties=empty), V5) == h("e0 00")
    assert encode(Disconnect(reason_code=0x04, properties=empty), V5) == h("e0 01 04")
    assert encode(Auth(properties=empty), V5) == h("f0 00")


def test_v5_only_fields_are_not_written_in_3_1_1() -> None:
    """3.1.1 has no reason codes on PUBACK..PUBCOMP/DISCONNECT and no properties (3.1.1 §3.4-§3.7, §3.14)."""
    assert encode(PubAck(packet_id=10, reason_code=0x10, properties=_PROPS_KV), V311) == h("40 02 00 0a")
    assert encode(Disconnect(reason_code=0x04, properties=_PROPS_KV), V311) == h("e0 00")
    assert encode(Publish(topic="a/b", properties=_PROPS_KV), V311) == h("30 05 00 03 61 2f 62")
    # 3.1.1 §3.9.3: only 0x00, 0x01, 0x02 and 0x80 exist; a 5.0 failure code is written as 0x80.
    assert encode(SubAck(packet_id=10, reason_codes=(0x01, 0x87)), V311) == h("90 04 00 0a 01 80")
    # 3.1.1 §3.11.3: UNSUBACK has no payload.
    assert encode(UnsubAck(packet_id=10, reason_codes=(0x11,)), V311) == h("b0 02 00 0a")


def test_mqtt_3_1_connack_has_no_session_present() -> None:
    """MQTT 3.1 §3.2 CONNACK: the first byte of the variable header is reserved; Session Present is
    3.1.1's (§3.2.2.2), so a 3.1 CONNACK never sets it, even for a resumed session."""
    assert encode(ConnAck(session_present=True), V31) == h("20 02 00 00")
    assert encode(ConnAck(session_present=True), V311) == h("20 02 01 00")


def test_auth_does_not_exist_before_5_0() -> None:
    """MQTT 3.1.1 §2.2.1 Table 2.1: packet type 15 is reserved."""
    with pytest.raises(ValueError):
        encode(Auth(), V311)


# -- Remaining Length / Variable Byte Integer ------------------------------------------------
# MQTT 3.1.1 §2.2.3 Table 2.4 and MQTT 5.0 §1.5.5 Table 1-1: the boundaries of 1, 2, 3 and 4 bytes.
REMAINING_LENGTHS = [
    (0, "00"),
    (127, "7f"),
    (128, "80 01"),
    (16_383, "ff 7f"),
    (16_384, "80 80 01"),
    (2_097_151, "ff ff 7f"),
    (2_097_152, "80 80 80 01"),
    (268_435_455, "ff ff ff 7f"),
]


@pytest.mark.parametrize(("value", "wire"), REMAINING_LENGTHS, ids=[str(v) for v, _ in REMAINING_LENGTHS])
def test_variable_byte_integer_encoding(value: int, wire: str) -> None:
    assert encode_varint(value) == h(wire)


def test_non_normative_remaining_length_examples() -> None:
    """MQTT 3.1.1 §2.2.3: 64 is 0x40; 321 (= 65 + 2*128) is 193, 2."""
    assert encode_varint(64) == bytes([64])
    assert encode_varint(321) == bytes([193, 2])


@pytest.mark.parametrize("value", [268_435_456, 2**32, 2**35])
def test_variable_byte_integer_above_268435455_is_not_encoded(value: int) -> None:
    """MQTT 5.0 §1.5.5: at most four bytes, so the largest value is 268,435,455 (0xFF,0xFF,0xFF,0x7F)."""
    with pytest.raises(ValueError):
        encode_varint(value)


@pytest.mark.parametrize(
    ("value", "wire"), REMAINING_LENGTHS[1:], ids=[str(v) for v, _ in REMAINING_LENGTHS[1:]]
)
def test_reader_decodes_the_remaining_length(value: int, wire: str) -> None:
    """The Reader reads exactly ``value``: a size limit of header + value passes, one less fails."""
    header = b"\x30" + h(wire)
    total = len(header) + value
    waiting = Reader(role="server", version=V311, max_packet_size=total)
    waiting.feed(header)
    assert list(waiting.read_packets()) == []  # complete header, body still to come
    assert waiting.buffered == len(header)
    too_small = Reader(role="server", version=V311, max_packet_size=total - 1)
    too_small.feed(header)
    with pytest.raises(PacketTooLarge):
        list(too_small.read_packets())


@pytest.mark.parametrize(
    ("value", "wire"),
    [(v, w) for v, w in REMAINING_LENGTHS if 3 <= v <= 2_097_152],
    ids=[str(v) for v, _ in REMAINING_LENGTHS if 3 <= v <= 2_097_152],
)
def test_publish_with_remaining_length_at_a_boundary(value: int, wire: str) -> None:
    """Whole PUBLISH packets whose Remaining Length sits on each boundary, both directions."""
    payload = bytes(range(256)) * (value // 256 + 1)
    packet = Publish(topic="t", payload=payload[: value - 3])  # 3 = topic length prefix + "t"
    data = b"\x30" + h(wire) + b"\x00\x01t" + packet.payload
    assert encode(packet, V311) == data
    assert decode_one(data, "server", V311) == packet


def test_zero_remaining_length() -> None:
    assert decode_one(h("c0 00"), "server", V311) == PingReq()
    reader = Reader(role="server", version=V311, max_packet_size=2)
    reader.feed(h("c0 00"))
    assert list(reader.read_packets()) == [PingReq()]
    reader = Reader(role="server", version=V311, max_packet_size=1)
    reader.feed(h("c0 00"))
    with pytest.raises(PacketTooLarge):
        list(reader.read_packets())


@pytest.mark.parametrize(
    "wire",
    [
        "30 ff ff ff ff 01",  # 5 bytes: a value above 268,435,455
        "30 80 80 80 80 01",
        "30 ff ff ff ff 7f",
    ],
)
def test_remaining_length_of_five_bytes_is_rejected(wire: str) -> None:
    """MQTT 3.1.1 §2.2.3: "The maximum number of bytes in the Remaining Length field is four"."""
    reader = Reader(role="server", version=V311, max_packet_size=MAX_PACKET_SIZE)
    reader.feed(h(wire))
    with pytest.raises(MalformedPacket) as info:
        list(reader.read_packets())
    assert info.value.reason_code == 0x81
