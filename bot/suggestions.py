"""Auto-suggestions: a quiet emoji under a chat message with a clear mood.

Cheap first: every message in every channel passes through here, so the order is what
costs least to what costs most. The cached settings (is it on in this channel?), the
text, the bot's permissions there, a look at the channel's rate limit, and only then
the classifier; the rate limit is taken (atomically, shared by all processes) after the
mood is known, so a channel's quiet minutes are not spent on messages without one, and
only then is an emoji drawn.
"""

from typing import Literal

from bot.core import REACTIONS, Refusal, Skipped, Suggestion
from bot.emojis import EmojiRequests
from bot.guilds import GuildBook
from bot.state import BotState
from worker import LABELS


class Suggestions:
    def __init__(self, emojis: EmojiRequests, guilds: GuildBook, state: BotState) -> None:
        self.emojis = emojis
        self.guilds = guilds
        self.state = state

    async def suggest(
        self,
        *,
        text: str,
        guild_id: str | None,
        channel_id: str,
        author_id: str | None = None,
        may: frozenset[Literal["reply", "react"]] = frozenset({"reply", "react"}),
    ) -> Suggestion | Skipped:
        """`may`: what the bot is allowed to do in this channel (the cog asks Discord)."""
        settings = await self.guilds.get(guild_id)
        if not settings.autosuggests_in(channel_id):
            return Skipped("not_enabled")
        if not text or not text.strip():
            return Skipped("no_text")
        if settings.mode not in may:
            return Skipped("no_permission")
        if await self.state.cooldown_left("channel", channel_id):
            return Skipped("rate_limited")
        mood = await self.emojis.read_mood(text)
        # The model's own bar first (few false alarms on neutral chat, calibrated on
        # validation tweets), then the server's, which may only be stricter in effect.
        if mood.label not in LABELS or not mood.suggest:
            return Skipped("no_clear_mood")
        if mood.confidence < settings.threshold:
            return Skipped("below_threshold")
        # Taken now, atomically: another process may have suggested since the look above.
        if await self.state.take_cooldown("channel", channel_id, settings.interval_s):
            return Skipped("rate_limited")
        reaction = REACTIONS[mood.label]
        if settings.mode == "react":
            return Suggestion("react", mood.label, mood.confidence, reaction)
        reply = await self.emojis.draw_suggestion(
            mood.label,
            mood.confidence,
            author_id=author_id,
            guild_id=guild_id,
            channel_id=channel_id,
        )
        if isinstance(reply, Refusal):
            return Skipped("refused", reply)
        return Suggestion("reply", mood.label, mood.confidence, reaction, reply)
