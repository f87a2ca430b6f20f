"""Acknowledgements from the client of our QoS 1/2 deliveries: PUBACK, PUBREC, PUBCOMP.

Each ack must match the state its delivery waits in: a PUBACK for QoS 1, a
PUBREC then (after our PUBREL) a PUBCOMP for QoS 2.  One of the wrong type
is a protocol violation (v5 DISCONNECT 0x82); one for an id not in flight is
a resend after a reconnect and is ignored (PUBREC: PUBREL 0x92).  A finished
delivery is unstored and its receipt noted (:func:`.deliveries.completed`),
then the window is refilled from the queue (:func:`.deliveries.pump`).  A
run of PUBACKs read together is handled as one, with one refill.
"""

from __future__ import annotations

from ..errors import ProtocolViolation
from ..mqtt import reason_codes
from ..mqtt.enums import ProtocolVersion, ReasonCode
from ..mqtt.packets import PubAck, PubComp, PubRec, PubRel
from ..session import Delivery, DeliveryStatus
from . import deliveries
from .client import Client
from .commits import ack_after_commit
from .state import CoreState

__all__ = ["handle_puback", "handle_pubacks", "handle_pubcomp", "handle_pubrec"]

V5 = ProtocolVersion.MQTT5


def handle_puback(state: CoreState, client: Client, packet: PubAck) -> None:
    handle_pubacks(state, client, [packet])


def handle_pubacks(state: CoreState, client: Client, packets: list[PubAck]) -> None:
    """PUBACKs (several when read together): each completes its message, then one refill of the window."""
    session = client.session
    done = []
    for packet in packets:
        out = session.acknowledge(packet.packet_id, 1, DeliveryStatus.SENT)
        if out is not None:
            if reason_codes.is_failure(packet.reason_code):
                _refused(out, packet)
            done.append(out)
        elif packet.packet_id in session.inflight:
            # Looked up only here, off the common path: the acks before it still count.
            if done:
                deliveries.completed(state, client, done)
            raise _wrong_ack(packet, session.inflight[packet.packet_id])
        # else an id not in flight at all: a resend after a reconnect, ignored.
    if done:
        deliveries.completed(state, client, done)
        deliveries.pump(state, client)


def handle_pubrec(state: CoreState, client: Client, packet: PubRec) -> None:
    session = client.session
    if reason_codes.is_failure(packet.reason_code):
        # MQTT 5 section 4.3.3: a PUBREC with a reason code of 0x80 or more ends the flow
        # (no PUBREL); the message is not resent, and its receipt says the client refused it.
        done = session.acknowledge(packet.packet_id, 2, DeliveryStatus.SENT)
        if done is not None:
            _refused(done, packet)
            deliveries.completed(state, client, [done])
            deliveries.pump(state, client)
        elif packet.packet_id in session.inflight:
            raise _wrong_ack(packet, session.inflight[packet.packet_id])
        return
    out = session.received_pubrec(packet.packet_id)
    if out is None:
        waiting = session.inflight.get(packet.packet_id)
        if waiting is None:
            # Not in flight (a resend after a reconnect): 0x92 Packet Identifier not found.
            client.link.send(
                PubRel(
                    packet_id=packet.packet_id, reason_code=reason_codes.packet_id_not_found(client.version)
                )
            )
            return
        if waiting.status is not DeliveryStatus.RELEASED:
            # A PUBREC for a QoS 1 message: answering PUBREL would start a QoS 2 exchange
            # the client never began.
            raise _wrong_ack(packet, waiting)
        # A PUBREC repeated after our PUBREL gets the PUBREL again (as in Mosquitto).
        client.link.send(PubRel(packet_id=packet.packet_id))
        return
    store = state.persisted(session)
    if store is not None and out.message.message_id:
        store.outgoing_update(session.client_id, out.message.message_id, out.status, out.packet_id)
        # MQTT 5 section 4.3.3: once the PUBREL is sent, the PUBLISH must never be sent again.
        # So the PUBREL waits for the "PUBREC received" state to be durable: after a crash
        # the broker resends the PUBREL, not the PUBLISH the client already released (which
        # it would deliver twice).  A failed commit sends nothing; a reconnect resends it.
        ack_after_commit(state, client, PubRel(packet_id=packet.packet_id))
        return
    client.link.send(PubRel(packet_id=packet.packet_id))


def handle_pubcomp(state: CoreState, client: Client, packet: PubComp) -> None:
    session = client.session
    out = session.acknowledge(packet.packet_id, 2, DeliveryStatus.RELEASED)
    if out is not None:
        if reason_codes.is_failure(packet.reason_code):
            _refused(out, packet)
        deliveries.completed(state, client, [out])
        deliveries.pump(state, client)
    elif packet.packet_id in session.inflight:
        raise _wrong_ack(packet, session.inflight[packet.packet_id])


def _wrong_ack(packet: PubAck | PubRec | PubComp, out: Delivery) -> ProtocolViolation:
    """An acknowledgement of the wrong type for a message in flight to the client.

    The client answers a QoS 1 PUBLISH with PUBACK ([MQTT-4.3.2-4]; 3.1.1 [MQTT-4.3.2-2]), a
    QoS 2 PUBLISH with PUBREC and our PUBREL with PUBCOMP ([MQTT-4.3.3-8], [MQTT-4.3.3-11];
    3.1.1 [MQTT-4.3.3-2]).  Any other answer is a Protocol Error: MQTT 5 section 4.13
    DISCONNECT 0x82, 3.1.1 close [MQTT-4.8.0-1] (as Mosquitto does).
    """
    got = type(packet).__name__.upper()
    return ProtocolViolation(
        f"{got} for packet id {packet.packet_id}, which is {out.status.value} (QoS {out.qos})"
    )


def _refused(out: Delivery, packet: PubAck | PubRec | PubComp) -> None:
    """A v5 client ended a delivery's flow with an error reason code: its receipt says which."""
    code = packet.reason_code
    try:
        name = ReasonCode(code).name.lower().replace("_", " ")
    except ValueError:
        name = "not a reason code of the spec"
    out.reason = f"{type(packet).__name__.upper()} reason code 0x{code:02X} ({name})"
