"""The operator console in a real headless Chromium, against a real Redis, a real registry
of tiny models, a real `moodmoji worker` and a real `moodmoji console` process.

The tests run in order on one page: look, get refused, promote, watch traffic and dead
letters, queue a retrain, stop the worker. Set MOODMOJI_TEST_SCREENSHOTS=docs/console to
write the screenshots docs/operators.md shows (by default they go to pytest's tmp folder).
"""

# ruff: noqa: F401, F811

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from browser import Browser, find_chromium
from worker_helpers import (
    REDIS_URL,
    REPO,
    delete_prefix,
    queue_settings,
    stop_process,
    tiny_models,
    unique_prefix,
)

from gan.checkpoint import load_checkpoint
from worker import LABELS, ModelRegistry, RedisStreamsTransport, WorkerClient
from worker.retraining import RetrainQueue, RetrainSettings
from worker.retraining.queue import serve_retrain_jobs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium; .ci/run does)"
    ),
]

TOKEN = "test-operator-token-0123456789"
OPERATORS = {"alice": TOKEN}
WORKER_ID = "console-test-worker"
BETTER = {"fid": 40.0, "kid": 0.03, "class_consistency": 0.9}
LIVE_SCORES = {"fid": 50.0, "kid": 0.05, "class_consistency": 0.85}
WORSE = {"fid": 70.0, "kid": 0.08, "class_consistency": 0.8}
SILENT_AFTER_S = 3
SHIPPED = REPO / "models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish_versions(root: Path, tiny_models: dict[str, Path]) -> ModelRegistry:
    """v1 (tiny models) live; v2 (the shipped models, whose sheets show real emojis)
    scored against it and better; v3 (tiny) scored against it and worse."""
    registry = ModelRegistry(root)
    tiny = {"positive": tiny_models["positive"], "negative": tiny_models["negative"]}
    shipped = {label: SHIPPED / f"{label}.pt" for label in LABELS}
    registry.publish("v1", tiny, activate=True)
    for version, scores, checkpoints in (("v2", BETTER, shipped), ("v3", WORSE, tiny)):
        # What a retrain records: each label's training configuration, from its checkpoint.
        config = {label: load_checkpoint(path)["config"] for label, path in checkpoints.items()}
        registry.publish(
            version,
            checkpoints,
            {
                "metrics": {label: scores for label in LABELS},
                "comparisons": {"v1": {label: LIVE_SCORES for label in LABELS}},
                "reference": {"digest": "procedural-faces"},
                "lineage": {"base": "v1", "retrained_labels": ["positive"]},
                "config": config,
                "requested_by": "operator-in-tests",
            },
        )
    return registry


def http(url: str, method: str = "GET", token: str | None = None, body: dict | None = None):
    """(status, JSON body) of one request to the console."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until(condition, timeout: float, what: str):
    give_up = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > give_up:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_models):
    tmp = tmp_path_factory.mktemp("console")
    prefix = unique_prefix()
    registry = publish_versions(tmp / "registry", tiny_models)
    shots = Path(os.environ.get("MOODMOJI_TEST_SCREENSHOTS") or tmp / "screenshots")
    metrics_port, console_port = free_port(), free_port()
    env = {
        **os.environ,
        "MOODMOJI_REDIS_URL": REDIS_URL,
        "MOODMOJI_QUEUE_PREFIX": prefix,
        "MOODMOJI_MODELS_DIR": "/nonexistent-moodmoji-models",
        "MOODMOJI_REGISTRY_POLL_S": "0.3",
        "MOODMOJI_WORKER_HEARTBEAT_S": "0.5",
        "MOODMOJI_WORKER_BLOCK_MS": "200",
        "MOODMOJI_WORKER_TORCH_THREADS": "1",
        "MOODMOJI_CACHE_DIR": str(tmp / "cache"),
        "MOODMOJI_RETRAIN_DIR": str(tmp / "jobs"),
        "OMP_NUM_THREADS": "1",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moodmoji.cli",
            "worker",
            "--registry",
            str(registry.root),
            "--device",
            "cpu",
            "--worker-id",
            WORKER_ID,
            "--metrics-port",
            str(metrics_port),
            "--max-batch",
            "8",
        ],
        env=env,
        cwd=REPO,
    )
    console_log = tmp / "console.log"
    console_env = {
        **env,
        "MOODMOJI_CONSOLE_OPERATORS": json.dumps(OPERATORS),
        "MOODMOJI_CONSOLE_POLL_S": "0.5",
        "MOODMOJI_CONSOLE_WORKER_SILENT_S": str(SILENT_AFTER_S),
    }
    with console_log.open("w") as log:
        console = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "moodmoji.cli",
                "-v",
                "console",
                "--port",
                str(console_port),
                "--registry",
                str(registry.root),
            ],
            env=console_env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{console_port}"

    def console_answers() -> bool:
        assert console.poll() is None, console_log.read_text()
        try:
            return http(f"{url}/api/config")[0] == 200
        except OSError:
            return False

    browser = None
    try:
        wait_until(console_answers, 30, "the console to answer")
        browser = Browser(CHROMIUM)
        yield SimpleNamespace(
            url=url,
            registry=registry,
            browser=browser,
            prefix=prefix,
            worker=worker,
            console=console,
            console_log=console_log,
            settings=queue_settings(prefix, worker_labels=list(LABELS)),
            shots=shots,
            tmp=tmp,
        )
    finally:
        if browser is not None:
            browser.close()
        stop_process(console)
        stop_process(worker)
        delete_prefix(prefix)


def text_of(browser: Browser, selector: str) -> str:
    return browser.eval(
        f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"
    )


def banner(browser: Browser, containing: str) -> str:
    return browser.wait_for(
        "(() => { const b = document.querySelector('#banner'); return !b.hidden && "
        f"b.textContent.includes({json.dumps(containing)}) && b.textContent; }})()",
        what=f"a banner saying {containing!r} (it says {text_of(browser, '#banner')!r})",
    )


def show(browser: Browser, view: str) -> None:
    """Switch the page's view as its tabs do (a hash change: no reload)."""
    browser.eval(f"location.hash = {json.dumps('#' + view)}")
    browser.wait_for(f"!document.querySelector('#view-{view}').hidden", what=f"the {view} view")


