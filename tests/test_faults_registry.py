"""The registry keeps its history (issue 16, item 7): real folders, processes, kills.

promote refuses a version that does not load (forced, every worker, old or new, keeps
serving one that does); a change cut short at any point leaves the old state or the
new, never a live version without its history; concurrent promotes are all recorded;
files are readable by the workers' group whatever the umask.
"""

# ruff: noqa: F401, F811

import contextlib
import itertools
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest
from worker_helpers import REPO, make_registry, running, tiny_models

from moodmoji.cli import main
from worker import InProcessTransport, ModelRegistry, RegistryError, WorkerClient, WorkerSettings
from worker.service import SamplingService


def with_broken(tmp_path, tiny_models) -> ModelRegistry:
    """v1 live; `broken` has a positive checkpoint that is not one (a torn upload)."""
    registry = make_registry(tmp_path / "registry", tiny_models)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"PK\x03\x04 half a checkpoint")
    registry.publish("broken", {"positive": garbage, "negative": tiny_models["negative"]})
    registry.publish("one-label", {"positive": tiny_models["positive"]})
    return registry


def test_promote_refuses_a_version_that_does_not_load(tmp_path, tiny_models, capsys):
    registry = with_broken(tmp_path, tiny_models)
    where = ["models", "--registry", str(registry.root)]
    assert main([*where, "promote", "broken"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("moodmoji: error: 'broken' does not load (positive: ")
    assert "not promoted" in line
    with pytest.raises(RegistryError, match=r"'one-label' does not load .*negative"):
        registry.promote("one-label")  # the live version serves negative too
    assert registry.active_version() == "v1"
    assert [e["action"] for e in registry.history()] == ["activate"]  # make_registry's
    assert main([*where, "promote", "v2"]) == 0  # one that loads goes through
    assert registry.meta("v2")["loads"]["positive"]  # checked once, remembered by digest


async def test_forced_anyway_every_worker_keeps_serving_a_version_that_loads(tmp_path, tiny_models):
    registry = with_broken(tmp_path, tiny_models)
    settings = WorkerSettings(registry_poll_s=0.05, device="cpu", worker_labels=["positive"])
    transport = InProcessTransport()
    running_before = SamplingService(transport, settings, registry=registry)
    async with running(running_before), WorkerClient(transport, settings) as client:
        registry.promote("broken", force=True)
        assert registry.history()[-1] | {"at": 0} == {
            "at": 0,
            "action": "promote",
            "from": "v1",
            "to": "broken",
            "forced": True,
            "loads": False,
        }
        # A restart or a scale-up after it: before, "no model could be loaded", exit.
        started_after = SamplingService(transport, settings, registry=registry)
        async with running(started_after):
            assert started_after.model_version == "v1"
            results = [await client.generate("positive", seed=s, size=16) for s in range(6)]
        assert running_before.model_version == "v1"
    assert all(r.ok for r in results)
    assert registry.rollback() == ("broken", "v1")


def _consistent(registry: ModelRegistry) -> None:
    """What every reader of the registry may rely on, whenever it looks."""
    history, stack = registry.history(), registry.promotions()
    active = registry.active_version()
    assert active == (history[-1]["to"] if history else "v1")
    for before, after in itertools.pairwise(history):
        assert after["from"] == before["to"]  # no change missing from the history
    pushed = sum(e["action"] == "promote" for e in history)
    popped = sum(e["action"] == "rollback" for e in history)
    assert len(stack) == pushed - popped
    if stack:
        assert history[-1]["action"] != "promote" or stack[-1] == history[-1]["from"]


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_promote_cut_short_at_any_write_leaves_the_old_state_or_the_new(
    tmp_path, tiny_models, monkeypatch, fail_at
):
    registry = make_registry(tmp_path / "registry", tiny_models)
    assert registry.check_loads("v2") == []  # the load check's own write, done before
    real_replace, calls = os.replace, []

    def crash_on_write(source, target):  # a power cut between two writes
        calls.append(target)
        if len(calls) == fail_at:
            raise OSError("cut short")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash_on_write)
    with contextlib.suppress(OSError):
        registry.promote("v2")
    monkeypatch.undo()
    _consistent(registry)
    if registry.active_version() == "v2":  # the change happened: it can be undone
        assert registry.rollback() == ("v2", "v1")
    else:
        assert registry.promotions() == []


def _promoter(root, versions, rounds: int, pause: float = 0.0) -> subprocess.Popen:
    """A process promoting among `versions` at random; prints how many changes it made."""
    code = (
        "import random, sys, time\n"
        "from worker.registry import ModelRegistry\n"
        f"registry, changes = ModelRegistry({str(root)!r}), 0\n"
        f"for _ in range({rounds}):\n"
        f"    version = random.choice({versions!r})\n"
        "    changes += registry.promote(version) != version\n"
        f"    time.sleep({pause})\n"
        "print(changes)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )


def _checked_versions(tmp_path, tiny_models) -> ModelRegistry:
    registry = make_registry(tmp_path / "registry", tiny_models)
    checkpoints = {"positive": tiny_models["positive"], "negative": tiny_models["negative"]}
    for version in ("a", "b", "c"):
        registry.publish(version, checkpoints)
        assert registry.check_loads(version) == []  # so the promoters need no torch
    return registry


def test_processes_killed_mid_promote_never_leave_a_change_unrecorded(tmp_path, tiny_models):
    registry = _checked_versions(tmp_path, tiny_models)
    rng = random.Random(16)
    for _ in range(8):
        before = len(registry.history())
        promoter = _promoter(registry.root, ["a", "b", "c"], 100_000)
        give_up = time.monotonic() + 60
        while len(registry.history()) == before:  # promoting (start-up is slow on a busy CPU)
            assert time.monotonic() < give_up and promoter.poll() is None
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))  # then killed somewhere in a promote
        promoter.send_signal(signal.SIGKILL)
        promoter.wait()
        _consistent(registry)
        assert len(registry.history()) > before


def test_concurrent_promotes_are_all_recorded(tmp_path, tiny_models):
    registry = _checked_versions(tmp_path, tiny_models)
    promoters = [_promoter(registry.root, ["a", "b", "c"], 40) for _ in range(3)]
    changes = sum(int(p.communicate(timeout=120)[0]) for p in promoters)
    assert all(p.returncode == 0 for p in promoters)
    promotions = [e for e in registry.history() if e["action"] == "promote"]
    assert len(promotions) == changes  # before: 103 changes made, 95 recorded
    assert len(registry.promotions()) == changes
    _consistent(registry)


def test_what_an_operator_publishes_a_worker_of_the_group_can_read(tmp_path, tiny_models):
    previous = os.umask(0o077)  # an operator's strict umask
    try:
        registry = make_registry(tmp_path / "registry", tiny_models)
        registry.promote("v2")
        registry.update_meta("v2", {"note": "checked"})
    finally:
        os.umask(previous)

    def mode(path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(registry.root) == 0o750
    assert mode(registry.root / "v2") == 0o750
    for path in [*(registry.root / "v2").iterdir(), registry.root / "STATE.json"]:
        assert mode(path) == 0o640, path
