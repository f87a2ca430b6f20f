"""Sans-I/O tests of :class:`zanzara.session.Session`: packet ids, the queue, the inflight window.

No broker, no sockets, no clock: a Session is built directly and driven through its
methods.  Grouped by the section of MQTT 5.0 (and 3.1.1 where it differs) whose rule the
session keeps; the queue's priority and overflow rules are zanzara's own (see the module
docstring of ``session.py``), so those tests cite it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zanzara.message import Message
from zanzara.session import Delivery, DeliveryStatus, Session
from zanzara.topic_tree import SubscriptionEntry

# -- helpers ---------------------------------------------------------------------------------------


def out(
    payload: bytes = b"",
    *,
    priority: int = 0,
    collapse_key: str | None = None,
    qos: int = 1,
    topic: str = "t",
) -> Delivery:
    """One outgoing entry for client "c" carrying a fresh message."""
    message = Message(topic=topic, payload=payload, qos=qos, priority=priority, collapse_key=collapse_key)
    return Delivery(message=message, qos=qos, retain=False, client_id="c")


def drain(session: Session) -> list[Delivery]:
    """Everything ``dequeue`` hands out, in order, until the queue is empty."""
    taken: list[Delivery] = []
    while (entry := session.dequeue()) is not None:
        taken.append(entry)
    return taken


def payloads(entries: list[Delivery]) -> list[bytes]:
    return [entry.message.payload for entry in entries]


def dropped_as(dropped: list[tuple[Delivery, str]]) -> list[tuple[bytes, str]]:
    return [(entry.message.payload, why) for entry, why in dropped]


# -- 2.2.1 Packet Identifier -----------------------------------------------------------------------


class TestPacketIdentifier_2_2_1:
    def test_ids_start_at_1_and_count_up(self) -> None:
        """[MQTT-2.2.1-4] the server assigns a non-zero Packet Identifier to each new QoS>0 PUBLISH."""
        session = Session("c")
        assert [session.next_packet_id() for _ in range(3)] == [1, 2, 3]

    def test_id_wraps_from_65535_to_1_never_0(self) -> None:
        """[MQTT-2.2.1-4] (3.1.1 [MQTT-2.3.1-1]) a Packet Identifier is 1..65535: after 65535 comes 1."""
        session = Session("c")
        ids = [session.next_packet_id() for _ in range(65536)]
        assert ids[-2:] == [65535, 1]
        assert 0 not in ids

    def test_ids_in_flight_are_never_reused(self) -> None:
        """[MQTT-2.2.1-4] (the server's twin of [MQTT-2.2.1-3]) a new id is one currently unused."""
        session = Session("c")
        held = [out(), out()]
        for entry in held:
            session.start_flight(entry)  # ids 1 and 2 stay in flight
        for _ in range(65533):
            session.next_packet_id()  # 3 .. 65535, none kept
        assert session.next_packet_id() == 3  # after the wrap, 1 and 2 are skipped
        assert {held[0].packet_id, held[1].packet_id} == {1, 2}

    def test_acknowledged_id_is_free_again(self) -> None:
        """[MQTT-2.2.1-4] once acknowledged, an id is unused and may be assigned again after the wrap."""
        session = Session("c")
        first = out()
        pid = session.start_flight(first)
        assert session.acknowledge(pid, 1, DeliveryStatus.SENT) is first
        for _ in range(65534):
            session.next_packet_id()
        assert session.next_packet_id() == pid

    def test_no_free_id_raises(self) -> None:
        """[MQTT-2.2.1-4] with all 65535 ids in flight there is no unused one to assign."""
        session = Session("c")
        session.inflight = dict.fromkeys(range(1, 65536), out())
        with pytest.raises(RuntimeError):
            session.next_packet_id()


# -- 4.3 Quality of Service levels and protocol flows ----------------------------------------------


class TestDeliveryFlows_4_3:
    def test_qos1_flight_waits_for_puback(self) -> None:
        """[MQTT-4.3.2-1] a new id per message; [MQTT-4.3.2-3] unacknowledged until its PUBACK."""
        session = Session("c")
        entry = out(qos=1)
        pid = session.start_flight(entry)
        assert entry.packet_id == pid
        assert entry.status is DeliveryStatus.SENT
        assert session.inflight == {pid: entry}
        assert session.acknowledge(pid, 1, DeliveryStatus.SENT) is entry
        assert session.inflight == {}

    def test_qos2_flight_waits_for_pubrec_then_pubcomp(self) -> None:
        """[MQTT-4.3.3-3] unacknowledged until PUBREC; [MQTT-4.3.3-5] the PUBREL until PUBCOMP."""
        session = Session("c")
        entry = out(qos=2)
        pid = session.start_flight(entry)
        assert entry.status is DeliveryStatus.SENT
        assert session.received_pubrec(pid) is entry
        assert entry.status is DeliveryStatus.RELEASED
        assert session.inflight == {pid: entry}  # still in flight: the PUBREL awaits its PUBCOMP
        assert session.acknowledge(pid, 2, DeliveryStatus.RELEASED) is entry
        assert session.inflight == {}

    def test_ack_for_another_state_is_ignored(self) -> None:
        """[MQTT-4.3.3-3] a QoS 2 PUBLISH is not completed by a PUBACK (nor by an early PUBCOMP)."""
        session = Session("c")
        entry = out(qos=2)
        pid = session.start_flight(entry)
        assert session.acknowledge(pid, 1, DeliveryStatus.SENT) is None
        assert session.acknowledge(pid, 2, DeliveryStatus.RELEASED) is None
        assert session.inflight == {pid: entry}
        assert entry.status is DeliveryStatus.SENT

    def test_pubrec_for_a_qos1_flight_is_ignored(self) -> None:
        """[MQTT-4.3.2-3] a QoS 1 PUBLISH is acknowledged by PUBACK only: a PUBREC changes nothing."""
        session = Session("c")
        entry = out(qos=1)
        pid = session.start_flight(entry)
        assert session.received_pubrec(pid) is None
        assert entry.status is DeliveryStatus.SENT

    def test_second_pubrec_is_not_a_new_step(self) -> None:
        """[MQTT-4.3.3-6] once the PUBREL is sent the PUBLISH is not re-sent: the flight stays at PUBCOMP."""
        session = Session("c")
        entry = out(qos=2)
        pid = session.start_flight(entry)
        session.received_pubrec(pid)
        assert session.received_pubrec(pid) is None
        assert entry.status is DeliveryStatus.RELEASED

    def test_unknown_packet_id_is_ignored(self) -> None:
        """[MQTT-2.2.1-5] an acknowledgement names the id of a PUBLISH sent: any other id matches nothing."""
        session = Session("c")
        session.start_flight(out())
        assert session.acknowledge(999, 1, DeliveryStatus.SENT) is None
        assert session.received_pubrec(999) is None
        assert len(session.inflight) == 1

    def test_inflight_keeps_send_order_for_resend(self) -> None:
        """[MQTT-4.4.0-1], [MQTT-4.6.0-1] unacknowledged PUBLISH are re-sent in their original order."""
        session = Session("c")
        entries = [out(b"%d" % i) for i in range(5)]
        for entry in entries:
            session.start_flight(entry)
        session.acknowledge(entries[2].packet_id, 1, DeliveryStatus.SENT)
        assert list(session.inflight.values()) == [entries[0], entries[1], entries[3], entries[4]]

    def test_window_closes_at_max_inflight(self) -> None:
        """[MQTT-3.3.4-9] no more unacknowledged QoS>0 PUBLISH than the client's Receive Maximum."""
        session = Session("c", max_inflight=2)
        assert session.window_open()
        first = session.start_flight(out())
        session.start_flight(out())
        assert not session.window_open()
        session.acknowledge(first, 1, DeliveryStatus.SENT)
        assert session.window_open()


# -- the queue: order --------------------------------------------------------------------------------


class TestQueueOrder_4_6:
    def test_empty_queue(self) -> None:
        """session.py: ``dequeue`` on an empty queue returns None."""
        session = Session("c")
        assert session.dequeue() is None
        assert session.queued == 0
        assert list(session.iter_queue()) == []

    def test_one_priority_is_first_in_first_out(self) -> None:
        """[MQTT-4.6.0-6] every topic is an Ordered Topic: messages leave in the order they came."""
        session = Session("c")
        for i in range(5):
            assert session.enqueue(out(b"%d" % i)) == []
        assert session.queued == 5
        assert payloads(drain(session)) == [b"0", b"1", b"2", b"3", b"4"]
        assert session.queued == 0

    def test_highest_priority_first_then_publish_order(self) -> None:
        """session.py: highest priority first, publish order within one priority."""
        session = Session("c")
        for payload, priority in [(b"a", 0), (b"b", 5), (b"c", -1), (b"d", 5), (b"e", 0), (b"f", 9)]:
            session.enqueue(out(payload, priority=priority))
        assert payloads(drain(session)) == [b"f", b"b", b"d", b"a", b"e", b"c"]

    def test_iter_queue_is_delivery_order_and_consumes_nothing(self) -> None:
        """session.py: ``iter_queue`` lists the entries in the order ``dequeue`` will hand them out."""
        session = Session("c")
        for payload, priority in [(b"a", 0), (b"b", 1), (b"c", 0)]:
            session.enqueue(out(payload, priority=priority))
        listed = list(session.iter_queue())
        assert session.queued == 3
        assert drain(session) == listed

    def test_a_new_priority_between_others_keeps_the_order(self) -> None:
        """session.py: a priority first seen after others is slotted in its place, not at an end."""
        session = Session("c")
        session.enqueue(out(b"low", priority=1))
        session.enqueue(out(b"high", priority=3))
        session.enqueue(out(b"middle", priority=2))
        assert payloads(drain(session)) == [b"high", b"middle", b"low"]

    def test_clear_queue_returns_everything_in_delivery_order(self) -> None:
        """session.py: ``clear_queue`` empties the queue and returns what it held, in delivery order."""
        session = Session("c", max_queued_bytes=10)
        for payload, priority in [(b"aa", 0), (b"bb", 1)]:
            session.enqueue(out(payload, priority=priority))
        assert payloads(session.clear_queue()) == [b"bb", b"aa"]
        assert session.queued == 0
        assert session.dequeue() is None
        # The byte count restarted from zero: a full 10 bytes fit again.
        assert session.enqueue(out(b"x" * 10)) == []


# -- the queue: overflow -------------------------------------------------------------------------------


class TestQueueOverflow:
    def test_max_queued_drops_the_oldest(self) -> None:
        """session.py: over ``max_queued``, the oldest entry of the lowest priority goes ("queue full")."""
        session = Session("c", max_queued=3)
        for i in range(3):
            session.enqueue(out(b"%d" % i))
        dropped = session.enqueue(out(b"3"))
        assert dropped_as(dropped) == [(b"0", "queue full")]
        assert payloads(drain(session)) == [b"1", b"2", b"3"]

    def test_max_queued_drops_the_lowest_priority_first(self) -> None:
        """session.py: drop the lowest priority first, even when a higher one is older."""
        session = Session("c", max_queued=2)
        session.enqueue(out(b"old-high", priority=2))
        session.enqueue(out(b"low", priority=0))
        dropped = session.enqueue(out(b"new-high", priority=2))
        assert dropped_as(dropped) == [(b"low", "queue full")]
        assert payloads(drain(session)) == [b"old-high", b"new-high"]

    def test_a_new_entry_of_the_lowest_priority_is_itself_dropped(self) -> None:
        """session.py: when the newcomer is the only entry of the lowest priority, it is the one dropped."""
        session = Session("c", max_queued=2)
        session.enqueue(out(b"a", priority=5))
        session.enqueue(out(b"b", priority=5))
        newcomer = out(b"c", priority=0)
        assert session.enqueue(newcomer) == [(newcomer, "queue full")]
        assert payloads(drain(session)) == [b"a", b"b"]

    def test_max_queued_bytes_counts_payload_bytes(self) -> None:
        """session.py: over ``max_queued_bytes`` of payload, drop as many as needed, lowest, oldest first."""
        session = Session("c", max_queued=0, max_queued_bytes=10)
        session.enqueue(out(b"aaaa"))  # 4
        session.enqueue(out(b"bbbb"))  # 8
        assert session.enqueue(out(b"cc")) == []  # 10: at the limit, not over it
        dropped = session.enqueue(out(b"dddddd"))  # 16: the two oldest must go
        assert dropped_as(dropped) == [(b"aaaa", "queue full"), (b"bbbb", "queue full")]
        assert payloads(drain(session)) == [b"cc", b"dddddd"]

    def test_dequeued_bytes_are_freed(self) -> None:
        """session.py: the byte limit counts what is queued, not what has passed through."""
        session = Session("c", max_queued=0, max_queued_bytes=4)
        session.enqueue(out(b"aaaa"))
        session.dequeue()
        assert session.enqueue(out(b"bbbb")) == []

    def test_both_limits_apply(self) -> None:
        """session.py: ``max_queued`` and ``max_queued_bytes`` are both enforced."""
        session = Session("c", max_queued=3, max_queued_bytes=5)
        for payload in (b"a", b"b", b"c"):
            session.enqueue(out(payload))
        assert dropped_as(session.enqueue(out(b"d"))) == [(b"a", "queue full")]  # by count
        assert dropped_as(session.enqueue(out(b"eeee"))) == [(b"b", "queue full"), (b"c", "queue full")]
        assert payloads(drain(session)) == [b"d", b"eeee"]

    def test_zero_means_unlimited(self) -> None:
        """session.py: ``max_queued`` 0 and ``max_queued_bytes`` 0 set no limit."""
        session = Session("c", max_queued=0, max_queued_bytes=0)
        for i in range(2000):
            assert session.enqueue(out(b"x" * 100, priority=i % 3)) == []
        assert session.queued == 2000

    def test_a_message_that_can_never_fit_evicts_nothing(self) -> None:
        """session.py: a payload over ``max_queued_bytes`` cannot be queued; it should cost no other entry."""
        session = Session("c", max_queued=0, max_queued_bytes=10)
        session.enqueue(out(b"kept", priority=0))
        huge = out(b"x" * 11, priority=1)
        assert session.enqueue(huge) == [(huge, "queue full")]
        assert payloads(drain(session)) == [b"kept"]


# -- the queue: collapse keys ------------------------------------------------------------------------


class TestCollapseKey:
    def test_same_key_replaces_the_queued_entry(self) -> None:
        """session.py: a queued entry is replaced by a newer one with the same collapse key."""
        session = Session("c")
        session.enqueue(out(b"v1", collapse_key="k"))
        session.enqueue(out(b"other"))
        dropped = session.enqueue(out(b"v2", collapse_key="k"))
        assert dropped_as(dropped) == [(b"v1", "collapsed")]
        assert session.queued == 2
        # The replacement takes the newest place, behind what was queued after the old one.
        assert payloads(drain(session)) == [b"other", b"v2"]

    def test_different_or_no_keys_do_not_collapse(self) -> None:
        """session.py: only entries with the same key replace each other; no key, no collapse."""
        session = Session("c")
        for payload, key in [(b"a", "k1"), (b"b", "k2"), (b"c", None), (b"d", None)]:
            assert session.enqueue(out(payload, collapse_key=key)) == []
        assert session.queued == 4

    def test_collapse_across_priorities(self) -> None:
        """session.py: the replacement is queued at its own priority; the old one leaves its own."""
        session = Session("c")
        session.enqueue(out(b"v1", priority=0, collapse_key="k"))
        session.enqueue(out(b"mid", priority=1))
        assert dropped_as(session.enqueue(out(b"v2", priority=2, collapse_key="k"))) == [(b"v1", "collapsed")]
        assert payloads(drain(session)) == [b"v2", b"mid"]

    def test_collapse_in_the_middle_keeps_the_rest_in_order(self) -> None:
        """session.py: removing a collapsed entry from the middle of its priority keeps the others' order."""
        session = Session("c")
        for payload, key in [(b"a", None), (b"k1", "k"), (b"b", None)]:
            session.enqueue(out(payload, collapse_key=key))
        session.enqueue(out(b"k2", collapse_key="k"))
        assert payloads(drain(session)) == [b"a", b"b", b"k2"]

    def test_an_entry_already_dequeued_is_not_collapsed(self) -> None:
        """session.py: collapse applies to queued entries only; one that left the queue stays sent."""
        session = Session("c")
        first = out(b"v1", collapse_key="k")
        session.enqueue(first)
        assert session.dequeue() is first
        assert session.enqueue(out(b"v2", collapse_key="k")) == []
        assert session.queued == 1

    def test_an_entry_dropped_for_space_is_not_collapsed_again(self) -> None:
        """session.py: a key forgets the entry overflow dropped; the next one with it collapses nothing."""
        session = Session("c", max_queued=1)
        session.enqueue(out(b"v1", collapse_key="k"))
        assert dropped_as(session.enqueue(out(b"x"))) == [(b"v1", "queue full")]
        assert dropped_as(session.enqueue(out(b"v2", collapse_key="k"))) == [(b"x", "queue full")]
        assert payloads(drain(session)) == [b"v2"]

    def test_collapse_frees_the_replaced_bytes(self) -> None:
        """session.py: a collapsed entry no longer counts towards ``max_queued_bytes``."""
        session = Session("c", max_queued=0, max_queued_bytes=10)
        session.enqueue(out(b"x" * 8, collapse_key="k"))
        dropped = session.enqueue(out(b"y" * 8, collapse_key="k"))
        assert dropped_as(dropped) == [(b"x" * 8, "collapsed")]
        assert session.queued == 1

    def test_clear_queue_forgets_collapse_keys(self) -> None:
        """session.py: after ``clear_queue`` a key names no queued entry."""
        session = Session("c")
        session.enqueue(out(b"v1", collapse_key="k"))
        session.clear_queue()
        assert session.enqueue(out(b"v2", collapse_key="k")) == []


# -- 4.1 Session state: clean start ------------------------------------------------------------------


class TestReset_4_1:
    def test_reset_forgets_everything_and_returns_what_was_pending(self) -> None:
        """[MQTT-3.1.2-4] Clean Start discards the session: inflight, queue, QoS 2 ids, subscriptions."""
        session = Session("c", expiry_interval=60)
        flying = [out(b"f1"), out(b"f2")]
        for entry in flying:
            session.start_flight(entry)
        queued = [out(b"q-low", priority=0), out(b"q-high", priority=1)]
        for entry in queued:
            session.enqueue(entry)
        session.incoming_qos2.add(7)
        session.subscriptions["a/#"] = SubscriptionEntry(client_id="c", topic_filter="a/#", qos=1)

        pending = session.reset()

        assert payloads(pending) == [b"f1", b"f2", b"q-high", b"q-low"]  # inflight, then delivery order
        assert session.inflight == {}
        assert session.queued == 0
        assert session.dequeue() is None
        assert session.incoming_qos2 == set()
        assert session.subscriptions == {}
        assert session.expiry_interval == 60  # the new CONNECT's settings are the caller's to apply

    def test_reset_session_accepts_new_work(self) -> None:
        """[MQTT-3.1.2-4] the new session starts empty: limits count from zero again."""
        session = Session("c", max_queued=1)
        session.enqueue(out(b"old", collapse_key="k"))
        session.reset()
        assert session.enqueue(out(b"new", collapse_key="k")) == []
        assert session.window_open()


# -- a property: the queue against a model -----------------------------------------------------------


@dataclass
class _Op:
    """One step of a run: enqueue a message (priority, payload size, key) or dequeue."""

    dequeue: bool
    priority: int = 0
    size: int = 0
    key: str | None = None


_ops = st.lists(
    st.one_of(
        st.builds(
            _Op,
            dequeue=st.just(False),
            priority=st.integers(-2, 2),
            size=st.integers(0, 6),
            key=st.sampled_from([None, None, "a", "b"]),
        ),
        st.builds(_Op, dequeue=st.just(True)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=_ops, max_queued=st.integers(0, 5), max_queued_bytes=st.sampled_from([0, 6, 12]))
def test_queue_matches_a_sorted_model(ops: list[_Op], max_queued: int, max_queued_bytes: int) -> None:
    """session.py: order, overflow and collapse against a plain list model.

    The model keeps (priority, sequence) pairs; delivery order is the list sorted by
    priority descending then sequence; overflow removes the minimum by (priority,
    sequence).  Every enqueued entry ends dequeued, dropped or still queued, exactly once.
    """
    session = Session("c", max_queued=max_queued, max_queued_bytes=max_queued_bytes)
    model: list[tuple[int, int, Delivery]] = []  # (priority, sequence, entry)
    enqueued: list[Delivery] = []
    dequeued: list[Delivery] = []
    dropped: list[Delivery] = []

    def over() -> bool:
        size = sum(len(e.message.payload) for _, _, e in model)
        return bool(
            (max_queued and len(model) > max_queued) or (max_queued_bytes and size > max_queued_bytes)
        )

    for seq, op in enumerate(ops):
        if op.dequeue:
            expected = min(model, key=lambda m: (-m[0], m[1]))[2] if model else None
            got = session.dequeue()
            assert got is expected
            if expected is not None:
                model.remove(next(m for m in model if m[2] is expected))
                dequeued.append(expected)
            continue
        entry = out(b"x" * op.size, priority=op.priority, collapse_key=op.key)
        enqueued.append(entry)
        expected_drops: list[tuple[Delivery, str]] = []
        if op.key is not None:
            same = [m for m in model if m[2].message.collapse_key == op.key]
            for m in same:
                model.remove(m)
                expected_drops.append((m[2], "collapsed"))
        model.append((op.priority, seq, entry))
        while over():
            victim = min(model, key=lambda m: (m[0], m[1]))
            model.remove(victim)
            expected_drops.append((victim[2], "queue full"))
        got_drops = session.enqueue(entry)
        assert [(id(e), why) for e, why in got_drops] == [(id(e), why) for e, why in expected_drops]
        dropped.extend(e for e, _ in got_drops)
        assert session.queued == len(model)
        assert list(session.iter_queue()) == [m[2] for m in sorted(model, key=lambda m: (-m[0], m[1]))]

    remaining = list(session.iter_queue())
    accounted = dequeued + dropped + remaining
    assert len(accounted) == len(enqueued)
    assert {id(e) for e in accounted} == {id(e) for e in enqueued}