def confirm(browser: Browser) -> None:
    browser.wait_for("document.querySelector('#confirm').open", what="the confirmation")
    assert browser.eval("document.querySelector('#confirm-text').textContent")
    browser.click("#confirm-ok")


def test_the_page_loads_clean_and_shows_the_live_version_and_its_contact_sheets(stack):
    browser = stack.browser
    browser.goto(f"{stack.url}/#models")
    browser.wait_for("document.querySelector('#live-version').textContent === 'v1'")
    assert text_of(browser, ".version-row[data-version='v1'] .badge") == "live"
    assert text_of(browser, ".version-row[data-version='v3'] .badge") == "candidate"
    # The sheets are drawn by a child process on first view: 64 samples, 8 by 8, on the
    # light theme above the dark one (gan.plot.theme_sheet), at 64 px with 2 px gaps.
    for label in LABELS:
        size = browser.wait_for(
            f"(() => {{ const i = document.querySelector(\"img.sheet[data-label='{label}']\");"
            " return i && i.complete && i.naturalWidth && [i.naturalWidth, i.naturalHeight]; })()",
            timeout=120,
            what=f"the {label} contact sheet",
        )
        assert size == [8 * 66 + 2, 2 * (8 * 66 + 2)]
    assert "FID" in text_of(browser, ".version-row[data-version='v2'] .sub")
    assert browser.errors == []


def test_a_promote_without_a_token_or_with_a_bad_one_is_refused(stack):
    browser = stack.browser
    browser.click(".version-row[data-version='v2']")
    browser.wait_for("document.querySelector('#promote-btn').textContent === 'Promote v2'")
    browser.click("#promote-btn")
    confirm(browser)
    assert "needs an operator token" in banner(browser, "Refused")
    assert stack.registry.active_version() == "v1"

    status, body = http(f"{stack.url}/api/models/v2/promote", "POST", token="wrong", body={})
    assert status == 401 and body == {"error": "that operator token is not valid"}
    status, body = http(f"{stack.url}/api/rollback", "POST", body={})
    assert status == 401 and "needs an operator token" in body["error"]
    status, body = http(f"{stack.url}/api/models/nope/promote", "POST", token=TOKEN, body={})
    assert status == 404 and "no version 'nope'" in body["error"]
    assert stack.registry.active_version() == "v1"
    assert "Traceback" not in stack.console_log.read_text()


