"""`moodmoji experiment paper`: the paper's comparison, its ablation, and what beats it.

Runs, under one budget (widths, epochs, evaluation), for each label and seed:
- main:     DCGAN, DeLiGAN and Proposed (Table 1, Figs. 2-4);
- ablation: Proposed without the mean shift, and with N = 1, 2, 4, 8;
- beyond:   Proposed with DiffAugment + generator EMA, then also spectral norm in D,
            then also a lower learning rate.
Every run is an ordinary training run folder under `--out`, so an interrupted
experiment resumes where it stopped, and finished runs are not trained again.
The final scores of each run (its best-FID generator, or the last one) are
cached in `final.json` beside it, and `docs/results.md` is written from them.
"""

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from gan.config import make_config
from gan.training import BEST, CHECKPOINT, read_log, train

# Widths, epochs and evaluation sizes. `cpu` is the smallest budget at which
# DCGAN learns faces on our set (about 1,300 steps at width 32): about 4 minutes
# a run on two quiet cores. `full` is the paper-scale run for a GPU; `tiny` is
# for tests.
BUDGETS: dict[str, dict] = {
    "tiny": {
        "ngf": 8,
        "ndf": 8,
        "nz": 16,
        "epochs": 2,
        "batch_size": 16,
        "eval_every": 1,
        "eval_samples": 8,
    },
    "cpu": {
        "ngf": 32,
        "ndf": 32,
        "epochs": 100,
        "batch_size": 32,
        "eval_every": 25,
        "eval_samples": 64,
    },
    "full": {
        "ngf": 64,
        "ndf": 64,
        "epochs": 200,
        "batch_size": 35,
        "eval_every": 10,
        "eval_samples": 1000,
    },
}
FINAL_METRICS = ("fid", "kid", "domain_is", "class_consistency")
SCORE_SEED = 12345  # every final score samples the same latents
SMALL_DATA = {"diffaugment": "color,translation,cutout", "ema": True}

GROUPS: dict[str, dict[str, dict]] = {
    "main": {
        "DCGAN": {"model": "dcgan"},
        "DeLiGAN": {"model": "deligan"},
        "Proposed": {"model": "proposed"},
    },
    "ablation": {
        "Proposed, no mean shift": {"model": "proposed", "mean_shift": False},
        "Proposed, N=1": {"model": "proposed", "expand": 1},
        "Proposed, N=2": {"model": "proposed", "expand": 2},
        "Proposed, N=4": {"model": "proposed", "expand": 4},
        "Proposed, N=8": {"model": "proposed", "expand": 8},
    },
    "beyond": {
        "Proposed + DiffAugment + EMA": {"model": "proposed", **SMALL_DATA},
        "... + spectral norm": {"model": "proposed", **SMALL_DATA, "spectral_norm": True},
        "... + spectral norm, lr 1e-4": {
            "model": "proposed",
            **SMALL_DATA,
            "spectral_norm": True,
            "lr": 1e-4,
        },
    },
}


@dataclass
class Run:
    group: str
    name: str
    label: str
    seed: int
    settings: dict
    folder: Path
    scores: dict = field(default_factory=dict)

    @property
    def records(self) -> list[dict]:
        return read_log(self.folder)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def plan_runs(
    out: Path,
    labels: list[str],
    seeds: list[int],
    groups: list[str],
    detail_labels: list[str] | None = None,
) -> list[Run]:
    """The main group runs every label and seed; the others the first seed of `detail_labels`."""
    detail_labels = labels if detail_labels is None else detail_labels
    runs = []
    for group in groups:
        for name, settings in GROUPS[group].items():
            for label in labels if group == "main" else detail_labels:
                for seed in seeds if group == "main" else seeds[:1]:
                    folder = _canonical_folder(out, settings) / f"{label}-s{seed}"
                    runs.append(Run(group, name, label, seed, settings, folder))
    return runs


def _canonical_folder(out: Path, settings: dict) -> Path:
    """The folder of the first entry in GROUPS that trains the same configuration.

    The ablation's "N=2" is the main Proposed model, so both rows share one run
    (trained once), whichever groups one invocation asks for.
    """
    wanted = make_config("stable", **settings)
    for group, entries in GROUPS.items():
        for name, other in entries.items():
            if make_config("stable", **other) == wanted:
                return out / group / slug(name)
    raise AssertionError("settings come from GROUPS")


