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
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
# ARGV: result json, ttl s, reply maxlen, group, entry id, mode ("store" or "replay").
# Stores the first answer only and always sends the stored one, then acknowledges.
_COMPLETE_SCRIPT = """
local payload = ARGV[1]
if ARGV[6] == 'store' then
  local previous = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'EX', ARGV[2])
  if previous then payload = previous end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'result', payload)
redis.call('XACK', KEYS[3], ARGV[4], ARGV[5])
return 1
"""

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
_RECLAIM_EVERY_S = 1.0  # XAUTOCLAIM scans the pending list; no need on every read


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
        self._groups_ready: set[str] = set()
        self._last_reclaim: dict[str, float] = {}
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

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`, waiting out a Redis outage of up to queue_reconnect_s."""
        give_up = time.monotonic() + self.settings.queue_reconnect_s
        delay = 0.05
        while True:
            try:
                value = await operation()
            except _CONNECTION_ERRORS as error:
                if not self._broken:
                    log.warning("redis unavailable (%s); retrying", error)
                self._broken = True
                if time.monotonic() > give_up:
                    raise
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

    # --- client side -------------------------------------------------------

    async def submit(self, request: GenerateRequest) -> None:
        stream = self.request_stream(request.label)
        await self._retrying(lambda: self.redis.xadd(stream, {"request": request.to_json()}))

    async def queue_depth(self, label: str) -> int:
        return await self._retrying(lambda: self._queue_depth(label))

    async def _queue_depth(self, label: str) -> int:
        stream = self.request_stream(label)
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            return 0
        ours = next((g for g in groups if g["name"] == self.group), None)
        if ours is None:
            return await self.redis.xlen(stream)
        waiting = ours.get("lag")
        if waiting is None:
            # Redis cannot tell the lag after deletions; count what follows the
            # last delivered entry instead (bounded: past the limit, only "more" matters).
            after = "(" + ours["last-delivered-id"]
            cap = self.settings.queue_max_length * 4
            waiting = len(await self.redis.xrange(stream, after, "+", count=cap))
        return int(waiting) + int(ours["pending"])

    async def read_results(
        self, reply_to: str, after: str, block_ms: int
    ) -> list[tuple[str, GenerateResult]]:
        stream = self.reply_stream(reply_to)
        answer = await self._retrying(
            lambda: self.redis.xread({stream: after}, count=500, block=block_ms)
        )
        results = []
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                try:
                    results.append((entry_id, decode_result(fields.get("result", ""))))
                except ProtocolError as error:
                    log.error("unreadable result %s on %s: %s", entry_id, stream, error)
        return results

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
        now = time.monotonic()
        if now - self._last_reclaim.get(stream, 0.0) >= _RECLAIM_EVERY_S:
            self._last_reclaim[stream] = now
            raw += await self._reclaim(stream, consumer, max_count)
        if len(raw) < max_count:
            answer = await self.redis.xreadgroup(
                self.group,
                consumer,
                {stream: ">"},
                count=max_count - len(raw),
                block=None if raw else block_ms,
            )
            for _stream, entries in answer or []:
                raw += [(entry_id, fields, 1) for entry_id, fields in entries]
        deliveries = []
        for entry_id, fields, delivery_count in raw:
            delivery = await self._screen(stream, label, consumer, entry_id, fields, delivery_count)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def _reclaim(self, stream: str, consumer: str, max_count: int) -> list:
        """Entries idle past queue_claim_idle_ms, now ours, with their delivery counts."""
        _next, claimed, _deleted = await self.redis.xautoclaim(
            stream,
            self.group,
            consumer,
            min_idle_time=self.settings.queue_claim_idle_ms,
            start_id="0-0",
            count=max_count,
        )
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

    async def _screen(
        self, stream, label, consumer, entry_id, fields, delivery_count
    ) -> Delivery | None:
        """The entry as a Delivery, or None once it is dead-lettered as unservable."""
        payload = fields.get("request", "") if isinstance(fields, dict) else ""
        try:
            request = decode_request(payload)
        except ProtocolError as error:
            await self._dead_letter_unparsed(stream, label, consumer, entry_id, fields, error)
            return None
        delivery = Delivery(entry_id, label, request, payload, delivery_count)
        if request.label != label:
            failure = GenerateResult.failure(
                request.request_id,
                ErrorCode.INVALID_REQUEST,
                f"a {request.label} request on the {label} stream",
                consumer,
            )
            await self.dead_letter(delivery, failure.error_message, failure, consumer)
            return None
        if delivery_count > self.settings.queue_max_deliveries:
            reason = (
                f"delivered {delivery_count} times without an answer "
                f"(limit {self.settings.queue_max_deliveries}); it may crash workers"
            )
            failure = GenerateResult.failure(
                request.request_id, ErrorCode.TOO_MANY_DELIVERIES, reason, consumer
            )
            await self.dead_letter(delivery, reason, failure, consumer)
            return None
        return delivery

    async def _dead_letter_unparsed(self, stream, label, consumer, entry_id, fields, error):
        raw = fields.get("request", "") if isinstance(fields, dict) else ""
        raw = raw or json.dumps(fields)
        await self._record_dead_letter(entry_id, label, str(error), raw, 1, consumer)
        request_id, reply_to = salvage_request_fields(raw)
        if request_id and reply_to:
            # Enough survived to tell the sender, instead of leaving it to time out.
            failure = GenerateResult.failure(
                request_id, ErrorCode.INVALID_REQUEST, str(error), consumer
            )
            await self.redis.xadd(
                self.reply_stream(reply_to),
                {"result": failure.to_json()},
                maxlen=self.settings.queue_reply_maxlen,
                approximate=True,
            )
        await self.redis.xack(stream, self.group, entry_id)

    async def _record_dead_letter(self, entry_id, label, reason, payload, count, worker_id):
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

    async def _send(self, delivery: Delivery, result: GenerateResult, mode: str) -> None:
        await self._retrying(
            lambda: self._complete(
                keys=[
                    self.result_key(delivery.request.request_id),
                    self.reply_stream(delivery.request.reply_to),
                    self.request_stream(delivery.label),
                ],
                args=[
                    result.to_json(),
                    self.settings.queue_result_ttl_s,
                    self.settings.queue_reply_maxlen,
                    self.group,
                    delivery.entry_id,
                    mode,
                ],
            )
        )

    async def complete(self, delivery: Delivery, result: GenerateResult) -> None:
        await self._send(delivery, result, "store")

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
            if value is not None:
                info = json.loads(value)
                found[info["worker_id"]] = info
        return found

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        entries = await self.redis.xrevrange(self.dead_letter_stream, count=limit)
        return [
            DeadLetter(
                fields["entry_id"],
                fields["label"],
                fields["reason"],
                fields["payload"],
                int(fields["delivery_count"]),
                fields.get("worker_id") or None,
            )
            for _id, fields in reversed(entries)
        ]

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

    async def close(self) -> None:
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()
