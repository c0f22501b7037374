"""Auto-suggestions on chat messages, and `/emoji-settings` to switch them per channel.

Reading messages needs the privileged message-content intent; without it Discord sends
empty contents and nothing is ever suggested (the "Suggest emoji" message command works
regardless). Off by default: a channel opts in with `/emoji-settings autosuggest on`.
"""

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import EmojiService, Refusal, Skipped, Suggestion
from bot.discord_io import (
    DiscordRateLimited,
    answer,
    png_file,
    refuse,
    require_operator,
    with_discord_retries,
)
from bot.settings import BotSettings

log = logging.getLogger(__name__)


class AutoSuggestCog(commands.Cog, name="AutoSuggest"):
    settings_group = app_commands.Group(
        name="emoji-settings",
        description="moodmoji settings for this server",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, service: EmojiService, settings: BotSettings) -> None:
        self.service = service
        self.settings = settings

    # --- messages ------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None or message.webhook_id is not None:
            return
        outcome = await self.service.suggest(
            text=message.content, guild_id=str(message.guild.id), channel_id=str(message.channel.id)
        )
        if isinstance(outcome, Skipped):
            if outcome.refusal is not None:
                log.info("no suggestion for %s: %s", message.id, outcome.refusal.message)
            return
        await self.deliver(message, outcome)

    async def deliver(self, message: discord.Message, suggestion: Suggestion) -> None:
        """A quiet reply (no ping, no notification) or a reaction; never an error in chat."""
        from bot.cogs.emoji import emoji_view  # the buttons of /emoji, under suggestions too

        try:
            if suggestion.mode == "react":
                await with_discord_retries(
                    lambda: message.add_reaction(suggestion.reaction), self.settings
                )
                return
            reply = suggestion.reply
            await with_discord_retries(
                lambda: message.reply(
                    reply.caption,
                    file=png_file(reply.png, reply.filename),
                    view=emoji_view(reply),
                    mention_author=False,
                    silent=True,
                ),
                self.settings,
            )
        except (DiscordRateLimited, discord.HTTPException) as error:
            # Missing Send Messages in this channel, or Discord says slow down: stay quiet.
            log.info("could not suggest under %s: %s", message.id, error)

    # --- /emoji-settings ---------------------------------------------------------------

    async def _change(self, interaction: discord.Interaction, name: str, value: str) -> None:
        if not await require_operator(interaction, self.service):
            return
        outcome = await self.service.change_setting(
            guild_id=str(interaction.guild_id),
            channel_id=str(interaction.channel_id),
            name=name,
            value=value,
        )
        if isinstance(outcome, Refusal):
            await refuse(interaction, outcome)
        else:
            await answer(interaction, outcome, self.settings)

    @settings_group.command(name="autosuggest", description="suggest emojis in this channel")
    async def autosuggest(
        self, interaction: discord.Interaction, state: Literal["on", "off"]
    ) -> None:
        await self._change(interaction, "autosuggest", state)

    @settings_group.command(name="threshold", description="least mood confidence to suggest")
    async def threshold(
        self, interaction: discord.Interaction, value: app_commands.Range[float, 0.5, 1.0]
    ) -> None:
        await self._change(interaction, "threshold", str(value))

    @settings_group.command(
        name="ratelimit", description="least seconds between two suggestions in one channel"
    )
    async def ratelimit(
        self, interaction: discord.Interaction, seconds: app_commands.Range[int, 0, 86400]
    ) -> None:
        await self._change(interaction, "ratelimit", str(seconds))

    @settings_group.command(name="mode", description="reply with an emoji, or only react")
    async def mode(self, interaction: discord.Interaction, mode: Literal["reply", "react"]) -> None:
        await self._change(interaction, "mode", mode)

    @settings_group.command(
        name="admin-role", description="the role that may run /emoji-admin (empty: none)"
    )
    async def admin_role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        await self._change(interaction, "admin-role", str(role.id) if role else "none")

    @settings_group.command(name="show", description="this server's moodmoji settings")
    async def show(self, interaction: discord.Interaction) -> None:
        if not await require_operator(interaction, self.service):
            return
        text = await self.service.describe_settings(
            str(interaction.guild_id), str(interaction.channel_id)
        )
        await answer(interaction, text, self.settings)
