"""Retrain over Redis: a request from the bot's side, a runner on the worker's side, progress
events in between, and the Discord message that follows them to the promote button."""

# ruff: noqa: F401, F811

import asyncio
import os
import threading
import zipfile
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
import redis
from worker_helpers import REDIS_URL, make_registry, redis_prefix, retrain_settings, tiny_models

from bot.cogs.admin import AdminCog, RetrainDecision
from bot.core import progress_line
from bot.services import make_services
from bot.settings import BotSettings
from bot.state import MemoryState
from worker import RedisStreamsTransport, WorkerClient
from worker.retraining import RetrainQueue, RetrainSettings
from worker.retraining.queue import (
    RetrainKeys,
    read_events,
    run_request,
    serve_retrain_jobs,
    submit_retrain,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.redis


def zipped_folder(folder, out):
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, path.relative_to(folder).as_posix())
    return out.read_bytes()


def runner_settings(tmp_path, prefix, registry_dir):
    return retrain_settings(
        tmp_path,
        registry_dir,
        redis_url=REDIS_URL,
        queue_prefix=prefix,
        retrain_metrics=["kid"],
        worker_id="runner-1",
    )


async def test_a_bot_request_is_run_by_the_runner_and_followed_to_the_promote_button(
    tmp_path, tiny_models, procedural_data, redis_prefix
):
    registry = make_registry(tmp_path / "registry", tiny_models)
    settings = runner_settings(tmp_path, redis_prefix, registry.root)
    upload = zipped_folder(procedural_data, tmp_path / "faces.zip")
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings, per_user_cap=False)
    bot_settings = BotSettings(discord_token=None, dev_guild_id=None)
    services = make_services(
        client,
        MemoryState(bot_settings),
        bot_settings,
        registry=registry,
        retrain_queue=RetrainQueue(settings),
    )
    service = services.operations
    try:
        request = await service.retrain(upload, requested_by="7", labels=["positive"])
        # The runner, on "another machine": a thread with its own synchronous Redis client.
        sync = redis.Redis.from_url(REDIS_URL)
        stopped = threading.Event()
        runner = threading.Thread(
            target=serve_retrain_jobs,
            kwargs={
                "settings": settings.model_copy(update={"retrain_epochs": 1}),  # a tiny budget
                "stop": stopped.is_set,
                "redis_client": sync,
                "isolated": False,
            },
        )
        runner.start()
        cog = AdminCog(MagicMock(), services)
        message = AsyncMock(spec=discord.Message)
        try:
            await asyncio.wait_for(cog.follow_retrain(message, request.request_id), 240)
        finally:
            stopped.set()
            await asyncio.to_thread(runner.join, 30)
            sync.close()
        events = [event for _id, event in await service.retrain_events(request.request_id)]
    finally:
        await client.close()
        await service.retrain_queue.close()
    states = [event.state for event in events]
    assert states[0] == "queued" and "running" in states and states[-1] == "done"
    running = [event for event in events if event.state == "running"]
    assert running[-1].total >= running[-1].done > running[0].done
    done = events[-1]
    assert done.version in registry.versions() and "| positive | KID ↓ |" in done.message
    assert registry.meta(done.version)["requested_by"] == "7"
    final = message.edit.await_args.kwargs
    assert done.version in final["content"] and "| positive |" in final["content"]
    assert final["attachments"][0].filename == f"{done.version}-samples.png"
    buttons = [item.custom_id for item in final["view"].children]
    assert buttons == [
        f"moodmoji:retrain:promote:{done.version}",
        f"moodmoji:retrain:discard:{done.version}",
    ]
    assert "█" in progress_line(running[-1])
    # The upload is gone from Redis once the runner took it.
    check = redis.Redis.from_url(REDIS_URL)
    assert not check.exists(RetrainKeys(redis_prefix).upload(request.request_id))
    check.close()


async def test_a_bad_upload_fails_the_job_with_the_reason(tmp_path, tiny_models, redis_prefix):
    registry = make_registry(tmp_path / "registry", tiny_models)
    settings = runner_settings(tmp_path, redis_prefix, registry.root)
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    sync = redis.Redis.from_url(REDIS_URL)
    try:
        request = await submit_retrain(client, redis_prefix, b"not a zip at all", 1024)
        final = await asyncio.to_thread(run_request, sync, settings, request, False)
        events = await read_events(client, redis_prefix, request.request_id)
        with pytest.raises(Exception, match="at most 1024"):
            await submit_retrain(client, redis_prefix, b"x" * 2048, 1024)
    finally:
        await client.aclose()
        sync.close()
    assert final.state == "failed" and "is not a zip file" in final.message
    states = [event.state for _id, event in events]
    assert states[0] == "queued" and states[-1] == "failed" and "done" not in states
    assert registry.versions() == ["v1", "v2"]
    job_files = {p.name for p in (tmp_path / "jobs" / request.request_id).iterdir()}
    assert "data" not in job_files and "upload.zip" in job_files
