# ruff: noqa: F811 - pytest fixtures imported from worker_helpers are parameters here
"""The bot as Discord drives it: real gateway payloads through discord.py's ConnectionState.

Each test feeds INTERACTION_CREATE / MESSAGE_CREATE payloads to a real `MoodmojiBot`
(after its real `setup_hook`), and reads what it sent from the HTTP calls recorded at
discord.py's adapters (`tests/discord_harness.py`). Behind the bot everything is real:
the services, the state (memory, or a private redis-server this module starts and
stops; never the shared one), the worker client and an embedded sampling service with
tiny trained GANs. Only the mood reader is a stand-in that counts its calls, so a test
can tell whether a message was classified.
"""

import asyncio
import contextlib
import io
import shutil
import zipfile
from dataclasses import dataclass, field

import discord
import pytest
from discord_harness import (
    EPHEMERAL,
    OWNER_ID,
    Harness,
    callbacks,
    ended,
    ephemeral_answer,
    new_guild,
    new_id,
)
from worker_helpers import make_registry, samplers, tiny_models, unique_prefix  # noqa: F401

from bot.discord_bot import MoodmojiBot
from bot.services import make_services
from bot.settings import BotSettings
from bot.state import MemoryState, RedisState
from worker import InProcessTransport, WorkerClient, WorkerSettings, embedded_worker
from worker.localredis import LocalRedis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server for a private Redis"
)

ADMIN = discord.Permissions(administrator=True, manage_guild=True, manage_messages=True)
MODERATOR = discord.Permissions(manage_messages=True)
ALICE, BOB, CAROL = new_id(), new_id(), new_id()
HAPPY = "I love this, best day ever"


@dataclass
class Prediction:
    label: str
    confidence: float
    scores: dict = field(default_factory=dict)
    leaning: str = "positive"