def run_experiment(
    data_dir: Path,
    out: Path,
    budget: str = "cpu",
    labels: tuple[str, ...] = ("positive", "negative"),
    seeds: tuple[int, ...] = (0, 1),
    groups: tuple[str, ...] = ("main", "ablation", "beyond"),
    detail_labels: tuple[str, ...] | None = None,
    device: str = "auto",
    cache_dir: Path | None = None,
    progress: bool = True,
    shipped: Path | None = None,
) -> tuple[list[Run], dict[str, dict]]:
    """Train (or resume) every run, then score each one's best generator.

    With `shipped` (a models folder), its `LABEL.pt` for each of `labels` is
    scored the same way; returns the runs and those scores (label -> scores).
    """
    from gan.data import load_label_images
    from gan.metrics import Evaluator, generate, load_or_train_classifier
    from gan.sample import EmojiSampler
    from moodmoji.device import resolve_device
    from moodmoji.settings import CommonSettings

    cache_dir = cache_dir or CommonSettings().cache_dir
    detail = list(detail_labels) if detail_labels else None
    runs = plan_runs(out, list(labels), list(seeds), list(groups), detail)
    sizes = BUDGETS[budget]
    classifier, classifier_info = load_or_train_classifier(data_dir, cache_dir)
    for i, run in enumerate(runs, 1):
        if progress:
            print(f"[{i}/{len(runs)}] {run.group}: {run.name} / {run.label} / seed {run.seed}")
        config = make_config("stable", label=run.label, seed=run.seed, **sizes, **run.settings)
        train(
            config,
            data_dir,
            run.folder,
            device=device,
            progress=progress,
            cache_dir=cache_dir,
            classifier=classifier,
        )

    run_device = resolve_device(device)
    evaluators = {
        label: Evaluator(
            load_label_images(data_dir, label),
            run_device,
            cache_dir,
            FINAL_METRICS,
            classifier,
            label,
        )
        for label in {run.label for run in runs} | set(labels)
    }

    def score(checkpoint: Path, label: str) -> tuple[dict, EmojiSampler]:
        sampler = EmojiSampler.from_checkpoint(checkpoint, run_device)
        fake = generate(sampler.generator, sizes["eval_samples"], SCORE_SEED, run_device)
        return evaluators[label].score(fake), sampler

    for run in runs:
        final = run.folder / "final.json"
        if final.exists():
            run.scores = json.loads(final.read_text())
            continue
        best = run.folder / BEST
        scores, _ = score(best if best.exists() else run.folder / CHECKPOINT, run.label)
        best_epoch = min(
            (r for r in run.records if "fid" in r), key=lambda r: r["fid"], default={"epoch": None}
        )["epoch"]
        run.scores = {
            **scores,
            "best_epoch": best_epoch,
            "samples": sizes["eval_samples"],
            "classifier_holdout_accuracy": classifier_info["holdout_accuracy"],
        }
        final.write_text(json.dumps(run.scores, indent=2) + "\n")

    shipped_scores = {}
    for label in labels if shipped else ():
        scores, sampler = score(shipped / f"{label}.pt", label)
        shipped_scores[label] = {**scores, "description": _describe(sampler.config)}
    return runs, shipped_scores


def _describe(config) -> str:
    """E.g. 'proposed, width 32, N=2, DiffAugment, EMA'."""
    extras = [
        part
        for part, on in (
            ("DiffAugment", config.diffaugment),
            ("EMA", config.ema),
            ("spectral norm", config.spectral_norm),
            ("other labels as fakes", config.other_labels_weight),
        )
        if on
    ]
    latent = {"proposed": f"N={config.expand}", "deligan": f"K={config.components}"}
    return ", ".join(
        [f"{config.model}, width {config.ngf}", *filter(None, [latent.get(config.model)]), *extras]
    )


def summarise(runs: list[Run], group: str, label: str, metric: str) -> dict[str, tuple]:
    """name -> (mean, stdev or None, n) of a metric over seeds."""
    values: dict[str, list[float]] = {}
    for run in runs:
        if run.group == group and run.label == label and metric in run.scores:
            values.setdefault(run.name, []).append(run.scores[metric])
    return {
        name: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else None, len(v))
        for name, v in values.items()
    }


