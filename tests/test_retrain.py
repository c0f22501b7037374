"""Operator retraining: a tiny real retrain, the promotion gate, rollback, resuming, uploads.

The retrain fixture trains one label for one epoch on the procedural faces and scores
8 images per version (FID/KID on TF-Inception on the CPU are the slow part), once per
module; the tests read what it left in the registry.
"""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import json
import zipfile
from pathlib import Path

import pytest
from worker_helpers import make_registry, retrain_settings, scored_registry, tiny_models

from moodmoji.errors import MoodmojiError
from worker import ModelRegistry, RegistryError
from worker.retraining import (
    RetrainError,
    RetrainSettings,
    RetrainSpec,
    check_promotion,
    compare,
    read_state,
    retrain,
)


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, tiny_models, procedural_data):
    """v1 live (tiny GANs), then `moodmoji retrain` of the positive label for one epoch."""
    root = tmp_path_factory.mktemp("retrain")
    registry = make_registry(root / "registry", tiny_models)
    settings = retrain_settings(root, registry.root)
    seen = []
    spec = RetrainSpec(source=str(procedural_data), labels=["positive"], epochs=1)
    state = retrain(spec, settings, on_progress=seen.append, isolated=False)
    return registry, state, settings, seen


def test_a_retrain_publishes_a_version_with_metrics_lineage_and_artefacts(
    retrained, procedural_data, tiny_models
):
    registry, state, _settings, seen = retrained
    assert state.stage == "done" and state.version in registry.versions()
    assert registry.active_version() == "v1"  # published, not promoted
    meta = registry.meta(state.version)
    assert meta["lineage"] == {
        "base": "v1",
        "fine_tuned_from": None,
        "retrained_labels": ["positive"],
        "carried_labels": {"negative": "v1"},
    }
    # The base version's own configuration, with the job's epoch budget.
    assert meta["config"]["positive"]["ngf"] == 8 and meta["config"]["positive"]["epochs"] == 1
    for scores in (meta["metrics"]["positive"], meta["comparisons"]["v1"]["positive"]):
        assert set(scores) == {"fid", "kid", "class_consistency"}
        assert scores["fid"] > 0 and 0 <= scores["class_consistency"] <= 1
    assert meta["data"]["images"] == {"positive": 24, "negative": 24}
    folder = registry.version_dir(state.version)
    manifest = (folder / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 1 + 48
    for name in ("samples.png", "curves.png", "positive.pt", "negative.pt"):
        assert (folder / name).is_file(), name
    assert (folder / "negative.pt").read_bytes() == tiny_models["negative"].read_bytes()
    assert (folder / "positive.pt").read_bytes() != tiny_models["positive"].read_bytes()
    # Progress went from nothing to everything.
    assert seen[0].done < seen[-1].done == seen[-1].total and seen[-1].stage == "done"


def test_the_gate_agrees_with_the_measured_scores(retrained):
    registry, state, _settings, _seen = retrained
    meta = registry.meta(state.version)
    new, old = meta["metrics"]["positive"], meta["comparisons"]["v1"]["positive"]
    worse = new["fid"] > old["fid"] or new["kid"] > old["kid"]
    verdict = check_promotion(registry, state.version)
    assert verdict.allowed is not worse
    assert "| positive | FID ↓ |" in verdict.comparison.table()
    assert check_promotion(registry, state.version, force=True).allowed


def test_rerunning_a_finished_retrain_publishes_nothing_new(retrained, procedural_data):
    registry, state, settings, _seen = retrained
    before = registry.versions()
    spec = RetrainSpec(source=str(procedural_data), labels=["positive"], epochs=1)
    again = retrain(spec, settings, isolated=False)
    assert again.version == state.version and registry.versions() == before


# --- the gate, rollback: recorded scores on real registry folders -------------------------


def test_promote_refuses_a_worse_version_and_accepts_a_better_one(tmp_path, tiny_models):
    good = {"positive": {"fid": 50.0, "kid": 0.05}, "negative": {"fid": 60.0, "kid": 0.06}}
    better = {"positive": {"fid": 40.0, "kid": 0.04}, "negative": {"fid": 60.0, "kid": 0.05}}
    worse_kid = {"positive": {"fid": 30.0, "kid": 0.09}, "negative": {"fid": 55.0, "kid": 0.05}}
    registry = scored_registry(
        tmp_path / "registry", tiny_models, {"good": good, "better": better, "worse": worse_kid}
    )
    registry.promote("good")  # from v1, which was never scored: checked below
    assert check_promotion(registry, "good").allowed is False  # already live

    refused = check_promotion(registry, "worse")
    assert not refused.allowed and "positive KID 0.09 > 0.05" in refused.reason
    assert check_promotion(registry, "worse", force=True).allowed
    accepted = check_promotion(registry, "better")
    assert accepted.allowed and accepted.comparison.worse == []
    assert accepted.comparison.active_scores == good


def test_a_discarded_version_is_not_promoted_unless_forced(tmp_path, tiny_models):
    live = {"positive": {"fid": 50.0, "kid": 0.05}}
    better = {"positive": {"fid": 40.0, "kid": 0.04}}
    registry = scored_registry(tmp_path / "registry", tiny_models, {"live": live, "good": better})
    registry.promote("live")
    assert check_promotion(registry, "good").allowed
    registry.update_meta("good", {"discarded_at": 1_800_000_000.0})
    refused = check_promotion(registry, "good")
    assert not refused.allowed and "discarded on 2027-01-15" in refused.reason
    assert check_promotion(registry, "good", force=True).allowed


def test_an_uncompared_version_needs_a_comparison_or_force(tmp_path, tiny_models):
    scored = {"positive": {"fid": 50.0, "kid": 0.05}}
    registry = scored_registry(tmp_path / "registry", tiny_models, {"r1": scored})
    registry.update_meta("r1", {"reference": {"digest": "other-faces"}})
    registry.publish("r2", {"positive": tiny_models["positive"]}, {"metrics": scored})
    registry.promote("r1")
    verdict = check_promotion(registry, "r2")
    assert not verdict.allowed and "moodmoji models compare r2" in verdict.reason
    assert check_promotion(registry, "v1").allowed  # no metrics: cannot be judged
    with pytest.raises(RegistryError):
        check_promotion(registry, "nope")


def test_rollback_restores_the_previous_version_step_by_step(tmp_path, tiny_models):
    registry = make_registry(tmp_path / "registry", tiny_models)
    # Every label the live version serves (a version without one would not load on the
    # workers that serve it: see test_faults_registry).
    registry.publish(
        "v3", {"positive": tiny_models["positive"], "negative": tiny_models["negative"]}
    )
    assert registry.promote("v2") == "v1"
    assert registry.promote("v3") == "v2"
    assert registry.rollback() == ("v3", "v2") and registry.active_version() == "v2"
    assert registry.rollback() == ("v2", "v1") and registry.active_version() == "v1"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    assert registry.active_version() == "v1"


# --- resuming ------------------------------------------------------------------------------


def test_an_interrupted_retrain_resumes_where_it_stopped(tmp_path, tiny_models, procedural_data):
    registry = make_registry(tmp_path / "registry", tiny_models)
    settings = retrain_settings(
        tmp_path, registry.root, retrain_metrics=["kid"], retrain_eval_samples=2
    )
    spec = RetrainSpec(source=str(procedural_data), labels=["positive", "negative"], epochs=2)
    from worker.retraining import open_job, run_job

    job_dir, _ = open_job(spec, settings, registry)
    # Interrupt the way a crash would: the negative run breaks after positive finished.
    (job_dir / "run-negative").mkdir(parents=True)
    (job_dir / "run-negative" / "checkpoint.pt").write_bytes(b"power cut mid-write")
    with pytest.raises(MoodmojiError, match="not a moodmoji checkpoint"):
        run_job(job_dir, settings, isolated=False)
    assert read_state(job_dir).stage == "train"
    positive_log = (job_dir / "run-positive" / "log.jsonl").read_text()
    assert len(positive_log.splitlines()) == 2
    (job_dir / "run-negative" / "checkpoint.pt").unlink()

    state = run_job(job_dir, settings, isolated=False)
    assert state.stage == "done"
    # The positive run was not trained again: its log is the one from before.
    assert (job_dir / "run-positive" / "log.jsonl").read_text() == positive_log
    assert set(registry.meta(state.version)["metrics"]) == {"positive", "negative"}


def test_a_bad_or_taken_version_name_is_refused_before_any_work(
    tmp_path, tiny_models, procedural_data
):
    from worker.retraining import open_job

    registry = make_registry(tmp_path / "registry", tiny_models)
    settings = retrain_settings(tmp_path, registry.root)
    for version, message in (("../elsewhere", "is not a version name"), ("v1", "exists already")):
        spec = RetrainSpec(source=str(procedural_data), labels=["positive"], version=version)
        with pytest.raises(MoodmojiError, match=message):
            open_job(spec, settings, registry)
    assert not settings.retrain_dir.exists() or not any(settings.retrain_dir.iterdir())


@pytest.mark.slow  # a real CLI process and its training child, killed: about a minute
def test_a_killed_retrain_process_resumes_from_its_last_epoch(
    tmp_path, tiny_models, procedural_data
):
    """A real `moodmoji retrain` killed mid-training, then run again with the same command."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from worker_helpers import REPO

    registry = make_registry(tmp_path / "registry", tiny_models)
    env = {
        **os.environ,
        "MOODMOJI_REGISTRY_DIR": str(registry.root),
        "MOODMOJI_RETRAIN_DIR": str(tmp_path / "jobs"),
        "MOODMOJI_CACHE_DIR": str(tmp_path.parent / "retrain-cache"),
        "MOODMOJI_RETRAIN_EVAL_SAMPLES": "2",
        "MOODMOJI_RETRAIN_METRICS": '["kid"]',
        "MOODMOJI_MODELS_DIR": "/nonexistent-moodmoji-models",
        "MOODMOJI_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "moodmoji.cli",
        "retrain",
        "--data",
        str(procedural_data),
        "--labels",
        "positive",
        "--epochs",
        "400",
    ]
    process = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True)
    spec = RetrainSpec(source=str(procedural_data), labels=["positive"], epochs=400)
    log = tmp_path / "jobs" / spec.job_id() / "run-positive" / "log.jsonl"
    give_up = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        assert process.poll() is None, "retrain ended before it could be interrupted"
        assert time.monotonic() < give_up, "no epoch finished in time"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # the CLI and its training child, at once
    process.wait()
    before = log.read_text().splitlines()
    assert 3 <= len(before) < 400 and registry.versions() == ["v1", "v2"]

    # The same command with a smaller budget: resumes the job, trains one more epoch.
    budget = str(len(before) + 1)
    done = subprocess.run(
        [*command[:-1], budget], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    after = log.read_text().splitlines()
    # The epochs before the kill were kept, not trained again (the last line may have been
    # written just before its checkpoint, and is then redone).
    assert after[: len(before) - 1] == before[:-1]
    assert [json.loads(line)["epoch"] for line in after] == list(range(1, len(before) + 2))
    assert set(registry.versions()) == {"v1", "v2", f"retrain-{spec.job_id()}"}


def test_a_retrain_from_scratch_trains_as_long_as_the_live_model_was(tmp_path, tiny_models):
    """A run planned for 600 epochs and shipped at 250 is retrained for 250, not 600."""
    import gan
    from gan.checkpoint import save_checkpoint
    from worker.retraining.job import JobState, _training_config

    payload = gan.load_checkpoint(tiny_models["positive"])
    payload["config"]["epochs"], payload["epoch"] = 600, 250
    stopped_early = save_checkpoint(payload, tmp_path / "positive.pt")
    registry = ModelRegistry(tmp_path / "registry")
    registry.publish(
        "v1", {"positive": stopped_early, "negative": tiny_models["negative"]}, activate=True
    )
    settings = retrain_settings(tmp_path, registry.root)
    spec = RetrainSpec(source=str(tmp_path), labels=["positive"])
    state = JobState(job_id="j", spec=spec, base_version="v1", version="retrain-j")

    assert _training_config(registry, state, "positive", settings).epochs == 250
    budget = state.model_copy(update={"spec": spec.model_copy(update={"epochs": 3})})
    assert _training_config(registry, budget, "positive", settings).epochs == 3
