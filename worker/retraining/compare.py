"""Is a version better than the live one? Read from the metrics the registry holds; no torch.

A retrained version's meta.json records its own scores per label (`metrics`) and, in
`comparisons[<version>]`, the scores of the version that was live when it was trained,
measured on the same reference images, samples and seed. `check_promotion` refuses a
version whose FID or KID is worse than the live one's on any label, and one an operator
discarded (`discarded_at`, set by the bot's Discard button); a version with no recorded
metrics (published by hand) cannot be judged and is promoted with a note.
"""

import time
from dataclasses import dataclass, field

from worker.registry import DEFAULT_VERSION, ModelRegistry

GATING_METRICS = ("fid", "kid")  # lower is better
METRIC_NAMES = {
    "fid": "FID ↓",
    "kid": "KID ↓",
    "class_consistency": "class consistency ↑",
    "domain_is": "domain IS ↑",
}


@dataclass
class Comparison:
    candidate: str
    active: str
    candidate_scores: dict[str, dict[str, float]]  # label -> metric -> value
    active_scores: dict[str, dict[str, float]] | None  # None: never scored on this reference
    worse: list[str] = field(default_factory=list)  # "positive FID 80.1 > 75.0"

    def table(self) -> str:
        """A small Markdown table: one row per label and metric."""
        lines = [
            f"| label | metric | `{self.active}` (live) | `{self.candidate}` |",
            "| --- | --- | --- | --- |",
        ]
        for label, scores in sorted(self.candidate_scores.items()):
            theirs = (self.active_scores or {}).get(label, {})
            for metric, value in scores.items():
                old = theirs.get(metric)
                old_text = f"{old:.4g}" if old is not None else "-"
                lines.append(
                    f"| {label} | {METRIC_NAMES.get(metric, metric)} | {old_text} | {value:.4g} |"
                )
        return "\n".join(lines)


@dataclass
class Verdict:
    allowed: bool
    reason: str
    comparison: Comparison | None = None


def compare(registry: ModelRegistry, candidate: str, active: str | None = None) -> Comparison:
    """The candidate's scores beside the live version's, on the candidate's reference."""
    active = active or registry.active_version()
    meta = registry.meta(candidate)
    scores = meta.get("metrics") or {}
    theirs = (meta.get("comparisons") or {}).get(active)
    if theirs is None and active != DEFAULT_VERSION and active != candidate:
        # The live version may have been scored on the same reference when it was trained.
        other = registry.meta(active)
        digest = (meta.get("reference") or {}).get("digest")
        same_reference = digest and (other.get("reference") or {}).get("digest") == digest
        if same_reference and other.get("metrics"):
            theirs = other["metrics"]
    if active == candidate:
        theirs = scores
    result = Comparison(candidate, active, scores, theirs)
    for label, values in scores.items():
        for metric in GATING_METRICS:
            new, old = values.get(metric), (theirs or {}).get(label, {}).get(metric)
            if new is not None and old is not None and new > old:
                result.worse.append(f"{label} {metric.upper()} {new:.4g} > {old:.4g}")
    return result


def check_promotion(registry: ModelRegistry, version: str, force: bool = False) -> Verdict:
    """May `version` go live? Raises RegistryError for a version the registry lacks."""
    registry.version_dir(version)  # a malformed name is a RegistryError
    meta = {} if version == DEFAULT_VERSION else registry.meta(version)
    if version != DEFAULT_VERSION and not meta:
        from worker.registry import RegistryError

        raise RegistryError(f"no version {version!r} in {registry.root}")
    active = registry.active_version()
    if version == active:
        return Verdict(False, f"`{version}` is already live")
    if meta.get("discarded_at") is not None and not force:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(meta["discarded_at"]))
        return Verdict(False, f"`{version}` was discarded on {when} (force it to promote anyway)")
    if not meta.get("metrics"):
        return Verdict(True, f"`{version}` has no recorded metrics, so it was not compared")
    comparison = compare(registry, version, active)
    if comparison.active_scores is None:
        if force:
            return Verdict(True, "promoted with --force, not compared", comparison)
        return Verdict(
            False,
            f"`{active}` (live) was never scored on `{version}`'s reference images; run "
            f"`moodmoji models compare {version}` first, or force it",
            comparison,
        )
    if comparison.worse:
        if force:
            return Verdict(True, "forced although " + "; ".join(comparison.worse), comparison)
        return Verdict(
            False,
            f"`{version}` is worse than `{active}` (live): "
            + "; ".join(comparison.worse)
            + " (force it to promote anyway)",
            comparison,
        )
    return Verdict(True, f"`{version}` is no worse than `{active}` on FID and KID", comparison)


def promote_checked(
    registry: ModelRegistry, version: str, force: bool = False, by: str | None = None
) -> tuple[Verdict, str | None]:
    """Promote `version` if `check_promotion` allows it: (verdict, the version it replaced).

    The one way in for every front end (CLI, bot, console), so none can skip the gate.
    `by` names who asked; it goes into the registry's history.
    """
    verdict = check_promotion(registry, version, force)
    if not verdict.allowed:
        return verdict, None
    return verdict, registry.promote(version, force=force, by=by)
