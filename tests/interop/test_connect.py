"""CONNECT / CONNACK / DISCONNECT through paho-mqtt and raw bytes (spec 3.1, 3.2, 3.14)."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from zanzara.config import MqttConfig
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import (
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Publish,
    Subscribe,
    Subscription,
    Will,
)
from zanzara.mqtt.properties import Properties

from clients import TIMEOUT, V5, V311, PahoClient, RawClient, props
from peers import require

VERSIONS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]


@pytest.mark.parametrize("version", VERSIONS)
def test_connect_and_session_present(broker, version):
    """[MQTT-3.2.2-2] clean start gives session present 0; [MQTT-3.2.2-3] a resumed session gives 1."""
    c = PahoClient(broker.port, "sp-1", version=version, clean=False, session_expiry=60)
    assert c.reason_code == 0
    assert not c.session_present
    c.disconnect()
    c2 = PahoClient(broker.port, "sp-1", version=version, clean=False, session_expiry=60)
    assert c2.session_present
    c2.disconnect()
    c3 = PahoClient(broker.port, "sp-1", version=version, clean=True)
    assert not c3.session_present
    c3.disconnect()


def test_v5_zero_length_client_id_gets_assigned_identifier(broker):
    """[MQTT-3.2.2-16] an empty client id in v5 gets an Assigned Client Identifier."""
    c = PahoClient(broker.port, "", version=V5)
    assert c.reason_code == 0
    assigned = c.connack[2].AssignedClientIdentifier
    assert assigned and assigned.startswith("auto-")
    c.disconnect()


def test_v311_zero_length_client_id_needs_clean_session(broker):
    """[MQTT-3.1.3-8] empty client id with clean session 0 is refused with return code 0x02."""
    raw = RawClient(broker.port, ProtocolVersion.MQTT311)
    raw.send(Connect(protocol_version=ProtocolVersion.MQTT311, client_id="", clean_start=False))
    assert raw.recv() == ConnAck(reason_code=2)
    raw.expect_closed()
    raw = RawClient(broker.port, ProtocolVersion.MQTT311)
    raw.send(Connect(protocol_version=ProtocolVersion.MQTT311, client_id="", clean_start=True))
    assert raw.recv() == ConnAck(reason_code=0)


def test_mqtt31_client_connects(broker):
    """Protocol level 3 ("MQIsdp") is accepted."""
    raw = RawClient(broker.port, ProtocolVersion.MQTT31)
    raw.send(Connect(protocol_version=ProtocolVersion.MQTT31, protocol_name="MQIsdp", client_id="old"))
    assert raw.recv() == ConnAck(reason_code=0)
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a/b", qos=1),)))
    assert raw.recv().reason_codes == (1,)
    raw.send(Publish(topic="a/b", payload=b"x", qos=0))
    got = raw.recv()
    assert isinstance(got, Publish) and got.payload == b"x"


# -- MQTT 3.1 ("MQIsdp", level 3) ----------------------------------------------------------------

V31 = ProtocolVersion.MQTT31


def v31_connect(client_id: str, clean: bool = True) -> Connect:
    return Connect(protocol_version=V31, protocol_name="MQIsdp", client_id=client_id, clean_start=clean)


def test_mqtt31_connack_has_no_session_present(broker):
    """MQTT 3.1 section 3.2: the CONNACK's first byte is reserved (Session Present is 3.1.1's), so it is
    0 even when the session is resumed; the session itself is, as the queued message shows."""
    raw = RawClient(broker.port, V31)
    raw.send(v31_connect("old31", clean=False))
    assert raw.recv() == ConnAck(reason_code=0)
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="v31/q", qos=1),)))
    assert raw.recv().reason_codes == (1,)
    raw.close()
    broker.wait_offline("old31")
    pub = PahoClient(broker.port, version=V311)
    pub.publish("v31/q", b"while away", 1)
    raw = RawClient(broker.port, V31)
    raw.send(v31_connect("old31", clean=False))
    raw.sock.settimeout(TIMEOUT)
    assert raw.sock.recv(4) == b"\x20\x02\x00\x00"  # byte for byte, not through our decoder
    queued = raw.recv()
    assert isinstance(queued, Publish) and queued.payload == b"while away"
    pub.disconnect()


@pytest.mark.parametrize("client_id", ["", "x" * 24], ids=["empty", "24-characters"])
def test_mqtt31_client_id_is_1_to_23_characters(broker, client_id):
    """MQTT 3.1 section 3.1: "The Client Identifier (Client ID) is between 1 and 23 characters long";
    otherwise CONNACK return code 2, identifier rejected (as Mosquitto), then close.  3.1.1 and 5.0
    take both (an empty id with a clean session gets one of ours)."""
    raw = RawClient(broker.port, V31)
    raw.send(v31_connect(client_id))
    assert raw.expect_closed() == [ConnAck(reason_code=2)]
    ok = RawClient(broker.port, V31)
    ok.send(v31_connect("y" * 23))
    assert ok.recv() == ConnAck(reason_code=0)
    newer = RawClient(broker.port, ProtocolVersion.MQTT311)
    newer.send(Connect(protocol_version=ProtocolVersion.MQTT311, client_id=client_id))
    assert newer.recv() == ConnAck(reason_code=0)


def test_mqtt31_long_client_id_with_mosquitto_pub(broker):
    """mosquitto_pub -V mqttv31 with a 24-character id is refused: identifier rejected."""
    args = ["-p", str(broker.port), "-V", "mqttv31", "-i", "z" * 24, "-t", "v31/t", "-m", "m"]
    result = subprocess.run(
        [require("mosquitto_pub"), "-h", "127.0.0.1", *args],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert "identifier rejected" in (result.stdout + result.stderr).lower()


def test_unsupported_protocol_level(broker):
    """[MQTT-3.1.2-2] an unsupported level gets CONNACK 0x01 (3.1.1) and the connection closes."""
    raw = RawClient(broker.port, ProtocolVersion.MQTT311)
    raw.send(bytes([0x10, 10, 0, 4]) + b"MQTT" + bytes([9, 2, 0, 60]))
    packets = raw.expect_closed()
    assert packets == [ConnAck(reason_code=1)]


def test_first_packet_must_be_connect(broker):
    """[MQTT-3.1.0-1] anything before CONNECT closes the connection."""
    raw = RawClient(broker.port)
    raw.send(PingReq())
    assert raw.expect_closed() == []


def test_second_connect_is_a_protocol_error(broker):
    """[MQTT-3.1.0-2] a second CONNECT: v5 DISCONNECT 0x82, then close."""
    raw = RawClient(broker.port)
    assert raw.connect("twice").reason_code == 0
    raw.send(Connect(protocol_version=ProtocolVersion.MQTT5, client_id="twice"))
    packets = raw.expect_closed()
    assert len(packets) == 1 and isinstance(packets[0], Disconnect)
    assert packets[0].reason_code == ReasonCode.PROTOCOL_ERROR


def test_connect_timeout_closes_silent_socket(make_broker):
    """A socket that never sends CONNECT is closed after connect_timeout."""
    b = make_broker(mqtt=MqttConfig(connect_timeout=0.3))
    s = socket.create_connection(("127.0.0.1", b.port))
    s.settimeout(3)
    start = time.monotonic()
    assert s.recv(10) == b""
    assert time.monotonic() - start < 2.5


@pytest.mark.parametrize("version", VERSIONS)
def test_keep_alive_enforced_at_one_and_a_half(broker, version):
    """[MQTT-3.1.2-22] no packet within 1.5x keep alive: the server closes the connection."""
    raw = RawClient(broker.port, ProtocolVersion(version if version == V5 else 4))
    raw.connect("ka", keep_alive=1)
    start = time.monotonic()
    packets = raw.expect_closed(timeout=5)
    elapsed = time.monotonic() - start
    assert 1.4 <= elapsed < 3.0
    if version == V5:
        assert packets == [Disconnect(reason_code=ReasonCode.KEEP_ALIVE_TIMEOUT)]


def test_pingreq_keeps_connection_alive(broker):
    """[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP and counts as activity."""
    raw = RawClient(broker.port)
    raw.connect("pinger", keep_alive=1)
    for _ in range(4):
        time.sleep(0.5)
        raw.send(PingReq())
        assert raw.recv() == PingResp()


def test_server_keep_alive_caps_v5_clients(make_broker):
    """max_keepalive: a v5 client asking more is told the cap (Server Keep Alive) [MQTT-3.2.2-21]."""
    b = make_broker(mqtt=MqttConfig(max_keepalive=30))
    c = PahoClient(b.port, version=V5, keepalive=120)
    assert c.connack[2].ServerKeepAlive == 30
    c.disconnect()


def test_v311_keep_alive_above_cap_is_refused(make_broker):
    """As Mosquitto: a 3.1.1 client cannot be told a lower keep alive, so it gets 0x02."""
    b = make_broker(mqtt=MqttConfig(max_keepalive=30))
    raw = RawClient(b.port, ProtocolVersion.MQTT311)
    raw.send(Connect(protocol_version=ProtocolVersion.MQTT311, client_id="ka", keep_alive=120))
    assert raw.recv() == ConnAck(reason_code=2)


@pytest.mark.parametrize("version", VERSIONS)
def test_session_takeover(broker, version):
    """[MQTT-3.1.4-3] the same client id again closes the old connection; v5 with 0x8E."""
    old = PahoClient(broker.port, "dup-id", version=version)
    new = PahoClient(broker.port, "dup-id", version=version)
    rc, _ = old.expect_disconnect()
    if version == V5:
        assert rc.value == ReasonCode.SESSION_TAKEN_OVER
    new.subscribe("take/over", 0)
    new.publish("take/over", b"still here")
    assert new.expect().payload == b"still here"
    new.disconnect()
    old.client.loop_stop()


def test_disconnect_session_expiry_from_zero_is_protocol_error(broker):
    """[MQTT-3.14.2-2] session expiry 0 at CONNECT cannot become non-zero at DISCONNECT."""
    raw = RawClient(broker.port)
    raw.connect("exp0")

    raw.send(Disconnect(properties=Properties(session_expiry_interval=30)))
    packets = raw.expect_closed()
    assert [p.reason_code for p in packets if isinstance(p, Disconnect)] == [ReasonCode.PROTOCOL_ERROR]


def test_broker_shutdown_sends_0x8b(make_broker):
    """Graceful shutdown: v5 clients receive DISCONNECT 0x8B (Server shutting down)."""
    b = make_broker()
    c = PahoClient(b.port, version=V5)
    b.stop()
    rc, _ = c.expect_disconnect()
    assert rc.value == ReasonCode.SERVER_SHUTTING_DOWN
    c.client.loop_stop()


def test_connack_announces_limits(make_broker):
    """v5 CONNACK carries our receive maximum, topic alias maximum, maximum packet size and QoS."""
    b = make_broker(
        mqtt=MqttConfig(receive_maximum=7, topic_alias_maximum=3, max_packet_size=4096, max_qos=1)
    )
    c = PahoClient(b.port, version=V5)
    p = c.connack[2]
    assert (p.ReceiveMaximum, p.TopicAliasMaximum, p.MaximumPacketSize, p.MaximumQoS) == (7, 3, 4096, 1)
    c.disconnect()


def test_request_problem_information_zero_strips_reason_strings(broker):
    """[MQTT-3.1.2-29] no reason string on a SUBACK for a client that asked not to get one."""
    raw = RawClient(broker.port)

    raw.send(
        Connect(
            protocol_version=ProtocolVersion.MQTT5,
            client_id="rpi",
            properties=Properties(request_problem_information=0),
        )
    )
    assert raw.recv().reason_code == 0
    # Well formed but beyond max_topic_levels (128): SUBACK 0x8F, not a protocol error.
    deep = "/".join(["a"] * 129)
    raw.send(Subscribe(packet_id=3, subscriptions=(Subscription(topic_filter=deep),)))
    suback = raw.recv()
    assert suback.reason_codes == (ReasonCode.TOPIC_FILTER_INVALID,)
    assert suback.properties.reason_string is None


# -- 3.1.2.11.4 Maximum Packet Size: nothing larger goes to the client [MQTT-3.1.2-24] -----------


def v5_connect(client_id: str, max_packet_size: int, **kw: object) -> Connect:
    props = Properties(maximum_packet_size=max_packet_size)
    return Connect(protocol_version=ProtocolVersion.MQTT5, client_id=client_id, properties=props, **kw)


def test_connack_over_client_maximum_closes_without_anything(broker):
    """[MQTT-3.1.2-24] a CONNACK larger than the client's Maximum Packet Size must not be sent, and no
    connection goes on without one: close at once, sending nothing.  The CONNECT takes nothing over:
    the connection holding the client id stays, its session is not cleaned, the will is not kept."""
    witness = PahoClient(broker.port, version=V5)
    witness.subscribe("tiny/#", 1)
    holder = PahoClient(broker.port, "tiny", version=V5, session_expiry=300)
    holder.subscribe("mine/tiny", 1)
    raw = RawClient(broker.port)
    raw.send(v5_connect("tiny", 4, clean_start=True, will=Will(topic="tiny/will", payload=b"gone")))
    assert raw.expect_closed() == []
    holder.publish("mine/tiny", b"still mine", 1)
    assert holder.expect().payload == b"still mine"
    assert holder.disconnects.empty()
    # Had the CONNECT left a will, the broker would have published it when it closed the socket,
    # before this message (sent after we saw the close) is routed.
    witness.publish("tiny/marker", b"after", 1)
    assert witness.expect().topic == "tiny/marker"
    holder.disconnect()
    witness.disconnect()


def test_connack_properties_count_against_client_maximum(broker):
    """The CONNACK's properties make its size: an assigned client identifier (section 3.2.2.3.7) does
    not fit in 20 bytes, so that client is closed without a CONNACK; with room for it, it connects."""
    raw = RawClient(broker.port)
    raw.send(v5_connect("", 20))
    assert raw.expect_closed() == []
    raw = RawClient(broker.port)
    raw.send(v5_connect("", 80))
    connack = raw.recv()
    assert connack.reason_code == 0 and connack.properties.assigned_client_identifier
    assert len(encode(connack, ProtocolVersion.MQTT5)) <= 80


def test_refusing_connack_within_client_maximum(make_broker):
    """[MQTT-3.1.2-24] a refusing CONNACK too: sent without its reason string where that makes it fit,
    not at all where nothing does."""
    b = make_broker(mqtt=MqttConfig(max_client_id_length=23))
    roomy = RawClient(b.port)
    roomy.send(v5_connect("x" * 30, 1000))
    assert roomy.recv().properties.reason_string  # what the limit removes
    fits = RawClient(b.port)
    fits.send(v5_connect("x" * 30, 8))
    assert fits.expect_closed() == [ConnAck(reason_code=ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)]
    tiny = RawClient(b.port)
    tiny.send(v5_connect("x" * 30, 4))
    assert tiny.expect_closed() == []


def test_disconnect_within_client_maximum(broker):
    """[MQTT-3.1.2-24] the server's DISCONNECT too: without its reason string if that is too large."""
    roomy = RawClient(broker.port)
    roomy.send(v5_connect("dc-roomy", 1000))
    assert roomy.recv().reason_code == 0
    roomy.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a/#/b"),)))
    assert roomy.expect_closed()[0].properties.reason_string  # what the limit removes
    small = RawClient(broker.port)
    small.send(v5_connect("dc-small", 16))
    assert small.recv().reason_code == 0
    small.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a/#/b"),)))
    assert small.expect_closed() == [Disconnect(reason_code=ReasonCode.PROTOCOL_ERROR)]


def test_connect_properties_roundtrip_paho(broker):
    """A v5 CONNECT with many properties is accepted (receive maximum, packet size, user properties)."""
    p = props("CONNECT", ReceiveMaximum=5, MaximumPacketSize=10000, TopicAliasMaximum=2)
    p.UserProperty = ("k", "v")
    c = PahoClient(broker.port, version=V5, connect_properties=p)
    assert c.reason_code == 0
    c.disconnect()
