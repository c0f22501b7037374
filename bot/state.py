"""Everything the bot must remember, shared by all its processes: Redis (or memory for `chat`).

- Cooldowns (`take_cooldown`): one user per `bot_cooldown_s`, one auto-suggestion per
  channel per interval. `SET NX PX`: whoever sets the key first may go, the rest get
  the time left, whichever process they run in.
- In-flight slots (`acquire_slot`): how many emojis a user has on the way. A counter
  with a TTL, so a process that dies holding slots cannot lock its users out for good.
- Guild settings: a hash per guild plus a set of auto-suggest channels, so two
  operators changing two settings at once never overwrite each other.
- Latencies of recent requests (for `/emoji-admin status`), the promotion history
  (for `rollback`) and the command tree's hash (sync only when it changed).

- Retrain followers (`follows`): which channel message shows which retrain job, so a
  restarted bot picks up editing it where the job's progress stream stands.

Redis blips are retried by redis-py (`bot_state_retries`, with back-off); past that every
call raises `StateUnavailable`, which the bot answers with "try again in a moment". The
limits fail safe: a limit that cannot be checked refuses, it never lets everything through.

`MemoryState` keeps the same contract in one process, for `moodmoji chat` without Redis.
"""

import functools
import time
from abc import ABC, abstractmethod
from typing import Literal

from pydantic import BaseModel, Field

from bot.settings import BotSettings
from moodmoji.errors import MoodmojiError

_LATENCIES_KEPT = 200

# KEYS: counter. ARGV: cap, ttl s. 1 when a slot was taken, 0 when the user is at the cap.
_ACQUIRE_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

_RELEASE_SCRIPT = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"""


class StateUnavailable(MoodmojiError):
    """Redis did not answer, even after retries: the caller refuses (fails safe)."""


class GuildSettings(BaseModel):
    """One guild's settings; `BotSettings` gives the defaults of a guild never configured.

    `emoji_cooldown_s` and `emoji_daily_cap` are the server's own limits for /emoji; the
    operator's global ones (`bot_cooldown_s`, `bot_daily_cap`) bound them (`effective_*`).
    """

    autosuggest_channels: frozenset[str] = frozenset()
    emoji_channels: frozenset[str] = frozenset()  # empty: /emoji works in every channel
    threshold: float = Field(ge=0.5, le=1.0)
    interval_s: int = Field(ge=0)
    mode: Literal["reply", "react"]
    admin_role_id: int | None = None
    emoji_cooldown_s: int | None = Field(None, ge=0, le=86400)
    emoji_daily_cap: int | None = Field(None, ge=1, le=100_000)

    @classmethod
    def defaults(cls, settings: BotSettings) -> "GuildSettings":
        return cls(
            threshold=settings.autosuggest_threshold,
            interval_s=settings.autosuggest_interval_s,
            mode=settings.autosuggest_mode,
            admin_role_id=settings.bot_admin_role_id,
        )

    def autosuggests_in(self, channel_id: str) -> bool:
        return channel_id in self.autosuggest_channels

    def emoji_allowed_in(self, channel_id: str | None) -> bool:
        return not self.emoji_channels or channel_id in self.emoji_channels

    def effective_cooldown_s(self, settings: BotSettings) -> float:
        """The server may ask for a longer cooldown than the operator's, never a shorter one."""
        return max(settings.bot_cooldown_s, self.emoji_cooldown_s or 0)

    def effective_daily_cap(self, settings: BotSettings) -> int:
        """The server may ask for a lower daily cap than the operator's, never a higher one."""
        own = self.emoji_daily_cap or settings.bot_daily_cap
        return min(settings.bot_daily_cap, own)


# Fields a guild may change, and how their text form is read back from a Redis hash.
SETTING_FIELDS = (
    "threshold",
    "interval_s",
    "mode",
    "admin_role_id",
    "emoji_cooldown_s",
    "emoji_daily_cap",
)
# Channel sets a guild may switch channels in and out of.
CHANNEL_SETS = ("autosuggest", "emoji")


