"""`/emoji` and the buttons under an emoji: moods, seeds, and the per-user limits, once.

Every emoji a person asks for (the command, Re-roll, Flip, an Add whose picture must be
drawn again) goes through `_limits`, which applies the server's channel list, the
cooldown, the in-flight cap and the daily cap, in that order, and nothing else does:
the worker client is built without a per-user cap of its own (`per_user_cap=False`).
Auto-suggestions are drawn with `draw_suggestion`: no person asked, so no person's
limits apply; the channel's rate limit does (see `bot.suggestions`).
"""

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from bot.core import (
    UNKNOWN_VERSION,
    ButtonState,
    EmojiReply,
    Mood,
    MoodSource,
    Refusal,
    RefusalKind,
    explain,
    flip_label,
)
from bot.guilds import GuildBook
from bot.settings import BotSettings
from bot.state import BotState, StateUnavailable
from worker import LABELS, Origin, RequestTimedOut, WorkerBusy, WorkerClient

log = logging.getLogger(__name__)

# Told once while waiting: (requests ahead, about how many seconds).
OnQueued = Callable[[int, int], Awaitable[None]]


def default_read_moods(texts: Sequence[str]) -> list:
    from sentiment import classify  # loads torch on first use; never at bot import time

    return classify(list(texts))