def _cell(stats: tuple | None, digits: int = 3) -> str:
    if stats is None:
        return "-"
    mean, sd, _ = stats
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def _table(runs: list[Run], group: str, label: str, shipped: dict | None = None) -> list[str]:
    """One row per configuration; `shipped`, if given, adds the shipped model's scores."""
    stats = {m: summarise(runs, group, label, m) for m in FINAL_METRICS}
    names = list(stats["fid"])
    lines = [
        "| model | FID ↓ | KID ↓ | domain IS ↑ | class consistency ↑ | seeds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        lines.append(
            f"| {name} | {_cell(stats['fid'].get(name), 1)} | {_cell(stats['kid'].get(name))} "
            f"| {_cell(stats['domain_is'].get(name))} "
            f"| {_cell(stats['class_consistency'].get(name))} | {stats['fid'][name][2]} |"
        )
    if shipped:
        lines.append(
            f"| **shipped** `models/{label}.pt` | {shipped['fid']:.1f} | {shipped['kid']:.3f} "
            f"| {shipped['domain_is']:.3f} | {shipped['class_consistency']:.3f} | - |"
        )
    return lines


def _verdict(ours: tuple, base: tuple, better: str) -> str:
    """'held' / 'did not hold', or 'inconclusive' when the gap is within the seeds' spread."""
    (mean, sd, _), (base_mean, base_sd, _) = ours, base
    if sd is not None and base_sd is not None and abs(mean - base_mean) <= sd + base_sd:
        return "inconclusive: within the spread over seeds"
    wins = mean < base_mean if better == "lower" else mean > base_mean
    return "held" if wins else "did not hold"


def _claims(runs: list[Run], label: str) -> list[str]:
    fid = summarise(runs, "main", label, "fid")
    dis = summarise(runs, "main", label, "domain_is")
    if not {"DCGAN", "DeLiGAN", "Proposed"} <= set(fid):
        return []
    lines = []
    for base in ("DCGAN", "DeLiGAN"):
        change = (fid["Proposed"][0] - fid[base][0]) / fid[base][0] * 100
        lines.append(
            f"- FID, Proposed vs {base}: {change:+.0f}% "
            f"({_verdict(fid['Proposed'], fid[base], 'lower')}; the paper claims lower)."
        )
        is_change = (dis["Proposed"][0] - dis[base][0]) / dis[base][0] * 100
        lines.append(
            f"- domain IS, Proposed vs {base}: {is_change:+.1f}% "
            f"({_verdict(dis['Proposed'], dis[base], 'higher')}; the paper claims higher IS)."
        )
    return lines


def _summary(runs: list[Run], labels: list[str], shipped: dict[str, dict]) -> list[str]:
    """Per label: the best paper model, the best configuration overall, and the shipped one."""
    lines = ["## Summary", ""]
    for label in labels:
        paper = summarise(runs, "main", label, "fid")
        every = {
            name: stats
            for group in GROUPS
            for name, stats in summarise(runs, group, label, "fid").items()
        }
        if not every:
            continue
        best = min(every, key=lambda name: every[name][0])
        text = f"- **{label}**: lowest FID of all configurations: {best} ({every[best][0]:.1f})"
        if paper:
            best_paper = min(paper, key=lambda name: paper[name][0])
            text += f"; of the paper's three: {best_paper} ({paper[best_paper][0]:.1f})"
        if label in shipped:
            s = shipped[label]
            text += (
                f"; shipped model: FID {s['fid']:.1f}, class consistency "
                f"{s['class_consistency']:.3f}"
            )
        lines.append(text + ".")
    return [*lines, ""] if len(lines) > 2 else []


def _holdout(runs: list[Run]) -> str:
    accuracy = next((r.scores["classifier_holdout_accuracy"] for r in runs if r.scores), None)
    return "unknown" if accuracy is None else f"{accuracy:.2f}"


def _best_of(runs: list[Run], group: str, label: str) -> list[str]:
    """One sentence naming the group's lowest-FID configuration."""
    fid = summarise(runs, group, label, "fid")
    if len(fid) < 2:
        return []
    best = min(fid, key=lambda name: fid[name][0])
    worst = max(fid, key=lambda name: fid[name][0])
    return [
        f"Lowest FID: **{best}** ({fid[best][0]:.1f}; highest: {worst}, {fid[worst][0]:.1f}). "
        "One seed each: differences of a few FID points are noise at this sample count.",
        "",
    ]


