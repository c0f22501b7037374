"""Scoring generators against one reference set, the way `gan/experiment.py` scores runs.

Every version compared with another is scored on the same reference images (the job's
data), with the same number of samples drawn from the same latent seed, so a lower FID
means a better model and not a luckier draw. Imports torch: workers and the CLI only.
"""

from pathlib import Path

from worker.retraining.settings import RetrainSettings

GRID_COLUMNS = 8


def score_checkpoints(
    checkpoints: dict[str, dict[str, Path]],
    data_dir: Path,
    settings: RetrainSettings,
) -> dict[str, dict[str, dict[str, float]]]:
    """{name: {label: checkpoint}} -> {name: {label: {metric: value}}} on `data_dir`'s images."""
    import gan
    from gan.metrics import Evaluator, generate, load_or_train_classifier
    from moodmoji.device import resolve_device

    device = resolve_device(settings.device)
    metrics = tuple(settings.retrain_metrics)
    classifier = None
    if "class_consistency" in metrics or "domain_is" in metrics:
        classifier, _info = load_or_train_classifier(data_dir, settings.cache_dir)
    labels = sorted({label for per_label in checkpoints.values() for label in per_label})
    evaluators = {
        label: Evaluator(
            gan.load_label_images(data_dir, label),
            device,
            settings.cache_dir,
            metrics,
            classifier,
            label,
        )
        for label in labels
    }
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for name, per_label in checkpoints.items():
        for label, path in per_label.items():
            sampler = gan.EmojiSampler.from_checkpoint(path, device)
            fake = generate(
                sampler.generator, settings.retrain_eval_samples, settings.retrain_eval_seed, device
            )
            values = evaluators[label].score(fake)
            scores.setdefault(name, {})[label] = {k: float(v) for k, v in values.items()}
    return scores


def save_comparison_grid(
    rows: list[tuple[str, str, Path]], out: Path, per_row: int = GRID_COLUMNS
) -> Path:
    """One row of samples per (name, label, checkpoint), all from the same latent seeds,
    on Discord's light theme and again on its dark one."""
    import gan
    from gan.plot import theme_sheet

    images = []
    for _name, _label, path in rows:
        sampler = gan.EmojiSampler.from_checkpoint(path, "cpu")
        images += sampler.sample_batch([(0, per_row)])[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    theme_sheet(images, columns=per_row).save(out)
    return out


def save_curves(run_dirs: dict[str, Path], out: Path) -> Path:
    """Loss curves of each label's run (and metric curves, when the runs logged any)."""
    import gan
    from gan.plot import plot_losses

    return plot_losses({label: gan.read_log(folder) for label, folder in run_dirs.items()}, out)


def compare_with_live(registry, version: str, settings: RetrainSettings):
    """Score the live version on `version`'s reference images; record it in `version`'s meta.

    What `promote` needs when the live version changed after `version` was trained.
    """
    from moodmoji.errors import MoodmojiError
    from worker.retraining.compare import compare

    meta = registry.meta(version)
    reference = meta.get("reference") or {}
    data_dir = Path(reference.get("data_dir", ""))
    if not meta.get("metrics") or not data_dir.is_dir():
        raise MoodmojiError(
            f"{version} has no reference images to compare on (retrained versions keep theirs "
            "in their job folder)"
        )
    live = registry.active_version()
    labels = sorted(meta["metrics"])
    checkpoints = {"live": {label: registry.checkpoint_path(label, live) for label in labels}}
    scored = score_checkpoints(checkpoints, data_dir, settings)["live"]
    comparisons = {**(meta.get("comparisons") or {}), live: scored}
    registry.update_meta(version, {"comparisons": comparisons})
    return compare(registry, version, live)
