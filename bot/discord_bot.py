"""The discord.py client: cogs, persistent buttons, command sync by hash, clean shutdown."""

import asyncio
import hashlib
import json
import logging
import os
import signal
import socket

import discord
from discord.ext import commands

from bot.cogs.admin import AdminCog, RetrainDecision
from bot.cogs.autosuggest import AutoSuggestCog
from bot.cogs.emoji import EmojiButton, EmojiCog
from bot.core import EmojiService
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


class MoodmojiBot(commands.AutoShardedBot):
    """Runs the shards `bot_shard_ids` of `bot_shard_count` (default: all, as Discord advises)."""

    def __init__(self, service: EmojiService, settings: BotSettings, *, force_sync: bool = False):
        intents = discord.Intents.default()
        intents.message_content = settings.bot_message_content_intent
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            shard_ids=settings.bot_shard_ids,
            shard_count=settings.bot_shard_count,
        )
        self.service = service
        self.settings = settings
        self.force_sync = force_sync

    async def setup_hook(self) -> None:
        await self.service.client.start()
        await self.add_cog(EmojiCog(self, self.service, self.settings))
        await self.add_cog(AutoSuggestCog(self.service, self.settings))
        await self.add_cog(AdminCog(self.service, self.settings))
        # Every button ever sent matches this template, so clicks survive restarts.
        self.add_dynamic_items(EmojiButton, RetrainDecision)
        await self.sync_commands()

    async def sync_commands(self) -> bool:
        """Sync only with --sync or when the command tree changed since the last sync.

        Discord rate-limits syncs hard; the hash of the last synced tree lives in Redis,
        so restarts do not sync again. In a sharded fleet only the process running shard 0
        syncs: commands are global, and N processes rolling out together would race.
        """
        if self.settings.bot_shard_ids is not None and 0 not in self.settings.bot_shard_ids:
            return False
        guild_id = self.settings.dev_guild_id
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        scope = f"guild-{guild_id}" if guild_id else "global"
        digest = command_tree_hash(self.tree, guild)
        stored = await self.service.state.get_value(f"commands-hash:{scope}")
        if stored == digest and not self.force_sync:
            log.info("commands unchanged since the last sync (%s); not syncing", scope)
            return False
        synced = await self.tree.sync(guild=guild)
        await self.service.state.set_value(f"commands-hash:{scope}", digest)
        log.info("synced %d commands (%s)", len(synced), scope)
        return True

    async def close(self) -> None:
        log.info("shutting down")
        await super().close()
        await self.service.client.close()
        await self.service.client.transport.close()
        await self.service.state.close()

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


def build_service(settings: BotSettings) -> EmojiService:
    """The production wiring: Redis queue (answers on this process's own stream), Redis state."""
    from bot.state import RedisState
    from worker import RedisStreamsTransport, WorkerClient, WorkerSettings

    worker_settings = WorkerSettings()
    client = WorkerClient(
        RedisStreamsTransport(worker_settings), worker_settings, reply_stream_name(settings)
    )
    return EmojiService(client, RedisState(settings), settings)


async def run_bot(settings: BotSettings, force_sync: bool = False) -> None:
    if settings.discord_token is None:
        raise MoodmojiError("set MOODMOJI_DISCORD_TOKEN to the bot token (see docs/bot.md)")
    bot = MoodmojiBot(build_service(settings), settings, force_sync=force_sync)
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
