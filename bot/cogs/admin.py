"""`/emoji-admin status | promote <version> | rollback`: for operators only.

Visible to everyone (a role cannot be named in Discord's default permissions), refused
at run time unless the member has Manage Server or the configured operator role.
"""

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import EmojiService, Refusal
from bot.discord_io import answer, refuse, require_operator
from bot.settings import BotSettings


class AdminCog(commands.Cog, name="Admin"):
    admin_group = app_commands.Group(
        name="emoji-admin", description="moodmoji operators: workers and models", guild_only=True
    )

    def __init__(self, service: EmojiService, settings: BotSettings) -> None:
        self.service = service
        self.settings = settings

    async def _reply(self, interaction: discord.Interaction, outcome: str | Refusal) -> None:
        if isinstance(outcome, Refusal):
            await refuse(interaction, outcome)
        else:
            await answer(interaction, outcome, self.settings)

    @admin_group.command(name="status", description="queue, workers, model versions, latency")
    async def status(self, interaction: discord.Interaction) -> None:
        if await require_operator(interaction, self.service):
            await interaction.response.defer(ephemeral=True, thinking=True)
            await self._reply(interaction, await self.service.status())

    @admin_group.command(name="promote", description="make a model version live on every worker")
    @app_commands.describe(version="a version published with `moodmoji models publish`")
    async def promote(self, interaction: discord.Interaction, version: str) -> None:
        if await require_operator(interaction, self.service):
            await interaction.response.defer(ephemeral=True, thinking=True)
            await self._reply(interaction, await self.service.promote(version))

    @admin_group.command(
        name="rollback", description="go back to the version before the last promote"
    )
    async def rollback(self, interaction: discord.Interaction) -> None:
        if await require_operator(interaction, self.service):
            await interaction.response.defer(ephemeral=True, thinking=True)
            await self._reply(interaction, await self.service.rollback())