def test_a_promote_with_the_token_goes_through_the_gate_and_the_worker_serves_it(stack):
    browser = stack.browser
    browser.type("#token-input", TOKEN)
    browser.click("#token-save")
    browser.wait_for("document.querySelector('#operator').textContent === 'operator: alice'")

    # The gate the CLI applies: v3 is worse than the live version on FID and KID.
    browser.click(".version-row[data-version='v3']")
    browser.wait_for("document.querySelector('#promote-btn').textContent === 'Promote v3'")
    browser.click("#promote-btn")
    confirm(browser)
    refused = banner(browser, "not promoted")
    assert "positive FID 70 > 50" in refused
    assert stack.registry.active_version() == "v1"

    browser.click(".version-row[data-version='v2']")
    browser.wait_for("document.querySelector('#promote-btn').textContent === 'Promote v2'")
    browser.click("#promote-btn")
    confirm(browser)
    assert "v2 is live (was v1" in banner(browser, "is live")
    assert stack.registry.active_version() == "v2"
    last = stack.registry.history()[-1]
    assert (last["action"], last["to"], last["by"]) == ("promote", "v2", "alice")
    browser.wait_for("document.querySelector('#live-version').textContent === 'v2'")
    browser.wait_for("document.querySelector('#version-facts').textContent.includes('by alice')")

    # The worker picks it up: its heartbeat names the version it now serves.
    show(browser, "workers")
    row = f".worker-row[data-worker='{WORKER_ID}']"
    browser.wait_for(
        f"(document.querySelector(\"{row} td.version\") || {{}}).textContent === 'v2'",
        timeout=60,
        what="the worker to serve v2",
    )
    assert "silent" not in browser.eval(f'document.querySelector("{row}").className')
    assert text_of(browser, f"{row} td.status") == "alive"
    show(browser, "actions")
    browser.wait_for("document.querySelectorAll('.action-row').length >= 2")
    log = text_of(browser, "#action-log")
    assert "alice" in log and "v2 is live" in log and "v3 not promoted" in log
    browser.screenshot(stack.shots / "console-actions.png")

    show(browser, "models")
    for label in LABELS:
        browser.wait_for(
            f"(() => {{ const i = document.querySelector(\"img.sheet[data-label='{label}']\");"
            " return i && i.complete && i.naturalWidth; })()",
            timeout=120,
            what=f"v2's {label} sheet",
        )
    browser.screenshot(stack.shots / "console-models.png")


def test_traffic_and_a_dead_letter_with_its_reason_show_on_the_queue_view(stack):
    async def traffic() -> list:
        transport = RedisStreamsTransport(stack.settings)
        async with WorkerClient(transport, stack.settings, per_user_cap=False) as client:
            results = [
                await client.generate(label, seed=seed, size=32, timeout=60)
                for seed in range(6)
                for label in LABELS
            ]
            await transport.redis.xadd(
                transport.request_stream("positive"), {"request": "{this is not json"}
            )
            give_up = time.monotonic() + 30
            while not (letters := await transport.dead_letters()):
                assert time.monotonic() < give_up, "the worker never dead-lettered the entry"
                await asyncio.sleep(0.1)
        await transport.close()
        return results, letters

    results, letters = asyncio.run(traffic())
    assert all(result.ok for result in results)
    reason = letters[-1].reason
    browser = stack.browser
    show(browser, "queue")
    browser.wait_for(
        f"[...document.querySelectorAll('#dead-letters td.reason')]"
        f".some(td => td.textContent === {json.dumps(reason)})",
        what="the dead letter's reason",
    )
    # Rate and latency come from the worker's /metrics: 12 answers, so not zero.
    browser.wait_for(
        "document.querySelector('#card-p50 .big').textContent.endsWith(' ms')",
        timeout=30,
        what="a p50 latency",
    )
    rps = browser.wait_for(
        "(() => { const t = document.querySelector('#card-rps .big').textContent;"
        " return t !== '–' && Number(t) > 0 && t; })()",
        what="a request rate",
    )
    assert float(rps) > 0
    assert browser.eval("document.querySelectorAll('#chart-rps path').length") == 1
    browser.screenshot(stack.shots / "console-queue.png")


def test_a_retrain_started_from_an_upload_is_queued_for_a_runner(stack, procedural_data):
    upload = stack.tmp / "faces.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for path in sorted(procedural_data.rglob("*.png")):
            archive.write(path, path.relative_to(procedural_data).as_posix())
    browser = stack.browser
    show(browser, "retrain")
    browser.set_files("#retrain-upload", [upload])
    browser.wait_for("!!document.querySelector(\"#retrain-from option[value='v1']\")")
    browser.eval("document.querySelector('#retrain-from').value = 'v1'")  # tiny: quick to train
    browser.click("#retrain-start")
    confirm(browser)
    message = banner(browser, "queued")
    job_id = message.split("retrain ", 1)[1].split(" ", 1)[0]

    async def latest():
        queue = RetrainQueue(RetrainSettings(redis_url=REDIS_URL, queue_prefix=stack.prefix))
        try:
            return await queue.latest_event(job_id), await queue.job_ids()
        finally:
            await queue.close()

    event, jobs = asyncio.run(latest())
    assert event.state == "queued" and job_id in jobs
    browser.wait_for(
        f"(document.querySelector(\".job-row[data-job='{job_id}'] .badge\") || {{}})"
        ".textContent === 'queued'",
        what="the queued job in the list",
    )
    client = redis.Redis.from_url(REDIS_URL)
    try:
        [(_id, fields)] = client.xrange(f"{stack.prefix}:retrain:jobs")
        request = json.loads(fields[b"request"])
    finally:
        client.close()
    assert request["request_id"] == job_id and request["requested_by"] == "alice"
    assert request["from_version"] == "v1" and request["labels"] == list(LABELS)
    stack.job_id = job_id
    browser.screenshot(stack.shots / "console-retrain.png")


