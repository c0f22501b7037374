"""The registry as the console shows it: each version with its state (live, previous,
discarded, ...), its scores, training configuration, files, and when and by whom it was
promoted, all read from STATE.json and the versions' meta.json (no torch)."""

from worker import DEFAULT_VERSION, ModelRegistry
from worker.retraining import compare

SHOWN_FILES = ("samples.png", "curves.png")  # pictures a retrain publishes with a version
CHANGES = ("promote", "rollback", "activate")  # history actions that make a version live


def version_state(version: str, active: str, rollback: list[str], meta: dict) -> str:
    if version == active:
        return "live"
    if meta.get("discarded_at") is not None:
        return "discarded"
    if rollback and version == rollback[-1]:
        return "previous"  # what `rollback` goes back to
    if version in rollback:
        return "earlier"
    return "candidate"


def _last_promotion(history: list[dict], version: str) -> dict | None:
    for entry in reversed(history):
        if entry.get("to") == version and entry.get("action") in CHANGES:
            return {key: entry.get(key) for key in ("at", "action", "by", "from", "forced")}
    return None


def models_view(registry: ModelRegistry) -> dict:
    active = registry.active_version()
    rollback = registry.promotions()
    history = registry.history()
    names = registry.versions()
    if active == DEFAULT_VERSION or DEFAULT_VERSION in rollback:
        names = [DEFAULT_VERSION, *names]
    versions = []
    for name in names:
        meta = registry.meta(name) if name != DEFAULT_VERSION else {}
        folder = registry.version_dir(name)
        row = {
            "name": name,
            "state": version_state(name, active, rollback, meta),
            "labels": registry.labels(name),
            "published_at": meta.get("published_at"),
            "metrics": meta.get("metrics") or {},
            "lineage": meta.get("lineage") or {},
            "config": meta.get("config") or {},
            "data": meta.get("data") or {},
            "requested_by": meta.get("requested_by"),
            "discarded_at": meta.get("discarded_at"),
            "discarded_by": meta.get("discarded_by"),
            "promoted": _last_promotion(history, name),
            "files": [f for f in SHOWN_FILES if (folder / f).is_file()],
        }
        if meta.get("metrics") and name != active:
            comparison = compare(registry, name, active)
            row["live_scores"] = comparison.active_scores
            row["worse"] = comparison.worse
        versions.append(row)
    return {
        "active": active,
        "previous": rollback[-1] if rollback else None,
        "versions": versions,
        "history": history[-20:][::-1],
    }
