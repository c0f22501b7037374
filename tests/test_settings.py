"""Settings: the MOODMOJI_ prefix, .env files, and .env.example kept in step with the code."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from moodmoji.cli import main
from moodmoji.settings import CommonSettings
from moodmoji.settings_doc import env_example, settings_classes

REPO = Path(__file__).resolve().parent.parent


def test_environment_variables_use_the_moodmoji_prefix(monkeypatch):
    monkeypatch.setenv("MOODMOJI_DEVICE", "cpu")
    monkeypatch.setenv("MOODMOJI_RUNS_DIR", "/tmp/elsewhere")
    settings = CommonSettings()
    assert settings.device == "cpu" and str(settings.runs_dir) == "/tmp/elsewhere"


def test_a_dotenv_file_in_the_working_directory_is_read(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("MOODMOJI_REDIS_URL=redis://127.0.0.1:6390/2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOODMOJI_REDIS_URL", raising=False)
    assert CommonSettings().redis_url == "redis://127.0.0.1:6390/2"


def test_env_example_lists_every_setting_of_every_package(monkeypatch):
    monkeypatch.chdir(REPO)
    text = (REPO / ".env.example").read_text()
    assert text == env_example(), "run `moodmoji settings --example > .env.example`"
    for _, cls in settings_classes():
        for name in cls.model_fields:
            assert f"MOODMOJI_{name.upper()}=" in text


def test_settings_command_never_prints_the_discord_token(monkeypatch, capsys):
    monkeypatch.setenv("MOODMOJI_DISCORD_TOKEN", "super-secret-token-value")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "super-secret-token-value" not in out
    assert "MOODMOJI_DISCORD_TOKEN" in out


def test_a_bad_setting_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setenv("MOODMOJI_WORKER_MAX_BATCH", "lots")
    assert main(["settings"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("moodmoji: error: invalid setting") and "worker_max_batch" in err[0]


def test_command_line_options_override_settings_for_their_own_command(monkeypatch, tmp_path):
    from moodmoji.cli import build_parser
    from worker.cli import _retrain_settings, _settings

    monkeypatch.setenv("MOODMOJI_DEVICE", "cuda")
    parser = build_parser()
    worker = _settings(parser.parse_args(["worker", "--labels", "negative", "--max-batch", "4"]))
    assert worker.worker_labels == ["negative"] and worker.worker_max_batch == 4
    assert worker.device == "cuda"  # not given: from the environment
    args = parser.parse_args(
        [
            "retrain",
            "--data",
            str(tmp_path),
            "--labels",
            "positive",
            "--registry",
            str(tmp_path),
            "--device",
            "cpu",
        ]
    )
    retrain = _retrain_settings(args)
    assert retrain.registry_dir == tmp_path and retrain.device == "cpu"
    # retrain's --labels picks the labels to train, not the labels a worker serves
    assert retrain.worker_labels == ["positive", "negative"]


@pytest.mark.parametrize(
    "url", ["redis://:hunter2@redis.internal:6379/0", "rediss://moodmoji:hunter2@[::1]:6380/1"]
)
def test_settings_never_print_the_redis_password(url):
    done = subprocess.run(
        [sys.executable, "-m", "moodmoji.cli", "settings"],
        env={**os.environ, "MOODMOJI_REDIS_URL": url, "MOODMOJI_DISCORD_TOKEN": "tok-secret"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout + done.stderr and "tok-secret" not in done.stdout
    shown = url.replace("hunter2", "***")
    assert f"MOODMOJI_REDIS_URL = {shown}" in done.stdout
