"""The queue on Redis Streams: how requests reach workers and results come back.

Keys (all under `settings.queue_prefix`, `P` below):

- `P:requests:<label>`: one request stream per label, read by the consumer group
  `settings.queue_group` with `XREADGROUP ... COUNT n`, so one read is one batch.
- `P:replies:<reply_to>`: one result stream per bot process; a restarted bot replays
  it from its last position.
- `P:result:<request_id>`: the first answer to a request, kept `queue_result_ttl_s`;
  a request whose id is answered already is replayed from here, never sampled twice.
- `P:dead-letter`: entries nobody can serve, with the reason.
- `P:heartbeat:<worker_id>`: each live worker's models and queue lag, expiring.

Acknowledgement comes last: one Lua script stores the result key, appends to the
reply stream and `XACK`s, so an entry is either answered and acknowledged or still
pending. Entries pending longer than `queue_claim_idle_ms` (a crashed worker's) are
taken over with `XAUTOCLAIM`; past `queue_max_deliveries` they are dead-lettered.

Bounds without silent loss: reply and dead-letter streams are capped with
`MAXLEN ~` (an answer trimmed from a reply stream can still be fetched from its result
key while that lives). Request streams are never capped at `XADD`, which could drop
work nobody has read; instead `trim` removes entries below the group's acknowledged
frontier (`XTRIM MINID ~` at the oldest pending entry, or the last delivered one when
none is pending), and clients stop adding work past `queue_max_length` (backpressure).

Memory: an answer lives as long as someone may read it. Its result key expires
`queue_result_grace_s` after the request's deadline (at most `queue_result_ttl_s`);
a client trims what it has read from its reply stream (`forget_replies`), and a reply
stream nobody writes to expires after `queue_result_ttl_s`.

Nothing read from Redis is trusted: stream entries are read as bytes and screened one
by one, so an entry that is not UTF-8, not JSON or not a request is dead-lettered with
its reason, within its delivery limit, and never costs the entries read beside it.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker.errors import QueueUnavailable
from worker.protocol import (
    ErrorCode,
    GenerateRequest,
    GenerateResult,
    ProtocolError,
    decode_request,
    decode_result,
    salvage_request_fields,
)
from worker.settings import WorkerSettings
from worker.transport import DeadLetter, Delivery, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")

# KEYS: result key, reply stream, request stream.
# ARGV: result json, result ttl s, reply maxlen, group, entry id, mode ("store" or
# "replay"), reply stream ttl s.
# Stores the first answer only and always sends the stored one, then acknowledges. The
# reply stream's expiry is pushed back on every answer, so only an abandoned one expires.
_COMPLETE_SCRIPT = """
local payload = ARGV[1]
if ARGV[6] == 'store' then
  local previous = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'EX', ARGV[2])
  if previous then payload = previous end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'result', payload)
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('XACK', KEYS[3], ARGV[4], ARGV[5])
return 1
"""

# KEYS: request stream. ARGV: group, most undelivered entries worth counting.
# -> {pending, undelivered}. The backlog from what cannot drift: the pending list's
# size, and the entries after the group's last delivered id, counted here. XINFO's
# `lag` is not used: Redis 7.0 and 7.2 restore a stale `entries-read` from an AOF
# rewrite (and replicas carry one after a failover), and that lag then stays wrong
# for good (fixed in Redis 7.4, redis/redis#12898).
_BACKLOG_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  if info['name'] == ARGV[1] then
    local after = '(' .. info['last-delivered-id']
    local undelivered = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', ARGV[2])
    return {info['pending'], #undelivered}
  end
end
return {0, redis.call('XLEN', KEYS[1])}
"""

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
_RECLAIM_EVERY_S = 1.0  # with nothing left to take over, look again after this long
# A dead letter keeps this much of its entry: enough to see what it was, while a
# hostile 8 MB entry costs the capped dead-letter stream no more than a sane one.
_DEAD_LETTER_PAYLOAD_BYTES = 16 * 1024


