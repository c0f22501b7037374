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
        0.0,
        ge=0,
        description="longest a batch waits for more requests after taking what was queued, "
        "and only while the recent arrival rate says one is due within it; 0 never waits",
    )
    worker_sampling_threads: int = Field(
        0,
        ge=0,
        description="forward passes sampled at once, each on a thread of its own; 0: one per "
        "core this process may use on a CPU (its affinity and cgroup quota), one on a GPU",
    )
    worker_batches_in_flight: int = Field(
        2,
        ge=1,
        description="batches per sampling thread sampled ahead while earlier ones are still "
        "encoded and answered (1: one batch at a time)",
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
        1,
        ge=0,
        description="torch CPU threads per worker (0: torch's default, one per core); one "
        "leaves the other cores to PNG encoding and Redis, and two threads on two busy "
        "cores ran the forward 2.4-188 ms an emoji",
    )
    worker_encode_threads: int = Field(
        0,
        ge=0,
        description="threads that resize and PNG-encode results; 0: on a CPU the sampling "
        "threads encode what their passes finished, on a GPU one thread per core this process "
        "may use (its CPU affinity and cgroup quota)",
    )
    worker_precision: str = Field(
        "auto",
        pattern=r"^(auto|fp32|bf16|fp16)$",
        description="generator precision: auto is bf16 on a GPU or a CPU with AMX or "
        "AVX512-BF16, else "
        "fp32 (gan.sample.resolve_precision)",
    )
    worker_compile: bool = Field(
        False,
        description="torch.compile the generator (CUDA graphs on a GPU, batches padded to "
        "powers of two); no gain measured on a CPU",
    )
    worker_png_level: int = Field(
        1,
        ge=0,
        le=3,
        description="deflate level of result PNGs, ISA-L's 0-3; 1 is as small as 2 and 3 "
        "and as fast as 0, docs/benchmarks.md",
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
