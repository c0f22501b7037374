"""The bot's side of the queue: submit a request, await its result, with backpressure.

One `WorkerClient` per bot process owns one reply channel (`reply_to`) and one reader
task that resolves each pending request's future when its result arrives. Before
queueing, it refuses work with `WorkerBusy` ("busy, try again in N s") when the label's
queue is longer than `queue_max_length` or the user has `queue_max_in_flight_per_user`
requests unanswered, or the queue's server cannot be reached (`QueueUnavailable`, a
`WorkerBusy`). When the transport reports that Redis came back after an outage, every
unanswered request is submitted again: harmless, since a request_id is answered once,
and it recovers requests a restarted server forgot.

The reader moves past every reply it reads: an answer it cannot read fails its one
request (`unreadable_reply`) and the next answer is read as usual. What it has read it
lets the transport forget, so answers do not pile up in Redis. `stats` counts answers,
duplicates (a request answered twice, e.g. after a resubmission; the first wins) and
answers to requests this client never made.
"""

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections import Counter, OrderedDict, deque

from moodmoji.errors import MoodmojiError
from worker.errors import QueueUnavailable, WorkerBusy
from worker.protocol import ErrorCode, GenerateRequest, GenerateResult, Origin
from worker.settings import WorkerSettings
from worker.transport import Transport

__all__ = ["QueueUnavailable", "RequestTimedOut", "WorkerBusy", "WorkerClient"]

log = logging.getLogger(__name__)

_RATE_WINDOW = 200  # recent answers from which the drain rate is estimated
_READ_BLOCK_MS = 250  # longest wait for results; also how long `close` may take
_FORGET_EVERY_S = 1.0  # how often the reader lets the transport drop what it has read
# Recently finished request ids kept, to tell a duplicate answer from a stray one.
_FINISHED_MEMORY = 10_000


class RequestTimedOut(MoodmojiError):
    """No answer within the timeout; the request may still be answered later."""


