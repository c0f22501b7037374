"""Small pieces every cog shares: answering an interaction, and riding out Discord rate limits."""

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

from bot.core import EmojiService, Refusal, RefusalKind, may_operate
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
    """The user, guild and channel of an interaction as the core's string ids."""
    return {
        "user_id": str(interaction.user.id),
        "guild_id": str(interaction.guild_id) if interaction.guild_id else None,
        "channel_id": str(interaction.channel_id) if interaction.channel_id else None,
    }


def png_file(png: bytes, filename: str) -> discord.File:
    return discord.File(io.BytesIO(png), filename=filename)


async def refuse(
    interaction: discord.Interaction, refusal: Refusal, *, public_deferral: bool = False
) -> None:
    """Tell only the user why not; `public_deferral` if we answered with a public "thinking…"."""
    if not interaction.response.is_done():
        await interaction.response.send_message(refusal.message, ephemeral=True)
        return
    # After a public "thinking…" deferral the first follow-up would replace it publicly:
    # remove it, so the refusal arrives as a message only this user sees.
    if public_deferral:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as error:
            log.debug("could not remove the thinking message: %s", error)
    await interaction.followup.send(refusal.message, ephemeral=True)


async def answer(interaction: discord.Interaction, text: str, settings: BotSettings) -> None:
    """An ephemeral text answer (settings, admin), or a refusal if Discord keeps refusing."""
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


async def require_operator(interaction: discord.Interaction, service: EmojiService) -> bool:
    """Manage Server, or the configured operator role; tells the user when not."""
    if interaction.guild is None:
        await refuse(interaction, Refusal(RefusalKind.NOT_IN_GUILD, "This works in servers only."))
        return False
    settings = await service.state.guild_settings(str(interaction.guild_id))
    roles = {role.id for role in getattr(interaction.user, "roles", [])}
    if may_operate(
        manages_guild=interaction.permissions.manage_guild, role_ids=roles, settings=settings
    ):
        return True
    await refuse(
        interaction,
        Refusal(
            RefusalKind.MISSING_PERMISSION,
            "This needs the **Manage Server** permission or the moodmoji operator role.",
        ),
    )
    return False
