"""Operator console settings (`MOODMOJI_CONSOLE_*`), on top of the retraining ones: the
console reads the same registry, Redis queue and retrain job folders the workers use."""

from pydantic import Field, SecretStr

from worker.retraining import RetrainSettings


class ConsoleSettings(RetrainSettings):
    console_host: str = Field(
        "127.0.0.1",
        description="address the operator console listens on; keep it local (or behind a "
        "proxy you trust): reading needs no token",
    )
    console_port: int = Field(8470, ge=0, le=65535, description="operator console port")
    console_operators: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='operator name -> token, as JSON ({"alice": "long-random-token"}): a '
        "token is asked for every change (promote, rollback, discard, retrain) and its "
        "name is recorded as who did it; empty: the console is read-only",
    )
    console_poll_s: float = Field(
        2.0, gt=0, description="how often the console reads Redis, the registry and /metrics"
    )
    console_history_s: float = Field(
        3600.0, gt=0, description="how far back the queue and latency figures reach"
    )
    console_worker_silent_s: float = Field(
        10.0,
        gt=0,
        description="a worker whose last heartbeat is older than this is shown as silent",
    )
    console_forget_worker_s: float = Field(
        3600.0, gt=0, description="a silent worker's row is dropped after this long"
    )
    console_scrape_host: str | None = Field(
        None,
        description="host to scrape every worker's /metrics on (default: the host each "
        "heartbeat names); metrics_port comes from the heartbeat",
    )
    console_sheet_samples: int = Field(
        64, ge=1, le=256, description="emojis on a version's contact sheet"
    )
    console_sheet_seed: int = Field(
        0, description="latent seed of the contact sheets: every version draws the same latents"
    )