class WorkerClient:
    def __init__(
        self,
        transport: Transport,
        settings: WorkerSettings | None = None,
        reply_to: str | None = None,
        *,
        per_user_cap: bool = True,
    ) -> None:
        """`per_user_cap=False`: the caller enforces its own per-user limit (the Discord bot
        keeps one shared by all its processes), so this client does not count users twice."""
        self.transport = transport
        self.per_user_cap = per_user_cap
        self.settings = settings or WorkerSettings()
        self.reply_to = reply_to or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._pending: dict[str, asyncio.Future[GenerateResult]] = {}
        self._requests: dict[str, GenerateRequest] = {}
        self._in_flight_by_user: Counter[str] = Counter()
        self._answered_at: deque[float] = deque(maxlen=_RATE_WINDOW)
        self._reader: asyncio.Task | None = None
        self._position = "0"
        self._closing = False
        # Request ids finished lately -> whether they were answered (else given up on).
        self._finished: OrderedDict[str, bool] = OrderedDict()
        # answered; duplicate (answered again); late (after the caller gave up); foreign
        # (to a request this client never made); unreadable (answers that could not be read)
        self.stats: Counter[str] = Counter()

    async def start(self, after: str | None = None) -> None:
        """Start reading results; `after` replays from a position saved before a restart."""
        if self._reader is None:
            self._position = after or await self.transport.latest_position(self.reply_to)
            self._reader = asyncio.create_task(self._read_results())

    async def close(self) -> None:
        if self._reader is not None:
            # Let the reader finish its blocking read: cancelling redis-py mid-read can
            # leave the task hanging on its connection.
            self._closing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, _READ_BLOCK_MS / 1000 * 4)
            self._reader = None
            self._closing = False

    async def __aenter__(self) -> "WorkerClient":
        await self.start()
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    @property
    def position(self) -> str:
        """The last result read; pass to `start(after=...)` to replay after a restart."""
        return self._position

    def request(
        self,
        label: str,
        seed: int,
        count: int = 1,
        size: int | None = None,
        origin: Origin | None = None,
        timeout: float | None = None,
    ) -> GenerateRequest:
        """A request answered on this client's reply channel, due within `timeout`."""
        timeout = timeout or self.settings.queue_request_timeout_s
        return GenerateRequest(
            label=label,
            seed=seed,
            count=count,
            size=size or self.settings.worker_image_size,
            origin=origin or Origin(),
            reply_to=self.reply_to,
            deadline=time.time() + timeout,
        )

    async def generate(self, label: str, seed: int, **kwargs) -> GenerateResult:
        """Build, submit and await one request (see `request` for the arguments)."""
        request = self.request(label, seed, **kwargs)
        return await self.submit(request, timeout=kwargs.get("timeout"))

    async def submit(
        self, request: GenerateRequest, timeout: float | None = None
    ) -> GenerateResult:
        """Queue `request` and wait for its result; `WorkerBusy` (its `QueueUnavailable` when
        Redis is unreachable for `queue_submit_wait_s`) or `RequestTimedOut` if not."""
        if request.reply_to != self.reply_to:
            request = request.model_copy(update={"reply_to": self.reply_to})
        timeout = timeout or self.settings.queue_request_timeout_s
        await self.start()
        future = self._pending.get(request.request_id)
        if future is None:
            await self._admit(request)
            future = asyncio.get_running_loop().create_future()
            self._pending[request.request_id] = future
            self._requests[request.request_id] = request
            user = request.origin.user_id
            if user:
                self._in_flight_by_user[user] += 1
            future.add_done_callback(lambda _f: self._forget(request))
            try:
                await self.transport.submit(request)
            except BaseException:
                future.cancel()
                raise
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            future.cancel()
            message = f"no emoji within {timeout:g} s; the workers may be down"
            raise RequestTimedOut(message) from None

    async def _admit(self, request: GenerateRequest) -> None:
        user = request.origin.user_id
        limit = self.settings.queue_max_in_flight_per_user
        if self.per_user_cap and user and self._in_flight_by_user[user] >= limit:
            raise WorkerBusy(f"you already have {limit} emojis on the way; try again in 1 s", 1)
        depth = await self.transport.queue_depth(request.label)
        if depth >= self.settings.queue_max_length:
            retry_after = self._retry_after(depth - self.settings.queue_max_length + 1)
            raise WorkerBusy(f"busy, try again in {retry_after} s", retry_after)

    async def queue_depth(self, label: str) -> int:
        """Requests waiting for `label` (what a new request would queue behind)."""
        return await self.transport.queue_depth(label)

    async def workers(self) -> dict[str, dict]:
        """The live workers' latest heartbeats: {worker id: what it reported}."""
        return await self.transport.heartbeats()

    def expected_wait_s(self, ahead: int) -> int:
        """A rough wait behind `ahead` requests, from how fast answers came in lately."""
        return self._retry_after(ahead)

    def _retry_after(self, excess: int) -> int:
        """Seconds until `excess` requests have drained at the rate answers came in lately."""
        answered = self._answered_at
        if len(answered) >= 2 and answered[-1] > answered[0]:
            rate = (len(answered) - 1) / (answered[-1] - answered[0])
            return max(1, min(60, math.ceil(excess / rate)))
        return 1

    def _forget(self, request: GenerateRequest) -> None:
        future = self._pending.pop(request.request_id, None)
        self._finished[request.request_id] = future is not None and not future.cancelled()
        if len(self._finished) > _FINISHED_MEMORY:
            self._finished.popitem(last=False)
        self._requests.pop(request.request_id, None)
        user = request.origin.user_id
        if user:
            self._in_flight_by_user[user] -= 1
            if self._in_flight_by_user[user] <= 0:
                del self._in_flight_by_user[user]

    async def _read_results(self) -> None:
        epoch = self.transport.connection_epoch
        forgotten, forgot_at = self._position, time.monotonic()
        while not self._closing:
            try:
                results = await self.transport.read_results(
                    self.reply_to, self._position, _READ_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("reading results failed (%s); retrying", error)
                await asyncio.sleep(0.2)
                continue
            for position, result in results:
                self._position = position  # past every entry, readable or not
                if result is not None:
                    self._resolve(result)
                else:
                    self.stats["unreadable"] += 1
            current = self.transport.connection_epoch
            if current != epoch:
                epoch = current
                await self._resubmit_pending()
            if self._position != forgotten and time.monotonic() - forgot_at >= _FORGET_EVERY_S:
                with contextlib.suppress(Exception):  # only memory is at stake; next time
                    await self.transport.forget_replies(self.reply_to, self._position)
                    forgotten, forgot_at = self._position, time.monotonic()

    def _resolve(self, result: GenerateResult) -> None:
        future = self._pending.get(result.request_id)
        if result.error_code == ErrorCode.UNREADABLE_REPLY:
            self.stats["unreadable"] += 1
        if future is not None and not future.done():
            future.set_result(result)
            self._answered_at.append(time.monotonic())
            self.stats["answered"] += 1
        elif future is not None:  # answered a moment ago: its done-callback has not run yet
            self.stats["late" if future.cancelled() else "duplicate"] += 1
        elif result.request_id in self._finished:
            # The first answer stands; a resubmitted or reclaimed request is answered again.
            self.stats["duplicate" if self._finished[result.request_id] else "late"] += 1
        else:
            self.stats["foreign"] += 1
            log.warning("an answer to %s, which this client did not ask for", result.request_id)

    async def _resubmit_pending(self) -> None:
        """After Redis came back: resolve what it still holds an answer for (an AOF kept
        it), submit the rest again (a server without persistence forgot them)."""
        outstanding = list(self._requests.values())
        with contextlib.suppress(Exception):  # unreadable now: resubmitting is still safe
            stored = await self.transport.stored_results([r.request_id for r in outstanding])
            for result in stored.values():
                self._resolve(result)
            outstanding = [r for r in outstanding if r.request_id not in stored]
        log.warning("queue reconnected; resubmitting %d unanswered requests", len(outstanding))
        for request in outstanding:
            with contextlib.suppress(Exception):
                await self.transport.submit(request)
