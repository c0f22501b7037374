"""One training loop for DCGAN, DeLiGAN and the Proposed GAN, one label at a time.

Like the paper, each label gets its own model. The loop is the pytorch/examples
DCGAN loop (D step then G step) with the options the paper's comparison and
the product need: DiffAugment, generator EMA, the DeLiGAN sigma penalty,
non-saturating BCE or hinge losses (`LOSSES`), any D of `build_discriminator`,
and RGBA generators, whose images (real and generated alike) D sees composited
on random background colours.

A run directory holds:
    checkpoint.pt   the latest epoch, everything needed to resume exactly
    best.pt         generator-only, at the lowest FID seen (when evaluating)
    log.jsonl       one JSON line per epoch: losses, D outputs, seconds, metrics
    config.json     the configuration, for people
Re-running the same command resumes from checkpoint.pt.
"""

import copy
import json
import logging
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from gan.checkpoint import (
    CheckpointError,
    checkpoint_config,
    export_generator,
    generator_weights,
    load_checkpoint,
    save_checkpoint,
)
from gan.config import TrainConfig
from gan.data import LABELS, composite, load_label_images, random_backgrounds, random_flip
from gan.diffaugment import diff_augment, parse_policy
from gan.gate import fit_gate
from gan.models import DeLiGANGenerator, build_discriminator, build_generator
from moodmoji.device import resolve_device

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
LOG = "log.jsonl"

# Fields that may change between a run and its resumption; any other change is a different run.
RESUMABLE_CHANGES = {"epochs", "eval_every", "eval_samples"}

# Adversarial losses on logits: (D's term for reals, D's term for fakes, G's term).
LOSSES = {
    # Non-saturating BCE (Goodfellow et al.; DCGAN): -log D(x) - log(1 - D(G(z))), -log D(G(z)).
    "bce": (
        lambda r: F.softplus(-r).mean(),
        lambda f: F.softplus(f).mean(),
        lambda f: F.softplus(-f).mean(),
    ),
    # Hinge (Lim & Ye 2017; Projected GAN): max(0, 1 - D(x)) + max(0, 1 + D(G(z))), -D(G(z)).
    "hinge": (lambda r: F.relu(1 - r).mean(), lambda f: F.relu(1 + f).mean(), lambda f: -f.mean()),
}


