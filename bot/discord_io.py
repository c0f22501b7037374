"""What every cog shares: answering an interaction, the one error path, who may do what,
and riding out Discord rate limits."""

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import Refusal, RefusalKind, explain, may_manage_guild
from bot.guilds import GuildBook
from bot.settings import BotSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# A rate limit longer than this is not worth waiting for while someone watches.
_LONGEST_WAIT_S = 30.0


class DiscordRateLimited(Exception):
    """Discord kept saying "slow down" after every retry; `retry_after_s` if it said how long."""

    def __init__(self, retry_after_s: float | None) -> None:
        super().__init__("rate limited by Discord")
        self.retry_after_s = retry_after_s


def _is_rate_limit(error: Exception) -> bool:
    return isinstance(error, discord.RateLimited) or (
        isinstance(error, discord.HTTPException) and error.status == 429
    )


async def with_discord_retries(call: Callable[[], Awaitable[T]], settings: BotSettings) -> T:
    """`await call()`, retried with exponential back-off while Discord answers 429.

    discord.py already waits out short limits itself; what reaches us is a limit it
    would not wait for (`RateLimited`) or a 429 it passed on.
    """
    delay = settings.bot_retry_base_s
    for attempt in range(settings.bot_discord_retries + 1):
        try:
            return await call()
        except (discord.RateLimited, discord.HTTPException) as error:
            if not _is_rate_limit(error):
                raise
            retry_after = getattr(error, "retry_after", None)
            wait = max(delay, retry_after or 0.0)
            if attempt == settings.bot_discord_retries or wait > _LONGEST_WAIT_S:
                raise DiscordRateLimited(retry_after) from error
            log.info("discord rate limit; retry %d in %.1f s", attempt + 1, wait)
            await asyncio.sleep(wait)
            delay *= 2
    raise AssertionError("unreachable")


def rate_limit_refusal(error: DiscordRateLimited) -> Refusal:
    when = f" in about {error.retry_after_s:.0f} s" if error.retry_after_s else " in a minute"
    return Refusal(
        RefusalKind.RATE_LIMITED,
        f"Discord asked me to slow down; please try again{when}.",
        error.retry_after_s,
    )


def ids(interaction: discord.Interaction) -> dict[str, str | None]:
    """The user, guild and channel of an interaction as the services' string ids."""
    return {
        "user_id": str(interaction.user.id),
        "guild_id": str(interaction.guild_id) if interaction.guild_id else None,
        "channel_id": str(interaction.channel_id) if interaction.channel_id else None,
    }


def png_file(png: bytes, filename: str) -> discord.File:
    return discord.File(io.BytesIO(png), filename=filename)


async def refuse(interaction: discord.Interaction, refusal: Refusal) -> None:
    """Tell only the user why not, whatever the interaction has answered so far.

    A "thinking…" (deferred) answer is removed first: the refusal would otherwise replace
    it in public, or sit under a "thinking…" that never ends. A button's silent deferral
    (the message itself is the answer) is left alone.
    """
    response = interaction.response
    if not response.is_done():
        await response.send_message(refusal.message, ephemeral=True)
        return
    if response.type == discord.InteractionResponseType.deferred_channel_message:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as error:
            log.debug("could not remove the thinking message: %s", error)
    await interaction.followup.send(refusal.message, ephemeral=True)


async def answer(interaction: discord.Interaction, text: str, settings: BotSettings) -> None:
    """An ephemeral text answer (settings, operators); past Discord's rate limit, logged."""
    try:
        if interaction.response.is_done():
            await with_discord_retries(
                lambda: interaction.followup.send(text, ephemeral=True), settings
            )
        else:
            await with_discord_retries(
                lambda: interaction.response.send_message(text, ephemeral=True), settings
            )
    except DiscordRateLimited as error:
        log.warning("gave up answering %s: %s", interaction.id, error)


async def reply(
    interaction: discord.Interaction, outcome: str | Refusal, settings: BotSettings
) -> None:
    if isinstance(outcome, Refusal):
        await refuse(interaction, outcome)
    else:
        await answer(interaction, outcome, settings)