class BotState(ABC):
    def __init__(self, settings: BotSettings) -> None:
        self.settings = settings

    @abstractmethod
    async def take_cooldown(self, scope: str, key: str, seconds: float) -> float:
        """0 if `key` may go now (and starts its cooldown); else the seconds left."""

    @abstractmethod
    async def cooldown_left(self, scope: str, key: str) -> float:
        """The seconds left on `key`'s cooldown, without taking it (a cheap look first)."""

    @abstractmethod
    async def clear_cooldown(self, scope: str, key: str) -> None:
        """Give a cooldown back (the request it was taken for was refused)."""

    @abstractmethod
    async def count_today(self, scope: str, key: str, cap: int) -> bool:
        """Count one more today for `key`; False (and nothing counted) past `cap`."""

    @abstractmethod
    async def acquire_slot(self, user_id: str, cap: int, ttl_s: float) -> bool:
        """Take one of `cap` in-flight slots of `user_id`; False if all are taken."""

    @abstractmethod
    async def release_slot(self, user_id: str) -> None: ...

    @abstractmethod
    async def _stored_settings(self, guild_id: str) -> tuple[dict[str, str], dict[str, set[str]]]:
        """(changed fields as text, {channel set: channel ids}) of a guild."""

    @abstractmethod
    async def _store_setting(self, guild_id: str, field: str, value: str | None) -> None: ...

    @abstractmethod
    async def set_channel(self, guild_id: str, which: str, channel_id: str, on: bool) -> None:
        """Switch `channel_id` in or out of the guild's `which` set (`CHANNEL_SETS`)."""

    async def set_autosuggest(self, guild_id: str, channel_id: str, enabled: bool) -> None:
        await self.set_channel(guild_id, "autosuggest", channel_id, enabled)

    @abstractmethod
    async def follow(self, request_id: str, where: str | None) -> None:
        """Remember (or, with None, forget) the message `where` that shows a retrain job."""

    @abstractmethod
    async def follows(self) -> dict[str, str]:
        """Every retrain job still followed: {request_id: where}."""

    @abstractmethod
    async def record_latency(self, seconds: float) -> None: ...

    @abstractmethod
    async def latencies(self) -> list[float]:
        """The most recent request latencies, newest first."""

    @abstractmethod
    async def get_value(self, name: str) -> str | None: ...

    @abstractmethod
    async def set_value(self, name: str, value: str) -> None: ...

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections."""

    async def guild_settings(self, guild_id: str | None) -> GuildSettings:
        defaults = GuildSettings.defaults(self.settings)
        if guild_id is None:
            return defaults
        fields, channels = await self._stored_settings(guild_id)
        values = defaults.model_dump()
        values.update({k: (v or None) for k, v in fields.items() if k in SETTING_FIELDS})
        for which in CHANNEL_SETS:
            values[f"{which}_channels"] = frozenset(channels.get(which, ()))
        return GuildSettings.model_validate(values)

    async def update_guild_setting(self, guild_id: str, field: str, value) -> GuildSettings:
        """Validate and store one field; pydantic's ValidationError for a bad value."""
        if field not in SETTING_FIELDS:
            raise KeyError(field)
        current = await self.guild_settings(guild_id)
        checked = GuildSettings.model_validate({**current.model_dump(), field: value})
        new_value = getattr(checked, field)
        await self._store_setting(guild_id, field, None if new_value is None else str(new_value))
        return await self.guild_settings(guild_id)


def _fails_safe(method):
    """Any Redis error that outlived redis-py's retries becomes `StateUnavailable`."""

    @functools.wraps(method)
    async def guarded(self, *args, **kwargs):
        import redis.exceptions

        try:
            return await method(self, *args, **kwargs)
        except (redis.exceptions.RedisError, OSError) as error:
            raise StateUnavailable(f"bot state unreachable ({type(error).__name__})") from error

    return guarded


