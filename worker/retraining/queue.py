"""Retrain jobs over Redis: a request stream the retrain runner takes jobs from, and one
progress stream per job that the requester (the Discord bot) follows.

Keys, under the queue prefix (`MOODMOJI_QUEUE_PREFIX`):

    <prefix>:retrain:jobs              stream of RetrainRequest (group `retrainers`)
    <prefix>:retrain:upload:<id>       the uploaded zip, until the runner has taken it
    <prefix>:retrain:events:<id>       stream of RetrainEvent: queued, running (with
                                       stage, done/total and ETA), done or failed

`moodmoji retrain --serve` runs `serve_retrain_jobs`: one job at a time, each in a
low-priority child process with few torch threads (see `job.py`), so a sampling worker
on the same machine keeps serving. While a job runs, its runner touches the job's entry
every `retrain_claim_idle_s / 4`; a runner that dies stops touching it, and once the
entry has been idle `retrain_claim_idle_s` any other runner takes it over. A runner
restarted with the same id (`--worker-id`) takes its own unfinished jobs first; either
way the job resumes from its folder when the folder is shared, else starts again from
the upload. A job that has killed `queue_max_deliveries` runners fails for good.

Every job entry is untrusted: one that is not a valid request (not JSON, a request id
that is not a plain name such as `../../escape`) is acknowledged, logged and, when it
names a sane request id, answered with a failed event; it never stops the runner, nor
sends it back to the same entry after a restart. Nothing here imports torch: the bot
uses the client half.
"""

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError

from moodmoji.errors import MoodmojiError

log = logging.getLogger(__name__)

GROUP = "retrainers"
UPLOAD_TTL_S = 24 * 3600
FINAL_STATES = ("done", "failed")


# A request id names a folder under MOODMOJI_RETRAIN_DIR and Redis keys: a plain name only.
JOB_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class RetrainRequest(BaseModel):
    request_id: Annotated[str, Field(pattern=JOB_ID)]
    from_version: Annotated[str, Field(max_length=64)] | None = None
    labels: list[Literal["positive", "negative"]] = Field(
        default_factory=lambda: ["positive", "negative"], min_length=1
    )
    epochs: Annotated[int, Field(ge=1, le=100_000)] | None = None
    requested_by: Annotated[str, Field(max_length=64)] | None = None
    created_at: float = Field(default_factory=time.time)


class RetrainEvent(BaseModel):
    request_id: str
    state: str  # queued, running, done, failed
    stage: str = ""
    done: int = 0
    total: int = 0
    eta_s: float | None = None
    detail: str = ""
    version: str | None = None  # the published version, once done
    message: str = ""  # why it failed, or the comparison table once done
    at: float = Field(default_factory=time.time)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class RetrainKeys:
    def __init__(self, prefix: str) -> None:
        self.jobs = f"{prefix}:retrain:jobs"
        self.prefix = prefix

    def upload(self, request_id: str) -> str:
        return f"{self.prefix}:retrain:upload:{request_id}"

    def events(self, request_id: str) -> str:
        return f"{self.prefix}:retrain:events:{request_id}"


# --- the requester's half (asyncio, torch-free) ------------------------------------------


async def submit_retrain(
    redis, prefix: str, upload: bytes, max_bytes: int, **request_fields
) -> RetrainRequest:
    """Queue a retrain of `upload` (a zip); `redis` is a redis.asyncio client."""
    if len(upload) > max_bytes:
        raise MoodmojiError(f"the upload is {len(upload)} bytes; at most {max_bytes} are accepted")
    keys = RetrainKeys(prefix)
    request = RetrainRequest(request_id=f"rt{secrets.token_hex(5)}", **request_fields)
    await redis.set(keys.upload(request.request_id), upload, ex=UPLOAD_TTL_S)
    queued = RetrainEvent(request_id=request.request_id, state="queued", detail="waiting")
    await redis.xadd(keys.events(request.request_id), {"event": queued.model_dump_json()})
    await redis.xadd(keys.jobs, {"request": request.model_dump_json()})
    return request


async def read_events(
    redis, prefix: str, request_id: str, after: str = "0-0", block_ms: int = 1000
) -> list[tuple[str, RetrainEvent]]:
    """Events of a job after stream id `after`, waiting up to `block_ms` for the first."""
    answer = await redis.xread({RetrainKeys(prefix).events(request_id): after}, block=block_ms)
    return [
        (_text(entry_id), RetrainEvent.model_validate_json(_text(fields[_key(fields, "event")])))
        for _stream, entries in answer or []
        for entry_id, fields in entries
    ]


