"""`/emoji-admin status | promote <version> | rollback | retrain`: for operators only.

These act on the one registry every server shares, so they belong to the bot's
operators (the application's owner or team, or the operator role of the operations
server, `MOODMOJI_BOT_OPERATOR_*`), never to a server's admins. Three layers, as
discord.py intends: with an operations server set, the group is registered there only
(other servers never see it); `default_permissions` hides it from members without
Manage Server until the operations server's admins grant the operator role in Server
Settings → Integrations; and the cog's `interaction_check`, run before every command,
refuses anyone who is not an operator, wherever the command was seen.

A retrain's progress message is remembered in the bot state, so a restarted bot resumes
following the job from its progress stream and the Promote / Discard buttons appear.

`retrain` queues a job for a retrain runner (`moodmoji retrain --serve`, see
docs/operators.md) with a zip the operator attaches, or with the server's own custom
emojis the operator names as positive and negative. Its progress is edited into one
message in the channel (a channel message, because an interaction's token expires after
15 minutes and a retrain may take longer); when it is done, that message shows the
comparison with the live model, the sample grid, and Promote / Discard buttons.
"""

import asyncio
import contextlib
import logging
import re
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import Refusal, RefusalKind, progress_line, zip_labelled_images
from bot.discord_io import (
    ReportingView,
    answer,
    guarded,
    png_file,
    refuse,
    reply,
    require_operator,
)
from bot.services import Services
from bot.state import StateUnavailable

log = logging.getLogger(__name__)

RETRAIN_CUSTOM_ID = (
    r"moodmoji:retrain:(?P<action>promote|discard):(?P<version>[A-Za-z0-9._-]{1,64})"
)
# Edits of the progress message at most this often (Discord rate-limits message edits).
PROGRESS_EDIT_S = 3.0
# How long the progress message follows a job before it stops watching.
FOLLOW_LIMIT_S = 24 * 3600
_EMOJI_MENTION = re.compile(r"<a?:(?P<name>\w+):(?P<id>\d+)>")


class RetrainDecision(discord.ui.DynamicItem[discord.ui.Button], template=RETRAIN_CUSTOM_ID):
    """Promote / Discard under a finished retrain; the version travels in the custom_id."""

    def __init__(self, action: str, version: str) -> None:
        look = {
            "promote": ("Promote", discord.ButtonStyle.success),
            "discard": ("Discard", discord.ButtonStyle.danger),
        }
        label, style = look[action]
        super().__init__(
            discord.ui.Button(
                label=label, style=style, custom_id=f"moodmoji:retrain:{action}:{version}"
            )
        )
        self.action, self.version = action, version

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match, /
    ) -> "RetrainDecision":
        return cls(match["action"], match["version"])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog(AdminCog.__cog_name__)
        await cog.on_decision(interaction, self.action, self.version)


def decision_view(version: str) -> discord.ui.View:
    view = ReportingView(timeout=None)
    view.add_item(RetrainDecision("promote", version))
    view.add_item(RetrainDecision("discard", version))
    return view


def _named_emojis(guild: discord.Guild, text: str | None) -> list[discord.Emoji] | str:
    """The guild's custom emojis named in `text` (mentions or bare names), or what is unknown."""
    if not text:
        return []
    by_name = {emoji.name.lower(): emoji for emoji in guild.emojis}
    by_id = {emoji.id: emoji for emoji in guild.emojis}
    found, unknown = [], []
    for token in text.replace(",", " ").split():
        mention = _EMOJI_MENTION.fullmatch(token)
        emoji = by_id.get(int(mention["id"])) if mention else by_name.get(token.strip(":").lower())
        if emoji is None:
            unknown.append(token)
        elif emoji not in found:
            found.append(emoji)
    if unknown:
        return f"Not custom emojis of this server: {', '.join(unknown[:5])}"
    return found


