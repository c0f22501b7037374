"""Retrain jobs over Redis: a request stream the retrain runner takes jobs from, and one
progress stream per job that the requester (the Discord bot) follows.

Keys, under the queue prefix (`MOODMOJI_QUEUE_PREFIX`):

    <prefix>:retrain:jobs              stream of RetrainRequest (group `retrainers`)
    <prefix>:retrain:upload:<id>       the uploaded zip, until the runner has taken it
    <prefix>:retrain:events:<id>       stream of RetrainEvent: queued, running (with
                                       stage, done/total and ETA), done or failed

`moodmoji retrain --serve` runs `serve_retrain_jobs`: one job at a time, each in a
low-priority child process with few torch threads (see `job.py`), so a sampling worker
on the same machine keeps serving. A runner that dies leaves its job pending; the next
runner with the same id (`--worker-id`) takes its own pending jobs first, and the job
resumes from its folder. Nothing here imports torch: the bot uses the client half.
"""

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from pydantic import BaseModel, Field

from moodmoji.errors import MoodmojiError

log = logging.getLogger(__name__)

GROUP = "retrainers"
UPLOAD_TTL_S = 24 * 3600
FINAL_STATES = ("done", "failed")


class RetrainRequest(BaseModel):
    request_id: str
    from_version: str | None = None
    labels: list[str] = Field(default_factory=lambda: ["positive", "negative"])
    epochs: int | None = None
    requested_by: str | None = None
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


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _key(fields: dict, name: str):
    return name if name in fields else name.encode()


# --- the runner's half (synchronous, on a worker machine) ----------------------------------


def serve_retrain_jobs(
    settings, stop: Callable[[], bool] = lambda: False, redis_client=None, isolated: bool = True
) -> int:
    """Take retrain jobs off the stream until `stop()`; returns how many were run."""
    import redis

    client = redis_client or redis.Redis.from_url(settings.redis_url)
    keys = RetrainKeys(settings.queue_prefix)
    consumer = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    try:
        client.xgroup_create(keys.jobs, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    log.info("retrain runner %s waiting for jobs on %s", consumer, keys.jobs)
    ran = 0
    pending_first = True  # our own unacknowledged jobs from before a crash
    while not stop():
        cursor = "0" if pending_first else ">"
        answer = client.xreadgroup(GROUP, consumer, {keys.jobs: cursor}, count=1, block=1000)
        entries = [entry for _stream, batch in answer or [] for entry in batch]
        if not entries:
            pending_first = False
            continue
        for entry_id, fields in entries:
            request = RetrainRequest.model_validate_json(_text(fields[_key(fields, "request")]))
            run_request(client, settings, request, isolated=isolated)
            client.xack(keys.jobs, GROUP, entry_id)
            ran += 1
    return ran


def run_request(client, settings, request: RetrainRequest, isolated: bool = True) -> RetrainEvent:
    """Run one queued job, reporting on its event stream; returns the final event."""
    from worker.registry import registry_from_settings
    from worker.retraining.compare import compare
    from worker.retraining.job import RetrainSpec, retrain

    keys = RetrainKeys(settings.queue_prefix)
    rid = request.request_id

    def emit(event: RetrainEvent) -> None:
        client.xadd(
            keys.events(rid),
            {"event": event.model_dump_json()},
            maxlen=settings.retrain_event_maxlen,
            approximate=True,
        )

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

    job_dir = settings.retrain_dir / rid
    upload = job_dir / "upload.zip"
    try:
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
