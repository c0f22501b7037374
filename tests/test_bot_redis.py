"""Limits and settings shared by bot processes through Redis, and `moodmoji chat`."""

import io
import os
import uuid

import pytest
from PIL import Image
from test_bot import HAPPY, bot_settings, samplers  # noqa: F401
from worker_helpers import REDIS_URL, tiny_models  # noqa: F401

from bot.chat import ChatSession, chat_loop
from bot.core import EmojiReply, Refusal, RefusalKind, Skipped, Suggestion
from bot.services import make_services
from bot.state import MemoryState, RedisState
from worker import InProcessTransport, WorkerClient, WorkerSettings, embedded_worker

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def state_prefix():
    prefix = f"moodmoji-test-bot-{uuid.uuid4().hex[:10]}"
    yield prefix
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def redis_settings(prefix: str, **overrides):
    return bot_settings(redis_url=REDIS_URL, bot_state_prefix=prefix, **overrides)


@pytest.mark.redis
async def test_the_cooldown_holds_across_two_bot_instances_sharing_redis(samplers, state_prefix):  # noqa: F811
    settings = redis_settings(state_prefix, bot_cooldown_s=30)
    worker_settings = WorkerSettings(worker_block_ms=100)
    transport = InProcessTransport()
    async with embedded_worker(transport, worker_settings, samplers=samplers):
        # Two bot processes: own worker clients (own reply channels), own Redis connections.
        bots = [
            make_services(
                WorkerClient(transport, worker_settings, per_user_cap=False),
                RedisState(settings),
                settings,
            )
            for _ in range(2)
        ]
        first = await bots[0].emojis.emoji(user_id="42", mood="positive")
        second = await bots[1].emojis.emoji(user_id="42", mood="positive")
        someone_else = await bots[1].emojis.emoji(user_id="43", mood="positive")
        for service in bots:
            await service.client.close()
            await service.state.close()
    assert isinstance(first, EmojiReply)
    assert isinstance(second, Refusal) and second.kind == RefusalKind.COOLDOWN
    assert 25 < second.retry_after_s <= 30
    assert isinstance(someone_else, EmojiReply)


@pytest.mark.redis
async def test_in_flight_caps_count_every_process_and_expire(state_prefix):
    settings = redis_settings(state_prefix)
    one, two = RedisState(settings), RedisState(settings)
    try:
        assert await one.acquire_slot("u", 2, 30)
        assert await two.acquire_slot("u", 2, 30)
        assert not await one.acquire_slot("u", 2, 30)
        await two.release_slot("u")
        assert await one.acquire_slot("u", 2, 30)
        # A process that died holding slots cannot lock the user out beyond the TTL.
        assert await one.redis.ttl(one.key("in-flight", "u")) <= 30
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_guild_settings_live_in_redis_and_survive_a_restart(state_prefix):
    settings = redis_settings(state_prefix)
    before = RedisState(settings)
    await before.set_autosuggest("g", "c1", True)
    await before.update_guild_setting("g", "threshold", "0.75")
    await before.update_guild_setting("g", "mode", "react")
    await before.close()
    after = RedisState(settings)  # a new process
    stored = await after.guild_settings("g")
    untouched = await after.guild_settings("another-guild")
    await after.close()
    assert stored.autosuggest_channels == {"c1"}
    assert (stored.threshold, stored.mode, stored.interval_s) == (0.75, "react", 60)
    assert untouched.autosuggest_channels == frozenset() and untouched.mode == "reply"


@pytest.mark.redis
async def test_the_auto_suggest_rate_limit_is_shared_by_processes(samplers, state_prefix):  # noqa: F811
    settings = redis_settings(state_prefix)
    worker_settings = WorkerSettings(worker_block_ms=100)
    transport = InProcessTransport()
    async with embedded_worker(transport, worker_settings, samplers=samplers):
        bots = [
            make_services(
                WorkerClient(transport, worker_settings, per_user_cap=False),
                RedisState(settings),
                settings,
            )
            for _ in range(2)
        ]
        await bots[0].guilds.change(guild_id="g", channel_id="c", name="autosuggest", value="on")
        first = await bots[0].suggestions.suggest(text=HAPPY, guild_id="g", channel_id="c")
        second = await bots[1].suggestions.suggest(text=HAPPY, guild_id="g", channel_id="c")
        for service in bots:
            await service.client.close()
            await service.state.close()
    assert isinstance(first, Suggestion)
    assert second == Skipped("rate_limited")


# --- moodmoji chat ---------------------------------------------------------------------


async def test_chat_runs_the_same_handlers_and_saves_pngs(samplers, tmp_path):  # noqa: F811
    settings = bot_settings(autosuggest_interval_s=0)
    worker_settings = WorkerSettings(worker_block_ms=100)
    transport = InProcessTransport()
    output = io.StringIO()
    async with embedded_worker(transport, worker_settings, samplers=samplers):
        client = WorkerClient(transport, worker_settings)
        service = make_services(client, MemoryState(settings), settings)
        session = ChatSession(service, tmp_path / "emojis", width=16)
        await session.start(autosuggest=True)
        lines = iter(
            [
                "/emoji I am so happy today",
                "/flip",
                "/reroll",
                "/emoji mood:negative",
                HAPPY,
                "/emoji-settings autosuggest off",
                HAPPY,
                "/emoji-settings threshold 2",
                "/nonsense",
                "/quit",
                "/emoji never reached",
            ]
        )
        assert await chat_loop(session, lines, output) == 0
        await client.close()
    text = output.getvalue()
    saved = sorted((tmp_path / "emojis").glob("*.png"))
    assert len(saved) == 5  # four commands and one auto-suggestion; none after "off"
    for path in saved:
        assert Image.open(path).size == (128, 128)
    assert text.count("▀") >= 5 * 16 * 8
    assert "positive" in text and "negative" in text
    assert "Auto-suggest is off" in text
    assert "not a valid threshold" in text
    assert "unknown command /nonsense" in text


def test_chat_keeps_log_lines_off_the_screen(tmp_path, capsys):
    import logging

    from bot.cli import _logs_to_file

    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        _logs_to_file(tmp_path / "chat.log")
        logging.getLogger("worker.service").warning("worker embedded now serves v1")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)
    assert "now serves v1" in (tmp_path / "chat.log").read_text()
    captured = capsys.readouterr()
    assert "now serves v1" not in captured.out + captured.err
