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
