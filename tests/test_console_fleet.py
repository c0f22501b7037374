"""The console's arithmetic on worker metrics, and its token check, without a browser."""

import math

import pytest
from pydantic import SecretStr

from console.actions import NotAllowed, operator_for
from console.fleet import histogram_quantile, parse_worker_metrics
from worker.metrics import WorkerMetrics


def test_percentiles_interpolate_within_buckets_as_prometheus_does():
    # 100 answers: 50 under 10 ms, 40 more under 50 ms, 10 more under 1 s.
    buckets = {0.01: 50.0, 0.05: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.01 + 0.04 * 20 / 40)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.05 + 0.95 * 9 / 10)
    assert histogram_quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    # Answers slower than the top finite bound: that bound is all a histogram knows.
    assert histogram_quantile(0.99, {0.1: 1.0, 30.0: 1.0, math.inf: 10.0}) == 30.0


def test_a_workers_metrics_page_is_read_into_requests_and_latency_buckets():
    metrics = WorkerMetrics()
    metrics.requests.labels("positive", "sampled").inc(7)
    metrics.requests.labels("negative", "failed").inc(2)
    for seconds in (0.02, 0.02, 0.3):
        metrics.latency.labels("positive").observe(seconds)
    metrics.latency.labels("negative").observe(4.0)
    from prometheus_client import generate_latest

    scrape = parse_worker_metrics(generate_latest(metrics.registry).decode())
    assert scrape.requests == 9
    assert scrape.buckets[0.025] == 2 and scrape.buckets[0.5] == 3 and scrape.buckets[5.0] == 4
    assert scrape.buckets[math.inf] == 4


def test_an_operator_is_named_by_their_token_and_anything_else_is_refused():
    operators = {"alice": SecretStr("token-a"), "bob": SecretStr("token-b")}
    assert operator_for("token-b", operators) == "bob"
    for bad in ("token-c", "token-", "", None):
        with pytest.raises(NotAllowed):
            operator_for(bad, operators)
    with pytest.raises(NotAllowed, match="read-only"):
        operator_for("token-a", {})
