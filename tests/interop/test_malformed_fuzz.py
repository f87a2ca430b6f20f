"""Bad input over real sockets: each bad connection is closed, everyone else keeps working.

A fuzzer writes random bytes and mutated valid packets to the broker while a
paho-mqtt publisher and subscriber exchange QoS 1 messages; afterwards every
one of their messages must have arrived and nothing may have been logged at
ERROR (no exception escaped a connection).
"""

from __future__ import annotations

import logging
import random
import socket
import threading

from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import (
    Connect,
    Disconnect,
    PingReq,
    PubAck,
    Publish,
    PubRel,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from zanzara.mqtt.properties import Properties

from clients import V5, PahoClient, RawClient


def valid_stream(rng: random.Random, version: ProtocolVersion) -> bytes:
    packets = [Connect(protocol_version=version, client_id=f"fz{rng.randrange(10**6)}", keep_alive=30)]
    for _ in range(rng.randrange(1, 6)):
        kind = rng.randrange(6)
        if kind == 0:
            packets.append(
                Publish(
                    topic=f"fz/{rng.randrange(5)}",
                    payload=rng.randbytes(rng.randrange(40)),
                    qos=1,
                    packet_id=rng.randrange(1, 100),
                )
            )
        elif kind == 1:
            packets.append(
                Subscribe(
                    packet_id=rng.randrange(1, 100),
                    subscriptions=(
                        Subscription(topic_filter=rng.choice(["fz/#", "+/x", "a"]), qos=rng.randrange(3)),
                    ),
                )
            )
        elif kind == 2:
            packets.append(Unsubscribe(packet_id=rng.randrange(1, 100), topic_filters=("fz/#",)))
        elif kind == 3:
            packets.append(PubRel(packet_id=rng.randrange(1, 100)))
        elif kind == 4:
            packets.append(PingReq())
        else:
            packets.append(PubAck(packet_id=rng.randrange(1, 100)))
    return b"".join(encode(p, version) for p in packets)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(4)
        if op == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:
            pos = rng.randrange(len(buf) + 1)
            buf[pos:pos] = rng.randbytes(rng.randrange(1, 8))
        elif buf:
            del buf[rng.randrange(len(buf)) :]
    return bytes(buf)


def fuzz_once(port: int, rng: random.Random) -> None:
    version = rng.choice([ProtocolVersion.MQTT311, ProtocolVersion.MQTT5, ProtocolVersion.MQTT31])
    if rng.random() < 0.2:
        data = rng.randbytes(rng.randrange(1, 200))
    else:
        data = mutate(rng, valid_stream(rng, version))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR) if rng.random() < 0.5 else None
            s.settimeout(0.2)
            while s.recv(65536):
                pass
        except OSError:
            pass


def test_fuzzed_connections_do_not_disturb_others(broker, caplog):
    caplog.set_level(logging.INFO, logger="zanzara")
    sub = PahoClient(broker.port, "steady-sub", version=V5)
    sub.subscribe("steady/#", 1)
    pub = PahoClient(broker.port, "steady-pub", version=V5)
    total = 300
    done = threading.Event()

    def keep_publishing() -> None:
        for i in range(total):
            pub.publish("steady/x", str(i).encode(), 1)
        done.set()

    t = threading.Thread(target=keep_publishing)
    t.start()
    rng = random.Random(20261122)
    for _ in range(400):
        fuzz_once(broker.port, rng)
    t.join(30)
    assert done.is_set()
    got = [int(m.payload) for m in sub.expect_n(total)]
    assert got == list(range(total))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("zanzara")]
    assert errors == [], [r.getMessage() for r in errors]
    assert broker.call(lambda: broker.core.stats.malformed_packets) > 0


def test_malformed_v5_packet_gets_disconnect_0x81(broker):
    """[MQTT-4.13.1-1] a malformed packet: DISCONNECT 0x81 (v5), then close; others unaffected."""
    other = PahoClient(broker.port, version=V5)
    other.subscribe("still/here", 0)
    raw = RawClient(broker.port)
    raw.connect("bad-one")
    raw.send(bytes([0x30, 0x03, 0x00, 0x05, 0x61]))  # topic length 5 but 1 byte follows
    packets = raw.expect_closed()
    assert packets == [Disconnect(reason_code=ReasonCode.MALFORMED_PACKET, properties=packets[0].properties)]
    other.publish("still/here", b"fine")
    assert other.expect().payload == b"fine"


def test_malformed_v311_packet_just_closes(broker):
    """3.1.1 has no DISCONNECT from the server: the connection is closed [MQTT-4.8.0-1]."""
    raw = RawClient(broker.port, ProtocolVersion.MQTT311)
    raw.connect("bad-v3")
    raw.send(bytes([0x32, 0x02, 0x00, 0x00]))  # QoS 1 PUBLISH cut short
    assert raw.expect_closed() == []


def test_reserved_flags_are_malformed(broker):
    """[MQTT-2.1.3-1] SUBSCRIBE with reserved flags 0000 instead of 0010 is malformed."""
    raw = RawClient(broker.port)
    raw.connect("flags")
    raw.send(bytes([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00]))
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.MALFORMED_PACKET]


def test_utf8_null_in_topic(broker):
    """[MQTT-1.5.4-2] U+0000 in a topic: malformed."""
    raw = RawClient(broker.port)
    raw.connect("nul")
    raw.send(bytes([0x30, 0x05, 0x00, 0x03]) + b"a\x00b")
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.MALFORMED_PACKET]


def test_duplicate_property_is_protocol_error(broker):
    """Section 2.2.2.2: a property that may appear once, twice, is a protocol error (0x82)."""
    raw = RawClient(broker.port)
    raw.connect("dupprop")
    # PUBLISH v5, topic "t", properties: content type twice
    props_block = bytes([0x03, 0x00, 0x01, 0x61, 0x03, 0x00, 0x01, 0x62])
    body = b"\x00\x01t" + bytes([len(props_block)]) + props_block + b"x"
    raw.send(bytes([0x30, len(body)]) + body)
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.PROTOCOL_ERROR]


def test_subscription_identifier_from_client_publish(broker):
    """[MQTT-3.3.4-6] a client must not send a Subscription Identifier in PUBLISH: protocol error."""
    raw = RawClient(broker.port)
    raw.connect("subid")
    raw.send(Publish(topic="t", payload=b"x", properties=Properties(subscription_identifiers=(3,))))
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.PROTOCOL_ERROR]
