"""What the bot does, without Discord: moods, emojis, limits, settings and operator actions.

`EmojiService` turns (text, mood, user, guild, channel) into an `EmojiReply` (PNG,
mood, confidence, seed, model version) or a `Refusal` that says, in words meant for
the user, why not. The Discord cogs and `moodmoji chat` are thin front ends over it,
so both behave the same and the tests can drive it without a Discord connection.

Button state travels in Discord `custom_id`s (`ButtonState`): after a restart a click
carries everything needed to answer it, so no button ever breaks.
"""

import asyncio
import contextlib
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import ValidationError

from bot.settings import BotSettings
from bot.state import BotState, GuildSettings
from moodmoji.errors import MoodmojiError
from worker import (
    LABELS,
    ModelRegistry,
    Origin,
    RequestTimedOut,
    WorkerBusy,
    WorkerClient,
    registry_from_settings,
)

log = logging.getLogger(__name__)

Label = Literal["positive", "negative"]
MoodSource = Literal["text", "chosen", "random"]

# Discord's rules for custom emojis.
EMOJI_MAX_BYTES = 256 * 1024
EMOJI_NAME = re.compile(r"^[A-Za-z0-9_]{2,32}$")
# What react mode puts under a message: reactions take only stock or server emojis.
REACTIONS = {"positive": "😊", "negative": "😢"}
OTHER_LABEL = {"positive": "negative", "negative": "positive"}


def flip_label(label: str) -> str:
    return OTHER_LABEL[label]


