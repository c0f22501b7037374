"""Bot settings (`MOODMOJI_DISCORD_*`, `MOODMOJI_BOT_*`, `MOODMOJI_CHAT_*`).

Per-guild settings (which channels get auto-suggestions, the threshold, the
rate limit, reply or react, the operator role) live in Redis and are changed
with `/emoji-settings`; the fields named `autosuggest_*` here are only the
defaults a guild starts from.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from moodmoji.settings import CommonSettings


class BotSettings(CommonSettings):
    discord_token: SecretStr | None = Field(
        None, description="the bot token from the Discord developer portal; never logged"
    )
    dev_guild_id: int | None = Field(
        None,
        description="sync commands to this test guild only (instant); empty means global sync",
    )
    bot_message_content_intent: bool = Field(
        True,
        description="ask for the privileged message-content intent (auto-suggest needs it; "
        "enable it in the developer portal, or set false to run without auto-suggest)",
    )
    bot_state_prefix: str = Field(
        "moodmoji:bot", description="prefix of every Redis key holding bot state and settings"
    )
    bot_admin_role_id: int | None = Field(
        None,
        description="members with this role may change a server's /emoji-settings (besides "
        "Manage Server); a server can name its own role with /emoji-settings admin-role",
    )
    bot_operator_guild_id: int | None = Field(
        None,
        description="the operations server: /emoji-admin (model and fleet operations) is "
        "registered there only; empty: registered everywhere, usable by the owner only",
    )
    bot_operator_role_id: int | None = Field(
        None,
        description="members with this role in the operations server are bot operators "
        "(besides the application's owner or team)",
    )
    bot_cooldown_s: float = Field(
        5.0, ge=0, description="seconds between two emojis for one user, across all bot processes"
    )
    bot_daily_cap: int = Field(
        500,
        ge=1,
        description="most emojis one user may draw per server per day (UTC); a "
        "server may set a lower cap of its own",
    )
    bot_state_retries: int = Field(
        3, ge=0, description="retries of a Redis call for bot state after a connection error"
    )
    bot_state_timeout_s: float = Field(
        2.0, gt=0, description="longest wait for one Redis call for bot state"
    )
    bot_settings_cache_s: float = Field(
        30.0,
        ge=0,
        description="how long a process reuses a server's settings before reading "
        "them again (changes made through this process apply at once)",
    )
    bot_max_in_flight_per_user: int = Field(
        2, ge=1, description="emojis one user may have on the way at once, across all processes"
    )
    bot_request_timeout_s: float = Field(
        20.0, gt=0, description="how long the bot waits for a worker before apologising"
    )
    bot_discord_retries: int = Field(
        4, ge=0, description="retries of a Discord call that was rate limited (with back-off)"
    )
    bot_retry_base_s: float = Field(
        1.0, gt=0, description="first back-off delay after a Discord rate limit; doubles per retry"
    )
    bot_seed_bits: int = Field(
        48, ge=8, le=62, description="random seeds are below 2**bits (they travel in custom_ids)"
    )
    autosuggest_threshold: float = Field(
        0.9, ge=0.5, le=1.0, description="default: least confidence for an auto-suggestion"
    )
    autosuggest_interval_s: int = Field(
        120, ge=0, description="default: seconds between two auto-suggestions in one channel"
    )
    autosuggest_mode: Literal["reply", "react"] = Field(
        "reply",
        description="default: reply with a generated emoji, or react with a stock mood emoji",
    )
    # Sharding: each bot process runs some of Discord's shards and owns its own reply
    # stream, so workers answer the process whose shard got the message.
    bot_shard_count: int | None = Field(
        None, ge=1, description="total shards across all bot processes; empty: Discord's advice"
    )
    bot_shard_ids: Annotated[list[int] | None, NoDecode] = Field(
        None,
        description="shards this process runs, e.g. 0,1 (needs bot_shard_count); empty: all",
    )
    chat_output_dir: Path = Field(
        Path("runs/chat"), description="where `moodmoji chat` saves the emojis it generates"
    )

    @field_validator("bot_shard_ids", mode="before")
    @classmethod
    def _shard_ids_from_text(cls, value):
        """`3`, `0,1` or `[0, 1]`: a StatefulSet hands a pod its index as plain text."""
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            text = value.strip().strip("[]")
            return [int(part) for part in text.split(",") if part.strip()] or None
        return value

    @model_validator(mode="after")
    def _shards_fit_the_count(self) -> "BotSettings":
        ids = self.bot_shard_ids
        if ids is None:
            return self
        if self.bot_shard_count is None:
            raise ValueError("bot_shard_ids needs bot_shard_count (the total across processes)")
        if len(set(ids)) != len(ids) or not all(0 <= i < self.bot_shard_count for i in ids):
            raise ValueError(
                f"bot_shard_ids must be distinct numbers from 0 to {self.bot_shard_count - 1}"
            )
        return self