class RedisState(BotState):
    def __init__(self, settings: BotSettings, redis_client=None) -> None:
        """`redis_client`: a redis.asyncio.Redis (decode_responses=True); default from settings,
        retrying connection errors `bot_state_retries` times with a short back-off."""
        super().__init__(settings)
        if redis_client is None:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import ConnectionError, TimeoutError

            redis_client = aioredis.Redis.from_url(
                settings.redis_url,
                decode_responses=True,
                socket_timeout=settings.bot_state_timeout_s,
                socket_connect_timeout=settings.bot_state_timeout_s,
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), settings.bot_state_retries),
                retry_on_error=[ConnectionError, TimeoutError],
            )
        self.redis = redis_client
        self.prefix = settings.bot_state_prefix
        self._acquire = self.redis.register_script(_ACQUIRE_SCRIPT)
        self._release = self.redis.register_script(_RELEASE_SCRIPT)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @_fails_safe
    async def take_cooldown(self, scope: str, key: str, seconds: float) -> float:
        if seconds <= 0:
            return 0.0
        name = self.key("cooldown", scope, key)
        if await self.redis.set(name, "1", nx=True, px=max(1, int(seconds * 1000))):
            return 0.0
        left_ms = await self.redis.pttl(name)
        return max(left_ms, 1) / 1000  # -2: expired between the two calls; try again in a blink

    @_fails_safe
    async def cooldown_left(self, scope: str, key: str) -> float:
        left_ms = await self.redis.pttl(self.key("cooldown", scope, key))
        return max(left_ms, 0) / 1000

    @_fails_safe
    async def clear_cooldown(self, scope: str, key: str) -> None:
        await self.redis.delete(self.key("cooldown", scope, key))

    @_fails_safe
    async def count_today(self, scope: str, key: str, cap: int) -> bool:
        name = self.key("daily", scope, key, time.strftime("%Y-%m-%d", time.gmtime()))
        return bool(await self._acquire(keys=[name], args=[cap, 2 * 86400]))

    @_fails_safe
    async def acquire_slot(self, user_id: str, cap: int, ttl_s: float) -> bool:
        keys = [self.key("in-flight", user_id)]
        return bool(await self._acquire(keys=keys, args=[cap, max(1, int(ttl_s))]))

    @_fails_safe
    async def release_slot(self, user_id: str) -> None:
        await self._release(keys=[self.key("in-flight", user_id)])

    @_fails_safe
    async def _stored_settings(self, guild_id: str) -> tuple[dict[str, str], dict[str, set[str]]]:
        fields = await self.redis.hgetall(self.key("guild", guild_id, "settings"))
        channels = {
            which: set(await self.redis.smembers(self.key("guild", guild_id, which)))
            for which in CHANNEL_SETS
        }
        return fields, channels

    @_fails_safe
    async def _store_setting(self, guild_id: str, field: str, value: str | None) -> None:
        name = self.key("guild", guild_id, "settings")
        if value is None:
            await self.redis.hdel(name, field)
        else:
            await self.redis.hset(name, field, value)

    @_fails_safe
    async def set_channel(self, guild_id: str, which: str, channel_id: str, on: bool) -> None:
        name = self.key("guild", guild_id, which)
        await (self.redis.sadd if on else self.redis.srem)(name, channel_id)

    @_fails_safe
    async def follow(self, request_id: str, where: str | None) -> None:
        if where is None:
            await self.redis.hdel(self.key("retrain-follows"), request_id)
        else:
            await self.redis.hset(self.key("retrain-follows"), request_id, where)

    @_fails_safe
    async def follows(self) -> dict[str, str]:
        return await self.redis.hgetall(self.key("retrain-follows"))

    @_fails_safe
    async def record_latency(self, seconds: float) -> None:
        name = self.key("latencies")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(name, f"{seconds:.4f}")
            pipe.ltrim(name, 0, _LATENCIES_KEPT - 1)
            await pipe.execute()

    @_fails_safe
    async def latencies(self) -> list[float]:
        return [float(v) for v in await self.redis.lrange(self.key("latencies"), 0, -1)]

    @_fails_safe
    async def get_value(self, name: str) -> str | None:
        return await self.redis.get(self.key("value", name))

    @_fails_safe
    async def set_value(self, name: str, value: str) -> None:
        await self.redis.set(self.key("value", name), value)

    async def close(self) -> None:
        await self.redis.aclose()