class RetrainQueue:
    """The requester's half as one object: queue jobs and follow their progress.

    What a front end (the Discord bot) holds instead of a Redis client: it owns its own
    connection, so callers never reach into a transport for one.
    """

    def __init__(self, settings, redis_client=None) -> None:
        """`settings`: RetrainSettings (queue prefix, Redis URL, upload limit)."""
        if redis_client is None:
            import redis.asyncio as aioredis

            redis_client = aioredis.Redis.from_url(settings.redis_url)
        self.redis = redis_client
        self.prefix = settings.queue_prefix
        self.max_upload_bytes = settings.retrain_max_upload_bytes

    async def submit(self, upload: bytes, **request_fields) -> RetrainRequest:
        """Queue `upload` (a zip); MoodmojiError if it is over the upload limit."""
        return await submit_retrain(
            self.redis, self.prefix, upload, self.max_upload_bytes, **request_fields
        )

    async def events(
        self, request_id: str, after: str = "0-0", block_ms: int = 1000
    ) -> list[tuple[str, RetrainEvent]]:
        return await read_events(self.redis, self.prefix, request_id, after, block_ms)

    async def job_ids(self) -> list[str]:
        """Every job that has a progress stream (queued, running or finished lately)."""
        pattern = RetrainKeys(self.prefix).events("*")
        start = len(pattern) - 1
        return sorted({_text(key)[start:] async for key in self.redis.scan_iter(match=pattern)})

    async def latest_event(self, request_id: str) -> RetrainEvent | None:
        """The newest event of a job (its state now), or None for an unknown job."""
        entries = await self.redis.xrevrange(RetrainKeys(self.prefix).events(request_id), count=1)
        for _entry_id, fields in entries:
            return RetrainEvent.model_validate_json(_text(fields[_key(fields, "event")]))
        return None

    async def close(self) -> None:
        await self.redis.aclose()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _key(fields: dict, name: str):
    return name if name in fields else name.encode()


# --- the runner's half (synchronous, on a worker machine) ----------------------------------


def serve_retrain_jobs(
    settings, stop: Callable[[], bool] = lambda: False, redis_client=None, isolated: bool = True
) -> int:
    """Take retrain jobs off the stream until `stop()`; returns how many were run.

    Redis going away does not end the runner: it waits and carries on."""
    import redis

    client = redis_client or redis.Redis.from_url(settings.redis_url)
    runner = _Runner(client, settings, isolated)
    log.info("retrain runner %s waiting for jobs on %s", runner.consumer, runner.keys.jobs)
    while not stop():
        try:
            runner.step()
        except redis.ConnectionError as error:
            log.warning("redis unavailable (%s); retrying", error)
            time.sleep(1.0)
    return runner.ran


