"""`moodmoji bench worker --baseline`: two generators measured side by side."""

from gan import EmojiSampler
from worker.bench import _baseline_report, _throughput


def test_throughput_measures_every_generator_at_every_batch_size(tiny_checkpoint):
    samplers = {
        "bench": EmojiSampler.from_checkpoint(tiny_checkpoint, device="cpu"),
        "baseline": EmojiSampler.from_checkpoint(tiny_checkpoint, device="cpu"),
    }
    rows = _throughput(samplers, [1, 4], png_level=1, seconds=0.05)

    assert set(rows) == {"bench", "baseline"}
    for measured in rows.values():
        assert [batch for batch, _, _ in measured] == [1, 4]
        # The full path (PNG encoding and upscaling on top) cannot beat the forward pass.
        assert all(0 < full <= forward for _, forward, full in measured)

    report = _baseline_report(rows["bench"], rows["baseline"], "old.pt")
    assert "`old.pt`" in report
    assert len([line for line in report.splitlines() if line.startswith("| 4 |")]) == 1


def test_each_rounds_backlog_is_held_to_the_ceiling_measured_for_that_round():
    from argparse import Namespace

    from worker.bench import EndToEnd, _end_to_end_report
    from worker.settings import WorkerSettings

    def run(drain, ceiling):
        timings = {"queued": 1.0, "sample": 5.0, "encode": 1.0, "answer": 1.0, "total": 8.0}
        return EndToEnd([0.01], timings, [0.02, 0.03], 200.0, 2.0, 0, drain, ceiling)

    # The machine slows down round by round: 600 of 800, 560 of 700, 450 of 500.
    rounds = [run(600, 800), run(560, 700), run(450, 500)]
    args = Namespace(lone=1, rate=200, seconds=1, drain=10, rounds=3)
    report = _end_to_end_report({"this checkout": rounds}, args, WorkerSettings())

    assert "800 / 700 / 500 emojis/s" in report
    [row] = [line for line in report.splitlines() if line.startswith("| this checkout |")]
    # Median of 75%, 80%, 90%: 80%; not the median backlog (560) over the first ceiling (70%).
    assert row.endswith("| 560 | 80% |")
