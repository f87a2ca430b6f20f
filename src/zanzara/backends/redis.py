"""Redis store (redis-py asyncio): for teams that already run Redis or several nodes.

Each batch of the group commit (``batch.py``) is one call of a small Lua
script that runs the batch's commands in order (``_APPLY``): Redis runs a
script atomically, like ``MULTI``/``EXEC``, and the broker packs one command
and parses one reply per batch instead of two replies per command, which was
most of this store's cost.  Every command in it is idempotent (``HSET``,
``HDEL``, ``ZADD``, ``DEL``...), so a batch whose reply was lost can be sent
again safely.

Durability is Redis's own: with ``appendonly yes`` and ``appendfsync
always`` an acknowledged message survives a crash of Redis and a power loss;
with ``appendfsync everysec`` (Redis's default) a power loss or a Redis
crash may lose the last second; without AOF, whatever came after the last
RDB snapshot.  A ``kill -9`` of the *broker* loses nothing that was
acknowledged, whatever Redis's settings.  The store warns at start when
``durability = "fsync"`` is asked of a Redis that does not fsync each write.

Layout (``P`` is the configured prefix)::

    P sessions            hash   client id -> [expiry interval, disconnected at, quota, quota bytes]
    P wills               hash   client id -> will (``wills.encode_will``)
    P subs:{cid}          hash   topic filter -> [qos, no local, retain as published, sub id, group]
    P q:{cid}             zset   message id, scored by enqueue order
    P qs:{cid}            hash   message id -> [qos, retain, subscription ids]
    P qf:{cid}            hash   message id -> [state, packet id]   (absent while queued)
    P in:{cid}            set    incoming QoS 2 packet ids
    P retained            hash   topic -> message id
    P m:{mid}             hash   the message, stored once
    P r:{mid}             hash   client id -> receipt
    P receipts            zset   "{mid} {cid}" scored by when the receipt was last written
    P lease               string the broker that owns the prefix (``lease.py``), with an expiry

A message is stored once and deleted when no queue or retained topic holds
it.  Who holds what is tracked in this process (it is the only writer of its
prefix), rebuilt from Redis at start; several brokers share one Redis with
one prefix each.  The lease enforces that: a second broker on a prefix fails
at ``open()`` with :class:`~zanzara.errors.StoreInUse`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Literal, assert_never

import hiredis
from redis import asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ..errors import StoreError
from ..message import Message
from ..mqtt.codec import decode_properties, encode_properties
from ..mqtt.enums import PacketType
from ..mqtt.properties import EMPTY_PROPERTIES
from ..storage import DeliveryStatus, QueueRecord, Receipt, SessionRecord, Snapshot, overtaken
from ..topic_tree import SubscriptionEntry
from .batched import BatchedStore
from .folding import Delete, Effect, FoldedSessionDelete, Ordered, Put, fold
from .holders import Holders
from .lease import DEFAULT_LEASE, Lease
from .ops import (
    IncomingDelete,
    IncomingPut,
    Op,
    OutgoingUpdate,
    ReceiptsPurge,
    ReceiptSteps,
    RetainedDelete,
    RetainedPut,
    SessionPut,
    SubscriptionDelete,
    SubscriptionPut,
)
from .receipts import Steps
from .wills import decode_will, encode_will

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

_LOAD_CHUNK = 500  # sessions (or messages) fetched per round trip at start

Command = tuple[Any, ...]

# ARGV is the batch: for each command, its number of words, then the words.  (Commands that
# touch keys not named in KEYS are fine on one Redis server, which is what a prefix lives on.)
_APPLY = """
local i, n = 1, #ARGV
while i <= n do
  local words = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + words))
  i = i + words + 1
