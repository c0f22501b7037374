"""`moodmoji experiment paper` end to end on the procedural set, at the tiny budget."""

import json

from gan.experiment import GROUPS, _verdict, plan_runs
from moodmoji.cli import main


def test_plan_covers_the_paper_the_ablation_and_beyond(tmp_path):
    runs = plan_runs(tmp_path, ["positive", "negative"], [0, 1], ["main", "ablation", "beyond"])
    main_runs = [r for r in runs if r.group == "main"]
    assert len(main_runs) == 3 * 2 * 2  # models x labels x seeds
    assert {r.settings.get("expand") for r in runs if r.group == "ablation"} >= {1, 2, 4, 8}
    assert any(r.settings.get("mean_shift") is False for r in runs)
    assert all(r.settings.get("ema") for r in runs if r.group == "beyond")
    # The ablation's N=2 is the main Proposed: one run serves both rows; no other sharing.
    n2 = [r for r in runs if r.name == "Proposed, N=2"]
    proposed = {r.folder for r in main_runs if r.name == "Proposed"}
    assert n2 and all(r.folder in proposed for r in n2)
    assert len({r.folder for r in runs}) == len(runs) - len(n2)
    assert set(GROUPS) == {"main", "ablation", "beyond"}


def test_a_gap_within_the_seed_spread_is_called_inconclusive():
    assert _verdict((100.0, 5.0, 2), (120.0, 5.0, 2), "lower") == "held"
    assert _verdict((100.0, 15.0, 2), (120.0, 10.0, 2), "lower").startswith("inconclusive")
    assert _verdict((1.2, None, 1), (1.1, None, 1), "higher") == "held"
    assert _verdict((130.0, 1.0, 2), (120.0, 1.0, 2), "lower") == "did not hold"


def test_detail_labels_narrow_only_the_ablation_and_beyond(tmp_path):
    runs = plan_runs(
        tmp_path,
        ["positive", "negative"],
        [0, 1],
        ["main", "ablation", "beyond"],
        detail_labels=["positive"],
    )
    assert {r.label for r in runs if r.group == "main"} == {"positive", "negative"}
    assert {r.label for r in runs if r.group != "main"} == {"positive"}
    assert {r.seed for r in runs if r.group != "main"} == {0}


def test_experiment_runs_end_to_end_and_writes_the_report(
    procedural_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MOODMOJI_CACHE_DIR", str(tmp_path / "cache"))
    report, figures = tmp_path / "docs" / "results.md", tmp_path / "docs" / "results"
    argv = [
        "experiment",
        "paper",
        "--data",
        str(procedural_data),
        "--out",
        str(tmp_path / "runs"),
        "--budget",
        "tiny",
        "--labels",
        "positive",
        "--seeds",
        "0",
        "--groups",
        "main",
        "--report",
        str(report),
        "--figures",
        str(figures),
        "--device",
        "cpu",
        "--shipped",
        "models",
    ]
    assert main(argv) == 0
    text = report.read_text()
    for expected in (
        "## Summary",
        "Table 1",
        "| DCGAN |",
        "| DeLiGAN |",
        "| Proposed |",
        "Fig. 2",
        "Fig. 3",
        "Fig. 4",
        "Proposed vs DCGAN",
        "| **shipped** `models/positive.pt` |",
    ):
        assert expected in text
    for name in ("losses-positive.png", "metrics-positive.png", "samples-positive.png"):
        assert (figures / name).stat().st_size > 1000
    final = json.loads((tmp_path / "runs/main/proposed/positive-s0/final.json").read_text())
    assert final["fid"] > 0 and 0 <= final["class_consistency"] <= 1
    # Fig. 3 needs every metric over training, not only FID and KID.
    log = (tmp_path / "runs/main/proposed/positive-s0/log.jsonl").read_text().splitlines()
    evaluated = [json.loads(line) for line in log if "fid" in json.loads(line)]
    assert evaluated and all({"kid", "domain_is", "class_consistency"} <= set(r) for r in evaluated)

    # A second run trains nothing again: every run folder is finished and scored.
    before = (tmp_path / "runs/main/dcgan/positive-s0/log.jsonl").read_text()
    assert main(argv) == 0
    assert (tmp_path / "runs/main/dcgan/positive-s0/log.jsonl").read_text() == before


def test_a_shipped_model_is_described_by_its_own_latent():
    from gan import make_config
    from gan.experiment import _describe

    described = {
        model: _describe(make_config(model=model, ngf=32, ema=True, diffaugment="color"))
        for model in ("proposed", "deligan", "dcgan")
    }
    assert described == {
        "proposed": "proposed, width 32, N=2, DiffAugment, EMA",
        "deligan": "deligan, width 32, K=50, DiffAugment, EMA",  # no Proposed-only N
        "dcgan": "dcgan, width 32, DiffAugment, EMA",
    }
    rumi = make_config(model="proposed", ngf=32, ema=True, other_labels_weight=1.0)
    assert _describe(rumi) == "proposed, width 32, N=2, EMA, other labels as fakes"
