"""Auto-suggestions on chat messages, and `/emoji-settings` for a server's own settings.

Reading messages needs the privileged message-content intent; without it Discord sends
empty contents and nothing is ever suggested (the "Suggest emoji" message command works
regardless). Off by default: a channel opts in with `/emoji-settings autosuggest on`.

`/emoji-settings` is visible to every member of a server (Discord's default permissions
cannot name a role, and the server's settings role must be able to use it); the cog's
`interaction_check`, which discord.py runs before every command of the cog, lets only
members with Manage Server or the server's settings role through.
"""

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import Skipped, Suggestion
from bot.discord_io import (
    DiscordRateLimited,
    answer,
    png_file,
    reply,
    require_guild_manager,
    with_discord_retries,
)
from bot.services import Services

log = logging.getLogger(__name__)


def allowed_modes(message: discord.Message) -> frozenset[Literal["reply", "react"]]:
    """What the bot may do under this message: asked before any model runs."""
    permissions = message.channel.permissions_for(message.guild.me)
    if not (permissions.view_channel and permissions.read_message_history):
        return frozenset()
    may: set[Literal["reply", "react"]] = set()
    in_thread = isinstance(message.channel, discord.Thread)
    sends = permissions.send_messages_in_threads if in_thread else permissions.send_messages
    if sends and permissions.attach_files:
        may.add("reply")
    if permissions.add_reactions:
        may.add("react")
    return frozenset(may)


class AutoSuggestCog(commands.Cog, name="AutoSuggest"):
    settings_group = app_commands.Group(
        name="emoji-settings", description="moodmoji settings for this server", guild_only=True
    )

    def __init__(self, services: Services) -> None:
        self.services = services
        self.guilds = services.guilds
        self.settings = services.settings

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        await require_guild_manager(interaction, self.guilds)  # raises with the reason
        return True

    # --- messages ------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None or message.webhook_id is not None:
            return
        try:
            outcome = await self.services.suggestions.suggest(
                text=message.content,
                guild_id=str(message.guild.id),
                channel_id=str(message.channel.id),
                author_id=str(message.author.id),
                may=allowed_modes(message),
            )
        except Exception as error:  # nobody asked: log it, never say anything in chat
            log.warning("no suggestion for %s: %s", message.id, type(error).__name__)
            return
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
            drawn = suggestion.reply
            await with_discord_retries(
                lambda: message.reply(
                    drawn.caption,
                    file=png_file(drawn.png, drawn.filename),
                    view=emoji_view(drawn),
                    mention_author=False,
                    silent=True,
                ),
                self.settings,
            )
        except (DiscordRateLimited, discord.HTTPException) as error:
            # Permissions changed since the check, or Discord says slow down: stay quiet.
            log.info("could not suggest under %s: %s", message.id, error)

    # --- /emoji-settings ---------------------------------------------------------------

    async def _change(self, interaction: discord.Interaction, name: str, value) -> None:
        outcome = await self.guilds.change(
            guild_id=str(interaction.guild_id),
            channel_id=str(interaction.channel_id),
            name=name,
            value=value,
        )
        await reply(interaction, outcome, self.settings)

    @settings_group.command(name="autosuggest", description="suggest emojis in this channel")
    async def autosuggest(
        self, interaction: discord.Interaction, state: Literal["on", "off"]
    ) -> None:
        await self._change(interaction, "autosuggest", state == "on")

    @settings_group.command(name="threshold", description="least mood confidence to suggest")
    async def threshold(
        self, interaction: discord.Interaction, value: app_commands.Range[float, 0.5, 1.0]
    ) -> None:
        await self._change(interaction, "threshold", value)

    @settings_group.command(
        name="ratelimit", description="least seconds between two suggestions in one channel"
    )
    async def ratelimit(
        self, interaction: discord.Interaction, seconds: app_commands.Range[int, 0, 86400]
    ) -> None:
        await self._change(interaction, "ratelimit", seconds)

    @settings_group.command(name="mode", description="reply with an emoji, or only react")
    async def mode(self, interaction: discord.Interaction, mode: Literal["reply", "react"]) -> None:
        await self._change(interaction, "mode", mode)

    @settings_group.command(
        name="admin-role", description="the role that may change these settings (empty: none)"
    )
    async def admin_role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        await self._change(interaction, "admin-role", role.id if role else None)

    @settings_group.command(
        name="emoji-here", description="allow /emoji in this channel (none on: everywhere)"
    )
    async def emoji_here(
        self, interaction: discord.Interaction, state: Literal["on", "off"]
    ) -> None:
        await self._change(interaction, "emoji-here", state == "on")

    @settings_group.command(
        name="cooldown", description="seconds between two emojis per member (empty: the default)"
    )
    async def cooldown(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[int, 0, 86400] | None = None,
    ) -> None:
        await self._change(interaction, "cooldown", seconds)

    @settings_group.command(
        name="daily-cap", description="most emojis per member per day (empty: the default)"
    )
    async def daily_cap(
        self,
        interaction: discord.Interaction,
        emojis: app_commands.Range[int, 1, 100_000] | None = None,
    ) -> None:
        await self._change(interaction, "daily-cap", emojis)

    @settings_group.command(name="show", description="this server's moodmoji settings")
    async def show(self, interaction: discord.Interaction) -> None:
        text = await self.guilds.describe(str(interaction.guild_id), str(interaction.channel_id))
        await answer(interaction, text, self.settings)
