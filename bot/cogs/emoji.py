"""`/emoji`, "Suggest emoji", `/help`, and the buttons under every emoji.

Buttons are `EmojiButton`s, a discord.py `DynamicItem` whose state (action, mood, seed,
model version, requester) is its custom_id: the bot registers the template once in
`setup_hook`, and any click on any message ever sent, before or after a restart, is
parsed back into a `ButtonState` and answered.

Manners in a shared channel: Re-roll, Flip and Add answer only the member who asked for
the emoji (anyone else is told, privately, to make their own); Re-roll and Flip edit the
message in place instead of posting another; Delete works for the requester and for
members who may manage messages.
"""

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import (
    CUSTOM_ID_TEMPLATE,
    ButtonState,
    EmojiReply,
    Refusal,
    RefusalKind,
    check_emoji_name,
    check_emoji_size,
    check_emoji_upload,
    emoji_name_for,
)
from bot.discord_io import (
    DiscordRateLimited,
    ReportingView,
    guarded,
    ids,
    png_file,
    rate_limit_refusal,
    refuse,
    report,
    with_discord_retries,
)
from bot.services import Services

log = logging.getLogger(__name__)

_BUTTON_LOOKS = {
    "reroll": ("Re-roll", "🎲", discord.ButtonStyle.primary),
    "flip": ("Flip mood", "🔄", discord.ButtonStyle.secondary),
    "add": ("Add to server", "➕", discord.ButtonStyle.success),
    "delete": ("Delete", "🗑️", discord.ButtonStyle.danger),
}

HELP = """\
**moodmoji** reads the mood of a message and draws a new emoji for it with a GAN.
- `/emoji [text] [mood]`: an emoji for your text's mood, or the mood you pick, or a surprise.
- Right-click a message → **Apps → Suggest emoji**: the same for that message.
- Under an emoji, **Re-roll** (same mood, new seed), **Flip mood** (same seed), **Add to \
server** (needs Create Expressions) and **Delete** are for whoever asked; moderators may \
delete too.
- Server managers: `/emoji-settings` (auto-suggest, channels, cooldown, daily cap)."""


class EmojiButton(discord.ui.DynamicItem[discord.ui.Button], template=CUSTOM_ID_TEMPLATE):
    def __init__(self, state: ButtonState) -> None:
        label, emoji, style = _BUTTON_LOOKS[state.action]
        super().__init__(
            discord.ui.Button(label=label, emoji=emoji, style=style, custom_id=state.custom_id)
        )
        self.state = state

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match, /
    ) -> "EmojiButton":
        return cls(ButtonState.from_groups(match.groupdict()))

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog(EmojiCog.__cog_name__)
        await cog.on_button(interaction, self.state)


def emoji_view(reply: EmojiReply) -> discord.ui.View:
    view = ReportingView(timeout=None)  # the buttons outlive this process anyway
    for state in reply.buttons():
        view.add_item(EmojiButton(state))
    return view


def free_emoji_slots(guild: discord.Guild) -> int:
    """Static emoji slots left; animated emojis have their own, separate allowance."""
    return guild.emoji_limit - sum(1 for emoji in guild.emojis if not emoji.animated)


def may_add_emojis(permissions: discord.Permissions) -> bool:
    return permissions.create_expressions or permissions.manage_expressions


def not_yours(state: ButtonState) -> Refusal:
    return Refusal(
        RefusalKind.NOT_YOURS,
        f"This emoji is <@{state.requester}>'s; make your own with /emoji.",
    )


