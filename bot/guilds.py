"""A server's own settings: read through a short cache, changed with `/emoji-settings`.

Every message in every channel asks whether auto-suggest is on there, so reading the
settings from Redis each time would cost a round trip per message. This process keeps
them for `bot_settings_cache_s`; a change made through it drops its copy at once, and
other processes see the change when their copy expires.
"""

import time

from pydantic import ValidationError

from bot.core import Refusal, RefusalKind
from bot.settings import BotSettings
from bot.state import BotState, GuildSettings

SETTINGS_HELP = (
    "autosuggest on|off · threshold 0.5-1.0 · ratelimit <seconds> · mode reply|react · "
    "admin-role <role id>|none · emoji-here on|off · cooldown <seconds>|none · "
    "daily-cap <number>|none"
)
# /emoji-settings NAME -> GuildSettings field; `autosuggest` and `emoji-here` are channel sets.
_FIELDS = {
    "threshold": "threshold",
    "ratelimit": "interval_s",
    "mode": "mode",
    "admin-role": "admin_role_id",
    "cooldown": "emoji_cooldown_s",
    "daily-cap": "emoji_daily_cap",
}
_CHANNEL_SETS = {"autosuggest": "autosuggest", "emoji-here": "emoji"}
_NONE = ("none", "off", "")
_RESETTABLE = ("admin-role", "cooldown", "daily-cap")


def _switch(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("on", "off"):
        return value.lower() == "on"
    return None


def _emoji_channels(current: GuildSettings) -> str:
    if not current.emoji_channels:
        return "every channel"
    return ", ".join(f"<#{c}>" for c in sorted(current.emoji_channels))


class GuildBook:
    def __init__(self, state: BotState, settings: BotSettings) -> None:
        self.state = state
        self.settings = settings
        self._cache: dict[str, tuple[float, GuildSettings]] = {}

    async def get(self, guild_id: str | None) -> GuildSettings:
        if guild_id is None:
            return GuildSettings.defaults(self.settings)
        cached = self._cache.get(guild_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        current = await self.state.guild_settings(guild_id)
        self._cache[guild_id] = (time.monotonic() + self.settings.bot_settings_cache_s, current)
        return current

    def forget(self, guild_id: str) -> None:
        self._cache.pop(guild_id, None)

    async def set_channel(self, guild_id: str, which: str, channel_id: str, on: bool) -> None:
        try:
            await self.state.set_channel(guild_id, which, channel_id, on)
        finally:
            self.forget(guild_id)

    async def change(
        self, *, guild_id: str, channel_id: str, name: str, value: bool | float | str | None
    ) -> str | Refusal:
        """Apply one `/emoji-settings NAME VALUE`; the confirmation, or why not.

        `value` is typed as the slash command delivers it (bool for the channel switches,
        numbers, a role id, None to reset); text (from `moodmoji chat`) is validated the
        same way by the settings model.
        """
        name = name.strip().lower()
        if isinstance(value, str):
            value = value.strip()
            if value.lower() in _NONE and name in _RESETTABLE:
                value = None
        if name in _CHANNEL_SETS:
            enabled = _switch(value)
            if enabled is None:
                return Refusal(RefusalKind.BAD_SETTING, f"{name} takes `on` or `off`.")
            await self.set_channel(guild_id, _CHANNEL_SETS[name], channel_id, enabled)
            current = await self.get(guild_id)
            if name == "emoji-here":
                return f"/emoji now works in: {_emoji_channels(current)}."
            if enabled:
                return (
                    f"Auto-suggest is **on** in this channel: messages at least "
                    f"{current.threshold:.0%} sure of their mood get a quiet {current.mode}, "
                    f"at most one every {current.interval_s} s."
                )
            return "Auto-suggest is **off** in this channel."
        if name not in _FIELDS:
            return Refusal(
                RefusalKind.BAD_SETTING, f"Unknown setting `{name}`. Settings: " + SETTINGS_HELP
            )
        if name == "admin-role" and isinstance(value, str):
            value = value.strip("<@&>")
        try:
            current = await self.state.update_guild_setting(guild_id, _FIELDS[name], value)
        except ValidationError:
            return Refusal(
                RefusalKind.BAD_SETTING,
                f"`{value}` is not a valid {name}. Settings: " + SETTINGS_HELP,
            )
        finally:
            self.forget(guild_id)
        return f"`{name}` is now `{getattr(current, _FIELDS[name])}` on this server."

    async def describe(self, guild_id: str | None, channel_id: str | None) -> str:
        current = await self.get(guild_id)
        here = "on" if channel_id and current.autosuggests_in(channel_id) else "off"
        role = f"<@&{current.admin_role_id}>" if current.admin_role_id else "none"
        cooldown = current.effective_cooldown_s(self.settings)
        return (
            f"**/emoji** works in {_emoji_channels(current)} · cooldown {cooldown:g} s"
            f" · at most {current.effective_daily_cap(self.settings)} a day per member\n"
            f"**auto-suggest** here: {here} ({len(current.autosuggest_channels)} channels in all)"
            f" · threshold {current.threshold:.2f} · ratelimit {current.interval_s} s"
            f" · mode {current.mode}\n"
            f"**settings role** {role}"
        )