def write_report(
    runs: list[Run],
    report: Path,
    figures: Path,
    budget: str,
    command: str,
    shipped: dict[str, dict] | None = None,
) -> Path:
    """docs/results.md with Table 1, the ablation, beyond-the-paper, and Figs. 2-4."""
    from datetime import UTC, datetime

    from gan.plot import make_grid, plot_losses, plot_metrics
    from gan.sample import EmojiSampler
    from moodmoji.benchmarks import describe_machine

    figures.mkdir(parents=True, exist_ok=True)
    labels = sorted({r.label for r in runs}, key=["positive", "negative"].index)
    rel = lambda p: Path(p).relative_to(report.parent).as_posix()  # noqa: E731
    sizes = BUDGETS[budget]
    lines = [
        "# Results: the paper's comparison on our emoji set",
        "",
        f"Made by `{command}` on {describe_machine()}, "
        f"{datetime.now(UTC):%Y-%m-%d}. Budget `{budget}`: width {sizes['ngf']}, "
        f"{sizes['epochs']} epochs, batch {sizes['batch_size']}, FID/KID every "
        f"{sizes['eval_every']} epochs on {sizes['eval_samples']} generated images against all "
        "real images of the label (TF-Inception features). Scores below are of each run's "
        "best-FID generator, re-sampled with a fixed seed; mean ± standard deviation over seeds "
        "where there are several. Domain IS and class consistency come from the project's own "
        "Positive/Negative classifier (see docs/gan.md): domain IS is not ImageNet IS.",
        "",
        f"The classifier is a weak judge (held-out accuracy {_holdout(runs)} on emojis it never",
        "saw) that files anything not clearly positive under negative: Negative class",
        "consistency is near 1 even for samples with no face in them. Read it with Fig. 4,",
        "never alone; models/README.md shows where it misleads.",
        "",
    ]
    if budget != "full":
        lines += [
            f"**This is a `{budget}`-budget run.** At this width and length the models may not",
            "have learned faces yet (look at Fig. 4 before reading Table 1), so the verdicts",
            "below describe this budget only; the paper's claims are tested by the `full` budget",
            "(`--budget full`, meant for a GPU).",
            "",
        ]
    lines += _summary(runs, labels, shipped or {})
    for label in labels:
        main = [
            r for r in runs if r.group == "main" and r.label == label and r.seed == runs[0].seed
        ]
        lines += [f"## {label.capitalize()}", ""]
        if any(r.group == "main" and r.label == label for r in runs):
            lines += [
                "### Table 1",
                "",
                *_table(runs, "main", label, (shipped or {}).get(label)),
                "",
            ]
        claims = _claims(runs, label)
        if claims:
            lines += ["Did the paper's claims hold here?", "", *claims, ""]
        if main:
            losses = plot_losses({r.name: r.records for r in main}, figures / f"losses-{label}.png")
            lines += [f"Fig. 2, losses (seed {main[0].seed}): ![losses]({rel(losses)})", ""]
            if any("fid" in rec for r in main for rec in r.records):
                curves = plot_metrics(
                    {r.name: r.records for r in main}, figures / f"metrics-{label}.png"
                )
                lines += [f"Fig. 3, metrics over training: ![metrics]({rel(curves)})", ""]
            rows = []
            for r in main:
                best = r.folder / BEST
                sampler = EmojiSampler.from_checkpoint(
                    best if best.exists() else r.folder / CHECKPOINT, "cpu"
                )
                rows += sampler.sample_batch([(0, 8)])[0]
            grid = figures / f"samples-{label}.png"
            make_grid(rows, columns=8).save(grid)
            order = ", ".join(r.name for r in main)
            lines += [
                f"Fig. 4, samples at each model's best-FID epoch (rows: {order}): "
                f"![samples]({rel(grid)})",
                "",
            ]
        for group, title in (("ablation", "Ablation"), ("beyond", "Beyond the paper")):
            if any(r.group == group and r.label == label for r in runs):
                lines += [
                    f"### {title}",
                    "",
                    *_table(runs, group, label),
                    "",
                    *_best_of(runs, group, label),
                ]
        if shipped and label in shipped:
            s = shipped[label]
            lines += [
                "### The shipped model",
                "",
                f"`models/{label}.pt` ({s['description']}), scored the same way: FID "
                f"{s['fid']:.1f}, KID {s['kid']:.3f}, domain IS {s['domain_is']:.3f}, class "
                f"consistency {s['class_consistency']:.3f}.",
                "",
            ]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines).rstrip() + "\n")
    return report
