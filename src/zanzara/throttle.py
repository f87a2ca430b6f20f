"""Token buckets for the per-connection read limits (``mqtt.max_publish_rate``, ``mqtt.max_bytes_rate``).

A bucket holds up to one second's worth of tokens and refills at its rate.
Taking more than it holds is allowed: the balance goes negative, and
:meth:`TokenBucket.take` says how long until it is back to zero.  The
connection stops reading for that long, so a client over its rate is
delayed, never cut off and never has a message dropped; the data it already
sent is handled in order once the wait is over.

Pure arithmetic: the caller passes the time (the event loop's clock).
"""

from __future__ import annotations

__all__ = ["MIN_WAIT", "TokenBucket"]

# Debts shorter than this are carried instead of waited for, so a client just over
# its rate costs one timer per few messages, not one per message.  The average
# rate is the same: the next wait pays the whole debt.
MIN_WAIT = 0.005


class TokenBucket:
    """One read limit of one connection: ``rate`` tokens a second (messages or bytes), owned by
    the connection that reads, which waits as long as :meth:`take` says."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, now: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self._rate = float(rate)
        # One second's worth, and at least one token so that any rate lets something through.
        self._burst = max(self._rate, 1.0)
        self._tokens = self._burst
        self._stamp = now

    def take(self, amount: float, now: float) -> float:
        """Spend ``amount`` tokens; the seconds to wait before taking more (0: none)."""
        tokens = min(self._tokens + (now - self._stamp) * self._rate, self._burst) - amount
        self._tokens = tokens
        self._stamp = now
        if tokens >= 0:
            return 0.0
        wait = -tokens / self._rate
        return wait if wait >= MIN_WAIT else 0.0