class AdminCog(commands.Cog, name="Admin"):
    admin_group = app_commands.Group(
        name="emoji-admin",
        description="moodmoji operators: workers and models",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.operations = services.operations
        self.state = services.state
        self.settings = services.settings
        self._followers: dict[str, asyncio.Task] = {}

    async def cog_load(self) -> None:
        """Pick up every retrain a previous run of the bot was following."""
        try:
            follows = await self.state.follows()
        except StateUnavailable as error:  # the bot still starts; only progress edits wait
            log.warning("retrain followers not resumed: %s", error)
            return
        for request_id, where in follows.items():
            channel_id, _, message_id = where.partition(":")
            self._follow(request_id, int(channel_id), int(message_id))

    async def cog_unload(self) -> None:
        for task in self._followers.values():
            task.cancel()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        await require_operator(interaction, self.settings)  # raises with the reason
        return True

    @admin_group.command(name="status", description="queue, workers, model versions, latency")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await answer(interaction, await self.operations.status(), self.settings)

    @admin_group.command(name="promote", description="make a model version live on every worker")
    @app_commands.describe(
        version="a version from `moodmoji models list` or a retrain",
        force="promote even if its FID/KID is worse than the live version's",
    )
    async def promote(
        self, interaction: discord.Interaction, version: str, force: bool = False
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await reply(interaction, await self.operations.promote(version, force), self.settings)

    @admin_group.command(
        name="rollback", description="go back to the version before the last promote"
    )
    async def rollback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await reply(interaction, await self.operations.rollback(), self.settings)

    @admin_group.command(name="retrain", description="train a new model version on your images")
    @app_commands.describe(
        data="a .zip with positive/ and negative/ folders of images",
        positive="instead of a zip: this server's emojis that look positive (space-separated)",
        negative="instead of a zip: this server's emojis that look negative (space-separated)",
        from_version="fine-tune this version instead of training from scratch",
    )
    async def retrain(
        self,
        interaction: discord.Interaction,
        data: discord.Attachment | None = None,
        positive: str | None = None,
        negative: str | None = None,
        from_version: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        upload = await self._upload(interaction, data, positive, negative)
        if isinstance(upload, Refusal):
            await refuse(interaction, upload)
            return
        request = await self.operations.retrain(
            upload, requested_by=str(interaction.user.id), from_version=from_version
        )
        if isinstance(request, Refusal):
            await refuse(interaction, request)
            return
        # A channel message, not the interaction's: its token expires after 15 minutes.
        message = await interaction.channel.send(
            f"Retrain `{request.request_id}`: queued by {interaction.user.mention}."
        )
        await self.state.follow(request.request_id, f"{message.channel.id}:{message.id}")
        self._follow(request.request_id, message.channel.id, message.id)
        await answer(
            interaction,
            f"Queued as `{request.request_id}`; progress: {message.jump_url}",
            self.settings,
        )

    async def _upload(self, interaction, data, positive, negative) -> bytes | Refusal:
        if data is not None:
            if not data.filename.lower().endswith(".zip"):
                return Refusal(
                    RefusalKind.BAD_UPLOAD,
                    f"`{data.filename}` is not a .zip: attach a zip with positive/ and negative/.",
                )
            return await data.read()
        if not positive and not negative:
            return Refusal(
                RefusalKind.BAD_UPLOAD,
                "Attach a .zip, or name this server's emojis with `positive:` and `negative:`.",
            )
        images: dict[str, list[tuple[str, bytes]]] = {}
        for label, text in (("positive", positive), ("negative", negative)):
            emojis = _named_emojis(interaction.guild, text)
            if isinstance(emojis, str):
                return Refusal(RefusalKind.BAD_UPLOAD, emojis)
            suffix = {True: "gif", False: "png"}
            # Side by side: a server may name hundreds, and one CDN round trip each adds up.
            contents = await asyncio.gather(*(emoji.read() for emoji in emojis))
            images[label] = [
                (f"{emoji.name}-{emoji.id}.{suffix[emoji.animated]}", content)
                for emoji, content in zip(emojis, contents, strict=True)
            ]
        return zip_labelled_images(images)

    # --- following a retrain ---------------------------------------------------------

    def _follow(self, request_id: str, channel_id: int, message_id: int) -> None:
        if request_id in self._followers:
            return
        # A partial message: editing it needs only its ids, no cache, so it works right
        # after a restart, before the gateway has sent a single guild.
        message = self.bot.get_partial_messageable(channel_id).get_partial_message(message_id)
        task = asyncio.create_task(self.follow_retrain(message, request_id))
        self._followers[request_id] = task
        task.add_done_callback(lambda _t: self._followers.pop(request_id, None))

    async def follow_retrain(self, message: discord.PartialMessage, request_id: str) -> None:
        """Edit the job's progress into `message` until it ends; then the table, grid, buttons.

        Reads the job's progress stream from its start, so a restarted bot lands on the
        job's current state at once. Redis or Discord blips are waited out.
        """
        after, last_edit, give_up = "0-0", 0.0, time.monotonic() + FOLLOW_LIMIT_S
        while time.monotonic() < give_up:
            try:
                events = await self.operations.retrain_events(request_id, after, block_ms=2000)
            except Exception as error:  # Redis away: the job goes on; look again shortly
                log.warning("retrain %s: progress unreadable (%s)", request_id, error)
                await asyncio.sleep(2.0)
                continue
            if not events:
                continue
            after, event = events[-1]
            if event.final:
                await self._finish(message, event)
                with contextlib.suppress(Exception):
                    await self.state.follow(request_id, None)
                return
            if time.monotonic() - last_edit >= PROGRESS_EDIT_S:
                last_edit = time.monotonic()
                with contextlib.suppress(discord.HTTPException):
                    await message.edit(content=progress_line(event))

    async def _finish(self, message: discord.PartialMessage, event) -> None:
        if event.state == "failed":
            with contextlib.suppress(discord.HTTPException):
                await message.edit(content=progress_line(event))
            return
        text = (
            f"Retrain `{event.request_id}` published `{event.version}`; compared with the live "
            f"model on the same images:\n{event.message}\n"
            "Sample grid: per label, a row of the live model, then the new one."
        )
        grid = await self.operations.version_file(event.version, "samples.png")
        attachments = [png_file(grid, f"{event.version}-samples.png")] if grid else []
        try:
            await message.edit(
                content=text, attachments=attachments, view=decision_view(event.version)
            )
        except discord.HTTPException as error:  # the message was deleted, say
            log.warning("retrain %s: could not show the result: %s", event.request_id, error)

    async def on_decision(
        self, interaction: discord.Interaction, action: str, version: str
    ) -> None:
        await require_operator(interaction, self.settings)  # buttons skip interaction_check
        await interaction.response.defer(ephemeral=True, thinking=True)
        if action == "promote":
            outcome = await self.operations.promote(version)
        else:
            outcome = await self.operations.discard(version)
        await reply(interaction, outcome, self.settings)
