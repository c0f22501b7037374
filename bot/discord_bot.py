"""The discord.py client: cogs, persistent buttons, command sync by hash, clean shutdown."""

import asyncio
import hashlib
import json
import logging
import os
import signal
import socket

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.admin import AdminCog, RetrainDecision
from bot.cogs.autosuggest import AutoSuggestCog
from bot.cogs.emoji import EmojiButton, EmojiCog
from bot.discord_io import report
from bot.services import Services, make_services
from bot.settings import BotSettings
from moodmoji.errors import MoodmojiError

log = logging.getLogger(__name__)


def command_tree_hash(tree: discord.app_commands.CommandTree, guild: discord.Object | None) -> str:
    """A digest of what a sync would upload: equal digests mean syncing would change nothing."""
    payload = sorted(
        (command.to_dict(tree) for command in tree.get_commands(guild=guild)),
        key=lambda entry: (entry.get("type", 1), entry["name"]),
    )
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def intents_for(settings: BotSettings) -> discord.Intents:
    """Only what the bot uses: guilds (commands, permissions), guild messages and their
    content (auto-suggest; content only when asked for), expressions (Add to server's
    free-slot count). No typing, voice, invites, presences or DMs."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.emojis_and_stickers = True
    intents.message_content = settings.bot_message_content_intent
    return intents


class MoodmojiTree(app_commands.CommandTree):
    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Every command's one error path: the user reads why, never a traceback."""
        await report(interaction, error)


class MoodmojiBot(commands.AutoShardedBot):
    """Runs the shards `bot_shard_ids` of `bot_shard_count` (default: all, as Discord advises)."""

    def __init__(self, services: Services, *, force_sync: bool = False, **options):
        settings = services.settings
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents_for(settings),
            help_command=None,
            tree_cls=MoodmojiTree,
            allowed_mentions=discord.AllowedMentions.none(),
            shard_ids=settings.bot_shard_ids,
            shard_count=settings.bot_shard_count,
            **options,
        )
        self.services = services
        self.settings = settings
        self.force_sync = force_sync

    @property
    def operations_guild(self) -> discord.Object | None:
        guild_id = self.settings.bot_operator_guild_id
        return discord.Object(id=guild_id) if guild_id else None

    async def setup_hook(self) -> None:
        await self.services.client.start()
        await self.add_cog(EmojiCog(self, self.services))
        await self.add_cog(AutoSuggestCog(self.services))
        # Operator commands only where the operators are, when that place is known.
        guild = self.operations_guild
        await self.add_cog(AdminCog(self, self.services), guild=guild or discord.utils.MISSING)
        # Every button ever sent matches these templates, so clicks survive restarts.
        self.add_dynamic_items(EmojiButton, RetrainDecision)
        await self.sync_commands()

    def sync_scopes(self) -> list[discord.Object | None]:
        """Where commands live: the test guild or everywhere, plus the operations guild."""
        dev = self.settings.dev_guild_id
        scopes: list[discord.Object | None] = [discord.Object(id=dev) if dev else None]
        ops = self.operations_guild
        if ops is not None and ops.id != dev:
            scopes.append(ops)
        return scopes

    async def sync_commands(self) -> bool:
        """Sync only with --sync or when a scope's command tree changed since its last sync.

        Discord rate-limits syncs hard; the hash of the last synced tree lives in Redis,
        so restarts do not sync again. In a sharded fleet only the process running shard 0
        syncs: commands are global, and N processes rolling out together would race.
        """
        if self.settings.bot_shard_ids is not None and 0 not in self.settings.bot_shard_ids:
            return False
        synced_any = False
        for guild in self.sync_scopes():
            if guild is not None and guild.id == self.settings.dev_guild_id:
                self.tree.copy_global_to(guild=guild)
            scope = f"guild-{guild.id}" if guild else "global"
            digest = command_tree_hash(self.tree, guild)
            stored = await self.services.state.get_value(f"commands-hash:{scope}")
            if stored == digest and not self.force_sync:
                log.info("commands unchanged since the last sync (%s); not syncing", scope)
                continue
            synced = await self.tree.sync(guild=guild)
            await self.services.state.set_value(f"commands-hash:{scope}", digest)
            log.info("synced %d commands (%s)", len(synced), scope)
            synced_any = True
        return synced_any

    async def close(self) -> None:
        log.info("shutting down")
        await super().close()
        await self.services.close()

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d guilds", self.user, self.user.id, len(self.guilds))


def reply_stream_name(settings: BotSettings) -> str | None:
    """This process's reply stream, named after its shards so operators can tell them apart.

    The host and pid keep two processes apart even if they were (wrongly) given the same
    shards; None leaves the client's default (host-pid-random).
    """
    if settings.bot_shard_ids is None:
        return None
    shards = "-".join(str(i) for i in sorted(settings.bot_shard_ids))
    return f"shard-{shards}-of-{settings.bot_shard_count}-{socket.gethostname()}-{os.getpid()}"


def build_services(settings: BotSettings) -> Services:
    """The production wiring: Redis queue (answers on this process's own stream), Redis
    state, the retrain queue. The bot keeps the per-user cap itself (shared by all its
    processes), so the worker client does not count users again."""
    from bot.state import RedisState
    from worker import RedisStreamsTransport, WorkerClient
    from worker.retraining import RetrainQueue, RetrainSettings

    worker_settings = RetrainSettings()
    client = WorkerClient(
        RedisStreamsTransport(worker_settings),
        worker_settings,
        reply_stream_name(settings),
        per_user_cap=False,
    )
    return make_services(
        client, RedisState(settings), settings, retrain_queue=RetrainQueue(worker_settings)
    )


async def run_bot(settings: BotSettings, force_sync: bool = False) -> None:
    if settings.discord_token is None:
        raise MoodmojiError("set MOODMOJI_DISCORD_TOKEN to the bot token (see docs/bot.md)")
    bot = MoodmojiBot(build_services(settings), force_sync=force_sync)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
    try:
        async with bot:
            await bot.start(settings.discord_token.get_secret_value())
    except discord.LoginFailure:
        raise MoodmojiError("Discord refused MOODMOJI_DISCORD_TOKEN; copy a fresh one") from None
    except discord.PrivilegedIntentsRequired:
        raise MoodmojiError(
            "enable the Message Content intent in the developer portal, or set "
            "MOODMOJI_BOT_MESSAGE_CONTENT_INTENT=false (no auto-suggest)"
        ) from None