class EmojiRequests:
    def __init__(
        self,
        client: WorkerClient,
        state: BotState,
        guilds: GuildBook,
        settings: BotSettings,
        read_moods: Callable[[Sequence[str]], list[Any]] | None = None,
    ) -> None:
        """`read_moods`: texts -> sentiment Predictions (default `sentiment.classify`)."""
        self.client = client
        self.state = state
        self.guilds = guilds
        self.settings = settings
        self._read_moods = read_moods or default_read_moods

    async def read_mood(self, text: str) -> Mood:
        """The text's mood, in a thread so the event loop keeps answering Discord."""
        [prediction] = await asyncio.to_thread(self._read_moods, [text])
        return Mood(
            prediction.label,
            float(prediction.confidence),
            dict(prediction.scores),
            prediction.leaning,
            # A reader that does not say (a custom `read_moods`) leaves the server's
            # own threshold to decide, as before the model had a suggest threshold.
            bool(getattr(prediction, "suggest", True)),
        )

    def new_seed(self) -> int:
        return secrets.randbelow(2**self.settings.bot_seed_bits)

    async def emoji(
        self,
        *,
        user_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
        text: str | None = None,
        mood: str | None = None,
        on_queued: OnQueued | None = None,
    ) -> EmojiReply | Refusal:
        """`/emoji [text] [mood]`: an explicit mood wins; else the text's; else a coin flip.

        The limits are checked before the text is read: a refused request costs no model.
        """
        seed = self.new_seed()
        async with self._limits(user_id, guild_id, channel_id) as refusal:
            if refusal is not None:
                return refusal
            label, source, confidence = await self._choose_mood(text, mood, seed)
            origin = Origin(guild_id=guild_id, channel_id=channel_id, user_id=user_id)
            return await self._draw_for(user_id, label, seed, source, confidence, origin, on_queued)

    async def _choose_mood(
        self, text: str | None, mood: str | None, seed: int
    ) -> tuple[str, MoodSource, float | None]:
        if mood in LABELS:
            return mood, "chosen", None
        if not (text and text.strip()):
            return LABELS[seed % 2], "random", None
        read = await self.read_mood(text)
        if read.label in LABELS:
            return read.label, "text", read.confidence
        # Asked for an emoji, the user gets one even for a neutral text: the likelier mood.
        moods = {k: v for k, v in read.scores.items() if k in LABELS}
        if moods:
            return read.leaning, "text", moods[read.leaning]
        return LABELS[seed % 2], "text", None

    async def press(
        self,
        button: ButtonState,
        *,
        user_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
        on_queued: OnQueued | None = None,
    ) -> EmojiReply | Refusal:
        """Re-roll (same mood, new seed) or Flip mood (other mood, same seed)."""
        if button.action == "reroll":
            label, seed = button.label, self.new_seed()
        elif button.action == "flip":
            label, seed = flip_label(button.label), button.seed
        else:
            raise ValueError(f"{button.action!r} does not generate")
        return await self.generate(
            label,
            seed,
            "chosen",
            None,
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            on_queued=on_queued,
        )

    async def generate(
        self,
        label: str,
        seed: int,
        source: MoodSource,
        confidence: float | None,
        *,
        user_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
        on_queued: OnQueued | None = None,
    ) -> EmojiReply | Refusal:
        """One emoji for a person, within the server's and the operator's limits."""
        async with self._limits(user_id, guild_id, channel_id) as refusal:
            if refusal is not None:
                return refusal
            origin = Origin(guild_id=guild_id, channel_id=channel_id, user_id=user_id)
            return await self._draw_for(user_id, label, seed, source, confidence, origin, on_queued)

    async def draw_suggestion(
        self, label: str, confidence: float, *, author_id: str, guild_id: str, channel_id: str
    ) -> EmojiReply | Refusal:
        """An auto-suggestion: nobody asked, so no per-user limit; the channel has its own."""
        origin = Origin(guild_id=guild_id, channel_id=channel_id)
        return await self._draw(label, self.new_seed(), "text", confidence, origin, author_id, None)

    # --- the limits, in one place --------------------------------------------------

    @contextlib.asynccontextmanager
    async def _limits(
        self, user_id: str, guild_id: str | None, channel_id: str | None
    ) -> AsyncIterator[Refusal | None]:
        """The channel list, the cooldown, an in-flight slot (held until the block ends)
        and the daily cap, in that order; yields the refusal, or None to go on.

        The daily count comes last, so a request refused for another reason is not
        counted against the day.
        """
        guild = await self.guilds.get(guild_id)
        if not guild.emoji_allowed_in(channel_id):
            where = ", ".join(f"<#{c}>" for c in sorted(guild.emoji_channels))
            yield Refusal(RefusalKind.NOT_HERE, f"On this server /emoji works in {where}.")
            return
        left = await self.state.take_cooldown(
            "user", user_id, guild.effective_cooldown_s(self.settings)
        )
        if left:
            yield Refusal(
                RefusalKind.COOLDOWN,
                f"Easy there: your next emoji is ready in {math.ceil(left)} s.",
                left,
            )
            return
        in_flight = self.settings.bot_max_in_flight_per_user
        slot_ttl = self.settings.bot_request_timeout_s + 5
        if not await self.state.acquire_slot(user_id, in_flight, slot_ttl):
            yield Refusal(
                RefusalKind.IN_FLIGHT,
                f"You already have {in_flight} emojis on the way; wait for them to land.",
                1.0,
            )
            return
        try:
            cap = guild.effective_daily_cap(self.settings)
            if not await self.state.count_today("user", f"{guild_id or 'dm'}:{user_id}", cap):
                yield Refusal(
                    RefusalKind.DAILY_CAP,
                    f"That is {cap} emojis today, this server's daily limit; more tomorrow (UTC).",
                )
                return
            yield None
        finally:
            # A lost release only keeps the slot until its TTL; the emoji still goes out.
            with contextlib.suppress(StateUnavailable):
                await self.state.release_slot(user_id)

    async def _draw_for(
        self,
        user_id: str,
        label: str,
        seed: int,
        source: MoodSource,
        confidence: float | None,
        origin: Origin,
        on_queued: OnQueued | None,
    ) -> EmojiReply | Refusal:
        reply = await self._draw(label, seed, source, confidence, origin, user_id, on_queued)
        if isinstance(reply, Refusal) and reply.kind in (RefusalKind.BUSY, RefusalKind.NO_QUEUE):
            # Not their fault: let them retry as soon as the queue drains.
            with contextlib.suppress(StateUnavailable):
                await self.state.clear_cooldown("user", user_id)
        return reply

    async def _draw(
        self,
        label: str,
        seed: int,
        source: MoodSource,
        confidence: float | None,
        origin: Origin,
        requester_id: str | None,
        on_queued: OnQueued | None,
    ) -> EmojiReply | Refusal:
        started = time.monotonic()
        if on_queued is not None:
            ahead = await self.client.queue_depth(label)
            if ahead > 0:
                await on_queued(ahead, self.client.expected_wait_s(ahead))
        try:
            result = await self.client.generate(
                label, seed, origin=origin, timeout=self.settings.bot_request_timeout_s
            )
        except (WorkerBusy, RequestTimedOut) as error:  # a full or unreachable queue, no answer
            return explain(error)
        if not result.ok or not result.images:
            log.warning("worker refused %s/%s: %s", label, seed, result.error_message)
            return Refusal(
                RefusalKind.WORKER_FAILED,
                "Something went wrong drawing that emoji; try again, or pick another mood.",
            )
        with contextlib.suppress(StateUnavailable):  # only /emoji-admin status reads these
            await self.state.record_latency(time.monotonic() - started)
        return EmojiReply(
            png=result.images[0],
            label=label,
            confidence=confidence,
            seed=seed,
            model_version=result.model_version or UNKNOWN_VERSION,
            source=source,
            requester_id=requester_id,
        )
