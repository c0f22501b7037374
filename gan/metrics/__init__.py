"""Metrics registered by name: FID, KID, precision / recall / density / coverage,
distinct colours, memorisation, domain IS and class consistency.

A metric is a function of a `MetricContext`, which computes (once) what the
metrics share: Inception features of the real and generated images, their
k-NN fidelity scores, and the emoji classifier's predictions. `Evaluator`
samples a generator and scores it.
"""

import hashlib
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gan.data import composite
from gan.metrics.classifier import (
    EmojiClassifier,
    class_consistency,
    domain_inception_score,
    load_or_train_classifier,
    predict_probs,
)
from gan.metrics.distance import frechet_distance, kernel_inception_distance
from gan.metrics.fidelity import (
    MEMORISED_BELOW,
    Fidelity,
    distinct_colours,
    nearest_neighbour_ratios,
    precision_recall_density_coverage,
)
from gan.metrics.inception import inception_features
from moodmoji.errors import MoodmojiError
from moodmoji.settings import CommonSettings

METRICS: dict[str, Callable[["MetricContext"], float]] = {}
INCEPTION_METRICS = ("fid", "kid")
FIDELITY_METRICS = ("precision", "recall", "density", "coverage")
PIXEL_METRICS = ("colours", "colours_real", "memorised", "nn_ratio_min")
CLASSIFIER_METRICS = ("domain_is", "class_consistency")


def register_metric(name: str):
    def wrap(fn: Callable[["MetricContext"], float]) -> Callable[["MetricContext"], float]:
        METRICS[name] = fn
        return fn

    return wrap


class MetricContext:
    def __init__(self, evaluator: "Evaluator", fake: Tensor):
        self.evaluator = evaluator
        self.fake = composite(fake)  # RGBA samples are scored on white, as the real images are

    @cached_property
    def fake_features(self) -> np.ndarray:
        return inception_features(self.fake, self.evaluator.device)

    @cached_property
    def fidelity(self) -> Fidelity:
        return precision_recall_density_coverage(self.evaluator.real_features, self.fake_features)

    @cached_property
    def nn_ratios(self) -> np.ndarray:
        return nearest_neighbour_ratios(self.fake, self.evaluator.real)

    @cached_property
    def fake_probs(self) -> np.ndarray:
        if self.evaluator.classifier is None:
            raise MoodmojiError("domain IS and class consistency need the emoji classifier")
        return predict_probs(self.evaluator.classifier, self.fake)


@register_metric("fid")
def fid(ctx: MetricContext) -> float:
    return frechet_distance(ctx.evaluator.real_features, ctx.fake_features)


@register_metric("kid")
def kid(ctx: MetricContext) -> float:
    return kernel_inception_distance(ctx.evaluator.real_features, ctx.fake_features, subsets=50)


@register_metric("precision")
def precision(ctx: MetricContext) -> float:
    return ctx.fidelity.precision


@register_metric("recall")
def recall(ctx: MetricContext) -> float:
    return ctx.fidelity.recall


@register_metric("density")
def density(ctx: MetricContext) -> float:
    return ctx.fidelity.density


@register_metric("coverage")
def coverage(ctx: MetricContext) -> float:
    return ctx.fidelity.coverage


@register_metric("colours")
def colours(ctx: MetricContext) -> float:
    """Median distinct colours per sample (real emojis: see `colours_real`)."""
    return float(np.median(distinct_colours(ctx.fake)))


@register_metric("colours_real")
def colours_real(ctx: MetricContext) -> float:
    return ctx.evaluator.real_colours


@register_metric("memorised")
def memorised(ctx: MetricContext) -> float:
    """Share of samples nearer than 1/3 of the way to one training image (near-copies)."""
    return float((ctx.nn_ratios < MEMORISED_BELOW).mean())


@register_metric("nn_ratio_min")
def nn_ratio_min(ctx: MetricContext) -> float:
    return float(ctx.nn_ratios.min())


@register_metric("domain_is")
def domain_is(ctx: MetricContext) -> float:
    return domain_inception_score(ctx.fake_probs)


@register_metric("class_consistency")
def consistency(ctx: MetricContext) -> float:
    return class_consistency(ctx.fake_probs, ctx.evaluator.label)


class Evaluator:
    """Scores generated images against the real images of one label.

    The real images' Inception features are computed once and cached on disk,
    keyed by the images' content.
    """

    def __init__(
        self,
        real: Tensor,
        device: torch.device | str = "cpu",
        cache_dir: Path | str | None = None,
        metrics: tuple[str, ...] = INCEPTION_METRICS,
        classifier: EmojiClassifier | None = None,
        label: str | None = None,
    ):
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise MoodmojiError(
                f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}"
            )
        self.real = composite(real)  # on white: every score stays comparable with RGB models
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else CommonSettings().cache_dir
        self.metrics = metrics
        self.classifier = classifier
        self.label = label

    @cached_property
    def real_features(self) -> np.ndarray:
        pixels = self.real.add(1).mul(127.5).round().byte().numpy().tobytes()
        path = self.cache_dir / "inception" / f"{hashlib.sha256(pixels).hexdigest()[:16]}.npy"
        if path.exists():
            return np.load(path)
        features = inception_features(self.real, self.device, progress=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial.npy")
        np.save(tmp, features)
        tmp.replace(path)
        return features

    @cached_property
    def real_colours(self) -> float:
        return float(np.median(distinct_colours(self.real)))

    def score(self, fake: Tensor) -> dict[str, float]:
        ctx = MetricContext(self, fake)
        return {name: METRICS[name](ctx) for name in self.metrics}

    @torch.no_grad()
    def evaluate(self, generator: torch.nn.Module, n: int, seed: int = 0) -> dict[str, float]:
        """Sample `n` images from `generator` with a fixed seed and score them."""
        return self.score(generate(generator, n, seed, self.device))


@torch.no_grad()
def generate(
    generator: torch.nn.Module, n: int, seed: int, device: torch.device, batch_size: int = 256
) -> Tensor:
    """`n` images from a fixed seed, in eval mode, without touching the global RNG."""
    was_training = generator.training
    generator.eval()
    rng = torch.Generator().manual_seed(seed)
    chunks = [
        generator(generator.sample_latent(min(batch_size, n - i), rng).to(device)).cpu()
        for i in range(0, n, batch_size)
    ]
    generator.train(was_training)
    return torch.cat(chunks)


__all__ = [
    "CLASSIFIER_METRICS",
    "FIDELITY_METRICS",
    "INCEPTION_METRICS",
    "METRICS",
    "PIXEL_METRICS",
    "EmojiClassifier",
    "Evaluator",
    "MetricContext",
    "frechet_distance",
    "generate",
    "inception_features",
    "kernel_inception_distance",
    "load_or_train_classifier",
    "register_metric",
]
