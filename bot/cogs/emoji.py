"""`/emoji`, the "Suggest emoji" message command, and the buttons under every emoji.

Buttons are `EmojiButton`s, a discord.py `DynamicItem` whose state (action, mood,
seed, model version) is its custom_id: the bot registers the template once in
`setup_hook`, and any click on any message ever sent, before or after a restart, is
parsed back into a `ButtonState` and answered.
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
    EmojiService,
    Refusal,
    RefusalKind,
    check_emoji_name,
    check_emoji_size,
    check_emoji_upload,
    emoji_name_for,
)
from bot.discord_io import (
    DiscordRateLimited,
    ids,
    png_file,
    rate_limit_refusal,
    refuse,
    with_discord_retries,
)
from bot.settings import BotSettings

log = logging.getLogger(__name__)

_BUTTON_LOOKS = {
    "reroll": ("Re-roll", "🎲", discord.ButtonStyle.primary),
    "flip": ("Flip mood", "🔄", discord.ButtonStyle.secondary),
    "add": ("Add to server", "➕", discord.ButtonStyle.success),
}


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

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog(EmojiCog.__cog_name__)
        await cog.on_button(interaction, self.state)


def emoji_view(reply: EmojiReply) -> discord.ui.View:
    view = discord.ui.View(timeout=None)  # the buttons outlive this process anyway
    for state in reply.buttons():
        view.add_item(EmojiButton(state))
    return view


def free_emoji_slots(guild: discord.Guild) -> int:
    """Static emoji slots left; animated emojis have their own, separate allowance."""
    return guild.emoji_limit - sum(1 for emoji in guild.emojis if not emoji.animated)


def may_add_emojis(permissions: discord.Permissions) -> bool:
    return permissions.create_expressions or permissions.manage_expressions


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


class EmojiCog(commands.Cog, name="Emoji"):
    def __init__(self, bot: commands.Bot, service: EmojiService, settings: BotSettings) -> None:
        self.bot = bot
        self.service = service
        self.settings = settings
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
        result = await self.service.emoji(text=text, mood=mood, **ids(interaction))
        await self.deliver(interaction, result)

    async def suggest_from_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Works without the message-content intent: Discord sends the chosen message along."""
        await interaction.response.defer(thinking=True)
        result = await self.service.emoji(text=message.content or None, **ids(interaction))
        await self.deliver(interaction, result)

    async def on_button(self, interaction: discord.Interaction, state: ButtonState) -> None:
        if state.action == "add":
            await self.offer_add(interaction, state)
            return
        await interaction.response.defer(thinking=True)
        result = await self.service.press(state, **ids(interaction))
        await self.deliver(interaction, result)

    async def deliver(self, interaction: discord.Interaction, result: EmojiReply | Refusal):
        """The emoji as a public follow-up to a public deferral, or the refusal to the user only."""
        if isinstance(result, Refusal):
            await refuse(interaction, result, public_deferral=True)
            return
        try:
            await with_discord_retries(
                lambda: interaction.followup.send(
                    result.caption,
                    file=png_file(result.png, result.filename),
                    view=emoji_view(result),
                ),
                self.settings,
            )
        except DiscordRateLimited as error:
            await refuse(interaction, rate_limit_refusal(error), public_deferral=True)

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
        png = await self.emoji_png(state, source)
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

    async def emoji_png(self, state: ButtonState, source: discord.Message | None):
        """The picture under the button: its attachment, or drawn again from the seed."""
        if source is not None:
            for attachment in source.attachments:
                if attachment.filename.endswith(".png"):
                    try:
                        return await attachment.read()
                    except discord.HTTPException as error:
                        log.info("attachment unreadable (%s); drawing it again", error)
        # Same seed, same mood: the same picture while the model version is the same.
        reply = await self.service.generate(state.label, state.seed, "chosen", None, user_id=None)
        return reply if isinstance(reply, Refusal) else reply.png