class EmojiNameModal(discord.ui.Modal, title="Add to server"):
    def __init__(self, cog: "EmojiCog", state: ButtonState, source: discord.Message | None):
        super().__init__(timeout=600)
        self.cog, self.state, self.source = cog, state, source
        self.name = discord.ui.TextInput(
            label="Emoji name (2-32 letters, digits, _)",
            default=emoji_name_for(state.label, state.seed),
            min_length=2,
            max_length=32,
        )
        self.add_item(self.name)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.add_to_server(interaction, self.state, self.source, self.name.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await report(interaction, error)


class EmojiCog(commands.Cog, name="Emoji"):
    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.emojis = services.emojis
        self.settings = services.settings
        self.suggest_menu = app_commands.ContextMenu(
            name="Suggest emoji", callback=self.suggest_from_message
        )

    async def cog_load(self) -> None:
        # Context menus cannot be declared inside a cog; they are added to the tree here.
        self.bot.tree.add_command(self.suggest_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.suggest_menu.name, type=self.suggest_menu.type)

    @app_commands.command(name="emoji", description="A freshly drawn emoji for your mood")
    @app_commands.describe(
        text="what to read the mood from (leave empty for a surprise)",
        mood="skip reading and draw this mood",
    )
    async def emoji(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 0, 2000] | None = None,
        mood: Literal["positive", "negative"] | None = None,
    ) -> None:
        await interaction.response.defer(thinking=True)  # Discord's 3 s window starts now
        result = await self.emojis.emoji(
            text=text, mood=mood, on_queued=self._queued_notice(interaction), **ids(interaction)
        )
        await self.deliver(interaction, result)

    async def suggest_from_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Works without the message-content intent: Discord sends the chosen message along."""
        await interaction.response.defer(thinking=True)
        result = await self.emojis.emoji(
            text=message.content or None,
            on_queued=self._queued_notice(interaction),
            **ids(interaction),
        )
        await self.deliver(interaction, result)

    @app_commands.command(name="help", description="What moodmoji does, and this server's settings")
    async def help(self, interaction: discord.Interaction) -> None:
        text = HELP
        if interaction.guild_id is not None:
            settings = await self.services.guilds.describe(
                str(interaction.guild_id), str(interaction.channel_id)
            )
            text += "\n\n**This server**\n" + settings
        await interaction.response.send_message(text, ephemeral=True)

    def _queued_notice(self, interaction: discord.Interaction):
        """Edits "thinking…" once into where the request stands, when others are ahead."""

        async def notice(ahead: int, wait_s: int) -> None:
            text = f"⏳ {ahead} ahead of you in the queue; about {wait_s} s."
            try:
                await interaction.edit_original_response(content=text)
            except discord.HTTPException as error:  # only a courtesy: the emoji still comes
                log.debug("could not show the queue position: %s", error)

        return notice

    async def deliver(self, interaction: discord.Interaction, result: EmojiReply | Refusal):
        """The emoji in place of the deferred answer (or the pressed message), or the refusal
        to the user only."""
        if isinstance(result, Refusal):
            await refuse(interaction, result)
            return
        try:
            await with_discord_retries(
                lambda: interaction.edit_original_response(
                    content=result.caption,
                    attachments=[png_file(result.png, result.filename)],
                    view=emoji_view(result),
                ),
                self.settings,
            )
        except DiscordRateLimited as error:
            await refuse(interaction, rate_limit_refusal(error))

    # --- the buttons -----------------------------------------------------------------

    async def on_button(self, interaction: discord.Interaction, state: ButtonState) -> None:
        if state.action == "delete":
            await self.delete(interaction, state)
            return
        if not state.pressed_by_requester(interaction.user.id):
            await refuse(interaction, not_yours(state))
            return
        if state.action == "add":
            await self.offer_add(interaction, state)
            return
        # A silent deferral: the button's own message is what changes.
        await interaction.response.defer()
        result = await self.emojis.press(state, on_queued=None, **ids(interaction))
        await self.deliver(interaction, result)

    async def delete(self, interaction: discord.Interaction, state: ButtonState) -> None:
        moderator = interaction.permissions.manage_messages
        if not (state.pressed_by_requester(interaction.user.id) or moderator):
            await refuse(
                interaction,
                Refusal(
                    RefusalKind.NOT_YOURS,
                    f"Only <@{state.requester}> or a moderator can delete this emoji.",
                ),
            )
            return
        await interaction.response.defer()
        await interaction.delete_original_response()

    # --- Add to server -----------------------------------------------------------

    async def offer_add(self, interaction: discord.Interaction, state: ButtonState) -> None:
        """Checks that need no network, then the name modal (which must be the first answer)."""
        guild = interaction.guild
        if guild is None:
            await refuse(
                interaction, Refusal(RefusalKind.NOT_IN_GUILD, "Emojis can only join a server.")
            )
            return
        refusal = check_emoji_upload(
            member_may=may_add_emojis(interaction.permissions),
            bot_may=may_add_emojis(interaction.app_permissions),
            free_slots=free_emoji_slots(guild),
        )
        if refusal is not None:
            await refuse(interaction, refusal)
            return
        await interaction.response.send_modal(EmojiNameModal(self, state, interaction.message))

    async def add_to_server(
        self,
        interaction: discord.Interaction,
        state: ButtonState,
        source: discord.Message | None,
        name: str,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = interaction.guild
        checked = check_emoji_name(name)
        if isinstance(checked, Refusal):
            await refuse(interaction, checked)
            return
        # Slots may have filled while the modal was open.
        refusal = check_emoji_upload(
            member_may=may_add_emojis(interaction.permissions),
            bot_may=may_add_emojis(interaction.app_permissions),
            free_slots=free_emoji_slots(guild),
        )
        png = await self.emoji_png(interaction, state, source)
        if isinstance(png, Refusal):
            await refuse(interaction, png)
            return
        refusal = refusal or check_emoji_size(png)
        if refusal is not None:
            await refuse(interaction, refusal)
            return
        reason = f"moodmoji emoji added by {interaction.user} ({interaction.user.id})"
        try:
            emoji = await with_discord_retries(
                lambda: guild.create_custom_emoji(name=checked, image=png, reason=reason),
                self.settings,
            )
        except DiscordRateLimited as error:
            await refuse(interaction, rate_limit_refusal(error))
            return
        except discord.Forbidden:
            await refuse(
                interaction,
                Refusal(
                    RefusalKind.BOT_MISSING_PERMISSION,
                    "Discord refused: I lack the permission to add emojis here.",
                ),
            )
            return
        except discord.HTTPException as error:  # e.g. 30008: the slots filled meanwhile
            log.warning("emoji upload failed: %s", error)
            await refuse(
                interaction,
                Refusal(
                    RefusalKind.SLOTS_FULL, f"Discord refused the emoji: {error.text or error}"
                ),
            )
            return
        await interaction.followup.send(f"Added {emoji} as `:{emoji.name}:`.", ephemeral=True)

    async def emoji_png(
        self, interaction: discord.Interaction, state: ButtonState, source: discord.Message | None
    ) -> bytes | Refusal:
        """The picture under the button: its attachment, or drawn again from the seed (which
        counts against the member's limits like any emoji they ask for)."""
        if source is not None:
            for attachment in source.attachments:
                if attachment.filename.endswith(".png"):
                    try:
                        return await attachment.read()
                    except discord.HTTPException as error:
                        log.info("attachment unreadable (%s); drawing it again", error)
        # Same seed, same mood: the same picture while the model version is the same.
        reply = await self.emojis.generate(
            state.label, state.seed, "chosen", None, **ids(interaction)
        )
        return reply if isinstance(reply, Refusal) else reply.png