@pytest.mark.slow
def test_a_runner_trains_the_queued_job_and_the_page_draws_its_curves_and_upload(stack):
    """A real retrain runner (`moodmoji retrain --serve`'s loop) takes the job queued above."""
    settings = RetrainSettings(
        redis_url=REDIS_URL,
        queue_prefix=stack.prefix,
        registry_dir=stack.registry.root,
        retrain_dir=stack.tmp / "jobs",
        cache_dir=stack.tmp / "retrain-cache",
        retrain_epochs=3,
        retrain_eval_samples=8,
        retrain_metrics=["kid"],
        retrain_min_images=4,
        device="cpu",
        models_dir=Path("/nonexistent-moodmoji-models"),
        worker_id="console-test-runner",
    )
    stopped = threading.Event()
    runner = threading.Thread(
        target=serve_retrain_jobs,
        kwargs={"settings": settings, "stop": stopped.is_set, "isolated": False},
    )
    runner.start()
    browser = stack.browser
    try:
        show(browser, "retrain")
        browser.click(f".job-row[data-job='{stack.job_id}']")
        badge = f"(document.querySelector(\".job-row[data-job='{stack.job_id}'] .badge\") || {{}})"
        browser.wait_for(f"{badge}.textContent === 'running'", timeout=120, what="the job to run")
        browser.wait_for(
            f"['done', 'failed'].includes({badge}.textContent)", timeout=600, what="the job to end"
        )
    finally:
        stopped.set()
        runner.join(60)
    assert text_of(browser, f".job-row[data-job='{stack.job_id}'] .badge") == "done"
    curves = browser.wait_for(
        "document.querySelectorAll('#chart-loss path').length", what="the loss curves"
    )
    assert curves == 4  # D and G loss of each label
    browser.wait_for(
        "(() => { const i = document.querySelector('#upload-sheet');"
        " return i && i.complete && i.naturalWidth > 0; })()",
        what="the uploaded images",
    )
    version = f"retrain-{stack.job_id}"
    assert stack.registry.meta(version)["requested_by"] == "alice"
    browser.screenshot(stack.shots / "console-retrain.png")


def test_a_stopped_worker_turns_its_row_to_a_warning(stack):
    browser = stack.browser
    show(browser, "workers")
    row = f".worker-row[data-worker='{WORKER_ID}']"
    browser.wait_for(f'!!document.querySelector("{row}")')
    assert "silent" not in browser.eval(f'document.querySelector("{row}").className')
    assert stop_process(stack.worker, signal.SIGTERM) == 0
    browser.wait_for(
        f"document.querySelector(\"{row}\").classList.contains('silent')",
        timeout=SILENT_AFTER_S + 20,
        what="the stopped worker's row to warn",
    )
    assert text_of(browser, f"{row} td.status").startswith("⚠ silent for")
    assert text_of(browser, "#silent-count") == "1 silent"
    browser.screenshot(stack.shots / "console-workers.png")
    # The token never reached the console's log.
    assert TOKEN not in stack.console_log.read_text()
    # Nothing went wrong on the page in any view: the only errors it saw are the
    # refusals these tests asked for (401 without a token, 409 from the gate).
    unexpected = [
        e for e in browser.errors if not re.search(r"status of (401|409) .*/api/models/", e)
    ]
    assert unexpected == []


def test_rollback_and_discard_from_the_page_are_recorded_as_the_operators(stack):
    browser = stack.browser
    show(browser, "models")
    browser.click("#rollback-btn")
    confirm(browser)
    assert "v1 is live again (was v2)" in banner(browser, "live again")
    assert stack.registry.active_version() == "v1"
    last = stack.registry.history()[-1]
    assert (last["action"], last["to"], last["by"]) == ("rollback", "v1", "alice")

    browser.click(".version-row[data-version='v3']")
    browser.wait_for("document.querySelector('#promote-btn').textContent === 'Promote v3'")
    browser.click("#discard-btn")
    confirm(browser)
    banner(browser, "v3 discarded")
    assert stack.registry.meta("v3")["discarded_by"] == "alice"
    browser.wait_for(
        "document.querySelector(\".version-row[data-version='v3'] .badge\").textContent"
        " === 'discarded'"
    )
    # From then on the gate refuses it, from the page as from the CLI.
    browser.click("#promote-btn")
    confirm(browser)
    assert "was discarded on" in banner(browser, "not promoted")
    assert stack.registry.active_version() == "v1"