def seed_text(seed: int) -> str:
    """A seed in base 36: short enough for custom_ids and captions."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        seed, digit = divmod(seed, 36)
        text = digits[digit] + text
        if seed == 0:
            return text


# --- button state ----------------------------------------------------------

_ACTIONS = {"r": "reroll", "f": "flip", "a": "add"}
_LABEL_CODES = {"p": "positive", "n": "negative"}
# discord.py's DynamicItem template: what a button's custom_id must look like (100 chars max:
# 5 + 1 + 1 + 13 + 1 + 64 at most). The model version follows the registry's naming rule.
_VERSION = r"[A-Za-z0-9._-]{1,64}"
CUSTOM_ID_TEMPLATE = (
    r"mm:(?P<action>[rfa]):(?P<label>[pn]):(?P<seed>[0-9a-z]{1,13}):(?P<version>" + _VERSION + ")"
)
_UNKNOWN_VERSION = "unknown"


@dataclass(frozen=True)
class ButtonState:
    """What a button remembers: the action, and the emoji it sits under."""

    action: Literal["reroll", "flip", "add"]
    label: str
    seed: int
    version: str

    @property
    def custom_id(self) -> str:
        action = next(code for code, name in _ACTIONS.items() if name == self.action)
        label = next(code for code, name in _LABEL_CODES.items() if name == self.label)
        version = self.version if re.fullmatch(_VERSION, self.version) else _UNKNOWN_VERSION
        return f"mm:{action}:{label}:{seed_text(self.seed)}:{version}"

    @classmethod
    def from_groups(cls, groups: dict[str, str]) -> "ButtonState":
        """From the named groups of a `CUSTOM_ID_TEMPLATE` match."""
        return cls(
            action=_ACTIONS[groups["action"]],
            label=_LABEL_CODES[groups["label"]],
            seed=int(groups["seed"], 36),
            version=groups["version"],
        )

    @classmethod
    def parse(cls, custom_id: str) -> "ButtonState | None":
        match = re.fullmatch(CUSTOM_ID_TEMPLATE, custom_id)
        return cls.from_groups(match.groupdict()) if match else None


# --- answers ---------------------------------------------------------------


@dataclass(frozen=True)
class EmojiReply:
    png: bytes
    label: str
    confidence: float | None  # the text's mood confidence; None when the mood was not read
    seed: int
    model_version: str
    source: MoodSource

    @property
    def filename(self) -> str:
        return f"moodmoji-{self.label}-{seed_text(self.seed)}.png"

    @property
    def caption(self) -> str:
        mood = f"{REACTIONS[self.label]} **{self.label}**"
        if self.source == "text" and self.confidence is not None:
            mood += f" · {self.confidence:.0%} confident"
        elif self.source == "chosen":
            mood += " · your pick"
        else:
            mood += " · picked at random"
        return f"{mood} · seed `{seed_text(self.seed)}` · model `{self.model_version}`"

    def buttons(self) -> list[ButtonState]:
        return [
            ButtonState(action, self.label, self.seed, self.model_version)
            for action in ("reroll", "flip", "add")
        ]


class RefusalKind(StrEnum):
    COOLDOWN = "cooldown"
    IN_FLIGHT = "in_flight"
    BUSY = "busy"
    TIMEOUT = "timeout"
    WORKER_FAILED = "worker_failed"
    NOT_IN_GUILD = "not_in_guild"
    MISSING_PERMISSION = "missing_permission"
    BOT_MISSING_PERMISSION = "bot_missing_permission"
    SLOTS_FULL = "slots_full"
    TOO_LARGE = "too_large"
    BAD_NAME = "bad_name"
    RATE_LIMITED = "rate_limited"
    BAD_SETTING = "bad_setting"
    NO_SUCH_VERSION = "no_such_version"
    WORSE_MODEL = "worse_model"
    BAD_UPLOAD = "bad_upload"
    NO_QUEUE = "no_queue"


@dataclass(frozen=True)
class Refusal:
    """Why not, in words for the user (shown ephemerally on Discord)."""

    kind: RefusalKind
    message: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Suggestion:
    """An auto-suggestion: `reply` in reply mode, only the reaction in react mode."""

    mode: Literal["reply", "react"]
    label: str
    confidence: float
    reaction: str
    reply: EmojiReply | None = None


@dataclass(frozen=True)
class Skipped:
    """No auto-suggestion, and why (for logs and tests; users see nothing)."""

    reason: Literal[
        "not_enabled", "no_text", "no_clear_mood", "below_threshold", "rate_limited", "refused"
    ]
    refusal: Refusal | None = None


# --- checks for adding an emoji to a server ----------------------------------


def emoji_name_for(reply_label: str, seed: int) -> str:
    """The name offered in the modal."""
    return f"moodmoji_{reply_label[:3]}_{seed_text(seed)}"[:32]


def check_emoji_name(name: str) -> str | Refusal:
    """The name Discord will accept (spaces become underscores), or why it will not."""
    cleaned = re.sub(r"\s+", "_", name.strip().strip(":"))
    if EMOJI_NAME.fullmatch(cleaned):
        return cleaned
    return Refusal(
        RefusalKind.BAD_NAME,
        "An emoji name needs 2 to 32 letters, digits or underscores "
        f"(`{cleaned[:40] or 'nothing'}` is not one).",
    )


def check_emoji_upload(*, member_may: bool, bot_may: bool, free_slots: int) -> Refusal | None:
    """Whether this member may add an emoji to this server now (checked before the modal)."""
    if not member_may:
        return Refusal(
            RefusalKind.MISSING_PERMISSION,
            "Adding emojis needs the **Create Expressions** (or Manage Expressions) permission.",
        )
    if not bot_may:
        return Refusal(
            RefusalKind.BOT_MISSING_PERMISSION,
            "I lack the **Create Expressions** permission here; ask an admin to grant it to me.",
        )
    if free_slots <= 0:
        return Refusal(
            RefusalKind.SLOTS_FULL,
            "This server has no free emoji slots; remove one (or boost the server) first.",
        )
    return None


def check_emoji_size(png: bytes) -> Refusal | None:
    if len(png) > EMOJI_MAX_BYTES:
        return Refusal(
            RefusalKind.TOO_LARGE,
            f"This picture is {len(png) / 1024:.0f} KiB; Discord takes emojis up to 256 KiB.",
        )
    return None


def may_operate(*, manages_guild: bool, role_ids: set[int], settings: GuildSettings) -> bool:
    """Operators: Manage Server, or the guild's (or the deployment's) operator role."""
    role = settings.admin_role_id
    return manages_guild or (role is not None and role in role_ids)


# --- the service -----------------------------------------------------------


def _default_read_moods(texts: Sequence[str]) -> list:
    from sentiment import classify  # loads torch on first use; never at bot import time

    return classify(list(texts))


@dataclass(frozen=True)
class Mood:
    label: str  # positive, negative or neutral
    confidence: float
    scores: dict[str, float]
    leaning: str  # the likelier of positive and negative (sentiment.Prediction.leaning)


class EmojiService:
    def __init__(
        self,
        client: WorkerClient,
        state: BotState,
        settings: BotSettings | None = None,
        *,
        read_moods: Callable[[Sequence[str]], list[Any]] | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        """`read_moods`: texts -> sentiment Predictions (default `sentiment.classify`).

        `registry`: the model registry `promote`/`rollback` switch (default: the one the
        worker settings name).
        """
        self.client = client
        self.state = state
        self.settings = settings or BotSettings()
        self._read_moods = read_moods or _default_read_moods
        self._registry = registry

    # --- moods ---------------------------------------------------------------

    async def read_mood(self, text: str) -> Mood:
        """The text's mood, in a thread so the event loop keeps answering Discord."""
        [prediction] = await asyncio.to_thread(self._read_moods, [text])
        return Mood(
            prediction.label,
            float(prediction.confidence),
            dict(prediction.scores),
            prediction.leaning,
        )

    def new_seed(self) -> int:
        return secrets.randbelow(2**self.settings.bot_seed_bits)

    # --- /emoji, re-roll, flip -------------------------------------------------

    async def emoji(
        self,
        *,
        user_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
        text: str | None = None,
        mood: str | None = None,
    ) -> EmojiReply | Refusal:
        """`/emoji [text] [mood]`: an explicit mood wins; else the text's; else a coin flip."""
        seed = self.new_seed()
        confidence = None
        if mood in LABELS:
            label, source = mood, "chosen"
        elif text and text.strip():
            read = await self.read_mood(text)
            # Asked for an emoji, the user gets one even for a neutral text: the likelier mood.
            moods = {k: v for k, v in read.scores.items() if k in LABELS}
            if read.label in LABELS:
                label, confidence = read.label, read.confidence
            elif moods:
                label = read.leaning
                confidence = moods[label]
            else:
                label = LABELS[seed % 2]
            source = "text"
        else:
            label, source = LABELS[seed % 2], "random"
        return await self.generate(
            label,
            seed,
            source,
            confidence,
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
        )

    async def press(
        self,
        button: ButtonState,
        *,
        user_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
    ) -> EmojiReply | Refusal:
        """Re-roll (same mood, new seed) or Flip mood (other mood, same seed)."""
        if button.action == "reroll":
            label, seed = button.label, self.new_seed()
        elif button.action == "flip":
            label, seed = flip_label(button.label), button.seed
        else:
            raise ValueError(f"{button.action!r} does not generate")
        return await self.generate(
            label, seed, "chosen", None, user_id=user_id, guild_id=guild_id, channel_id=channel_id
        )

    async def generate(
        self,
        label: str,
        seed: int,
        source: MoodSource,
        confidence: float | None,
        *,
        user_id: str | None,
        guild_id: str | None = None,
        channel_id: str | None = None,
    ) -> EmojiReply | Refusal:
        """One emoji from the workers, within the user's cooldown and in-flight cap.

        `user_id=None` (auto-suggestions) skips the per-user limits; the channel has its own.
        """
        settings = self.settings
        if user_id is not None:
            left = await self.state.take_cooldown("user", user_id, settings.bot_cooldown_s)
            if left:
                return Refusal(
                    RefusalKind.COOLDOWN,
                    f"Easy there: your next emoji is ready in {math.ceil(left)} s.",
                    left,
                )
            slot_ttl = settings.bot_request_timeout_s + 5
            cap = settings.bot_max_in_flight_per_user
            if not await self.state.acquire_slot(user_id, cap, slot_ttl):
                return Refusal(
                    RefusalKind.IN_FLIGHT,
                    f"You already have {cap} emojis on the way; wait for them to land.",
                    1.0,
                )
        started = time.monotonic()
        origin = Origin(guild_id=guild_id, channel_id=channel_id, user_id=user_id)
        try:
            result = await self.client.generate(
                label, seed, origin=origin, timeout=settings.bot_request_timeout_s
            )
        except WorkerBusy as busy:
            if user_id is not None:  # not their fault: let them retry as soon as the queue drains
                await self.state.clear_cooldown("user", user_id)
            return Refusal(
                RefusalKind.BUSY,
                f"The emoji makers are swamped; try again in {busy.retry_after_s} s.",
                float(busy.retry_after_s),
            )
        except RequestTimedOut:
            return Refusal(
                RefusalKind.TIMEOUT,
                "The emoji makers did not answer in time; please try again in a minute.",
                60.0,
            )
        finally:
            if user_id is not None:
                await self.state.release_slot(user_id)
        if not result.ok or not result.images:
            log.warning("worker refused %s/%s: %s", label, seed, result.error_message)
            return Refusal(
                RefusalKind.WORKER_FAILED,
                "Something went wrong drawing that emoji; try again, or pick another mood.",
            )
        await self.state.record_latency(time.monotonic() - started)
        return EmojiReply(
            png=result.images[0],
            label=label,
            confidence=confidence,
            seed=seed,
            model_version=result.model_version or _UNKNOWN_VERSION,
            source=source,
        )

    # --- auto-suggest ----------------------------------------------------------

    async def suggest(
        self, *, text: str, guild_id: str | None, channel_id: str
    ) -> Suggestion | Skipped:
        """A quiet suggestion for a chat message with a clear mood, if this channel wants one."""
        settings = await self.state.guild_settings(guild_id)
        if not settings.autosuggests_in(channel_id):
            return Skipped("not_enabled")
        if not text or not text.strip():
            return Skipped("no_text")
        mood = await self.read_mood(text)
        if mood.label not in LABELS:
            return Skipped("no_clear_mood")
        if mood.confidence < settings.threshold:
            return Skipped("below_threshold")
        # Taken last: a channel's quiet minutes are not spent on messages without a mood.
        if await self.state.take_cooldown("channel", channel_id, settings.interval_s):
            return Skipped("rate_limited")
        reaction = REACTIONS[mood.label]
        if settings.mode == "react":
            return Suggestion("react", mood.label, mood.confidence, reaction)
        reply = await self.generate(
            mood.label,
            self.new_seed(),
            "text",
            mood.confidence,
            user_id=None,
            guild_id=guild_id,
            channel_id=channel_id,
        )
        if isinstance(reply, Refusal):
            return Skipped("refused", reply)
        return Suggestion("reply", mood.label, mood.confidence, reaction, reply)

    # --- /emoji-settings -------------------------------------------------------

    SETTINGS_HELP = (
        "autosuggest on|off · threshold 0.5-1.0 · ratelimit <seconds> · mode reply|react · "
        "admin-role <role id>|none"
    )

    async def change_setting(
        self, *, guild_id: str, channel_id: str, name: str, value: str
    ) -> str | Refusal:
        """Apply one `/emoji-settings NAME VALUE`; the confirmation, or why not."""
        name, value = name.strip().lower(), value.strip()
        if name == "autosuggest":
            if value.lower() not in ("on", "off"):
                return Refusal(RefusalKind.BAD_SETTING, "autosuggest takes `on` or `off`.")
            enabled = value.lower() == "on"
            await self.state.set_autosuggest(guild_id, channel_id, enabled)
            if enabled:
                current = await self.state.guild_settings(guild_id)
                return (
                    f"Auto-suggest is **on** in this channel: messages at least "
                    f"{current.threshold:.0%} sure of their mood get a quiet {current.mode}, "
                    f"at most one every {current.interval_s} s."
                )
            return "Auto-suggest is **off** in this channel."
        fields = {
            "threshold": "threshold",
            "ratelimit": "interval_s",
            "mode": "mode",
            "admin-role": "admin_role_id",
        }
        if name not in fields:
            return Refusal(
                RefusalKind.BAD_SETTING,
                f"Unknown setting `{name}`. Settings: " + self.SETTINGS_HELP,
            )
        stored_value: str | None = value
        if name == "admin-role":
            stored_value = None if value.lower() in ("none", "off", "") else value.strip("<@&>")
        try:
            current = await self.state.update_guild_setting(guild_id, fields[name], stored_value)
        except ValidationError:
            return Refusal(
                RefusalKind.BAD_SETTING,
                f"`{value}` is not a valid {name}. Settings: " + self.SETTINGS_HELP,
            )
        return f"`{name}` is now `{getattr(current, fields[name])}` on this server."

    async def describe_settings(self, guild_id: str | None, channel_id: str) -> str:
        current = await self.state.guild_settings(guild_id)
        here = "on" if current.autosuggests_in(channel_id) else "off"
        role = f"<@&{current.admin_role_id}>" if current.admin_role_id else "none"
        return (
            f"autosuggest here: **{here}** ({len(current.autosuggest_channels)} channels in all) · "
            f"threshold {current.threshold:.2f} · ratelimit {current.interval_s} s · "
            f"mode {current.mode} · admin role {role}"
        )

    # --- /emoji-admin ------------------------------------------------------------

    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = registry_from_settings(self.client.settings)
        return self._registry

    async def status(self) -> str:
        """Queue depth, workers alive, model versions and latency, as a few lines."""
        transport = self.client.transport
        depths = {label: await transport.queue_depth(label) for label in LABELS}
        beats = await transport.heartbeats()
        latencies = sorted(await self.state.latencies())
        active = "unknown"
        with contextlib.suppress(Exception):  # a missing registry folder is not an outage
            active = await asyncio.to_thread(self.registry().active_version)
        lines = [
            "**queue** " + " · ".join(f"{label} {depth}" for label, depth in depths.items()),
            f"**workers alive** {len(beats)}",
        ]
        for worker_id, info in sorted(beats.items()):
            models = ", ".join(f"{k} {v}" for k, v in sorted((info.get("models") or {}).items()))
            lines.append(f"- `{worker_id}` model `{info.get('model_version')}` ({models})")
        lines.append(f"**active version** `{active}`")
        if latencies:
            p50 = latencies[len(latencies) // 2]
            p95 = latencies[min(len(latencies) - 1, math.ceil(len(latencies) * 0.95) - 1)]
            lines.append(
                f"**latency** p50 {p50 * 1000:.0f} ms · p95 {p95 * 1000:.0f} ms "
                f"(last {len(latencies)})"
            )
        else:
            lines.append("**latency** no requests yet")
        return "\n".join(lines)

    async def promote(self, version: str, force: bool = False) -> str | Refusal:
        """Make `version` live unless its FID/KID is worse than the live one's (or `force`)."""
        from worker.retraining import promote_checked

        registry = self.registry()
        try:
            verdict, previous = await asyncio.to_thread(promote_checked, registry, version, force)
        except Exception as error:  # RegistryError: unknown or malformed version
            return Refusal(RefusalKind.NO_SUCH_VERSION, str(error))
        if not verdict.allowed:
            return Refusal(RefusalKind.WORSE_MODEL, f"Not promoted: {verdict.reason}.")
        return (
            f"`{version}` is live (was `{previous}`; {verdict.reason}); workers switch within "
            f"{self.client.settings.registry_poll_s:g} s."
        )

    async def rollback(self) -> str | Refusal:
        registry = self.registry()
        try:
            current, previous = await asyncio.to_thread(registry.rollback)
        except Exception as error:  # RegistryError
            return Refusal(RefusalKind.NO_SUCH_VERSION, f"Nothing to roll back: {error}.")
        return f"Rolled back to `{previous}` (from `{current}`)."

    # --- /emoji-admin retrain ----------------------------------------------------

    def _retrain_redis(self):
        return getattr(self.client.transport, "redis", None)

    async def retrain(
        self,
        upload: bytes,
        *,
        requested_by: str,
        from_version: str | None = None,
        labels: list[str] | None = None,
    ) -> Any:
        """Queue a retrain of `upload` (a zip) for a retrain runner: a RetrainRequest or Refusal."""
        from worker.retraining import RetrainSettings
        from worker.retraining.queue import submit_retrain

        redis = self._retrain_redis()
        if redis is None:
            return Refusal(RefusalKind.NO_QUEUE, "Retraining needs the Redis queue and a runner.")
        limits = RetrainSettings()
        try:
            return await submit_retrain(
                redis,
                self.client.settings.queue_prefix,
                upload,
                limits.retrain_max_upload_bytes,
                requested_by=requested_by,
                from_version=from_version,
                labels=labels or list(LABELS),
            )
        except MoodmojiError as error:
            return Refusal(RefusalKind.BAD_UPLOAD, str(error))

    async def retrain_events(self, request_id: str, after: str = "0-0", block_ms: int = 1000):
        from worker.retraining.queue import read_events

        return await read_events(
            self._retrain_redis(), self.client.settings.queue_prefix, request_id, after, block_ms
        )

    async def version_file(self, version: str, name: str) -> bytes | None:
        """A file published with a version (its sample grid), or None."""
        try:
            path = self.registry().version_dir(version) / name
        except MoodmojiError:
            return None
        return await asyncio.to_thread(path.read_bytes) if path.is_file() else None

    async def discard(self, version: str) -> str | Refusal:
        """Mark a version discarded; it stays in the registry (versions are never deleted)."""
        try:
            await asyncio.to_thread(
                self.registry().update_meta, version, {"discarded_at": time.time()}
            )
        except MoodmojiError as error:
            return Refusal(RefusalKind.NO_SUCH_VERSION, str(error))
        return f"`{version}` discarded; it stays in the registry but will not go live."


def zip_labelled_images(images: dict[str, list[tuple[str, bytes]]]) -> bytes:
    """{label: [(file name, bytes)]} as a zip with one folder per label, as retrain wants."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for label, files in images.items():
            for name, data in files:
                archive.writestr(f"{label}/{name}", data)
    return buffer.getvalue()


def progress_line(event) -> str:
    """One line for a retrain progress message: a bar, the stage and the ETA."""
    if event.state == "queued":
        return f"Retrain `{event.request_id}`: queued, waiting for a runner."
    if event.state == "failed":
        return f"Retrain `{event.request_id}` failed: {event.message}"
    width = 20
    filled = round(width * event.done / event.total) if event.total else 0
    bar = "█" * filled + "░" * (width - filled)
    eta = f" · about {event.eta_s / 60:.0f} min left" if event.eta_s else ""
    return f"Retrain `{event.request_id}` {bar} {event.stage}: {event.detail}{eta}"