class CountingMoods:
    """A mood reader that knows two words and counts how often it was asked."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts):
        self.texts.extend(texts)
        out = []
        for text in texts:
            label = "negative" if "hate" in text else "positive"
            scores = {label: 0.95, ("negative" if label == "positive" else "positive"): 0.05}
            out.append(Prediction(label, 0.95, scores, label))
        return out


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    server = LocalRedis(tmp_path_factory.mktemp("bot-redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def registry(tmp_path, tiny_models):
    return make_registry(tmp_path / "registry", tiny_models)


@contextlib.asynccontextmanager
async def worker(samplers):
    settings = WorkerSettings(worker_heartbeat_s=0.2, worker_block_ms=100)
    transport = InProcessTransport()
    async with embedded_worker(transport, settings, samplers=samplers):
        yield transport, settings


@contextlib.asynccontextmanager
async def real_bot(
    served,
    *guilds,
    redis: LocalRedis | None = None,
    prefix: str | None = None,
    registry=None,
    moods=None,
    retrain: bool = False,
    **overrides,
):
    """A MoodmojiBot after setup_hook, its HTTP recorded; state in memory or in `redis`."""
    transport, worker_settings = served
    values = {
        "bot_cooldown_s": 0,
        "bot_request_timeout_s": 60,
        "bot_retry_base_s": 0.01,
        "bot_state_retries": 1,
        "dev_guild_id": None,
        "discord_token": None,
        "bot_settings_cache_s": 0,
    }
    if redis is not None:
        values |= {"redis_url": redis.url, "bot_state_prefix": prefix or unique_prefix()}
    settings = BotSettings(**{**values, **overrides})
    state = RedisState(settings) if redis is not None else MemoryState(settings)
    retrain_queue = None
    if retrain:
        from worker.retraining import RetrainQueue, RetrainSettings

        retrain_queue = RetrainQueue(
            RetrainSettings(redis_url=redis.url, queue_prefix=settings.bot_state_prefix)
        )
    client = WorkerClient(transport, worker_settings, per_user_cap=False)
    services = make_services(
        client,
        state,
        settings,
        registry=registry,
        retrain_queue=retrain_queue,
        read_moods=moods or CountingMoods(),
    )
    harness = await Harness(MoodmojiBot(services)).start(*guilds)
    try:
        yield harness
    finally:
        for name in list(harness.bot.cogs):  # stops retrain followers, like a process exit
            await harness.bot.remove_cog(name)
        with contextlib.suppress(Exception):  # a test may have stopped the Redis
            await services.close()


def emoji_message(harness: Harness, calls) -> dict:
    """The message "Discord" holds for the emoji that ended these calls."""
    [edit] = [c for c in calls if c.method == "PATCH" and c.files]
    return next(
        m
        for m in reversed(harness.recorder.messages.values())
        if m["components"] and m["components"] == edit.json["components"]
    )


def button(message: dict, action: str) -> str:
    code = {"reroll": "r", "flip": "f", "add": "a", "delete": "d"}[action]
    return next(
        c["custom_id"]
        for row in message["components"]
        for c in row["components"]
        if c["custom_id"].startswith(f"mm:{code}:")
    )


# --- /emoji --------------------------------------------------------------------------


async def test_slash_emoji_is_deferred_then_answered_with_the_png_and_four_buttons(samplers):
    guild = new_guild()
    async with worker(samplers) as served, real_bot(served, guild) as harness:
        calls = await harness.interact(harness.slash(guild, ALICE, "emoji", {"text": HAPPY}))
        message = emoji_message(harness, calls)
    assert callbacks(calls) == [5]  # "thinking…" within Discord's 3 s
    edit = calls[-1]
    assert edit.method == "PATCH" and edit.path.endswith("/messages/@original")
    assert edit.files == 1 and not edit.flags & EPHEMERAL
    assert "positive" in edit.content and f"for <@{ALICE}>" in edit.content
    ids = [c["custom_id"] for row in message["components"] for c in row["components"]]
    assert [i.split(":")[1] for i in ids] == ["r", "f", "a", "d"]
    assert ended(calls)


async def test_help_and_settings_show_are_answered(samplers):
    guild = new_guild()
    async with worker(samplers) as served, real_bot(served, guild) as harness:
        help_calls = await harness.interact(harness.slash(guild, BOB, "help"))
        shown = await harness.interact(
            harness.slash(guild, ALICE, "emoji-settings", "show", permissions=ADMIN)
        )
    assert "/emoji" in ephemeral_answer(help_calls) and "This server" in ephemeral_answer(
        help_calls
    )
    assert "cooldown" in ephemeral_answer(shown) and "a day" in ephemeral_answer(shown)


async def test_the_message_command_reads_the_chosen_message(samplers):
    guild = new_guild()
    moods = CountingMoods()
    async with worker(samplers) as served, real_bot(served, guild, moods=moods) as harness:
        target = harness.chat_message(guild, BOB, "I hate mondays")
        payload = harness.slash(guild, ALICE, "Suggest emoji")
        payload["data"] |= {
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
            "options": [],
        }
        calls = await harness.interact(payload)
    assert moods.texts == ["I hate mondays"]
    assert callbacks(calls) == [5]
    assert calls[-1].files == 1 and "negative" in calls[-1].content


async def test_a_cooldown_refusal_replaces_the_public_thinking_privately(samplers):
    guild = new_guild()
    async with worker(samplers) as served, real_bot(served, guild, bot_cooldown_s=600) as harness:
        await harness.interact(harness.slash(guild, ALICE, "emoji", {"mood": "positive"}))
        calls = await harness.interact(harness.slash(guild, ALICE, "emoji", {"mood": "positive"}))
    assert callbacks(calls) == [5]
    assert [c.method for c in calls[1:]] == ["DELETE", "POST"]  # thinking removed, then…
    assert "next emoji is ready in" in ephemeral_answer(calls)  # …only the user reads why


async def test_others_in_the_queue_are_told_once_while_waiting():
    transport = InProcessTransport()  # nobody serves it: a request ahead stays queued
    settings = WorkerSettings()
    guild = new_guild()
    ahead = WorkerClient(transport, settings)
    waiting = asyncio.create_task(ahead.generate("positive", 1, timeout=60))
    await asyncio.sleep(0)
    try:
        async with real_bot((transport, settings), guild, bot_request_timeout_s=0.5) as harness:
            calls = await harness.interact(
                harness.slash(guild, ALICE, "emoji", {"mood": "positive"})
            )
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await ahead.close()
    notices = [c for c in calls if c.method == "PATCH" and "ahead of you" in c.content]
    assert len(notices) == 1 and "1 ahead of you" in notices[0].content
    assert "did not answer in time" in ephemeral_answer(calls) and ended(calls)


def test_the_bot_asks_only_for_the_intents_it_uses():
    from bot.discord_bot import intents_for

    def settings(**values):
        return BotSettings(discord_token=None, dev_guild_id=None, **values)

    with_content = intents_for(settings())
    without = intents_for(settings(bot_message_content_intent=False))
    assert with_content.guilds and with_content.guild_messages and with_content.emojis_and_stickers
    assert with_content.message_content and not without.message_content
    unused = ("typing", "voice_states", "invites", "presences", "members", "dm_messages")
    assert not any(getattr(with_content, name) for name in unused)


# --- operators -----------------------------------------------------------------------

OPERATOR_COMMANDS = [
    ("status", {}),
    ("promote", {"version": "v2", "force": True}),
    ("rollback", {}),
    ("retrain", {"positive": "grin"}),
]


async def test_a_guild_admin_of_another_guild_is_refused_every_operator_command(
    samplers,
    registry,
):
    guild = new_guild()
    async with worker(samplers) as served, real_bot(served, guild, registry=registry) as harness:
        answers = []
        for sub, options in OPERATOR_COMMANDS:
            payload = harness.slash(guild, BOB, "emoji-admin", sub, options, permissions=ADMIN)
            answers.append(await harness.interact(payload))
        decision = harness.recorder.message(
            guild.channel_id,
            "Retrain rt1 published v2",
            [
                {
                    "type": 1,
                    "components": [
                        {"type": 2, "style": 3, "label": label, "custom_id": cid}
                        for label, cid in (
                            ("Promote", "moodmoji:retrain:promote:v2"),
                            ("Discard", "moodmoji:retrain:discard:v2"),
                        )
                    ],
                }
            ],
        )
        for custom_id in ("moodmoji:retrain:promote:v2", "moodmoji:retrain:discard:v2"):
            payload = harness.press(guild, BOB, decision, custom_id, permissions=ADMIN)
            answers.append(await harness.interact(payload))
    for calls in answers:
        assert callbacks(calls) in ([4], [5]), calls  # refused before any work
        assert "operators only" in ephemeral_answer(calls)
        assert ended(calls)
    assert registry.active_version() == "v1"
    assert "discarded_at" not in registry.meta("v2")


async def test_the_owner_and_the_operations_role_are_allowed(samplers, registry):
    ops_role = new_id()
    ops = new_guild(operators=ops_role)
    elsewhere = new_guild()
    settings = {"bot_operator_guild_id": ops.id, "bot_operator_role_id": ops_role}
    async with (
        worker(samplers) as served,
        real_bot(served, ops, elsewhere, registry=registry, **settings) as harness,
    ):
        tree = harness.bot.tree
        assert tree.get_command("emoji-admin") is None  # not a global command
        assert tree.get_command("emoji-admin", guild=discord.Object(ops.id)) is not None

        def admin(guild, user, sub, options=None, **kw):
            return harness.slash(
                guild, user, "emoji-admin", sub, options or {}, command_guild=ops.id, **kw
            )

        status = await harness.interact(admin(ops, OWNER_ID, "status"))
        promote = await harness.interact(
            admin(ops, CAROL, "promote", {"version": "v2"}, roles=[ops_role])
        )
        live_after_promote = registry.active_version()
        no_role = await harness.interact(admin(ops, BOB, "rollback", permissions=ADMIN))
        # Sent from another server (Discord would not even offer it there): not found.
        foreign = await harness.interact(
            harness.slash(elsewhere, BOB, "emoji-admin", "rollback", {}, permissions=ADMIN)
        )
        rollback = await harness.interact(admin(ops, OWNER_ID, "rollback"))
    assert "workers alive" in ephemeral_answer(status)
    assert "`v2` is live" in ephemeral_answer(promote) and live_after_promote == "v2"
    assert "operators only" in ephemeral_answer(no_role)
    assert "not available here" in ephemeral_answer(foreign)
    assert "Rolled back to `v1`" in ephemeral_answer(rollback)
    assert registry.active_version() == "v1"
    for calls in (status, promote, no_role, foreign, rollback):
        assert ended(calls)


async def test_server_settings_belong_to_manage_server_and_the_servers_own_role(samplers):
    role = new_id()
    guild = new_guild(helpers=role)
    async with worker(samplers) as served, real_bot(served, guild) as harness:
        member = await harness.interact(
            harness.slash(guild, BOB, "emoji-settings", "autosuggest", {"state": "on"})
        )
        manager = await harness.interact(
            harness.slash(
                guild,
                ALICE,
                "emoji-settings",
                "admin-role",
                {"role": (8, str(role))},
                permissions=discord.Permissions(manage_guild=True),
                resolved={
                    "roles": {
                        str(role): {
                            "id": str(role),
                            "name": "helpers",
                            "permissions": "0",
                            "position": 1,
                            "color": 0,
                            "hoist": False,
                            "managed": False,
                            "mentionable": False,
                        }
                    }
                },
            )
        )
        with_role = await harness.interact(
            harness.slash(guild, CAROL, "emoji-settings", "cooldown", {"seconds": 30}, roles=[role])
        )
        stored = await harness.bot.services.guilds.get(str(guild.id))
    assert "Manage Server" in ephemeral_answer(member)
    assert str(role) in ephemeral_answer(manager)
    assert "`cooldown` is now `30`" in ephemeral_answer(with_role)
    assert stored.admin_role_id == role and stored.emoji_cooldown_s == 30


# --- every interaction ends ------------------------------------------------------------


async def test_redis_stopped_mid_request_ends_in_an_ephemeral_message(samplers, tmp_path):
    server = LocalRedis(tmp_path / "redis")
    server.start()
    guild = new_guild()
    try:
        async with worker(samplers) as served, real_bot(served, guild, redis=server) as harness:

            def stop_redis_after_the_defer(call):
                if call.callback_type == 5:
                    server.kill()

            harness.recorder.on_call.append(stop_redis_after_the_defer)
            calls = await harness.interact(harness.slash(guild, ALICE, "emoji", {"text": HAPPY}))
    finally:
        server.kill()
    assert callbacks(calls) == [5]
    assert any(c.method == "DELETE" and c.path.endswith("@original") for c in calls)
    assert "Redis" in ephemeral_answer(calls)
    assert "Traceback" not in ephemeral_answer(calls)
    assert ended(calls)


async def test_a_redis_restart_between_requests_is_ridden_out(samplers, tmp_path):
    server = LocalRedis(tmp_path / "redis")
    server.start()
    guild = new_guild()
    try:
        async with worker(samplers) as served, real_bot(served, guild, redis=server) as harness:
            before = await harness.interact(
                harness.slash(guild, ALICE, "emoji", {"mood": "positive"})
            )
            server.kill()
            server.start()  # same port: the state's pooled connection is now stale
            after = await harness.interact(
                harness.slash(guild, ALICE, "emoji", {"mood": "positive"})
            )
    finally:
        server.kill()
    for calls in (before, after):
        assert calls[-1].method == "PATCH" and calls[-1].files == 1  # the emoji, not a refusal


async def test_an_unexpected_error_gets_an_incident_id_that_is_logged(samplers, caplog):
    def broken(texts):
        raise RuntimeError("the mood reader fell over")

    guild = new_guild()
    async with worker(samplers) as served, real_bot(served, guild, moods=broken) as harness:
        calls = await harness.interact(harness.slash(guild, ALICE, "emoji", {"text": HAPPY}))
    text = ephemeral_answer(calls)
    incident = text.split("incident `")[1].split("`")[0]
    assert any(incident in record.getMessage() for record in caplog.records)
    assert "RuntimeError" not in text and ended(calls)


# --- manners ---------------------------------------------------------------------------


async def test_buttons_answer_only_the_requester_and_edit_the_message_in_place(samplers):
    guild = new_guild()
    async with worker(samplers) as served, real_bot(served, guild) as harness:
        calls = await harness.interact(harness.slash(guild, ALICE, "emoji", {"mood": "positive"}))
        message = emoji_message(harness, calls)
        strangers = [
            await harness.interact(harness.press(guild, BOB, message, button(message, action)))
            for action in ("reroll", "flip", "add")
        ]
        posts_before = sum(
            1 for c in harness.recorder.calls if c.method == "POST" and "/webhooks/" in c.path
        )
        flip = await harness.interact(harness.press(guild, ALICE, message, button(message, "flip")))
        posts_after = sum(
            1 for c in harness.recorder.calls if c.method == "POST" and "/webhooks/" in c.path
        )
    for calls in strangers:
        assert callbacks(calls) == [4]
        assert "make your own with /emoji" in ephemeral_answer(calls)
    assert callbacks(flip) == [6]  # a silent deferral: the message itself changes
    [edit] = [c for c in flip if c.method == "PATCH"]
    assert edit.path.endswith("/messages/@original") and edit.files == 1
    assert "negative" in edit.content and f"for <@{ALICE}>" in edit.content
    assert posts_after == posts_before  # no new public post


async def test_delete_works_for_the_requester_and_moderators_only(samplers):
    guild = new_guild()
    async with worker(samplers) as served, real_bot(served, guild) as harness:
        first = emoji_message(
            harness,
            await harness.interact(harness.slash(guild, ALICE, "emoji", {"mood": "negative"})),
        )
        second = emoji_message(
            harness,
            await harness.interact(harness.slash(guild, ALICE, "emoji", {"mood": "positive"})),
        )
        stranger = await harness.interact(harness.press(guild, BOB, first, button(first, "delete")))
        own = await harness.interact(harness.press(guild, ALICE, first, button(first, "delete")))
        moderator = await harness.interact(
            harness.press(guild, CAROL, second, button(second, "delete"), permissions=MODERATOR)
        )
    assert "Only <@" in ephemeral_answer(stranger)
    for calls in (own, moderator):
        assert callbacks(calls) == [6]
        assert calls[-1].method == "DELETE" and calls[-1].path.endswith("/messages/@original")


async def test_add_to_server_runs_the_real_modal_and_its_errors_end_in_words(samplers):
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGBA", (128, 128), "gold").save(picture, format="PNG")
    guild = new_guild()
    may = discord.Permissions(create_expressions=True)
    async with worker(samplers) as served, real_bot(served, guild) as harness:
        message = emoji_message(
            harness,
            await harness.interact(harness.slash(guild, ALICE, "emoji", {"mood": "positive"})),
        )
        url = message["attachments"][0]["url"]

        async def add(name: str):
            offered = await harness.interact(
                harness.press(guild, ALICE, message, button(message, "add"), permissions=may)
            )
            modal = offered[-1].json["data"]
            field_id = modal["components"][0]["components"][0]["custom_id"]
            payload = harness.submit(
                guild, ALICE, modal["custom_id"], {field_id: name}, permissions=may
            )
            return offered, await harness.interact(payload)

        harness.recorder.cdn[url] = b"not a picture"  # the upload raises, and not over HTTP
        _offered, broken = await add("broken")
        harness.recorder.cdn[url] = picture.getvalue()
        offered, submitted = await add("happy face")
    assert callbacks(offered) == [9]
    assert "incident `" in ephemeral_answer(broken) and ended(broken)
    upload = next(c for c in harness.recorder.calls if c.path.endswith("/emojis"))
    assert upload.json["name"] == "happy_face"
    assert "Added" in ephemeral_answer(submitted)


# --- restarts --------------------------------------------------------------------------


async def test_a_restart_keeps_buttons_and_resumes_the_retrain_follower(
    samplers,
    registry,
    private_redis,
):
    import redis as sync_redis

    from worker.retraining import RetrainEvent, RetrainSettings
    from worker.retraining.queue import emit_event

    guild = new_guild()
    prefix = unique_prefix()
    common = {"redis": private_redis, "prefix": prefix, "registry": registry, "retrain": True}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("positive/a.png", b"png")
        zipped.writestr("negative/b.png", b"png")
    async with worker(samplers) as served:
        async with real_bot(served, guild, **common) as before:
            emoji = emoji_message(
                before,
                await before.interact(before.slash(guild, ALICE, "emoji", {"mood": "positive"})),
            )
            attachment = new_id()
            url = f"https://cdn.test/{attachment}/faces.zip"
            before.recorder.cdn[url] = archive.getvalue()
            queued = await before.interact(
                before.slash(
                    guild,
                    OWNER_ID,
                    "emoji-admin",
                    "retrain",
                    {"data": discord.Object(attachment)},
                    resolved={
                        "attachments": {
                            str(attachment): {
                                "id": str(attachment),
                                "filename": "faces.zip",
                                "size": len(archive.getvalue()),
                                "url": url,
                                "proxy_url": url,
                            }
                        }
                    },
                )
            )
            progress = next(
                c for c in before.recorder.calls if c.method == "POST" and "/channels/" in c.path
            )
            request_id = progress.json["content"].split("`")[1]
        # The bot process is gone; the retrain runner finishes meanwhile.
        settings = RetrainSettings(redis_url=private_redis.url, queue_prefix=prefix)
        runner_redis = sync_redis.Redis.from_url(private_redis.url)
        emit_event(
            runner_redis,
            settings,
            RetrainEvent(
                request_id=request_id, state="done", version="v2", message="| fid | better |"
            ),
        )
        runner_redis.close()
        async with real_bot(served, guild, **common) as after:
            shown = await wait_for_call(
                after,
                lambda c: (
                    c.method == "PATCH"
                    and "/channels/" in c.path
                    and "moodmoji:retrain:promote:v2" in c.custom_ids()
                ),
            )
            pressed = await after.interact(
                after.press(guild, ALICE, emoji, button(emoji, "reroll"))
            )
            follows = await after.bot.services.state.follows()
    assert "Queued as" in ephemeral_answer(queued)
    assert "published `v2`" in shown.content
    assert request_id not in follows  # finished: not resumed again on the next start
    assert callbacks(pressed) == [6]
    assert any(c.method == "PATCH" and c.files for c in pressed)


async def wait_for_call(harness: Harness, matches, bound_s: float = 120.0):
    """The first recorded call that `matches`, waiting (bounded) for background tasks."""
    for _ in range(int(bound_s / 0.05)):
        found = [c for c in harness.recorder.calls if matches(c)]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError("the call never came")


# --- auto-suggest ------------------------------------------------------------------------


async def test_auto_suggest_does_not_classify_in_a_rate_limited_channel(samplers):
    guild = new_guild()
    moods = CountingMoods()
    async with worker(samplers) as served, real_bot(served, guild, moods=moods) as harness:
        switched = await harness.interact(
            harness.slash(
                guild, ALICE, "emoji-settings", "autosuggest", {"state": "on"}, permissions=ADMIN
            )
        )
        await harness.message(harness.chat_message(guild, BOB, HAPPY))
        classified_first = len(moods.texts)
        replies_first = _replies(harness)
        await harness.message(harness.chat_message(guild, CAROL, "I love it too, so happy"))
    assert "Auto-suggest is **on**" in ephemeral_answer(switched)
    assert classified_first == 1 and len(replies_first) == 1
    assert replies_first[0].files == 1 and replies_first[0].json["flags"] & 4096  # silent
    assert len(moods.texts) == 1  # the second message was not classified
    assert len(_replies(harness)) == 1


def _replies(harness: Harness):
    return [
        c
        for c in harness.recorder.calls
        if c.method == "POST" and c.path.endswith("/messages") and c.json.get("message_reference")
    ]
