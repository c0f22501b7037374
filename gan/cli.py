"""`moodmoji train | sample | evaluate | plot`. Heavy imports stay inside the handlers."""

import argparse
import json
from pathlib import Path

from gan.config import BODIES, DISCRIMINATORS, LOSSES, MODELS
from moodmoji.errors import MoodmojiError
from moodmoji.settings import CommonSettings

MODEL_CHOICES = MODELS
DEFAULT_METRICS = (
    "fid",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "colours",
    "colours_real",
    "memorised",
    "nn_ratio_min",
    "domain_is",
    "class_consistency",
)
SHEET_SAMPLES = 64
LABEL_CHOICES = ("positive", "negative")


def register(subparsers: argparse._SubParsersAction) -> None:
    settings = CommonSettings()
    default_data = settings.data_dir / "emoji"

    p = subparsers.add_parser("train", help="train a GAN on one label of an image folder")
    p.add_argument("--model", choices=MODEL_CHOICES, default="proposed")
    p.add_argument("--label", choices=LABEL_CHOICES, default="positive")
    p.add_argument(
        "--data",
        type=Path,
        default=default_data,
        help=f"folder with positive/ and negative/ (default {default_data})",
    )
    p.add_argument("--out", type=Path, help="run folder (default runs/MODEL-LABEL-sSEED)")
    p.add_argument(
        "--preset",
        choices=("stable", "paper"),
        default="stable",
        help="stable: DCGAN defaults (lr 2e-4, batch 64); paper: lr 1e-2, batch 35",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--beta1", type=float, help="Adam beta1 (default 0.5)")
    p.add_argument("--beta2", type=float, help="Adam beta2 (default 0.999)")
    p.add_argument("--width", type=int, help="sets both --ngf and --ndf")
    p.add_argument("--ngf", type=int)
    p.add_argument("--ndf", type=int)
    p.add_argument("--expand", type=int, help="Proposed: N, the adjustment layer width N * nz")
    p.add_argument("--no-mean-shift", action="store_true", help="Proposed: no U(-1,1) shift")
    p.add_argument("--components", type=int, help="DeLiGAN: mixture components")
    p.add_argument(
        "--body", choices=BODIES, help="G's conv body: dcgan (the paper's) or fastgan (lite)"
    )
    p.add_argument(
        "--rgba", action="store_true", help="draw RGBA: the emoji's own transparent background"
    )
    p.add_argument(
        "--discriminator",
        choices=DISCRIMINATORS,
        help="dcgan, or projected (frozen pretrained EfficientNet-lite0 features)",
    )
    p.add_argument("--projected-size", type=int, help="projected D's input pixels (default 128)")
    p.add_argument("--no-pixel-head", action="store_true", help="projected D: no pixel head")
    p.add_argument("--loss", choices=LOSSES, help="bce (default, DCGAN's) or hinge")
    p.add_argument("--diffaugment", help="DiffAugment policy, e.g. color,translation,cutout")
    p.add_argument("--ema", action="store_true", help="keep an EMA of G for sampling")
    p.add_argument("--spectral-norm", action="store_true", help="spectral norm in D")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips of real images")
    p.add_argument(
        "--other-labels-weight",
        type=float,
        help="Rumi-GAN: D also calls the other labels' real images fake, with this weight",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-every", type=int, help="epochs between FID/KID (0: off; default 10)")
    p.add_argument("--eval-samples", type=int, help="generated images per evaluation")
    p.add_argument("--device", default=settings.device)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    p.set_defaults(handler=train_command)

    p = subparsers.add_parser("sample", help="draw emojis from a checkpoint")
    p.add_argument("checkpoint", type=Path, help="checkpoint file, or a run or models folder")
    p.add_argument("--label", choices=LABEL_CHOICES)
    p.add_argument("-n", type=int, default=16, help="how many emojis")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128, help="pixels (64 native; larger upscaled)")
    p.add_argument("--out", type=Path, default=Path("samples"), help="folder for the PNGs")
    p.add_argument("--grid", type=Path, help="also write one grid PNG here")
    p.add_argument(
        "--no-gate", action="store_true", help="keep fragments the shape gate would redraw"
    )
    p.add_argument("--device", default=settings.device)
    p.set_defaults(handler=sample_command)

    p = subparsers.add_parser(
        "evaluate",
        help="FID, KID, precision/recall/density/coverage, colours, memorisation, mood judge",
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        help="checkpoint file, or a run or models folder (omit with --real-floor)",
    )
    p.add_argument("--label", choices=LABEL_CHOICES)
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--samples", type=int, default=256, help="generated images to score")
    p.add_argument(
        "--gate",
        action="store_true",
        help="score the samples as the worker serves them, through the shape gate "
        "(default: the generator's raw samples)",
    )
    p.add_argument(
        "--real-floor",
        action="store_true",
        help="score --samples real images of --label (a seeded draw) against the rest "
        "instead of a generator: the best a model could score at that count",
    )
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the scores here")
    p.add_argument(
        "--sheet",
        type=Path,
        help="contact sheet of the first 64 samples, on light and dark "
        "(default samples/sheet-LABEL-VERSION.png; 'none' to skip)",
    )
    p.add_argument("--device", default=settings.device)
    p.set_defaults(handler=evaluate_command)

    p = subparsers.add_parser("export", help="a compact fp16 generator file from a run, to ship")
    p.add_argument("run", type=Path, help="run folder or checkpoint")
    p.add_argument("--out", type=Path, required=True, help="e.g. models/positive.pt")
    p.add_argument("--latest", action="store_true", help="the last epoch, not the best-FID one")
    p.add_argument(
        "--data",
        type=Path,
        default=default_data,
        help="an RGBA run saved without a shape gate, or with one of older code "
        "(fewer measures): fit it on these images",
    )
    p.set_defaults(handler=export_command)

    p = subparsers.add_parser("experiment", help="reproduce the paper's comparison and beyond")
    p.add_argument("name", choices=("paper",), help="which experiment")
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--out", type=Path, default=settings.runs_dir / "paper")
    p.add_argument(
        "--budget",
        choices=("tiny", "cpu", "full"),
        default="cpu",
        help="cpu: width 32, 100 epochs (about 4 min a run on 2 cores); full: width 64, "
        "200 epochs, 1000 samples, for a GPU",
    )
    p.add_argument("--labels", default="positive,negative")
    p.add_argument("--seeds", default="0,1", help="seeds for the main comparison")
    p.add_argument("--groups", default="main,ablation,beyond")
    p.add_argument(
        "--detail-labels",
        help="labels for the ablation and beyond groups (default: --labels), first seed only",
    )
    p.add_argument("--report", type=Path, default=Path("docs/results.md"))
    p.add_argument("--figures", type=Path, default=Path("docs/results"))
    p.add_argument("--shipped", type=Path, help="models folder whose checkpoints to score too")
    p.add_argument("--device", default=settings.device)
    p.set_defaults(handler=experiment_command)

    p = subparsers.add_parser("plot", help="loss curves, metric curves and sample grids of runs")
    p.add_argument("runs", type=Path, nargs="+", help="run folders")
    p.add_argument("--out", type=Path, help="folder for the PNGs (default FIRST_RUN/figures)")
    p.add_argument("--samples", type=int, default=32, help="emojis per sample grid")
    p.set_defaults(handler=plot_command)


def train_command(args: argparse.Namespace) -> int:
    from gan import make_config, train
    from gan.diffaugment import parse_policy

    width = args.width
    config = make_config(
        args.preset,
        model=args.model,
        label=args.label,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta1=args.beta1,
        beta2=args.beta2,
        body=args.body,
        channels=4 if args.rgba else None,
        discriminator=args.discriminator,
        projected_size=args.projected_size,
        pixel_head=False if args.no_pixel_head else None,
        loss=args.loss,
        ngf=args.ngf or width,
        ndf=args.ndf or width,
        expand=args.expand,
        mean_shift=False if args.no_mean_shift else None,
        components=args.components,
        diffaugment=parse_policy(args.diffaugment) if args.diffaugment else None,
        ema=True if args.ema else None,
        spectral_norm=True if args.spectral_norm else None,
        flip=False if args.no_flip else None,
        other_labels_weight=args.other_labels_weight,
        seed=args.seed,
        eval_every=args.eval_every,
        eval_samples=args.eval_samples,
    )
    settings = CommonSettings()
    out = args.out or settings.runs_dir / f"{config.model}-{config.label}-s{config.seed}"
    classifier = None
    if config.eval_every and all((Path(args.data) / label).is_dir() for label in LABEL_CHOICES):
        from gan.metrics import load_or_train_classifier

        # With both labels at hand, evaluations also record domain IS and class consistency.
        classifier, _ = load_or_train_classifier(args.data, settings.cache_dir)
    checkpoint = train(
        config,
        args.data,
        out,
        device=args.device,
        resume=not args.restart,
        cache_dir=settings.cache_dir,
        classifier=classifier,
    )
    print(f"checkpoint: {checkpoint}")
    print(f"log: {out / 'log.jsonl'}  (figures: moodmoji plot {out})")
    return 0


def sample_command(args: argparse.Namespace) -> int:
    from gan.plot import save_grid
    from gan.sample import sample_emojis

    if args.n < 1 or args.size < 8:
        raise MoodmojiError("-n must be at least 1 and --size at least 8")
    images = sample_emojis(
        args.checkpoint,
        args.label,
        args.n,
        args.seed,
        args.size,
        device=args.device,
        gate=not args.no_gate,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(args.out / f"emoji-s{args.seed}-{i:03d}.png")
    print(f"wrote {len(images)} emoji(s) to {args.out}/")
    if args.grid:
        print(f"grid: {save_grid(images, args.grid)}")
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    import torch

    from gan.data import load_label_images
    from gan.metrics import Evaluator, generate, load_or_train_classifier
    from gan.sample import EmojiSampler, resolve_checkpoint
    from moodmoji.device import resolve_device

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    device = resolve_device(args.device)
    if args.real_floor == (args.checkpoint is not None):
        raise MoodmojiError("give a checkpoint to score, or --real-floor with --label, not both")
    if args.real_floor:
        if args.label is None:
            raise MoodmojiError("--real-floor needs --label")
        label, version = args.label, "real"
        real = load_label_images(args.data, label)
        if not 0 < args.samples < len(real):
            raise MoodmojiError(f"--samples must be between 1 and {len(real) - 1} here")
        order = torch.randperm(len(real), generator=torch.Generator().manual_seed(args.seed))
        fake, real = real[order[: args.samples]], real[order[args.samples :]]
        what = f"real / {label}  {args.samples} held-out real images"
    else:
        sampler = EmojiSampler.from_checkpoint(
            resolve_checkpoint(args.checkpoint, args.label), device, gate=args.gate
        )
        label, version = sampler.label, sampler.version
        real = load_label_images(args.data, label)
        if args.gate:
            fake = sampler.sample_tensor([(args.seed, args.samples)])[0]
        else:
            fake = generate(sampler.generator, args.samples, args.seed, device)
        gated = ", through the shape gate" if sampler.gate else ""
        what = f"{sampler.config.model} / {label}  version {version}  {args.samples} samples{gated}"
    settings = CommonSettings()
    classifier, info = None, {}
    if {"domain_is", "class_consistency"} & set(metrics):
        classifier, info = load_or_train_classifier(args.data, settings.cache_dir)
    evaluator = Evaluator(real, device, settings.cache_dir, metrics, classifier, label)
    scores = evaluator.score(fake)
    print(f"{what} vs {len(evaluator.real)} real")
    for name, value in scores.items():
        print(f"  {name:<18} {value:.4f}")
    if info:
        print(f"  (classifier held-out accuracy {info['holdout_accuracy']:.3f})")
    if str(args.sheet).lower() != "none":
        from gan.data import tensor_to_images
        from gan.plot import save_grid

        sheet = args.sheet or Path("samples") / f"sheet-{label}-{version}.png"
        print(f"  sheet: {save_grid(tensor_to_images(fake[:SHEET_SAMPLES], 128), sheet)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"label": label, "version": version, "samples": args.samples, **scores},
                indent=2,
            )
        )
    return 0


def plot_command(args: argparse.Namespace) -> int:
    from gan.plot import plot_losses, plot_metrics, save_grid
    from gan.sample import resolve_checkpoint, sample_emojis
    from gan.training import read_log

    runs = {run.name: read_log(run) for run in args.runs}
    out = args.out or args.runs[0] / "figures"
    written = [plot_losses(runs, out / "losses.png")]
    if any(("fid" in r) for records in runs.values() for r in records):
        written.append(plot_metrics(runs, out / "metrics.png"))
    for run in args.runs:
        images = sample_emojis(
            resolve_checkpoint(run, None), n=args.samples, seed=0, size=64, device="cpu"
        )
        written.append(save_grid(images, out / f"samples-{run.name}.png"))
    for path in written:
        print(path)
    return 0


def export_command(args: argparse.Namespace) -> int:
    from gan.checkpoint import checkpoint_config, export_generator, load_checkpoint
    from gan.sample import resolve_checkpoint

    source = args.run
    if args.run.is_dir():
        source = args.run / "checkpoint.pt" if args.latest else resolve_checkpoint(args.run, None)
    gate = None
    payload = load_checkpoint(source)
    config = checkpoint_config(payload)
    from gan.gate import GATE_MEASURES

    # A gate saved by older code lacks a measure (or the run has none): fit a whole one.
    if config.channels == 4 and set(payload.get("gate") or {}) != GATE_MEASURES:
        from gan.data import load_label_images
        from gan.gate import fit_gate

        gate = fit_gate(load_label_images(args.data, config.label, alpha=True)).to_dict()
        print(f"fitted the shape gate on {args.data}: {gate}")
    path = export_generator(source, args.out, gate=gate)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, from {source})")
    return 0


def _csv(text: str, cast=str) -> list:
    try:
        return [cast(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise MoodmojiError(f"bad list {text!r}: {error}") from error


def experiment_command(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from gan.experiment import GROUPS, run_experiment, write_report

    labels, seeds, groups = _csv(args.labels), _csv(args.seeds, int), _csv(args.groups)
    detail = _csv(args.detail_labels) if args.detail_labels else labels
    bad = [g for g in groups if g not in GROUPS] + [
        x for x in labels + detail if x not in LABEL_CHOICES
    ]
    if bad or not seeds:
        raise MoodmojiError(f"unknown group or label: {', '.join(bad) or 'no seeds given'}")
    runs, shipped = run_experiment(
        args.data,
        args.out,
        args.budget,
        tuple(labels),
        tuple(seeds),
        tuple(groups),
        tuple(detail),
        args.device,
        shipped=args.shipped,
    )
    command = "moodmoji " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"report: {write_report(runs, args.report, args.figures, args.budget, command, shipped)}")
    return 0
