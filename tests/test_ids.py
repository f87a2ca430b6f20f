"""Message ids are ULIDs: 26 Crockford base-32 digits, time first, increasing within a broker."""

from __future__ import annotations

import time

from zanzara import ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference(ms: int, rand: int) -> str:
    # The ULID spec's encoding, digit by digit.
    value = (ms << 80) | rand
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_encoding_matches_the_ulid_spec() -> None:
    for _ in range(2000):
        mid = ids.new_message_id()
        assert mid == reference(ids._last_ms, ids._last_rand)
        assert len(mid) == 26 and set(mid) <= set(CROCKFORD)


def test_ids_increase_and_carry_the_time() -> None:
    before = time.time_ns() // 1_000_000
    got = [ids.new_message_id() for _ in range(5000)]
    assert got == sorted(got) and len(set(got)) == len(got)
    ms = int("".join(str(CROCKFORD.index(c)) and f"{CROCKFORD.index(c):05b}" for c in got[0]), 2) >> 80
    assert before <= ms <= time.time_ns() // 1_000_000


def test_carry_out_of_the_last_four_digits() -> None:
    # Within one millisecond only the last four digits are re-encoded; an increment that
    # carries beyond them must re-encode the whole id.
    future = time.time_ns() // 1_000_000 + 60_000  # keeps every call below in "the same ms"
    ids._last_ms, ids._last_rand = future, (0x1234 << 20) | ((1 << 20) - 3)
    ids._prefix = reference(future, ids._last_rand)[:22]
    got = [ids.new_message_id() for _ in range(5)]
    expected = [reference(future, (0x1234 << 20) + (1 << 20) - 2 + i) for i in range(5)]
    assert got == expected
    assert got == sorted(got)
    ids._last_ms = 0  # back to real time for the other tests


def test_first_message_id_sorts_below_every_later_id_and_above_earlier_ones() -> None:
    now = time.time()
    before = ids.new_message_id()
    time.sleep(0.002)
    cut = ids.first_message_id(time.time())
    after = ids.new_message_id()
    assert before < cut <= after
    assert ids.first_message_id(now) == reference(int(now * 1000), 0)