def train(
    config: TrainConfig,
    data_dir: Path | str,
    out_dir: Path | str,
    device: str = "auto",
    progress: bool = True,
    resume: bool = True,
    cache_dir: Path | str | None = None,
    init_generator: Path | str | None = None,
    classifier=None,
) -> Path:
    """Train (or resume) a run; returns the path of its latest checkpoint.

    `init_generator`: a checkpoint (training or generator-only) whose generator
    weights a new run starts from, to fine-tune; ignored when resuming.
    `classifier`: a `gan.metrics.EmojiClassifier`; with one, every evaluation
    also records domain IS and class consistency next to FID and KID.
    """
    out_dir = Path(out_dir)
    run_device = resolve_device(device)
    policy = parse_policy(config.diffaugment)
    rgba = config.channels == 4
    real = load_label_images(data_dir, config.label, alpha=rgba)  # (N, C, 64, 64) in [-1, 1], CPU
    gate = fit_gate(real).to_dict() if rgba else None  # what a real emoji's shape is
    other = None
    if config.other_labels_weight:
        other = torch.cat(
            [
                load_label_images(data_dir, label, alpha=rgba)
                for label in LABELS
                if label != config.label
            ]
        )

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    generator = build_generator(config).to(run_device)
    discriminator = build_discriminator(config).to(run_device)
    checkpoint_path = out_dir / CHECKPOINT
    resuming = resume and checkpoint_path.exists()
    if init_generator is not None and not resuming:
        weights = generator_weights(load_checkpoint(init_generator))
        generator.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
        )
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False) if config.ema else None
    betas = (config.beta1, config.beta2)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas)
    # A projected D's feature network and projections are frozen: only its heads learn.
    trainable_d = [p for p in discriminator.parameters() if p.requires_grad]
    optimizer_d = torch.optim.Adam(trainable_d, lr=config.lr, betas=betas)

    epoch, step, best_fid = 0, 0, float("inf")
    if resuming:
        payload = load_checkpoint(checkpoint_path, kind="training")
        _check_resumable(checkpoint_config(payload), config, checkpoint_path)
        generator.load_state_dict(payload["generator"])
        discriminator.load_state_dict(payload["discriminator"])
        if generator_ema is not None:
            generator_ema.load_state_dict(payload["generator_ema"])
        optimizer_g.load_state_dict(payload["optimizer_g"])
        optimizer_d.load_state_dict(payload["optimizer_d"])
        epoch, step = payload["epoch"], payload["step"]
        best_fid = payload.get("best_fid", best_fid)
        _restore_rng(payload["rng"])
        log.info("resuming %s at epoch %d", out_dir, epoch)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
    _truncate_log(out_dir / LOG, epoch)

    evaluator = None
    if config.eval_every:
        from gan.metrics import CLASSIFIER_METRICS, INCEPTION_METRICS, Evaluator

        metrics = INCEPTION_METRICS + (CLASSIFIER_METRICS if classifier is not None else ())
        evaluator = Evaluator(real, run_device, cache_dir, metrics, classifier, config.label)

    bar = tqdm(
        total=config.epochs,
        initial=epoch,
        unit="epoch",
        disable=not progress,
        desc=f"{config.model}/{config.label}",
    )
    while epoch < config.epochs:
        started = time.perf_counter()
        totals = {"loss_d": 0.0, "loss_g": 0.0, "d_real": 0.0, "d_fake": 0.0}
        # The shuffle is seeded by epoch so a resumed run sees the same order.
        order = torch.randperm(
            len(real), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        )
        batches = order.split(config.batch_size)
        for indices in batches:
            # From the global generator, whose state the checkpoint keeps: resuming stays exact.
            other_batch = (
                other[torch.randint(len(other), (len(indices),))].to(run_device)
                if other is not None
                else None
            )
            stats = _train_step(
                real[indices].to(run_device),
                other_batch,
                generator,
                discriminator,
                optimizer_g,
                optimizer_d,
                config,
                policy,
            )
            for key, value in stats.items():
                totals[key] += value / len(batches)
            if generator_ema is not None:
                _update_ema(generator_ema, generator, config.ema_decay, step)
            step += 1
        epoch += 1
        record = {
            "epoch": epoch,
            "step": step,
            **totals,
            "seconds": round(time.perf_counter() - started, 3),
        }

        if evaluator is not None and (epoch % config.eval_every == 0 or epoch == config.epochs):
            sampler = generator_ema if generator_ema is not None else generator
            record.update(evaluator.evaluate(sampler, config.eval_samples))

        payload = {
            "kind": "training",
            "config": config.model_dump(),
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict(),
            "generator_ema": generator_ema.state_dict() if generator_ema is not None else None,
            "optimizer_g": optimizer_g.state_dict(),
            "optimizer_d": optimizer_d.state_dict(),
            "epoch": epoch,
            "step": step,
            "rng": _capture_rng(),
            "metrics": {k: v for k, v in record.items() if k in ("fid", "kid")},
            "gate": gate,
        }
        improved = "fid" in record and record["fid"] < best_fid
        if improved:
            best_fid = record["fid"]
        payload["best_fid"] = best_fid
        # The log line goes first: on resume, lines past the checkpoint's epoch are dropped.
        with open(out_dir / LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
        save_checkpoint(payload, checkpoint_path)
        if improved:
            export_generator(checkpoint_path, out_dir / BEST)
        bar.update(1)
        bar.set_postfix({k: f"{record[k]:.3g}" for k in ("loss_d", "loss_g", "fid") if k in record})
    bar.close()
    return checkpoint_path


def _train_step(
    real: Tensor,
    other: Tensor | None,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    config: TrainConfig,
    policy: str,
) -> dict[str, float]:
    real_term, fake_term, g_term = LOSSES[config.loss]
    if config.flip:
        real = random_flip(real)
    latent = generator.sample_latent(real.shape[0]).to(real.device)
    fake = generator(latent)
    # RGBA: real and fake on the same random colours (RGB images pass through).
    backgrounds = random_backgrounds(len(real), real.device) if real.shape[1] == 4 else None
    real, fake = composite(real, backgrounds), composite(fake, backgrounds)

    # D: real towards "real", fake towards "fake".
    logits_real = discriminator(diff_augment(real, policy))
    logits_fake = discriminator(diff_augment(fake.detach(), policy))
    loss_d = real_term(logits_real) + fake_term(logits_fake)
    if other is not None:
        # Rumi-GAN: the other labels' real images are fakes too, so D cannot
        # accept a face of the wrong mood and G is pushed away from one.
        if config.flip:
            other = random_flip(other)
        logits_other = discriminator(diff_augment(composite(other, backgrounds), policy))
        loss_d = loss_d + config.other_labels_weight * fake_term(logits_other)
    optimizer_d.zero_grad(set_to_none=True)
    loss_d.backward()
    optimizer_d.step()

    # G: make D call its images real.
    logits_g = discriminator(diff_augment(fake, policy))
    loss_g = g_term(logits_g)
    if isinstance(generator, DeLiGANGenerator):
        loss_g = loss_g + config.sigma_weight * generator.regularizer()
    optimizer_g.zero_grad(set_to_none=True)
    loss_g.backward()
    optimizer_g.step()

    return {
        "loss_d": loss_d.item(),
        "loss_g": loss_g.item(),
        "d_real": torch.sigmoid(logits_real).mean().item(),
        "d_fake": torch.sigmoid(logits_fake).mean().item(),
    }


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    # Warm up: early on, average over about `step` updates, so the EMA does not
    # hold on to the random initial weights for thousands of steps.
    decay = min(decay, (1.0 + step) / (10.0 + step))
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        ema_param.lerp_(param, 1.0 - decay)
    # BatchNorm statistics are copied, not averaged: they describe the current G.
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def _check_resumable(saved: TrainConfig, requested: TrainConfig, path: Path) -> None:
    saved_values, requested_values = saved.model_dump(), requested.model_dump()
    changed = [
        f"{key} {saved_values[key]!r} -> {requested_values[key]!r}"
        for key in saved_values
        if key not in RESUMABLE_CHANGES and saved_values[key] != requested_values[key]
    ]
    if changed:
        raise CheckpointError(
            f"{path} belongs to a run with other settings ({'; '.join(changed)}); "
            "use another --out folder, or --restart to train from scratch there"
        )


def _capture_rng() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def _restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])


def _truncate_log(path: Path, epoch: int) -> None:
    """Keep only log lines up to `epoch` (a crash can leave one line past the checkpoint)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["epoch"] <= epoch]
    if len(kept) != len(lines):
        path.write_text("".join(line + "\n" for line in kept))


def read_log(run_dir: Path | str) -> list[dict]:
    """The per-epoch records of a run."""
    path = Path(run_dir) / LOG if Path(run_dir).is_dir() else Path(run_dir)
    if not path.exists():
        from moodmoji.errors import MoodmojiError

        raise MoodmojiError(f"no training log at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
