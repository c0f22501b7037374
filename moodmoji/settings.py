"""Settings shared by every package, read from MOODMOJI_* variables and `.env`.

Each package extends `CommonSettings` with its own fields (for example
`gan.GanSettings`), so one environment configures the whole system and no
package needs another's settings class.
"""

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "moodmoji"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MOODMOJI_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    device: str = Field(
        "auto", description="torch device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps"
    )
    data_dir: Path = Field(Path("data"), description="data sets (emoji images, text corpora)")
    runs_dir: Path = Field(Path("runs"), description="training runs: checkpoints, logs, figures")
    models_dir: Path = Field(
        Path(__file__).resolve().parent.parent / "models",
        description="shipped default checkpoints",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="downloads and derived caches (Inception statistics, classifiers)",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for queue and state")


def redacted(value):
    """`value` fit to print or log: the password of a URL (`redis://:pw@host`) masked.

    Secret fields are `SecretStr` and mask themselves; a URL carries its secret inside
    an ordinary string, so everything that shows settings passes through here."""
    if not isinstance(value, str) or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    if not password:
        return value
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
