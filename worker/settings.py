"""Worker, queue and registry settings (`MOODMOJI_WORKER_*`, `_QUEUE_*`, `_REGISTRY_*`)."""

from pathlib import Path

from pydantic import Field

from moodmoji.settings import CommonSettings


class WorkerSettings(CommonSettings):
    # Queue layout in Redis: every key starts with this prefix, so tests and
    # deployments sharing one server stay apart.
    queue_prefix: str = Field("moodmoji", description="prefix of every Redis key the queue uses")
    queue_group: str = Field("workers", description="consumer group of the sampling workers")
    queue_claim_idle_ms: int = Field(
        15_000,
        ge=100,
        description="an entry unacknowledged this long belonged to a dead worker and is reclaimed",
    )
    queue_max_deliveries: int = Field(
        3, ge=1, description="deliveries after which an entry goes to the dead-letter stream"
    )
    queue_result_ttl_s: int = Field(
        300,
        ge=1,
        description="longest an answer is kept (for replays and restarted bots); one whose "
        "request has a deadline goes sooner, see QUEUE_RESULT_GRACE_S",
    )
    queue_result_grace_s: float = Field(
        30.0,
        ge=0,
        description="how long past its request's deadline an answer is kept: nobody waits "
        "for it after that",
    )
    queue_reply_maxlen: int = Field(
        10_000, ge=100, description="approximate cap on each reply stream (answers kept for replay)"
    )
    queue_dead_letter_maxlen: int = Field(
        10_000, ge=100, description="approximate cap on the dead-letter stream"
    )
    queue_max_length: int = Field(
        256, ge=1, description="waiting requests per label past which clients are told to back off"
    )
    queue_max_in_flight_per_user: int = Field(
        3, ge=1, description="unanswered requests one user may have at a time"
    )
    queue_reconnect_s: float = Field(
        30.0, gt=0, description="how long clients and workers wait for a lost Redis to come back"
    )
    queue_submit_wait_s: float = Field(
        5.0,
        gt=0,
        description="how long a new request waits for a lost Redis before it is refused "
        "(queue unavailable, try again)",
    )
    queue_max_connections: int = Field(
        32, ge=4, description="Redis connections per process; more callers wait for one"
    )
    queue_request_timeout_s: float = Field(
        30.0, gt=0, description="how long a client waits for an answer"
    )

    worker_id: str | None = Field(None, description="consumer name; default host-pid")
    worker_labels: list[str] = Field(
        default_factory=lambda: ["positive", "negative"], description="labels this worker serves"
    )
    worker_max_batch: int = Field(32, ge=1, description="most requests in one forward pass")
    worker_batch_wait_ms: float = Field(
        5.0, ge=0, description="how long a batch waits to fill up once its first request arrived"
    )
    worker_block_ms: int = Field(
        1000, ge=10, description="how long an idle worker blocks on the queue before looking around"
    )
    worker_heartbeat_s: float = Field(2.0, gt=0, description="heartbeat interval")
    worker_metrics_port: int = Field(0, ge=0, description="Prometheus port; 0 means no endpoint")
    worker_shape_gate: bool = Field(
        True,
        description="redraw RGBA samples shaped like no real emoji (fragments); gan/gate.py",
    )
    worker_torch_threads: int = Field(
        0,
        ge=0,
        description="torch CPU threads per worker; 0 keeps torch's default (one per core)",
    )
    worker_png_level: int = Field(
        1,
        ge=0,
        le=9,
        description="zlib level of result PNGs; 1 encodes ~4x faster than 6 for ~10% more bytes",
    )
    worker_image_size: int = Field(128, ge=16, le=512, description="default emoji size in pixels")

    registry_dir: Path = Field(
        Path("registry"),
        description="model registry: <version>/<label>.pt, meta.json; STATE.json (live version)",
    )
    registry_redis_key: bool = Field(
        False, description="read the active version from Redis (<prefix>:registry:active)"
    )
    registry_file_mode: str = Field(
        "640",
        pattern=r"^0?[0-7]{3}$",
        description="octal mode of the files the registry writes (folders get the matching "
        "search bits): 640 lets the workers' group read what an operator publishes",
    )
    registry_poll_s: float = Field(
        2.0, gt=0, description="how often workers look for a new active model version"
    )
