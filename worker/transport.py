"""The transport interface between clients (bots) and sampling workers, and its in-process form.

A transport moves `GenerateRequest`s to workers and `GenerateResult`s back, with
these guarantees, which the service and the client rely on and both implementations keep:

- A request is acknowledged only after its result is stored (`complete`), so a worker
  that dies mid-batch leaves its entries to be delivered again.
- The first stored result for a `request_id` wins: a later `complete` for the same id
  (a reclaimed duplicate, a resubmission) sends the stored answer instead, so every
  answer a client sees for one request is the same.
- Entries that cannot be served go to a dead-letter store with a reason, and the
  sender is answered with an error when it can be found.

`RedisStreamsTransport` (in `worker.redis_transport`) is the distributed one;
`InProcessTransport` is the embedded default for `moodmoji demo` and single-machine use.
"""

import asyncio
import itertools
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from worker.protocol import GenerateRequest, GenerateResult


@dataclass(frozen=True)
class Delivery:
    """One request handed to one worker; `entry_id` is what acknowledges it."""

    entry_id: str
    label: str
    request: GenerateRequest
    payload: str  # the request as it was on the wire, for hand-backs and dead letters
    delivery_count: int = 1


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    label: str
    reason: str
    payload: str
    delivery_count: int
    worker_id: str | None = None
    at: float | None = None  # when it was dead-lettered (Unix time), where known


class Transport(ABC):
    """What clients and workers need from a queue. All methods are coroutines."""

    # Bumped each time the queue's server came back after an outage: clients resubmit
    # what a restarted server may have forgotten. Stays 0 where nothing can restart.
    connection_epoch: int = 0

    # --- client side -------------------------------------------------------

    @abstractmethod
    async def submit(self, request: GenerateRequest) -> None:
        """Queue a request. Safe to repeat: a request_id is answered once."""

    @abstractmethod
    async def queue_depth(self, label: str) -> int:
        """Requests of `label` queued or being sampled, not yet answered."""

    async def queue_backlog(self, label: str) -> tuple[int, int]:
        """(pending, waiting): requests handed to a worker and not yet answered, and
        requests no worker has taken yet. Their sum is `queue_depth`."""
        return 0, await self.queue_depth(label)

    @abstractmethod
    async def read_results(
        self, reply_to: str, after: str, block_ms: int
    ) -> list[tuple[str, GenerateResult | None]]:
        """(position, result) on `reply_to` after position `after` ("0" for all), waiting up
        to block_ms. Every entry read is listed, so a reader always moves past it: one that
        cannot be read is a failure for its request, or None when not even that is known."""

    async def forget_replies(self, reply_to: str, upto: str) -> None:  # noqa: B027
        """The reader has everything before `upto`: the transport may drop it."""

    @abstractmethod
    async def latest_position(self, reply_to: str) -> str:
        """The position of the newest result on `reply_to`, to read only what comes next."""

    @abstractmethod
    async def fetch_result(self, request_id: str) -> GenerateResult | None:
        """The stored answer for a request, if any (kept for a while for idempotency)."""

    # --- worker side -------------------------------------------------------

    @abstractmethod
    async def fetch(
        self, label: str, consumer: str, max_count: int, block_ms: int
    ) -> list[Delivery]:
        """Up to `max_count` requests for `consumer`, waiting up to block_ms for the first.

        Includes requests reclaimed from consumers that stopped answering. Entries that
        cannot be parsed, or were delivered too often, are dead-lettered here and not returned.
        """

    @abstractmethod
    async def stored_results(self, request_ids: list[str]) -> dict[str, GenerateResult]:
        """Answers already stored for some of these request ids."""

    @abstractmethod
    async def complete(self, delivery: Delivery, result: GenerateResult) -> None:
        """Store the result, send it to the request's reply_to, then acknowledge."""

    async def complete_many(self, answers: list[tuple[Delivery, GenerateResult]]) -> None:
        """`complete` for each (delivery, result), as one round trip where the queue can:
        each answer keeps `complete`'s guarantees on its own."""
        for delivery, result in answers:
            await self.complete(delivery, result)

    @abstractmethod
    async def replay(self, delivery: Delivery, stored: GenerateResult) -> None:
        """Answer a request that was answered before from the stored result, and acknowledge."""

    @abstractmethod
    async def dead_letter(
        self, delivery: Delivery, reason: str, result: GenerateResult, worker_id: str
    ) -> None:
        """Record the entry and the reason in the dead-letter store, answer with `result`."""

    @abstractmethod
    async def release(self, deliveries: list[Delivery]) -> None:
        """Hand fetched but unserved requests back to the queue (graceful shutdown)."""

    @abstractmethod
    async def heartbeat(self, worker_id: str, info: dict, ttl_s: float) -> None:
        """Announce that `worker_id` is alive, with what it serves."""

    @abstractmethod
    async def heartbeats(self) -> dict[str, dict]:
        """Live workers by id, with their last heartbeat."""

    @abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead-lettered entries, oldest first."""

    async def dead_letter_count(self) -> int:
        """Entries in the dead-letter store (a capped one: at most its cap)."""
        return len(await self.dead_letters(limit=1_000_000))

    async def trim(self, label: str) -> None:  # noqa: B027 - a no-op where nothing grows
        """Drop acknowledged requests so the queue does not grow without bound."""

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections."""