end
return n
"""
# Lua's unpack puts every word of a command on the C stack (LUAI_MAXCSTACK is 8000): longer
# commands are split, which all of ours allow (HSET, HDEL, ZADD, ZREM, DEL take many members).
_MAX_WORDS = 4000


class RedisStore(BatchedStore):
    """The :class:`~zanzara.storage.Store` on Redis under ``prefix``, one Lua call per batch.

    ``open()`` takes the prefix's lease (a second broker on it fails with ``StoreInUse``) and
    loads the snapshot; ``durability`` only decides whether a Redis that does not fsync each
    write is warned about, since Redis's own settings decide what survives.
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "zanzara:",
        durability: Literal["fsync", "os"] = "fsync",
        timeout: float = 2.0,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.durability = durability
        # A stopped Redis fails a batch within ``timeout`` (then retried) instead of stalling acks.
        # Typed Any: with decode_responses off every reply is bytes, which redis-py's stubs
        # (``bytes | str`` everywhere) cannot express.
        try:
            self._redis: Any = aioredis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:  # a malformed URL: redis-py says which part
            raise StoreError(f"storage.url {url!r} is not a Redis URL: {exc}") from None
        self._apply_sha = hashlib.sha1(_APPLY.encode(), usedforsecurity=False).hexdigest()
        self._lease = Lease(self._redis, self._k("lease"), prefix=prefix, seconds=lease)
        super().__init__()
        self._holders = Holders()
        # The commands of the batch being written, kept for its retries.
        self._batch: tuple[list[Op], list[Command]] | None = None

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- lifecycle ----------------------------------------------------------------

    async def open(self) -> Snapshot:
        try:
            await self._redis.ping()
            # Before anything is read: what a second broker loaded would be stale at once.
            await self._lease.acquire()
            await self._check_durability()
            snapshot = await self._load()
        except BaseException as exc:
            await self._lease.release()
            await self._redis.aclose()
            if isinstance(exc, RedisError | OSError):
                raise StoreError(f"redis store at {self.url} unavailable (storage.url): {exc}") from exc
            raise
        self._writer.start()
        self._lease.start()
        return snapshot

    async def _check_durability(self) -> None:
        if self.durability != "fsync":
            return
        try:
            aof = await self._redis.config_get("appendonly")
            fsync = await self._redis.config_get("appendfsync")
        except RedisError:
            return  # CONFIG is often disabled on managed Redis; nothing to check then
        # CONFIG GET replies are decoded to str by redis-py whatever decode_responses says.
        if aof.get("appendonly") != "yes" or fsync.get("appendfsync") != "always":
            logger.warning(
                "redis at %s does not fsync every write (appendonly yes, appendfsync always): "
                "a Redis crash or power loss may lose acknowledged messages",
                self.url,
            )

    async def _load(self) -> Snapshot:
        r = self._redis
        snap = Snapshot()
        raw_sessions = await r.hgetall(self._k("sessions"))
        wills = await r.hgetall(self._k("wills"))
        for raw_cid, value in raw_sessions.items():
            # Two items in data written before per-device quotas were kept.
            expiry, disconnected_at, max_queued, max_queued_bytes = [*json.loads(value), None, None][:4]
            will = wills.get(raw_cid)
            snap.sessions.append(
                SessionRecord(
                    client_id=raw_cid.decode(),
                    expiry_interval=expiry,
                    disconnected_at=disconnected_at,
                    will=decode_will(will) if will is not None else None,
                    max_queued=max_queued,
                    max_queued_bytes=max_queued_bytes,
                )
            )
        cids = [s.client_id for s in snap.sessions]
        raw_queues: dict[str, tuple[list[tuple[bytes, float]], dict[bytes, bytes], dict[bytes, bytes]]] = {}
        for start in range(0, len(cids), _LOAD_CHUNK):
            chunk = cids[start : start + _LOAD_CHUNK]
            pipe = r.pipeline(transaction=False)
            for cid in chunk:
                pipe.hgetall(self._k("subs", cid))
                pipe.zrange(self._k("q", cid), 0, -1, withscores=True)
                pipe.hgetall(self._k("qs", cid))
                pipe.hgetall(self._k("qf", cid))
                pipe.smembers(self._k("in", cid))
            results = await pipe.execute()
            for i, cid in enumerate(chunk):
                subs, queue, statics, flights, incoming = results[5 * i : 5 * i + 5]
                for raw_filter, value in subs.items():
                    qos, no_local, rap, sid, group = json.loads(value)
                    snap.subscriptions.append(
                        SubscriptionEntry(
                            client_id=cid,
                            topic_filter=raw_filter.decode(),
                            qos=qos,
                            no_local=no_local,
                            retain_as_published=rap,
                            subscription_id=sid,
                            share_group=group,
                        )
                    )
                if queue:
                    raw_queues[cid] = (queue, statics, flights)
                if incoming:
                    snap.incoming[cid] = {int(pid) for pid in incoming}
        retained = {t.decode(): m.decode() for t, m in (await r.hgetall(self._k("retained"))).items()}
        wanted = set(retained.values())
        for queue, _, _ in raw_queues.values():
            wanted.update(mid.decode() for mid, _ in queue)
        messages = await self._load_messages(sorted(wanted))
        # Rebuild the queues in enqueue order across sessions (inflight entries keep their order too).
        for cid, (queue, statics, flights) in raw_queues.items():
            records = snap.queues.setdefault(cid, [])
            for raw_mid, score in queue:
                self._seq = max(self._seq, int(score))
                mid = raw_mid.decode()
                message = messages.get(mid)
                static = statics.get(raw_mid)
                if message is None or static is None:
                    continue
                qos, retain, sub_ids = json.loads(static)
                state, packet_id = json.loads(flights[raw_mid]) if raw_mid in flights else ("queued", 0)
                records.append(
                    QueueRecord(
                        message=message,
                        qos=qos,
                        retain=retain,
                        subscription_ids=tuple(sub_ids),
                        status=DeliveryStatus(state),
                        packet_id=packet_id,
                    )
                )
                self._holders.hold(mid, cid)
        for topic, mid in retained.items():
            message = messages.get(mid)
            if message is not None:
                snap.retained.append(message)
                self._holders.retain(topic, mid)
        return snap

    async def _load_messages(self, mids: list[str]) -> dict[str, Message]:
        out: dict[str, Message] = {}
        for start in range(0, len(mids), _LOAD_CHUNK):
            chunk = mids[start : start + _LOAD_CHUNK]
            pipe = self._redis.pipeline(transaction=False)
            for mid in chunk:
                pipe.hgetall(self._k("m", mid))
            for mid, fields in zip(chunk, await pipe.execute(), strict=True):
                if fields:
                    out[mid] = _message(mid, fields)
        return out

    async def close(self) -> None:
        self._receipts.due()
        await self._writer.close()
        await self._lease.release()  # after the last write: a successor starts from all of it
        await self._redis.aclose()

    async def receipts(self, message_id: str) -> list[Receipt]:
        self._receipts.due()
        await self._writer.flush()
        try:
            rows = await self._redis.hgetall(self._k("r", message_id))
        except RedisError as exc:
            raise StoreError(f"redis store unavailable: {exc}") from exc
        out = [_receipt(message_id, cid.decode(), value) for cid, value in rows.items()]
        out.sort(key=lambda rec: rec.client_id)
        return out

    # -- writing ----------------------------------------------------------------------

    async def _write(self, ops: list[Op]) -> None:
        receipts = self._receipts.take()
        try:
            if self._batch is None or self._batch[0] is not ops:
                # Reads first (they may fail): the translation below must run once per batch,
                # as it updates who holds which message.
                purged = await self._purge_candidates(ops)
                self._batch = (ops, self._translate(ops, purged))
            argv: list[Any] = []
            for command in self._batch[1]:
                _append(argv, command)
            if receipts is not None:
                for command in self._receipt_commands(receipts):
                    _append(argv, command)
            if argv:
                await self._run_batch(argv)
        except BaseException:
            self._receipts.give_back(receipts)
            raise
        self._batch = None

    async def _run_batch(self, argv: list[Any]) -> None:
        """EVALSHA _APPLY with the batch, packed by hiredis (~0.1 us a word; redis-py packs in
        Python at ~1.2 us, which was a quarter of the broker's time in a persistent fan-in)."""
        pool = self._redis.connection_pool
        conn = await pool.get_connection()
        try:
            for attempt in range(2):
                await conn.send_packed_command(
                    hiredis.pack_command(("EVALSHA", self._apply_sha, 0, *argv)), check_health=False
                )
                try:
                    await conn.read_response()
                    return
                except NoScriptError:
                    if attempt:
                        raise
                    # A restarted or flushed Redis forgot the script: load it, send again.
                    await conn.send_command("SCRIPT", "LOAD", _APPLY)
                    await conn.read_response()
        except BaseException as exc:
            if not isinstance(exc, ResponseError):
                await conn.disconnect()  # its state is unknown: the batch is retried on a new one
            raise
        finally:
            await pool.release(conn)

    async def _purge_candidates(self, ops: list[Op]) -> list[bytes]:
        befores = [op.before for op in ops if type(op) is ReceiptsPurge]
        if not befores:
            return []
        key = self._k("receipts")
        members: list[bytes] = await self._redis.zrangebyscore(key, "-inf", f"({max(befores)}")
        return members

    def _translate(self, ops: list[Op], purged: list[bytes]) -> list[Command]:
        """The batch as Redis commands: one per key and kind for the queues (``folding.py``)."""
        k = self._k
        folded = fold(ops, self._holders)
        cmds: list[Command] = []
        for op in folded.ordered:
            cmds += self._commands(op)
        for mid, msg in folded.new_messages.items():
            cmds.append(("HSET", k("m", mid), *_message_fields(msg)))
        statics: dict[tuple[int, bool, tuple[int, ...]], str] = {}  # shared by the queues' puts
        for cid, entries in folded.queues.items():
            cmds += self._queue_commands(cid, entries, statics)
        if folded.freed_messages:
            cmds.append(("DEL", *(k("m", mid) for mid in folded.freed_messages)))
        if purged:
            cmds += self._purge_commands(purged)
        return cmds

    def _commands(self, op: Ordered) -> list[Command]:
        """The commands of one operation that folding kept in order."""
        k = self._k
        match op:
            case IncomingPut(client_id, packet_id):
                return [("SADD", k("in", client_id), packet_id)]
            case IncomingDelete(client_id, packet_id):
                return [("SREM", k("in", client_id), packet_id)]
            case SessionPut(record):
                return self._session_put(record)
            case FoldedSessionDelete(client_id):
                # Its keys go whole: Redis needs no list of the held message ids (SQLite does).
                keys = (k(name, client_id) for name in ("subs", "q", "qs", "qf", "in"))
                return [("HDEL", k("sessions"), client_id), ("HDEL", k("wills"), client_id), ("DEL", *keys)]
            case SubscriptionPut(entry):
                return [self._subscription_put(entry)]
            case SubscriptionDelete(client_id, topic_filter):
                return [("HDEL", k("subs", client_id), topic_filter)]
            case RetainedPut(message):
                return [("HSET", k("retained"), message.topic, _id(message))]
            case RetainedDelete(topic):
                return [("HDEL", k("retained"), topic)]
            case ReceiptSteps() | ReceiptsPurge():
                return []  # receipts are added to every batch in _write; purges read beforehand
            case _:
                assert_never(op)

    def _session_put(self, rec: SessionRecord) -> list[Command]:
        k = self._k
        value = json.dumps([rec.expiry_interval, rec.disconnected_at, rec.max_queued, rec.max_queued_bytes])
        if rec.will is None:
            will: Command = ("HDEL", k("wills"), rec.client_id)
        else:
            will = ("HSET", k("wills"), rec.client_id, encode_will(rec.will))
        return [("HSET", k("sessions"), rec.client_id, value), will]

    def _subscription_put(self, e: SubscriptionEntry) -> Command:
        value = json.dumps([e.qos, e.no_local, e.retain_as_published, e.subscription_id, e.share_group])
        return ("HSET", self._k("subs", e.client_id), e.topic_filter, value)

    def _queue_commands(
        self, cid: str, entries: dict[str, Effect], statics: dict[tuple[int, bool, tuple[int, ...]], str]
    ) -> list[Command]:
        """One client's queue effects as one command per key and kind."""
        k = self._k
        scores: list[object] = []
        fields: list[str] = []
        flights: list[object] = []
        landed: list[str] = []
        removed: list[str] = []
        for mid, effect in entries.items():
            if type(effect) is Delete:
                removed.append(mid)
                continue
            if type(effect) is Put:
                rec = effect.record
                key = (rec.qos, rec.retain, rec.subscription_ids)
                static = statics.get(key)
                if static is None:
                    static = statics[key] = json.dumps([rec.qos, rec.retain, list(rec.subscription_ids)])
                scores += (effect.seq, mid)
                fields += (mid, static)
                state, packet_id = effect.status, effect.packet_id
            elif type(effect) is OutgoingUpdate:  # the entry's last update
                state, packet_id = effect.status, effect.packet_id
            else:
                continue
            if state is DeliveryStatus.QUEUED:
                landed.append(mid)
            else:
                flights += (mid, f'["{state}",{packet_id}]')  # JSON; json.dumps costs ten times as much
        cmds: list[Command] = []
        if scores:
            cmds.append(("ZADD", k("q", cid), *scores))
            cmds.append(("HSET", k("qs", cid), *fields))
        if flights:
            cmds.append(("HSET", k("qf", cid), *flights))
        if landed:
            cmds.append(("HDEL", k("qf", cid), *landed))
        if removed:
            cmds.append(("ZREM", k("q", cid), *removed))
            cmds.append(("HDEL", k("qs", cid), *removed))
            cmds.append(("HDEL", k("qf", cid), *removed))
        return cmds

    def _purge_commands(self, purged: list[bytes]) -> list[Command]:
        """Delete the receipts the purge found (``_purge_candidates``), from both keys."""
        by_message: dict[str, list[str]] = {}
        for member in purged:
            mid, _, cid = member.decode().partition(" ")
            by_message.setdefault(mid, []).append(cid)
        cmds: list[Command] = [("HDEL", self._k("r", mid), *cids) for mid, cids in by_message.items()]
        cmds.append(("ZREM", self._k("receipts"), *purged))
        return cmds

    def _receipt_commands(self, steps: Steps) -> list[Command]:
        """Each step's receipt (later steps last, none a later step overtook): its JSON in the
        message's hash, its updated_at in the purge index."""
        by_message: dict[str, list[str]] = {}
        scores: list[Any] = []
        # A float's repr costs ~0.45 us and a receipt has up to four; but a drain's deliveries
        # share their times (one per window sent, one per run of PUBACKs), so each is made once.
        reprs: dict[float, str] = {}
        for status, outs in steps.items():
            for out in outs:
                if overtaken(status, out):
                    continue
                mid: str = out.message.message_id  # type: ignore[assignment]  # QoS 1/2: it has one
                cid = out.client_id
                q, s, a, f = out.queued_at or None, out.sent_at, out.acknowledged_at, out.finished_at
                r = out.reason
                value = (
                    f'["{status}",{_json_time(q, reprs)},{_json_time(s, reprs)},{_json_time(a, reprs)},'
                    f"{_json_time(f, reprs)},{'null' if r is None else json.dumps(r)}]"
                )
                fields = by_message.get(mid)
                if fields is None:
                    by_message[mid] = [cid, value]
                else:
                    fields += (cid, value)
                updated_at = f or a or s or q or 0.0  # Receipt.updated_at
                scores += (_json_time(updated_at, reprs), f"{mid} {cid}")
        cmds: list[Command] = [("HSET", self._k("r", mid), *fields) for mid, fields in by_message.items()]
        if scores:  # every step may have been overtaken since (by one of a later batch)
            cmds.append(("ZADD", self._k("receipts"), *scores))
        return cmds


