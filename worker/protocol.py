"""The queue contract between bots and sampling workers: requests, results, error codes.

Pure pydantic, no torch: the bot imports this module and must stay light. Every
message carries `v`, the protocol version; a reader rejects any version it does not
speak with a `ProtocolError` naming it, instead of guessing at fields. On the wire a
message is one JSON document (PNG bytes as base64).

Anything a reader can be handed is answered with a `ProtocolError`, never another
exception: bytes that are not UTF-8, JSON nested deeper than any message is, a document
larger than `MAX_MESSAGE_BYTES`, infinite or NaN numbers (JSON has none; a NaN deadline
would never expire), strings longer than their field allows.
"""

import json
import time
import uuid
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from moodmoji.errors import MoodmojiError

PROTOCOL_VERSION = 1
LABELS = ("positive", "negative")

Label = Literal["positive", "negative"]
# Room for a few emojis per message, not for a batch job hiding in a chat request.
MAX_COUNT = 16
MIN_SIZE, MAX_SIZE = 16, 512
# A request is a few hundred bytes; a result holds up to MAX_COUNT PNGs of MAX_SIZE px.
# Anything longer is refused before it is parsed.
MAX_REQUEST_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Discord ids are snowflakes of at most 20 digits; room to spare, but not megabytes.
MAX_ORIGIN_ID = 64


class ProtocolError(MoodmojiError):
    """A message that is not valid JSON, not this protocol's version, or misses fields."""


class ErrorCode(StrEnum):
    """Why a request got no images. Bots map these to user-facing replies."""

    INVALID_REQUEST = "invalid_request"  # malformed entry; dead-lettered, answered if possible
    SAMPLING_FAILED = "sampling_failed"  # the sampler raised on this request alone (poison)
    TOO_MANY_DELIVERIES = "too_many_deliveries"  # crashed every worker that took it
    DEADLINE_EXCEEDED = "deadline_exceeded"  # nobody waits for it any more
    NO_MODEL = "no_model"  # this worker has no checkpoint for the label
    # Set by the client, never sent: the answer on the reply stream could not be read
    # (another protocol version in a rolling upgrade, or damage).
    UNREADABLE_REPLY = "unreadable_reply"


class Origin(BaseModel):
    """Where a request came from, so a reply can find its way back; all optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    guild_id: Annotated[str, Field(max_length=MAX_ORIGIN_ID)] | None = None
    channel_id: Annotated[str, Field(max_length=MAX_ORIGIN_ID)] | None = None
    user_id: Annotated[str, Field(max_length=MAX_ORIGIN_ID)] | None = None
    interaction_id: Annotated[str, Field(max_length=MAX_ORIGIN_ID)] | None = None


class _Message(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
        allow_inf_nan=False,
    )

    v: int = PROTOCOL_VERSION

    def to_json(self) -> str:
        return self.model_dump_json()


def _new_request_id() -> str:
    return uuid.uuid4().hex


MessageT = TypeVar("MessageT", bound=_Message)
# Seconds since 1970, finite and before the year 5000, so every duration computed from
# one is a finite number too.
UnixTime = Annotated[float, Field(ge=0, lt=1e11)]


class GenerateRequest(_Message):
    """Ask for `count` emojis of one mood, reproducible from `seed`."""

    request_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        default_factory=_new_request_id
    )
    label: Label
    seed: Annotated[int, Field(ge=0, lt=2**63)]
    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    size: Annotated[int, Field(ge=MIN_SIZE, le=MAX_SIZE)] = 128
    origin: Origin = Field(default_factory=Origin)
    # The stream (or in-process queue) the result goes to: one per bot process.
    reply_to: Annotated[str, Field(min_length=1, max_length=200)]
    created_at: UnixTime = Field(default_factory=time.time)
    # Unix time after which the answer is useless; workers skip such requests.
    deadline: UnixTime | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.deadline is not None and (now or time.time()) > self.deadline


class Timings(BaseModel):
    # No inf or NaN: pydantic writes them as null, which no reader could parse back.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    queued_ms: float = 0.0  # created_at to the start of sampling
    sample_ms: float = 0.0  # the generator forward pass, shared by the whole batch
    encode_ms: float = 0.0  # PNG encoding of this request's images
    batch_size: int = 0  # requests sampled in the same forward pass


class GenerateResult(_Message):
    """Either `images` (PNG bytes, `count` of them) or an `error_code` with a message."""

    request_id: str
    images: list[bytes] = Field(default_factory=list)
    error_code: ErrorCode | None = None
    error_message: str | None = None
    model_version: str | None = None
    worker_id: str | None = None
    timings: Timings = Field(default_factory=Timings)
    # Set when this answer was served from the idempotency key, not sampled now.
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error_code is None

    @classmethod
    def failure(
        cls, request_id: str, code: ErrorCode, message: str, worker_id: str | None = None
    ) -> "GenerateResult":
        return cls(
            request_id=request_id, error_code=code, error_message=message, worker_id=worker_id
        )


def _document(kind_name: str, raw: str | bytes, limit: int):
    """The parsed JSON of a message, or a ProtocolError that says why there is none."""
    if len(raw) > limit:
        raise ProtocolError(f"{kind_name} is {len(raw)} bytes; at most {limit} are accepted")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ProtocolError(f"{kind_name} is not UTF-8 text: {error}") from None
    try:
        return json.loads(raw)
    except RecursionError:
        raise ProtocolError(f"{kind_name} is nested too deeply to be a message") from None
    except ValueError as error:
        raise ProtocolError(f"{kind_name} is not JSON: {error}") from None


def _decode(kind: type[MessageT], raw: str | bytes, limit: int) -> MessageT:
    document = _document(kind.__name__, raw, limit)  # raw is valid UTF-8 past here
    if not isinstance(document, dict):
        raise ProtocolError(f"{kind.__name__} must be a JSON object, got {type(document).__name__}")
    version = document.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"{kind.__name__} has protocol version {version!r}; this build speaks "
            f"version {PROTOCOL_VERSION} only"
        )
    try:
        return kind.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'message'}: {item['msg']}"
            for item in error.errors()
        )
        raise ProtocolError(f"invalid {kind.__name__}: {problems}") from None


def decode_request(raw: str | bytes) -> GenerateRequest:
    """Parse one request from the wire; `ProtocolError` says what is wrong with it."""
    return _decode(GenerateRequest, raw, MAX_REQUEST_BYTES)


def decode_result(raw: str | bytes) -> GenerateResult:
    return _decode(GenerateResult, raw, MAX_MESSAGE_BYTES)


def salvage_request_fields(raw: str | bytes) -> tuple[str | None, str | None]:
    """`(request_id, reply_to)` from a message too broken to parse, when they can be read.

    Lets a worker tell the sender its request was refused instead of leaving it to time
    out, and a client fail the one request whose answer it cannot read. Only ids of a
    sane length are trusted: they name Redis keys.
    """
    try:
        document = _document("message", raw, MAX_MESSAGE_BYTES)
    except ProtocolError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    request_id, reply_to = document.get("request_id"), document.get("reply_to")
    return _sane_id(request_id, 128), _sane_id(reply_to, 200)


def _sane_id(value, max_length: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= max_length else None