@dataclass
class _ReplyBox:
    entries: list[tuple[int, GenerateResult]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class InProcessTransport(Transport):
    """asyncio queues in this process: one per label, one reply box per reply_to.

    Same contract as Redis, minus what only a shared server needs: requests are
    objects, so nothing arrives malformed, and a worker cannot die without the
    process, so nothing is reclaimed. Results are kept for idempotency until closed.
    """

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._unacknowledged: dict[str, Delivery] = {}
        self._results: dict[str, GenerateResult] = {}
        self._replies: dict[str, _ReplyBox] = {}
        self._dead_letters: list[DeadLetter] = []
        self._heartbeats: dict[str, tuple[float, dict]] = {}
        self._entry_ids = itertools.count(1)

    def _queue(self, label: str) -> asyncio.Queue[Delivery]:
        return self._queues.setdefault(label, asyncio.Queue())

    def _reply_box(self, reply_to: str) -> _ReplyBox:
        return self._replies.setdefault(reply_to, _ReplyBox())

    async def submit(self, request: GenerateRequest) -> None:
        entry_id = str(next(self._entry_ids))
        delivery = Delivery(entry_id, request.label, request, request.to_json())
        self._queue(request.label).put_nowait(delivery)

    async def queue_depth(self, label: str) -> int:
        in_flight = sum(1 for d in self._unacknowledged.values() if d.label == label)
        return self._queue(label).qsize() + in_flight

    async def queue_backlog(self, label: str) -> tuple[int, int]:
        in_flight = sum(1 for d in self._unacknowledged.values() if d.label == label)
        return in_flight, self._queue(label).qsize()

    async def read_results(
        self, reply_to: str, after: str, block_ms: int
    ) -> list[tuple[str, GenerateResult]]:
        box = self._reply_box(reply_to)
        position = int(after)
        if not box.entries or box.entries[-1][0] <= position:
            box.changed.clear()
            try:
                await asyncio.wait_for(box.changed.wait(), block_ms / 1000)
            except TimeoutError:
                return []
        return [(str(i), result) for i, result in box.entries if i > position]

    async def forget_replies(self, reply_to: str, upto: str) -> None:
        box = self._reply_box(reply_to)
        box.entries = [entry for entry in box.entries if entry[0] >= int(upto)]

    async def latest_position(self, reply_to: str) -> str:
        entries = self._reply_box(reply_to).entries
        return str(entries[-1][0]) if entries else "0"

    async def fetch_result(self, request_id: str) -> GenerateResult | None:
        return self._results.get(request_id)

    async def fetch(
        self, label: str, consumer: str, max_count: int, block_ms: int
    ) -> list[Delivery]:
        queue = self._queue(label)
        if block_ms <= 0 and queue.empty():  # a read that must not wait
            return []
        try:
            # (With a timeout of 0, wait_for would cancel the get before it ran.)
            first = (
                queue.get_nowait()
                if block_ms <= 0
                else await asyncio.wait_for(queue.get(), block_ms / 1000)
            )
        except TimeoutError:
            return []
        batch = [first]
        while len(batch) < max_count and not queue.empty():
            batch.append(queue.get_nowait())
        for delivery in batch:
            self._unacknowledged[delivery.entry_id] = delivery
        return batch

    async def stored_results(self, request_ids: list[str]) -> dict[str, GenerateResult]:
        return {rid: self._results[rid] for rid in request_ids if rid in self._results}

    def _answer(self, delivery: Delivery, result: GenerateResult) -> None:
        box = self._reply_box(delivery.request.reply_to)
        box.entries.append((next(self._entry_ids), result))
        box.changed.set()
        self._unacknowledged.pop(delivery.entry_id, None)

    async def complete(self, delivery: Delivery, result: GenerateResult) -> None:
        stored = self._results.setdefault(result.request_id, result)
        self._answer(delivery, stored)

    async def replay(self, delivery: Delivery, stored: GenerateResult) -> None:
        self._answer(delivery, stored)

    async def dead_letter(
        self, delivery: Delivery, reason: str, result: GenerateResult, worker_id: str
    ) -> None:
        self._dead_letters.append(
            DeadLetter(
                delivery.entry_id,
                delivery.label,
                reason,
                delivery.payload,
                delivery.delivery_count,
                worker_id,
                time.time(),
            )
        )
        await self.complete(delivery, result)

    async def release(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self._unacknowledged.pop(delivery.entry_id, None)
            self._queue(delivery.label).put_nowait(delivery)

    async def heartbeat(self, worker_id: str, info: dict, ttl_s: float) -> None:
        self._heartbeats[worker_id] = (time.monotonic() + ttl_s, info)

    async def heartbeats(self) -> dict[str, dict]:
        now = time.monotonic()
        return {wid: info for wid, (until, info) in self._heartbeats.items() if until > now}

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return self._dead_letters[-limit:]
