"""Bot sharding: shard settings, the sharded discord.py client, one reply stream per process."""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import asyncio
import contextlib
from unittest.mock import AsyncMock

import pytest
from pydantic import ValidationError
from worker_helpers import (
    REDIS_URL,
    queue_settings,
    redis_prefix,
    reply_stream_results,
    samplers,
    tiny_models,
)

from bot.discord_bot import MoodmojiBot, build_services, reply_stream_name
from bot.services import make_services
from bot.settings import BotSettings
from bot.state import MemoryState
from worker import InProcessTransport, RedisStreamsTransport, WorkerClient, WorkerSettings
from worker.service import SamplingService


def shard_settings(**values) -> BotSettings:
    return BotSettings(discord_token=None, dev_guild_id=None, **values)


@pytest.mark.parametrize(
    ("text", "expected"), [("3", [3]), ("0,2", [0, 2]), ("[1, 2]", [1, 2]), (" 0 , 1 ", [0, 1])]
)
def test_shard_ids_read_from_the_environment(monkeypatch, text, expected):
    monkeypatch.setenv("MOODMOJI_BOT_SHARD_IDS", text)
    monkeypatch.setenv("MOODMOJI_BOT_SHARD_COUNT", "4")
    settings = shard_settings()
    assert settings.bot_shard_ids == expected and settings.bot_shard_count == 4


@pytest.mark.parametrize(
    ("ids", "count", "message"),
    [
        ("0", None, "needs bot_shard_count"),
        ("4", 4, "from 0 to 3"),
        ("1,1", 2, "distinct"),
        ("-1", 2, "from 0 to 1"),
    ],
)
def test_shard_ids_that_do_not_fit_the_count_are_refused(ids, count, message):
    with pytest.raises(ValidationError, match=message):
        shard_settings(bot_shard_ids=ids, bot_shard_count=count)


def test_unsharded_by_default():
    settings = shard_settings()
    assert settings.bot_shard_ids is None and settings.bot_shard_count is None
    assert reply_stream_name(settings) is None


@contextlib.asynccontextmanager
async def offline_bot(settings: BotSettings):
    """A MoodmojiBot on an in-process queue and memory state; Discord's sync is stubbed."""
    transport = InProcessTransport()
    client = WorkerClient(transport, WorkerSettings())
    bot = MoodmojiBot(make_services(client, MemoryState(settings), settings))
    bot.tree.sync = AsyncMock(return_value=[])
    try:
        yield bot
    finally:
        await client.close()


async def test_the_client_runs_its_shards_and_only_shard_0_syncs_commands():
    async with offline_bot(shard_settings(bot_shard_ids="1,3", bot_shard_count=4)) as others:
        assert others.shard_ids == [1, 3] and others.shard_count == 4
        assert await others.sync_commands() is False
        assert others.tree.sync.await_count == 0
    async with offline_bot(shard_settings(bot_shard_ids="0,2", bot_shard_count=4)) as first:
        assert first.shard_ids == [0, 2] and first.shard_count == 4
        assert await first.sync_commands() is True
        assert first.tree.sync.await_count == 1
    async with offline_bot(shard_settings()) as unsharded:
        assert unsharded.shard_ids is None and unsharded.shard_count is None
        assert await unsharded.sync_commands() is True


@pytest.mark.redis
async def test_each_shard_process_gets_its_answers_on_its_own_reply_stream(
    monkeypatch, redis_prefix, samplers
):
    # build_services reads its queue settings from the environment, as `moodmoji bot` does.
    monkeypatch.setenv("MOODMOJI_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MOODMOJI_QUEUE_PREFIX", redis_prefix)
    monkeypatch.setenv("MOODMOJI_BOT_STATE_PREFIX", f"{redis_prefix}:bot")
    settings = queue_settings(redis_prefix, worker_labels=["positive", "negative"])
    worker_transport = RedisStreamsTransport(settings)
    worker = SamplingService(worker_transport, settings, samplers=samplers, worker_id="w-shards")
    serving = asyncio.create_task(worker.run())
    shards = [
        build_services(shard_settings(bot_shard_ids=str(i), bot_shard_count=2)) for i in (0, 1)
    ]
    try:
        await asyncio.wait_for(worker.wait_ready(), 30)
        names = [service.client.reply_to for service in shards]
        assert names[0].startswith("shard-0-of-2-") and names[1].startswith("shard-1-of-2-")
        for service in shards:
            await service.client.start()
        asked = {
            index: [
                service.client.request(label, seed=seed, size=32)
                for seed, label in enumerate(["positive", "negative", "positive"])
            ]
            for index, service in enumerate(shards)
        }
        results = await asyncio.gather(
            *(
                shards[index].client.submit(request, timeout=30)
                for index, requests in asked.items()
                for request in requests
            )
        )
        assert all(result.ok for result in results)
        for index, service in enumerate(shards):
            on_stream = await reply_stream_results(worker_transport, service.client.reply_to)
            # This process's stream holds its own answers, all of them, and nothing else.
            assert sorted(r.request_id for r in on_stream) == sorted(
                request.request_id for request in asked[index]
            )
    finally:
        worker.request_stop()
        await asyncio.wait_for(serving, 30)
        for service in shards:
            await service.close()
        await worker_transport.close()
