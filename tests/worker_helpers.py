"""Shared pieces of the worker tests: tiny real GANs, Redis key hygiene, worker processes."""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from worker import GenerateResult, ModelRegistry, RedisStreamsTransport, WorkerSettings
from worker.service import SamplingService

REDIS_URL = os.environ.get("MOODMOJI_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parent.parent


def _train_tiny(root: Path, label: str, seed: int) -> Path:
    import gan

    data = root / "data"
    if not data.exists():
        gan.make_procedural_dataset(data, per_label=16, seed=0)
    config = gan.make_config(
        "stable",
        model="proposed",
        label=label,
        ngf=8,
        ndf=8,
        epochs=1,
        batch_size=16,
        eval_every=0,
        seed=seed,
    )
    return gan.train(
        config, data_dir=data, out_dir=root / f"run-{label}-{seed}", device="cpu", progress=False
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Real 1-epoch ngf=8 checkpoints: positive, negative, and a second positive ("positive-v2").

    Cached under pytest's session folder so every worker test module shares one training run.
    """
    root = tmp_path_factory.getbasetemp() / "worker-tiny-gans"
    wanted = {
        "positive": ("positive", 0),
        "negative": ("negative", 0),
        "positive-v2": ("positive", 1),
    }
    models = {}
    for name, (label, seed) in wanted.items():
        path = root / f"{name}.pt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_train_tiny(root, label, seed), path)
        models[name] = path
    return models


class PoisonedSampler:
    """The real sampler, except that seed 666 makes it raise, as a corrupt request might."""

    def __init__(self, sampler):
        self.sampler, self.version, self.label = sampler, sampler.version, sampler.label

    def job(self, seed, count):
        return self.sampler.job(seed, count)

    def finished(self, job):
        return self.sampler.finished(job)

    def step(self, jobs):
        if any(job.seed == 666 for job in jobs):
            raise ValueError("latent exploded")
        self.sampler.step(jobs)

    def sample_tensor(self, requests):
        if any(seed == 666 for seed, _count in requests):
            raise ValueError("latent exploded")
        return self.sampler.sample_tensor(requests)


@pytest.fixture
def samplers(tiny_models):
    from gan import EmojiSampler

    return {
        label: EmojiSampler.from_checkpoint(tiny_models[label], device="cpu")
        for label in ("positive", "negative")
    }


def make_registry(root: Path, tiny_models: dict[str, Path]) -> ModelRegistry:
    """A registry with version v1 (both labels) active and v2 (new positive) published."""
    registry = ModelRegistry(root)
    registry.publish(
        "v1",
        {"positive": tiny_models["positive"], "negative": tiny_models["negative"]},
        activate=True,
    )
    registry.publish(
        "v2", {"positive": tiny_models["positive-v2"], "negative": tiny_models["negative"]}
    )
    return registry


def scored_registry(
    root: Path, tiny_models: dict[str, Path], scores: dict[str, dict], **meta
) -> ModelRegistry:
    """v1 live; each other version published with its `scores` (label -> metric -> value),
    as if retrained on one reference, plus `meta`."""
    registry = ModelRegistry(root)
    checkpoints = {"positive": tiny_models["positive"], "negative": tiny_models["negative"]}
    registry.publish("v1", checkpoints, activate=True)
    for version, metrics in scores.items():
        registry.publish(
            version,
            checkpoints,
            {"metrics": metrics, "reference": {"digest": "same-faces"}, **meta},
        )
    return registry


def retrain_settings(tmp: Path, registry_dir: Path, **overrides):
    """RetrainSettings for tests: tiny evaluation, jobs under `tmp`, no shipped models."""
    from worker.retraining import RetrainSettings

    values = {
        "registry_dir": registry_dir,
        "retrain_dir": tmp / "jobs",
        "cache_dir": tmp.parent / "retrain-cache",  # Inception features, classifier: shared
        "retrain_eval_samples": 8,
        "retrain_min_images": 4,
        "device": "cpu",
        "models_dir": Path("/nonexistent-moodmoji-models"),
    }
    return RetrainSettings(**{**values, **overrides})


def unique_prefix() -> str:
    return f"moodmoji-test-{uuid.uuid4().hex[:10]}"


def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def queue_settings(prefix: str, **overrides) -> WorkerSettings:
    values = {
        "redis_url": REDIS_URL,
        "queue_prefix": prefix,
        "queue_claim_idle_ms": 1000,
        "queue_reconnect_s": 20.0,
        "worker_labels": ["positive"],
        "worker_heartbeat_s": 0.3,
        "worker_block_ms": 200,
        "registry_poll_s": 0.2,
        "device": "cpu",
        "models_dir": Path("/nonexistent-moodmoji-models"),
    }
    return WorkerSettings(**{**values, **overrides})


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own, deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    delete_prefix(prefix)


def spawn_worker(
    settings: WorkerSettings, registry_dir: Path, worker_id: str, *extra: str
) -> subprocess.Popen:
    """A real `moodmoji worker` process with these settings."""
    env = {
        **os.environ,
        "MOODMOJI_REDIS_URL": settings.redis_url,
        "MOODMOJI_QUEUE_PREFIX": settings.queue_prefix,
        "MOODMOJI_QUEUE_CLAIM_IDLE_MS": str(settings.queue_claim_idle_ms),
        "MOODMOJI_QUEUE_RECONNECT_S": str(settings.queue_reconnect_s),
        "MOODMOJI_WORKER_HEARTBEAT_S": str(settings.worker_heartbeat_s),
        "MOODMOJI_WORKER_BLOCK_MS": str(settings.worker_block_ms),
        "MOODMOJI_MODELS_DIR": str(settings.models_dir),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "moodmoji.cli",
        "worker",
        "--registry",
        str(registry_dir),
        "--device",
        "cpu",
        "--worker-id",
        worker_id,
        "--labels",
        *settings.worker_labels,
        *extra,
    ]
    return subprocess.Popen(command, env=env, cwd=REPO)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def wait_for_workers(transport, worker_ids, timeout: float = 60.0) -> dict[str, dict]:
    """Until every worker in `worker_ids` has sent a heartbeat."""
    give_up = time.monotonic() + timeout
    while True:
        beats = await transport.heartbeats()
        if set(worker_ids) <= set(beats):
            return beats
        if time.monotonic() > give_up:
            raise AssertionError(f"workers {sorted(set(worker_ids) - set(beats))} never came up")
        await asyncio.sleep(0.1)


async def reply_stream_results(transport: RedisStreamsTransport, reply_to: str):
    """Every result on a reply stream, in order."""
    entries = await transport.redis.xrange(transport.reply_stream(reply_to))
    from worker import decode_result

    return [decode_result(fields["result"]) for _id, fields in entries]


def assert_images(result: GenerateResult, count: int, size: int) -> None:
    from io import BytesIO

    from PIL import Image

    assert result.ok, result.error_message
    assert len(result.images) == count
    for png in result.images:
        image = Image.open(BytesIO(png))
        assert image.format == "PNG" and image.size == (size, size)


@contextlib.asynccontextmanager
async def running(service: SamplingService):
    """Run a service built by the test until the block ends, then stop it cleanly."""
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.wait_ready(), 30)
    try:
        yield service
    finally:
        service.request_stop()
        await asyncio.wait_for(task, 30)