def _json_time(t: float | None, reprs: dict[float, str]) -> str:
    """A receipt time as JSON (json.dumps writes floats as repr), from ``reprs`` when made before."""
    if t is None:
        return "null"
    text = reprs.get(t)
    if text is None:
        text = reprs[t] = repr(t)
    return text


def _id(msg: Message) -> str:
    # Every stored message has one: QoS 1/2 and retained messages are always given an id.
    if msg.message_id is None:
        raise ValueError(f"a message on {msg.topic!r} without a message id cannot be stored")
    return msg.message_id


def _message_fields(msg: Message) -> list[Any]:
    fields: list[Any] = [
        "t", msg.topic, "p", msg.payload, "q", msg.qos, "r", int(msg.retain),
        "y", msg.priority, "c", repr(msg.created_at),
    ]  # fmt: skip
    if msg.properties is not EMPTY_PROPERTIES:
        fields += ["pr", encode_properties(msg.properties, PacketType.PUBLISH)]
    if msg.expires_at is not None:
        fields += ["e", repr(msg.expires_at)]
    if msg.sender is not None:
        fields += ["s", msg.sender]
    if msg.collapse_key is not None:
        fields += ["k", msg.collapse_key]
    return fields


def _message(mid: str, f: dict[bytes, bytes]) -> Message:
    props = f.get(b"pr")
    expires = f.get(b"e")
    sender = f.get(b"s")
    key = f.get(b"k")
    return Message(
        message_id=mid,
        topic=f[b"t"].decode(),
        payload=f[b"p"],
        qos=int(f[b"q"]),
        retain=f[b"r"] == b"1",
        properties=decode_properties(props, PacketType.PUBLISH) if props else EMPTY_PROPERTIES,
        expires_at=float(expires) if expires is not None else None,
        priority=int(f[b"y"]),
        sender=sender.decode() if sender is not None else None,
        created_at=float(f[b"c"]),
        collapse_key=key.decode() if key is not None else None,
    )


def _receipt(message_id: str, client_id: str, value: bytes) -> Receipt:
    status, queued_at, sent_at, acknowledged_at, finished_at, reason = json.loads(value)
    return Receipt(
        message_id=message_id,
        client_id=client_id,
        status=DeliveryStatus(status),
        queued_at=queued_at,
        sent_at=sent_at,
        acknowledged_at=acknowledged_at,
        finished_at=finished_at,
        reason=reason,
    )


def _append(argv: list[Any], command: Command) -> None:
    """Add ``command`` to a batch for _APPLY, split into commands of at most _MAX_WORDS words."""
    if len(command) <= _MAX_WORDS:
        argv.append(len(command))
        argv.extend(command)
        return
    # The command name and key, then members; ZADD's come in (score, member) pairs.
    head, members = command[:2], command[2:]
    step = _MAX_WORDS - 2
    if command[0] == "ZADD" and step % 2:
        step -= 1
    for start in range(0, len(members), step):
        part = members[start : start + step]
        argv.append(len(head) + len(part))
        argv.extend(head)
        argv.extend(part)