# --- the one error path ------------------------------------------------------------


class Refused(app_commands.CheckFailure):
    """A check said no, with the words to say it (raised by checks, answered by `report`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def refusal_for(error: BaseException) -> Refusal:
    """Words for whatever ended a command, button or modal early."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, Refused):
        return error.refusal
    if isinstance(error, app_commands.CommandNotFound):
        return Refusal(RefusalKind.NOT_HERE, "That command is not available here.")
    if isinstance(error, app_commands.NoPrivateMessage):
        return Refusal(RefusalKind.NOT_IN_GUILD, "This works in servers only.")
    if isinstance(error, app_commands.CheckFailure):
        return Refusal(RefusalKind.MISSING_PERMISSION, "You may not use that here.")
    if isinstance(error, DiscordRateLimited):
        return rate_limit_refusal(error)
    if isinstance(error, discord.Forbidden):
        return Refusal(
            RefusalKind.BOT_MISSING_PERMISSION,
            "Discord refused: I lack a permission here (view, send, attach files or embed).",
        )
    return explain(error)


async def report(interaction: discord.Interaction, error: BaseException) -> None:
    """Replace whatever the user sees ("thinking…", nothing yet) with the reason, ephemerally.

    The one place every command (`tree.on_error`), button and modal (`on_error`) ends up
    when something raised; if even telling the user fails, that is logged, never raised.
    """
    refusal = refusal_for(error)
    try:
        await refuse(interaction, refusal)
    except Exception as failure:  # Discord itself unreachable: nothing left to tell anyone
        log.warning(
            "could not tell %s about %s: %s", interaction.id, refusal.kind, type(failure).__name__
        )


class ReportingView(discord.ui.View):
    """A view whose items' errors take the one error path (View.on_error)."""

    async def on_error(self, interaction: discord.Interaction, error: Exception, item) -> None:
        await report(interaction, error)


def guarded(handler: Callable[..., Awaitable[None]]):
    """For DynamicItem callbacks: discord.py only logs their exceptions, so this reports them."""

    async def run(self, interaction: discord.Interaction, *args) -> None:
        try:
            await handler(self, interaction, *args)
        except Exception as error:
            await report(interaction, error)

    return run


# --- who may do what --------------------------------------------------------------


async def is_operator(interaction: discord.Interaction, settings: BotSettings) -> bool:
    """The bot's operators: the application's owner or team, or members of the operations
    server holding its operator role (`MOODMOJI_BOT_OPERATOR_*`)."""
    client = interaction.client
    bots = (commands.Bot, commands.AutoShardedBot)  # is_owner reads the application's team
    if isinstance(client, bots) and await client.is_owner(interaction.user):
        return True
    role = settings.bot_operator_role_id
    if role is None or settings.bot_operator_guild_id is None:
        return False
    if interaction.guild_id != settings.bot_operator_guild_id:
        return False
    return any(r.id == role for r in getattr(interaction.user, "roles", []))


NOT_OPERATOR = Refusal(
    RefusalKind.NOT_OPERATOR,
    "This is for moodmoji's operators only: it changes the model every server gets.",
)


async def require_operator(interaction: discord.Interaction, settings: BotSettings) -> None:
    if not await is_operator(interaction, settings):
        raise Refused(NOT_OPERATOR)


async def require_guild_manager(interaction: discord.Interaction, guilds: GuildBook) -> None:
    """A server's own settings: Manage Server, or the server's settings role."""
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage()
    current = await guilds.get(str(interaction.guild_id))
    roles = {role.id for role in getattr(interaction.user, "roles", [])}
    if not may_manage_guild(
        manages_guild=interaction.permissions.manage_guild, role_ids=roles, settings=current
    ):
        raise Refused(
            Refusal(
                RefusalKind.MISSING_PERMISSION,
                "Changing this server's moodmoji settings needs **Manage Server** or the "
                "server's moodmoji settings role.",
            )
        )