class _Runner:
    """One runner's view of the job stream: its own jobs first, then abandoned ones, then new."""

    def __init__(self, client, settings, isolated: bool) -> None:
        self.client, self.settings, self.isolated = client, settings, isolated
        self.keys = RetrainKeys(settings.queue_prefix)
        self.consumer = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.ran = 0
        self.own_pending_first = True  # our unacknowledged jobs from before a crash
        self.group_ready = False

    def step(self) -> None:
        if not self.group_ready:
            self._create_group()
        for entry_id, fields in self._next_entries():
            self._handle(_text(entry_id), fields)

    def _create_group(self) -> None:
        import redis

        try:
            self.client.xgroup_create(self.keys.jobs, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self.group_ready = True

    def _next_entries(self) -> list:
        jobs = self.keys.jobs
        if self.own_pending_first:
            answer = self.client.xreadgroup(GROUP, self.consumer, {jobs: "0"}, count=1)
            entries = [entry for _stream, batch in answer or [] for entry in batch]
            if entries:
                return entries
            self.own_pending_first = False
        idle_ms = int(self.settings.retrain_claim_idle_s * 1000)
        _cursor, claimed, *_deleted = self.client.xautoclaim(
            jobs, GROUP, self.consumer, idle_ms, start_id="0-0", count=1
        )
        claimed = [entry for entry in claimed if entry[0]]
        if claimed:
            log.warning("taking over retrain job %s from a runner that stopped", claimed[0][0])
            return claimed
        answer = self.client.xreadgroup(GROUP, self.consumer, {jobs: ">"}, count=1, block=1000)
        return [entry for _stream, batch in answer or [] for entry in batch]

    def _handle(self, entry_id: str, fields) -> None:
        jobs = self.keys.jobs
        raw = fields.get(_key(fields, "request")) if isinstance(fields, dict) else None
        try:
            request = RetrainRequest.model_validate_json(raw or b"")
        except ValidationError as error:
            reason = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            log.error("retrain job %s is not a valid request, dropped: %s", entry_id, reason)
            self._fail_unparsed(raw, f"not a valid retrain request ({reason})")
            self.client.xack(jobs, GROUP, entry_id)
            return
        deliveries = self._deliveries(entry_id)
        limit = self.settings.queue_max_deliveries
        if deliveries > limit:
            message = f"the job stopped {deliveries - 1} runners before finishing (limit {limit})"
            emit_event(
                self.client,
                self.settings,
                RetrainEvent(request_id=request.request_id, state="failed", message=message),
            )
            self.client.xack(jobs, GROUP, entry_id)
            return
        with _KeepClaimed(self.client, self.settings, jobs, self.consumer, entry_id):
            run_request(self.client, self.settings, request, isolated=self.isolated)
        self.client.xack(jobs, GROUP, entry_id)
        self.ran += 1

    def _deliveries(self, entry_id: str) -> int:
        pending = self.client.xpending_range(self.keys.jobs, GROUP, entry_id, entry_id, 1)
        return int(pending[0]["times_delivered"]) if pending else 1

    def _fail_unparsed(self, raw, message: str) -> None:
        """Tell the requester, when the entry names a sane request id."""
        import json
        import re

        try:
            request_id = json.loads(raw).get("request_id")
        except (ValueError, TypeError, AttributeError, RecursionError):
            return
        if isinstance(request_id, str) and re.match(JOB_ID, request_id):
            emit_event(
                self.client,
                self.settings,
                RetrainEvent(request_id=request_id, state="failed", message=message),
            )


class _KeepClaimed:
    """While a job runs, touch its entry now and then so other runners see it is alive."""

    def __init__(self, client, settings, stream: str, consumer: str, entry_id: str) -> None:
        self.args = (stream, GROUP, consumer, 0, [entry_id])
        self.client = client
        self.every_s = settings.retrain_claim_idle_s / 4
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._touch, daemon=True, name="retrain-claim")

    def _touch(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                # JUSTID resets the entry's idle time without counting a delivery.
                self.client.xclaim(*self.args, justid=True)
            except Exception as error:  # Redis away: the job goes on; touch again later
                log.warning("could not touch the running job's entry: %s", error)

    def __enter__(self) -> "_KeepClaimed":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.done.set()
        self.thread.join()


def emit_event(client, settings, event: RetrainEvent) -> None:
    client.xadd(
        RetrainKeys(settings.queue_prefix).events(event.request_id),
        {"event": event.model_dump_json()},
        maxlen=settings.retrain_event_maxlen,
        approximate=True,
    )


def job_folder(settings, request_id: str) -> Path:
    """The job's folder under MOODMOJI_RETRAIN_DIR; refuses any id that would leave it."""
    root = Path(settings.retrain_dir).resolve()
    folder = (root / request_id).resolve()
    if folder.parent != root:
        raise MoodmojiError(f"the job id {request_id!r} is not a plain name")
    return folder


def run_request(client, settings, request: RetrainRequest, isolated: bool = True) -> RetrainEvent:
    """Run one queued job, reporting on its event stream; returns the final event."""
    from worker.registry import registry_from_settings
    from worker.retraining.compare import compare
    from worker.retraining.job import RetrainSpec, retrain

    keys = RetrainKeys(settings.queue_prefix)
    rid = request.request_id

    def emit(event: RetrainEvent) -> None:
        emit_event(client, settings, event)

    last = {"done": -1, "at": 0.0}

    def on_progress(progress) -> None:
        now = time.monotonic()
        if progress.done == last["done"] and now - last["at"] < 5:
            return  # one event per unit of work, or every 5 s
        last.update(done=progress.done, at=now)
        emit(
            RetrainEvent(
                request_id=rid,
                state="running",
                stage=progress.stage,
                done=progress.done,
                total=progress.total,
                eta_s=progress.eta_s,
                detail=progress.detail,
            )
        )

    try:
        job_dir = job_folder(settings, rid)
        upload = job_dir / "upload.zip"
        if not upload.is_file():
            data = client.get(keys.upload(rid))
            if data is None:
                raise MoodmojiError("the upload expired before a runner took the job")
            job_dir.mkdir(parents=True, exist_ok=True)
            upload.write_bytes(data)
        spec = RetrainSpec(
            source=str(upload),
            from_version=request.from_version,
            labels=request.labels,
            epochs=request.epochs,
            requested_by=request.requested_by,
        )
        state = retrain(spec, settings, on_progress, job_id=rid, isolated=isolated)
        table = compare(registry_from_settings(settings), state.version, state.base_version).table()
        final = RetrainEvent(
            request_id=rid, state="done", stage="done", version=state.version, message=table
        )
    except MoodmojiError as error:
        final = RetrainEvent(request_id=rid, state="failed", message=str(error))
    except Exception as error:
        log.exception("retrain %s failed", rid)
        final = RetrainEvent(
            request_id=rid, state="failed", message=f"internal error: {type(error).__name__}"
        )
    client.delete(keys.upload(rid))
    emit(final)
    return final