def _block(block_ms: int) -> list:
    return ["BLOCK", block_ms] if block_ms > 0 else []


def _text(value) -> str:
    """A stream id, field name or similar read as bytes, as text; never raises."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


class RedisStreamsTransport(Transport):
    def __init__(self, settings: WorkerSettings | None = None, url: str | None = None) -> None:
        self.settings = settings or WorkerSettings()
        self.prefix = self.settings.queue_prefix
        self.group = self.settings.queue_group
        # A bounded pool that makes callers wait for a free connection: a burst of
        # submits queues up here instead of failing with "too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url or self.settings.redis_url,
            max_connections=self.settings.queue_max_connections,
            timeout=self.settings.queue_reconnect_s,
            decode_responses=True,
            health_check_interval=10,
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self._complete = self.redis.register_script(_COMPLETE_SCRIPT)
        self._backlog = self.redis.register_script(_BACKLOG_SCRIPT)
        self._groups_ready: set[str] = set()
        # Per request stream: where the next XAUTOCLAIM scan starts, and when it is due.
        self._claim_cursor: dict[str, str] = {}
        self._reclaim_due: dict[str, float] = {}
        # Bumped whenever Redis came back after failing us; clients watch it to
        # resubmit what a restarted server may have lost.
        self.connection_epoch = 0
        self._broken = False

    # --- keys --------------------------------------------------------------

    def request_stream(self, label: str) -> str:
        return f"{self.prefix}:requests:{label}"

    def reply_stream(self, reply_to: str) -> str:
        return f"{self.prefix}:replies:{reply_to}"

    def result_key(self, request_id: str) -> str:
        return f"{self.prefix}:result:{request_id}"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.prefix}:dead-letter"

    def heartbeat_key(self, worker_id: str) -> str:
        return f"{self.prefix}:heartbeat:{worker_id}"

    # --- resilience --------------------------------------------------------

    async def _retrying(
        self, operation: Callable[[], Awaitable[T]], wait_s: float | None = None
    ) -> T:
        """Run `operation`, waiting out a Redis outage of up to `wait_s` (default
        queue_reconnect_s); past that, `QueueUnavailable`, never a raw connection error."""
        wait_s = self.settings.queue_reconnect_s if wait_s is None else wait_s
        give_up = time.monotonic() + wait_s
        delay = 0.05
        while True:
            try:
                value = await operation()
            except _CONNECTION_ERRORS as error:
                if not self._broken:
                    log.warning("redis unavailable (%s); retrying", error)
                self._broken = True
                if time.monotonic() > give_up:
                    retry_after = max(1, round(self.settings.queue_submit_wait_s))
                    raise QueueUnavailable(
                        f"the queue is unreachable ({type(error).__name__}); "
                        f"try again in {retry_after} s",
                        retry_after,
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if self._broken:
                self._broken = False
                self.connection_epoch += 1
                self._groups_ready.clear()  # a restarted server may have lost them
                log.info("redis is back")
            return value

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups_ready:
            return
        try:
            # From id 0, so requests added before any worker existed are served too.
            await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._groups_ready.add(stream)

    async def _raw(self, *command):
        """A stream read answered with bytes, whatever the client decodes: entries are
        decoded one by one, so one that is not UTF-8 cannot fail the whole read (and every
        entry read with it). redis-py still parses the reply's shape."""
        return await self.redis.execute_command(*command, **{NEVER_DECODE: True})

    # --- client side -------------------------------------------------------

    async def submit(self, request: GenerateRequest) -> None:
        stream = self.request_stream(request.label)
        await self._retrying(
            lambda: self.redis.xadd(stream, {"request": request.to_json()}),
            self.settings.queue_submit_wait_s,
        )

    async def queue_depth(self, label: str) -> int:
        return await self._retrying(
            lambda: self._queue_depth(label), self.settings.queue_submit_wait_s
        )

    async def _queue_depth(self, label: str) -> int:
        pending, undelivered = await self._counted_backlog(label)
        return pending + undelivered

    async def queue_backlog(self, label: str) -> tuple[int, int]:
        return await self._retrying(
            lambda: self._counted_backlog(label), self.settings.queue_submit_wait_s
        )

    async def _counted_backlog(self, label: str) -> tuple[int, int]:
        # Past twice the limit only "more" matters: the count stays cheap at any backlog.
        cap = self.settings.queue_max_length * 2
        pending, undelivered = await self._backlog(
            keys=[self.request_stream(label)], args=[self.group, cap]
        )
        return int(pending), int(undelivered)

    async def read_results(
        self, reply_to: str, after: str, block_ms: int
    ) -> list[tuple[str, GenerateResult | None]]:
        stream = self.reply_stream(reply_to)
        answer = await self._retrying(
            lambda: self._raw("XREAD", "COUNT", 500, *_block(block_ms), "STREAMS", stream, after)
        )
        results = []
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                position = _text(entry_id)
                results.append((position, self._read_reply(stream, position, fields)))
        return results

    def _read_reply(self, stream: str, position: str, fields) -> GenerateResult | None:
        """The result an entry holds; for one that cannot be read, a failure for its request
        when the request can be told, else None (the reader moves past it either way)."""
        raw = fields.get(b"result", b"") if isinstance(fields, dict) else b""
        try:
            return decode_result(raw)
        except ProtocolError as error:
            log.error("unreadable result %s on %s: %s", position, stream, error)
            request_id, _reply_to = salvage_request_fields(raw)
            if request_id is None:
                return None
            return GenerateResult.failure(
                request_id, ErrorCode.UNREADABLE_REPLY, f"the answer could not be read: {error}"
            )

    async def forget_replies(self, reply_to: str, upto: str) -> None:
        """Drop the entries before `upto` (already read) from the reply stream: answers
        are the largest thing in Redis, and nobody reads these again."""
        stream = self.reply_stream(reply_to)
        await self._retrying(lambda: self.redis.xtrim(stream, minid=upto, approximate=False))

    async def latest_position(self, reply_to: str) -> str:
        newest = await self._retrying(
            lambda: self.redis.xrevrange(self.reply_stream(reply_to), count=1)
        )
        return newest[0][0] if newest else "0"

    async def fetch_result(self, request_id: str) -> GenerateResult | None:
        stored = await self.stored_results([request_id])
        return stored.get(request_id)

    # --- worker side -------------------------------------------------------

    async def fetch(
        self, label: str, consumer: str, max_count: int, block_ms: int
    ) -> list[Delivery]:
        stream = self.request_stream(label)
        while True:
            try:
                return await self._retrying(
                    lambda: self._fetch(stream, label, consumer, max_count, block_ms)
                )
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                self._groups_ready.discard(stream)  # Redis lost it (restart); make it again

    async def _fetch(
        self, stream: str, label: str, consumer: str, max_count: int, block_ms: int
    ) -> list[Delivery]:
        await self._ensure_group(stream)
        raw: list[tuple[str, dict, int]] = []
        if time.monotonic() >= self._reclaim_due.get(stream, 0.0):
            raw += await self._reclaim(stream, consumer, max_count)
        if len(raw) < max_count:
            answer = await self._raw(
                "XREADGROUP",
                "GROUP",
                self.group,
                consumer,
                "COUNT",
                max_count - len(raw),
                *([] if raw else _block(block_ms)),
                "STREAMS",
                stream,
                ">",
            )
            for _stream, entries in answer or []:
                raw += [(_text(entry_id), fields, 1) for entry_id, fields in entries]
        deliveries = []
        for entry_id, fields, delivery_count in raw:
            delivery = await self._screen_safely(
                stream, label, consumer, entry_id, fields, delivery_count
            )
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def _reclaim(self, stream: str, consumer: str, max_count: int) -> list:
        """Entries idle past queue_claim_idle_ms, now ours, with their delivery counts.

        Each scan resumes where the last one stopped (XAUTOCLAIM's cursor), so fresh
        entries at the head of the pending list cannot hide idle ones behind them; while
        scans still find work or have ground left to cover they run on every fetch, and
        once the whole list was covered with nothing to take, after `_RECLAIM_EVERY_S`.
        """
        cursor, claimed, *_deleted = await self._raw(
            "XAUTOCLAIM",
            stream,
            self.group,
            consumer,
            self.settings.queue_claim_idle_ms,
            self._claim_cursor.get(stream, "0-0"),
            "COUNT",
            max_count,
        )
        cursor = _text(cursor)
        self._claim_cursor[stream] = cursor
        more = cursor != "0-0" or len(claimed) >= max_count
        self._reclaim_due[stream] = time.monotonic() + (0.0 if more else _RECLAIM_EVERY_S)
        # XAUTOCLAIM drops entries deleted from the stream and answers others with no
        # fields (None); what is left to screen are the real entries.
        claimed = [(_text(entry_id), fields) for entry_id, fields in claimed if entry_id]
        if not claimed:
            return []
        pending = await self.redis.xpending_range(
            stream,
            self.group,
            min=claimed[0][0],
            max=claimed[-1][0],
            count=len(claimed) * 4,
            consumername=consumer,
        )
        counts = {p["message_id"]: p["times_delivered"] for p in pending}
        log.warning("reclaimed %d entries from %s idle workers", len(claimed), stream)
        return [(entry_id, fields, counts.get(entry_id, 2)) for entry_id, fields in claimed]

    async def _screen_safely(self, stream, label, consumer, entry_id, fields, delivery_count):
        """`_screen`, with anything it raises about the entry turned into a dead letter.

        A connection error is not about the entry: it propagates, and the entry stays
        pending for the next reader."""
        try:
            return await self._screen(stream, label, consumer, entry_id, fields, delivery_count)
        except _CONNECTION_ERRORS:
            raise
        except Exception as error:  # a bug meeting a strange entry: it must not stall the batch
            log.exception("entry %s on %s could not be screened", entry_id, stream)
            reason = f"could not be screened: {type(error).__name__}: {error}"
            await self._dead_letter_unparsed(stream, label, consumer, entry_id, fields, reason)
            return None

    async def _screen(
        self, stream, label, consumer, entry_id, fields, delivery_count
    ) -> Delivery | None:
        """The entry as a Delivery, or None once it is dead-lettered as unservable."""
        payload = fields.get(b"request", b"") if isinstance(fields, dict) else b""
        limit = self.settings.queue_max_deliveries
        if delivery_count > limit:
            # Checked before parsing, so even an entry whose parsing kills workers stops here.
            reason = (
                f"delivered {delivery_count} times without an answer "
                f"(limit {limit}); it may crash workers"
            )
            try:
                request = decode_request(payload)
            except ProtocolError:
                await self._dead_letter_unparsed(
                    stream, label, consumer, entry_id, fields, reason, delivery_count
                )
                return None
            delivery = Delivery(entry_id, label, request, payload.decode(), delivery_count)
            failure = GenerateResult.failure(
                request.request_id, ErrorCode.TOO_MANY_DELIVERIES, reason, consumer
            )
            await self.dead_letter(delivery, reason, failure, consumer)
            return None
        try:
            request = decode_request(payload)
        except ProtocolError as error:
            await self._dead_letter_unparsed(
                stream, label, consumer, entry_id, fields, str(error), delivery_count
            )
            return None
        delivery = Delivery(entry_id, label, request, payload.decode(), delivery_count)
        if request.label != label:
            failure = GenerateResult.failure(
                request.request_id,
                ErrorCode.INVALID_REQUEST,
                f"a {request.label} request on the {label} stream",
                consumer,
            )
            await self.dead_letter(delivery, failure.error_message, failure, consumer)
            return None
        return delivery

    async def _dead_letter_unparsed(
        self, stream, label, consumer, entry_id, fields, reason: str, count: int = 1
    ):
        """Dead-letter an entry that is not a request (as bytes), tell its sender if the
        request id and reply stream can be read, and acknowledge it."""
        raw = fields.get(b"request", b"") if isinstance(fields, dict) else b""
        if not raw:  # no request field at all: keep what there is to see
            raw = repr(fields).encode("utf-8", "backslashreplace")
        await self._record_dead_letter(entry_id, label, reason, raw, count, consumer)
        request_id, reply_to = salvage_request_fields(raw)
        if request_id and reply_to:
            # Enough survived to tell the sender, instead of leaving it to time out.
            failure = GenerateResult.failure(
                request_id, ErrorCode.INVALID_REQUEST, reason, consumer
            )
            reply = self.reply_stream(reply_to)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    reply,
                    {"result": failure.to_json()},
                    maxlen=self.settings.queue_reply_maxlen,
                    approximate=True,
                )
                pipe.expire(reply, self.settings.queue_result_ttl_s)
                await pipe.execute()
        await self.redis.xack(stream, self.group, entry_id)

    async def _record_dead_letter(self, entry_id, label, reason, payload, count, worker_id):
        if isinstance(payload, str):
            payload = payload.encode()
        if len(payload) > _DEAD_LETTER_PAYLOAD_BYTES:
            kept = _DEAD_LETTER_PAYLOAD_BYTES
            reason = f"{reason} (payload of {len(payload)} bytes, the first {kept} kept)"
            payload = payload[:_DEAD_LETTER_PAYLOAD_BYTES]
        await self.redis.xadd(
            self.dead_letter_stream,
            {
                "entry_id": entry_id,
                "label": label,
                "reason": reason,
                "payload": payload,
                "delivery_count": str(count),
                "worker_id": worker_id or "",
                "at": f"{time.time():.3f}",
            },
            maxlen=self.settings.queue_dead_letter_maxlen,
            approximate=True,
        )

    async def stored_results(self, request_ids: list[str]) -> dict[str, GenerateResult]:
        if not request_ids:
            return {}
        keys = [self.result_key(rid) for rid in request_ids]
        values = await self._retrying(lambda: self.redis.mget(keys))
        stored = {}
        for request_id, value in zip(request_ids, values, strict=True):
            if value is not None:
                try:
                    stored[request_id] = decode_result(value)
                except ProtocolError:  # written by another protocol version: sample again
                    continue
        return stored

    def _result_ttl_s(self, request: GenerateRequest) -> int:
        """How long an answer is kept: until nobody waits for it (the request's deadline
        plus queue_result_grace_s), at most queue_result_ttl_s."""
        ttl = self.settings.queue_result_ttl_s
        if request.deadline is not None:
            left = request.deadline - time.time() + self.settings.queue_result_grace_s
            ttl = min(ttl, left)
        return max(1, int(ttl))

    def _complete_call(self, delivery: Delivery, result: GenerateResult, mode: str) -> dict:
        """The keys and arguments of `_COMPLETE_SCRIPT` for one answer."""
        return {
            "keys": [
                self.result_key(delivery.request.request_id),
                self.reply_stream(delivery.request.reply_to),
                self.request_stream(delivery.label),
            ],
            "args": [
                result.to_json(),
                self._result_ttl_s(delivery.request),
                self.settings.queue_reply_maxlen,
                self.group,
                delivery.entry_id,
                mode,
                self.settings.queue_result_ttl_s,
            ],
        }

    async def _send(self, delivery: Delivery, result: GenerateResult, mode: str) -> None:
        call = self._complete_call(delivery, result, mode)
        await self._retrying(lambda: self._complete(**call))

    async def complete(self, delivery: Delivery, result: GenerateResult) -> None:
        await self._send(delivery, result, "store")

    async def complete_many(self, answers: list[tuple[Delivery, GenerateResult]]) -> None:
        """Every answer of a batch in one pipeline (not a transaction): one round trip
        instead of one per request, each script still atomic on its own. Retried whole
        after a lost connection, which is safe: the script stores the first answer only
        and acknowledging twice is a no-op."""
        if not answers:
            return
        calls = [self._complete_call(delivery, result, "store") for delivery, result in answers]
        sha = self._complete.sha

        async def send_all():
            # EVALSHA by hand: a pipeline given registered scripts first asks Redis whether
            # it has them (SCRIPT EXISTS), one more round trip per batch, and on a busy CPU
            # one more wait for Redis to be scheduled.
            for attempt in range(2):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for call in calls:
                        pipe.evalsha(sha, len(call["keys"]), *call["keys"], *call["args"])
                    try:
                        await pipe.execute()
                        return
                    except NoScriptError:
                        if attempt:
                            raise
                # Redis lost its scripts (a restart, SCRIPT FLUSH): load it, send again;
                # answers already stored stay the first, so sending twice is safe.
                await self.redis.script_load(_COMPLETE_SCRIPT)

        await self._retrying(send_all)

    async def replay(self, delivery: Delivery, stored: GenerateResult) -> None:
        await self._send(delivery, stored, "replay")

    async def dead_letter(
        self, delivery: Delivery, reason: str, result: GenerateResult, worker_id: str
    ) -> None:
        await self._retrying(
            lambda: self._record_dead_letter(
                delivery.entry_id,
                delivery.label,
                reason,
                delivery.payload,
                delivery.delivery_count,
                worker_id,
            )
        )
        await self.complete(delivery, result)

    async def release(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            stream = self.request_stream(delivery.label)
            async with self.redis.pipeline(transaction=True) as pipe:
                # Re-queue at the tail and acknowledge the old entry in one step, so the
                # request is neither lost nor left pending until the claim timeout.
                pipe.xadd(stream, {"request": delivery.payload})
                pipe.xack(stream, self.group, delivery.entry_id)
                await pipe.execute()

    async def heartbeat(self, worker_id: str, info: dict, ttl_s: float) -> None:
        await self.redis.set(
            self.heartbeat_key(worker_id), json.dumps(info), px=max(1, int(ttl_s * 1000))
        )

    async def heartbeats(self) -> dict[str, dict]:
        keys = [key async for key in self.redis.scan_iter(match=self.heartbeat_key("*"))]
        if not keys:
            return {}
        values = await self.redis.mget(keys)
        found = {}
        for value in values:
            with contextlib.suppress(ValueError, KeyError, TypeError):  # not a worker's
                info = json.loads(value)
                found[info["worker_id"]] = info
        return found

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        entries = await self._raw("XREVRANGE", self.dead_letter_stream, "+", "-", "COUNT", limit)
        letters = []
        for entry_id, fields in reversed(entries):
            text = {_text(key): _text(value) for key, value in fields.items()}
            milliseconds = _text(entry_id).split("-")[0]  # a stream id starts with its time
            letters.append(
                DeadLetter(
                    text.get("entry_id", ""),
                    text.get("label", ""),
                    text.get("reason", ""),
                    text.get("payload", ""),
                    int(text.get("delivery_count") or 0),
                    text.get("worker_id") or None,
                    int(milliseconds) / 1000 if milliseconds.isdigit() else None,
                )
            )
        return letters

    async def dead_letter_count(self) -> int:
        return await self.redis.xlen(self.dead_letter_stream)

    async def trim(self, label: str) -> None:
        """Drop acknowledged entries: everything older than the oldest still pending."""
        stream = self.request_stream(label)
        try:
            groups = await self.redis.xinfo_groups(stream)
            summary = await self.redis.xpending(stream, self.group)
        except ResponseError:
            return
        frontiers = [g["last-delivered-id"] for g in groups]
        if summary and summary.get("pending"):
            frontiers.append(summary["min"])
        if frontiers:
            oldest = min(frontiers, key=lambda i: tuple(int(p) for p in i.split("-")))
            await self.redis.xtrim(stream, minid=oldest, approximate=True)

    async def delete_queue(self) -> None:
        """Every key under this transport's prefix: for benches and tests on a scratch
        prefix, never a live queue."""
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*")]
        for start in range(0, len(keys), 500):
            await self.redis.delete(*keys[start : start + 500])

    async def close(self) -> None:
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()