class MemoryState(BotState):
    """The same contract in this process only: for `moodmoji chat` without Redis."""

    def __init__(self, settings: BotSettings) -> None:
        super().__init__(settings)
        self._cooldowns: dict[tuple[str, str], float] = {}
        self._slots: dict[str, int] = {}
        self._settings: dict[str, dict[str, str]] = {}
        self._channels: dict[tuple[str, str], set[str]] = {}
        self._daily: dict[tuple[str, str, str], int] = {}
        self._follows: dict[str, str] = {}
        self._latencies: list[float] = []
        self._values: dict[str, str] = {}

    async def take_cooldown(self, scope: str, key: str, seconds: float) -> float:
        now = time.monotonic()
        until = self._cooldowns.get((scope, key), 0.0)
        if until > now:
            return until - now
        if seconds > 0:
            self._cooldowns[(scope, key)] = now + seconds
        return 0.0

    async def cooldown_left(self, scope: str, key: str) -> float:
        return max(0.0, self._cooldowns.get((scope, key), 0.0) - time.monotonic())

    async def clear_cooldown(self, scope: str, key: str) -> None:
        self._cooldowns.pop((scope, key), None)

    async def count_today(self, scope: str, key: str, cap: int) -> bool:
        day = (scope, key, time.strftime("%Y-%m-%d", time.gmtime()))
        if self._daily.get(day, 0) >= cap:
            return False
        self._daily[day] = self._daily.get(day, 0) + 1
        return True

    async def acquire_slot(self, user_id: str, cap: int, ttl_s: float) -> bool:
        if self._slots.get(user_id, 0) >= cap:
            return False
        self._slots[user_id] = self._slots.get(user_id, 0) + 1
        return True

    async def release_slot(self, user_id: str) -> None:
        left = self._slots.get(user_id, 0) - 1
        if left > 0:
            self._slots[user_id] = left
        else:
            self._slots.pop(user_id, None)

    async def _stored_settings(self, guild_id: str) -> tuple[dict[str, str], dict[str, set[str]]]:
        channels = {w: set(self._channels.get((guild_id, w), ())) for w in CHANNEL_SETS}
        return dict(self._settings.get(guild_id, {})), channels

    async def _store_setting(self, guild_id: str, field: str, value: str | None) -> None:
        fields = self._settings.setdefault(guild_id, {})
        if value is None:
            fields.pop(field, None)
        else:
            fields[field] = value

    async def set_channel(self, guild_id: str, which: str, channel_id: str, on: bool) -> None:
        channels = self._channels.setdefault((guild_id, which), set())
        (channels.add if on else channels.discard)(channel_id)

    async def follow(self, request_id: str, where: str | None) -> None:
        if where is None:
            self._follows.pop(request_id, None)
        else:
            self._follows[request_id] = where

    async def follows(self) -> dict[str, str]:
        return dict(self._follows)

    async def record_latency(self, seconds: float) -> None:
        self._latencies = [seconds, *self._latencies][:_LATENCIES_KEPT]

    async def latencies(self) -> list[float]:
        return list(self._latencies)

    async def get_value(self, name: str) -> str | None:
        return self._values.get(name)

    async def set_value(self, name: str, value: str) -> None:
        self._values[name] = value
