"""The bot's shared vocabulary, without Discord: answers, refusals, button state, checks.

The services (`bot.emojis`, `bot.suggestions`, `bot.guilds`, `bot.operations`) answer
with an `EmojiReply`, a `Suggestion` or a `Refusal` that says, in words meant for the
user, why not; the Discord cogs and `moodmoji chat` are thin front ends over them.
`explain` turns any error that escaped a handler into such words, the one place that
decides what a user reads when something broke.

Button state travels in Discord `custom_id`s (`ButtonState`): after a restart a click
carries everything needed to answer it (the requester too), so no button ever breaks.
"""

import logging
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from bot.state import GuildSettings, StateUnavailable
from worker import QueueUnavailable, RequestTimedOut, WorkerBusy

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

_ACTIONS = {"r": "reroll", "f": "flip", "a": "add", "d": "delete"}
_LABEL_CODES = {"p": "positive", "n": "negative"}
# discord.py's DynamicItem template: what a button's custom_id must look like (100 chars max:
# 3 + 1 + 1 + 1 + 1 + 13 + 1 + 64 + 1 + 13 at most). The model version follows the
# registry's naming rule; the requester (a snowflake in base 36) is optional because
# buttons sent before it was added carry none, and they keep working for anyone.
_VERSION = r"[A-Za-z0-9._-]{1,64}"
CUSTOM_ID_TEMPLATE = (
    r"mm:(?P<action>[rfad]):(?P<label>[pn]):(?P<seed>[0-9a-z]{1,13}):(?P<version>"
    + _VERSION
    + r")(?::(?P<user>[0-9a-z]{1,13}))?"
)
UNKNOWN_VERSION = "unknown"
ButtonAction = Literal["reroll", "flip", "add", "delete"]


def _snowflake(user_id: str | None) -> int | None:
    """A Discord user id as a number; None for ids that are not one (the chat's user)."""
    return int(user_id) if user_id and user_id.isdigit() and int(user_id) < 2**64 else None


@dataclass(frozen=True)
class ButtonState:
    """What a button remembers: the action, the emoji it sits under, and who asked for it."""

    action: ButtonAction
    label: str
    seed: int
    version: str
    requester: int | None = None  # None: anyone may press it (buttons from before requesters)

    @property
    def custom_id(self) -> str:
        action = next(code for code, name in _ACTIONS.items() if name == self.action)
        label = next(code for code, name in _LABEL_CODES.items() if name == self.label)
        version = self.version if re.fullmatch(_VERSION, self.version) else UNKNOWN_VERSION
        user = f":{seed_text(self.requester)}" if self.requester is not None else ""
        return f"mm:{action}:{label}:{seed_text(self.seed)}:{version}{user}"

    @classmethod
    def from_groups(cls, groups: dict[str, str]) -> "ButtonState":
        """From the named groups of a `CUSTOM_ID_TEMPLATE` match."""
        return cls(
            action=_ACTIONS[groups["action"]],
            label=_LABEL_CODES[groups["label"]],
            seed=int(groups["seed"], 36),
            version=groups["version"],
            requester=int(groups["user"], 36) if groups.get("user") else None,
        )

    def pressed_by_requester(self, user_id: int) -> bool:
        return self.requester is None or self.requester == user_id

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
    requester_id: str | None = None  # who asked (the author, for an auto-suggestion)

    @property
    def filename(self) -> str:
        return f"moodmoji-{self.label}-{seed_text(self.seed)}.png"

    @property
    def caption(self) -> str:
        """Says who asked: a public message must not read "your pick" to everyone else."""
        mood = f"{REACTIONS[self.label]} **{self.label}**"
        if self.source == "text" and self.confidence is not None:
            mood += f" · {self.confidence:.0%} confident"
        elif self.source == "chosen":
            mood += " · mood picked"
        else:
            mood += " · picked at random"
        if self.requester_id is not None:
            mood += f" · for <@{self.requester_id}>"
        return f"{mood} · seed `{seed_text(self.seed)}` · model `{self.model_version}`"

    def buttons(self) -> list[ButtonState]:
        requester = _snowflake(self.requester_id)
        return [
            ButtonState(action, self.label, self.seed, self.model_version, requester)
            for action in ("reroll", "flip", "add", "delete")
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
    NOT_HERE = "not_here"
    DAILY_CAP = "daily_cap"
    NOT_YOURS = "not_yours"
    NOT_OPERATOR = "not_operator"
    STATE_DOWN = "state_down"
    UNEXPECTED = "unexpected"


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
        "not_enabled",
        "no_text",
        "no_permission",
        "no_clear_mood",
        "below_threshold",
        "rate_limited",
        "refused",
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


def may_manage_guild(*, manages_guild: bool, role_ids: set[int], settings: GuildSettings) -> bool:
    """Who may change a server's own settings: Manage Server, or the server's settings role."""
    role = settings.admin_role_id
    return manages_guild or (role is not None and role in role_ids)


@dataclass(frozen=True)
class Mood:
    label: str  # positive, negative or neutral
    confidence: float
    scores: dict[str, float]
    leaning: str  # the likelier of positive and negative (sentiment.Prediction.leaning)
    # Sure enough for an unasked-for emoji (sentiment.Prediction.suggest: the model's
    # auto-suggest threshold, calibrated for few false alarms on neutral messages).
    suggest: bool = True


def new_incident_id() -> str:
    """Short enough to read out to an operator, long enough to find in the log."""
    return secrets.token_hex(3)


def explain(error: BaseException) -> Refusal:
    """What a user reads when `error` escaped a handler: words, never a traceback.

    Unexpected errors get an incident id, logged with the traceback, so an operator can
    find the one a user reports.
    """
    if isinstance(error, StateUnavailable):
        return Refusal(
            RefusalKind.STATE_DOWN,
            "I cannot reach my memory (Redis) right now, so I cannot check your limits; "
            "please try again in a minute.",
            60.0,
        )
    if isinstance(error, QueueUnavailable):
        return Refusal(
            RefusalKind.NO_QUEUE,
            f"The emoji queue (Redis) is unreachable; try again in {error.retry_after_s} s.",
            float(error.retry_after_s),
        )
    if isinstance(error, WorkerBusy):
        return Refusal(
            RefusalKind.BUSY,
            f"The emoji makers are swamped; try again in {error.retry_after_s} s.",
            float(error.retry_after_s),
        )
    if isinstance(error, RequestTimedOut | TimeoutError):
        return Refusal(
            RefusalKind.TIMEOUT,
            "The emoji makers did not answer in time; please try again in a minute.",
            60.0,
        )
    incident = new_incident_id()
    log.error("incident %s: %s", incident, type(error).__name__, exc_info=error)
    return Refusal(
        RefusalKind.UNEXPECTED,
        f"Something went wrong on my side (incident `{incident}`); please try again, and "
        "tell the bot's operators that id if it keeps happening.",
    )


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
