"""`moodmoji models list | show | promote | rollback` on a real registry folder."""

# ruff: noqa: F401, F811

from worker_helpers import scored_registry, tiny_models

from moodmoji.cli import main
from worker import ModelRegistry


def scored(tmp_path, tiny_models) -> ModelRegistry:
    base = {"positive": {"fid": 50.0, "kid": 0.05}}
    return scored_registry(
        tmp_path / "registry",
        tiny_models,
        {
            version: {"positive": {"fid": fid, "kid": 0.04}}
            for version, fid in (("good", 40.0), ("bad", 70.0))
        },
        comparisons={"v1": base},
        lineage={"base": "v1"},
    )


def test_promote_refuses_worse_prints_the_table_and_rollback_undoes(tmp_path, tiny_models, capsys):
    registry = scored(tmp_path, tiny_models)
    where = ["models", "--registry", str(registry.root)]

    assert main([*where, "promote", "bad"]) == 2
    out, err = capsys.readouterr()
    assert "| positive | FID ↓ | 50 | 70 |" in out
    assert "not promoted" in err and "positive FID 70 > 50" in err
    assert registry.active_version() == "v1"

    assert main([*where, "promote", "bad", "--force"]) == 0
    assert registry.active_version() == "bad"
    assert main([*where, "rollback"]) == 0
    assert registry.active_version() == "v1"

    assert main([*where, "promote", "good"]) == 0
    assert "good is live (was v1" in capsys.readouterr().out
    assert registry.history()[-1]["by"].startswith("cli:")  # who, for the console's history

    registry.update_meta("bad", {"discarded_at": 1_800_000_000.0})  # the bot's Discard button
    assert main([*where, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith("  bad ") and "positive fid=70" in listing[0]
    assert listing[0].endswith("DISCARDED")
    assert listing[1].startswith("* good ") and "from v1" in listing[1]
    assert "DISCARDED" not in listing[1]

    assert main([*where, "show", "bad"]) == 0
    shown = capsys.readouterr().out
    assert '"base": "v1"' in shown and "compared with the live version good" in shown
    assert main([*where, "show", "nope"]) == 2
