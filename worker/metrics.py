"""Prometheus metrics of one sampling service, in its own registry (several may share a process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "moodmoji_worker_requests",
            "requests answered, by outcome (sampled, replayed, expired, failed)",
            ["label", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "moodmoji_worker_errors",
            "requests answered with an error, by error code",
            ["label", "code"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "moodmoji_worker_batch_size",
            "requests per generator forward pass",
            ["label"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "moodmoji_worker_latency_seconds",
            "request created to result stored",
            ["label"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sample_seconds = Histogram(
            "moodmoji_worker_sample_seconds",
            "one generator forward pass",
            ["label"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "moodmoji_worker_queue_depth",
            "requests queued or in flight, as seen at the last heartbeat",
            ["label"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "moodmoji_worker_dead_letters",
            "entries in the dead-letter stream (shared by the fleet; capped at "
            "MOODMOJI_QUEUE_DEAD_LETTER_MAXLEN), as seen at the last heartbeat",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "moodmoji_worker_model_info",
            "1 for the model version each label is served from",
            ["label", "version"],
            registry=self.registry,
        )

    def set_model(self, label: str, version: str) -> None:
        # Drop this label's previous version only; other labels keep their series.
        for sample in list(self.model_info.collect()[0].samples):
            if sample.labels["label"] == label:
                self.model_info.remove(label, sample.labels["version"])
        self.model_info.labels(label, version).set(1)

    def serve(self, port: int) -> None:
        """Expose /metrics on `port` from a background thread."""
        start_http_server(port, registry=self.registry)
