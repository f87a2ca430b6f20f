"""A lease on a Redis key prefix: one live broker writes a prefix at a time.

Two brokers on one prefix both start and diverge: each loads the same queues and hands out the
same messages.  So the Redis store holds ``<prefix>lease`` while it is open: a key set with
``SET NX PX`` whose value names its holder (a random token, the host and the pid), renewed every
third of the lease, deleted on a clean close (only while it is still ours: a compare-and-delete
script).  A broker that dies stops renewing, and the key expires ``lease`` seconds later, so a
crashed broker blocks the restart of its prefix for a few seconds only, and nobody has to clean up.

The future cluster issue lets several nodes share one Redis, and its data, on purpose; until then a
second broker on a prefix is refused at start (:class:`~zanzara.errors.StoreInUse`), and one that
finds its lease taken while it runs says so loudly (see :meth:`Lease._renewed`).

A lease guards against accidents (a second broker started by mistake on the same prefix), not
against a holder that freezes for longer than the lease and then writes on: that needs fencing,
which the cluster work will bring.

Imports only ``errors``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from typing import Any

from redis.exceptions import RedisError

from ..errors import StoreInUse

__all__ = ["DEFAULT_LEASE", "Lease"]

logger = logging.getLogger(__name__)

DEFAULT_LEASE = 5.0  # seconds a dead broker keeps its prefix

# KEYS[1] the lease, ARGV[1] our value, ARGV[2] the lease in milliseconds.
# Returns 1: renewed; 2: it had expired and is ours again; else the value of whoever holds it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return holder
"""
# Deletes the lease only while it is ours: after a lapse another broker may hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """``key`` held by this process in the Redis ``redis`` (a redis-py asyncio client)."""

    def __init__(self, redis: Any, key: str, *, prefix: str, seconds: float = DEFAULT_LEASE) -> None:
        self.key = key
        self.prefix = prefix  # what the lease protects, named in messages
        self.seconds = seconds
        self._redis = redis
        self._ms = max(1, round(seconds * 1000))
        self._value = json.dumps(
            {"token": secrets.token_hex(16), "host": socket.gethostname(), "pid": os.getpid()}
        )
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._task: asyncio.Task[None] | None = None
        self._held = False
        self._lost_to: str | None = None  # the holder last reported, while someone else holds it
        self._unreachable = False

    async def acquire(self) -> None:
        """Take the lease, or raise :class:`StoreInUse` naming the holder and when it expires."""
        for _ in range(3):  # the holder's key may expire between our SET and our GET
            if await self._redis.set(self.key, self._value, nx=True, px=self._ms):
                self._held = True
                return
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(self.key)
            pipe.pttl(self.key)
            holder, ttl_ms = await pipe.execute()
            if holder is None:
                continue
            expires = f"in {ttl_ms / 1000:.1f} s" if ttl_ms >= 0 else "never (the key has no expiry)"
            raise StoreInUse(
                f"redis key prefix {self.prefix!r} is in use by another broker ({_describe(holder)});"
                f" its lease {self.key!r} expires {expires} unless that broker renews it (a broker"
                " that was killed frees it then): stop that broker first, or give this one another"
                " storage.prefix"
            )
        raise StoreInUse(f"redis key prefix {self.prefix!r}: its lease {self.key!r} keeps changing hands")

    def start(self) -> None:
        """Renew the lease every third of its length until :meth:`release`."""
        self._task = asyncio.get_running_loop().create_task(
            self._renew_forever(), name=f"zanzara-lease-{self.prefix}"
        )

    async def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (best effort: else it expires)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        if not self._held:
            return
        self._held = False
        try:
            await self._release(keys=[self.key], args=[self._value])
        except RedisError as exc:
            logger.warning(
                "could not release the lease on redis key prefix %r (%s): it expires within %.1f s",
                self.prefix, exc, self.seconds,
            )  # fmt: skip

    async def _renew_forever(self) -> None:
        while True:
            # A timer, not synchronization: renewals a third of the lease apart leave room for two
            # to fail (Redis slow, or busy) before the lease lapses.
            await asyncio.sleep(self.seconds / 3)
            try:
                answer = await self._renew(keys=[self.key], args=[self._value, self._ms])
            except RedisError as exc:
                if not self._unreachable:
                    logger.warning(
                        "could not renew the lease on redis key prefix %r: %s (it lapses %.1f s after"
                        " the last renewal; retrying)", self.prefix, exc, self.seconds,
                    )  # fmt: skip
                self._unreachable = True
                continue
            self._unreachable = False
            self._renewed(answer)

    def _renewed(self, answer: int | bytes) -> None:
        if answer == 1:
            if self._lost_to is not None:
                logger.warning("holding the lease on redis key prefix %r again", self.prefix)
                self._lost_to = None
            return
        if isinstance(answer, int):  # 2
            # Our renewals came too late (Redis unreachable, the process stalled) or Redis lost
            # the key (restarted without persistence).  Nobody took it meanwhile: ours again.
            logger.warning(
                "the lease on redis key prefix %r had lapsed; nobody else took it, held again", self.prefix
            )
            self._lost_to = None
            return
        # Someone else holds it: a broker started on this prefix while our lease had lapsed, and
        # both now write the same sessions.  We keep serving (stopping would cut off every device
        # over what may be the other broker's mistake) and say so loudly, once per new holder;
        # the renewal goes on, and takes the lease back as soon as the other broker lets it go.
        # The operator must stop one of the two.
        holder = _describe(answer)
        if holder != self._lost_to:
            logger.error(
                "LOST the lease on redis key prefix %r: another broker (%s) holds it now; two brokers"
                " writing one prefix hand out the same queued messages twice: stop one of them",
                self.prefix, holder,
            )  # fmt: skip
            self._lost_to = holder


def _describe(value: bytes) -> str:
    """``pid 123 on host h`` from a lease's value (another version may have written it)."""
    try:
        holder = json.loads(value)
        return f"pid {int(holder['pid'])} on host {holder['host']}"
    except (ValueError, KeyError, TypeError):
        return f"holder {value[:80]!r}"
