"""deploy/: the images, compose file, Kubernetes manifests, systemd units and worker probe.

Each artefact is checked twice where a tool exists: by the real tool (docker compose,
kubernetes-validate, hadolint, systemd-analyze), skipped when it is not installed (see
deploy/install-checkers.sh), and always by the structural rules below, which tie the
files to the code: ports, setting names, key names, probes and pins must agree.
"""

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import redis
import yaml
from worker_helpers import REDIS_URL, delete_prefix, unique_prefix

from worker import WorkerSettings
from worker.localredis import free_port

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
TOOLS = Path.home() / ".cache" / "moodmoji" / "deploy-tools" / "bin"


def tool(name: str) -> str | None:
    """A checker on the PATH, or in the folder deploy/install-checkers.sh fills."""
    found = shutil.which(name)
    if found:
        return found
    local = TOOLS / name
    return str(local) if local.exists() else None


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@functools.cache
def _parsed_manifests() -> dict[str, list[dict]]:
    return {path.name: load_all(path) for path in sorted(K8S.glob("*.yaml"))}


def manifests() -> dict[str, list[dict]]:
    # Parsed once per session; each caller gets its own copy to change freely.
    return copy.deepcopy(_parsed_manifests())


def resources(kind: str) -> list[dict]:
    return [d for docs in manifests().values() for d in docs if d.get("kind") == kind]


def by_name(kind: str, name: str) -> dict:
    [found] = [d for d in resources(kind) if d["metadata"]["name"] == name]
    return found


def container_env(container: dict) -> dict[str, dict | str]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pinned(package: str) -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    [spec] = [d for d in pyproject["project"]["dependencies"] if d.startswith(package + "==")]
    return spec.split("==")[1]


# --- compose ---------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_validates_with_docker_compose():
    docker = tool("docker")
    if docker is None or subprocess.run([docker, "compose", "version"]).returncode != 0:
        pytest.skip("docker compose is not installed (deploy/install-checkers.sh installs it)")
    for extra in ([], ["--profile", "cpu"]):
        done = subprocess.run(
            [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), *extra, "config", "--quiet"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    broken = DEPLOY / "compose.broken.test.yaml"
    broken.write_text((DEPLOY / "compose.yaml").read_text().replace("services:", "servics:"))
    try:  # the check can fail: a misspelt top-level key is refused
        done = subprocess.run(
            [docker, "compose", "-f", str(broken), "config", "--quiet"], capture_output=True
        )
        assert done.returncode != 0
    finally:
        broken.unlink()


def test_compose_has_persistent_redis_one_bot_a_gpu_worker_and_a_cpu_fallback():
    services = compose()["services"]
    assert {"redis", "bot", "worker", "worker-cpu"} <= set(services)
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert redis["volumes"][0].split(":")[0] in compose()["volumes"]

    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and gpu["count"] >= 1
    assert services["worker"]["environment"]["MOODMOJI_DEVICE"] == "cuda"
    assert "profiles" not in services["worker"] and "profiles" not in services["bot"]

    cpu = services["worker-cpu"]
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert cpu["environment"]["MOODMOJI_DEVICE"] == "cpu"
    for name in ("bot", "worker", "worker-cpu"):
        service = services[name]
        assert service["environment"]["MOODMOJI_REDIS_URL"].startswith("redis://redis:6379/")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert services["bot"]["build"]["target"] == "bot"
    assert services["worker"]["build"]["target"] == "worker"
    assert services["worker"]["healthcheck"]["test"][-1] == "/app/healthcheck.py"


# --- Kubernetes ------------------------------------------------------------------------


def test_every_manifest_passes_the_kubernetes_schema(tmp_path):
    validate = tool("kubernetes-validate")
    if validate is None:
        pytest.skip("kubernetes-validate is not installed (deploy/install-checkers.sh)")
    command = [validate, "--strict", "--kubernetes-version", "1.30.0"]
    done = subprocess.run([*command, *sorted(K8S.glob("*.yaml"))], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # Custom resources (KEDA, kustomize) have no schema there: the tests below check them.
    assert (done.stdout + done.stderr).count("passed for resource") >= 10
    # The schema check can fail: an unknown field in a pod spec is refused.
    worker = by_name("Deployment", "moodmoji-worker")
    worker["spec"]["template"]["spec"]["gpus"] = 1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(worker))
    done = subprocess.run([*command, tmp_path / "bad.yaml"], capture_output=True, text=True)
    assert done.returncode != 0 and "'gpus' was unexpected" in done.stdout + done.stderr


def test_kustomization_lists_existing_files_and_never_the_secret_placeholder():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert all((K8S / name).is_file() for name in listed)
    assert "secret.example.yaml" not in listed
    assert {"redis.yaml", "worker.yaml", "worker-autoscaling.yaml", "bot.yaml"} <= set(listed)
    for name, docs in manifests().items():
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), name
            assert name == "kustomization.yaml" or doc["metadata"]["name"], name


def workloads() -> list[dict]:
    return resources("Deployment") + resources("StatefulSet")


def test_workloads_select_their_pods_and_every_container_has_resources():
    for workload in workloads():
        template = workload["spec"]["template"]
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        for container in template["spec"]["containers"]:
            assert ":" in container["image"] and not container["image"].endswith(":latest")
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), workload["metadata"]["name"]
            assert "memory" in container["resources"]["limits"]
        if workload["metadata"]["name"] != "moodmoji-redis":
            assert template["spec"]["securityContext"]["runAsNonRoot"] is True


def test_secrets_and_config_referenced_by_pods_exist():
    [secret] = resources("Secret")
    configs = {c["metadata"]["name"]: c for c in resources("ConfigMap")}
    claims = {c["metadata"]["name"] for c in resources("PersistentVolumeClaim")}
    for workload in workloads():
        spec = workload["spec"]["template"]["spec"]
        for container in spec["containers"]:
            for value in container_env(container).values():
                if isinstance(value, dict) and "secretKeyRef" in value:
                    ref = value["secretKeyRef"]
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in secret["stringData"]
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configs
        for volume in spec.get("volumes", []):
            assert volume["persistentVolumeClaim"]["claimName"] in claims
    # Every configured setting is one the code reads.
    known = {f"MOODMOJI_{name.upper()}" for name in WorkerSettings.model_fields}
    for config in configs.values():
        assert set(config["data"]) <= known, set(config["data"]) - known


def test_bots_get_the_token_from_the_secret_and_never_in_plain_text():
    for name in ("moodmoji-bot",):
        for workload in (d for d in workloads() if d["metadata"]["name"] == name):
            [container] = workload["spec"]["template"]["spec"]["containers"]
            token = container_env(container)["MOODMOJI_DISCORD_TOKEN"]
            assert token["secretKeyRef"]["key"] == "discord-token"
    assert by_name("Deployment", "moodmoji-bot")["spec"]["strategy"]["type"] == "Recreate"


def test_sharded_bots_take_their_shard_from_the_pod_index():
    from bot.settings import BotSettings

    sharded = by_name("StatefulSet", "moodmoji-bot")
    [container] = sharded["spec"]["template"]["spec"]["containers"]
    env = container_env(container)
    assert int(env["MOODMOJI_BOT_SHARD_COUNT"]) == sharded["spec"]["replicas"]
    path = env["MOODMOJI_BOT_SHARD_IDS"]["fieldRef"]["fieldPath"]
    assert path == "metadata.labels['apps.kubernetes.io/pod-index']"
    # What the pod index looks like in the environment ("3") is a shard list to the bot.
    last = str(sharded["spec"]["replicas"] - 1)
    settings = BotSettings(bot_shard_ids=last, bot_shard_count=env["MOODMOJI_BOT_SHARD_COUNT"])
    assert settings.bot_shard_ids == [int(last)]


def test_workers_request_a_gpu_and_probe_heartbeat_and_metrics():
    worker = by_name("Deployment", "moodmoji-worker")
    spec = worker["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    settings = by_name("ConfigMap", "moodmoji-settings")["data"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(settings["MOODMOJI_WORKER_METRICS_PORT"])
    for probe in ("startupProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/metrics" and http["port"] in ("metrics", ports["metrics"])
    assert container["livenessProbe"]["exec"]["command"] == ["python", "/app/healthcheck.py"]
    # The probe finds the heartbeat by worker id, which is the pod name.
    env = container_env(container)
    assert env["MOODMOJI_WORKER_ID"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["MOODMOJI_DEVICE"] == "cuda"
    # A rolling update never takes a serving worker away before its successor is ready.
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    heartbeat_s = float(settings["MOODMOJI_WORKER_HEARTBEAT_S"])
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > 3 * heartbeat_s
    metrics = by_name("Service", "moodmoji-worker-metrics")
    assert (
        metrics["spec"]["selector"].items()
        <= worker["spec"]["template"]["metadata"]["labels"].items()
    )


def test_workers_scale_on_the_lag_of_each_label_stream():
    worker = by_name("Deployment", "moodmoji-worker")
    scaled = by_name("ScaledObject", "moodmoji-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    settings = WorkerSettings()
    prefix = by_name("ConfigMap", "moodmoji-settings")["data"]["MOODMOJI_QUEUE_PREFIX"]
    group = by_name("ConfigMap", "moodmoji-settings")["data"]["MOODMOJI_QUEUE_GROUP"]
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    from worker import LABELS, RedisStreamsTransport

    transport = RedisStreamsTransport(settings.model_copy(update={"queue_prefix": prefix}))
    streams = {t["metadata"]["stream"] for t in triggers}
    assert streams == {transport.request_stream(label) for label in LABELS}
    for trigger in triggers:
        assert trigger["metadata"]["consumerGroup"] == group
        assert int(trigger["metadata"]["lagCount"]) > 0
        auth = by_name("TriggerAuthentication", trigger["authenticationRef"]["name"])
        [ref] = auth["spec"]["secretTargetRef"]
        assert ref["key"] in resources("Secret")[0]["stringData"]
    redis_service = by_name("Service", "moodmoji-redis")
    host, port = triggers[0]["metadata"]["address"].rsplit(":", 1)
    assert host.startswith(redis_service["metadata"]["name"] + ".")
    assert int(port) == redis_service["spec"]["ports"][0]["port"]


def test_redis_keeps_an_append_only_file_on_a_volume():
    redis = by_name("StatefulSet", "moodmoji-redis")
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--requirepass" in args
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]}
    assert mounts["data"] == "/data" and "data" in claims


# --- Dockerfile ------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions (continuations joined, comments dropped) per build stage."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = line.split()[-1]
            stages[current] = []
        stages[current].append(line)
    return stages


def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (deploy/install-checkers.sh installs it)")
    done = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = "FROM python\nRUN apt-get install curl\n"
    done = subprocess.run([hadolint, "-"], input=bad, capture_output=True, text=True)
    assert done.returncode != 0  # the linter can fail: an untagged base and unpinned apt


def test_dockerfile_images_pin_torch_run_unprivileged_and_start_the_right_process():
    stages = dockerfile_stages()
    assert {"bot", "worker"} <= set(stages)
    for stage, lines in stages.items():
        base = lines[0].split()[1]
        if base not in stages:  # an image from a registry, not an earlier stage: tagged
            assert ":" in base and not base.endswith(":latest"), stage
        assert not any(line.startswith("ADD ") for line in lines)  # COPY only, no URL fetches
    base_env = " ".join(stages["base"])
    assert "PIP_NO_CACHE_DIR=1" in base_env and "HF_HUB_OFFLINE=1" in base_env
    assert any(line.startswith("SHELL") and "pipefail" in line for line in stages["base"])

    def final(stage: str, instruction: str) -> str:
        return [line for line in stages[stage] if line.startswith(instruction + " ")][-1]

    for stage, command in (("bot", ["bot"]), ("worker", ["worker"])):
        assert final(stage, "USER").split()[1].split(":")[0] not in ("root", "0")
        assert json.loads(final(stage, "ENTRYPOINT").split(" ", 1)[1]) == ["moodmoji"]
        assert json.loads(final(stage, "CMD").split(" ", 1)[1]) == command
    # The worker keeps the lock's CUDA torch; the bot installs the same version as a CPU build.
    lock = (REPO / "requirements.lock").read_text()
    assert f"torch=={pinned('torch')}\n" in lock
    bot_deps = " ".join(stages["bot-deps"])
    assert f"torch=={pinned('torch')}+cpu" in bot_deps
    assert f"torchvision=={pinned('torchvision')}+cpu" in bot_deps
    assert "nvidia-" in bot_deps and "pip check" in bot_deps  # CUDA wheels filtered out
    worker = " ".join(stages["worker"])
    assert "HEALTHCHECK" in worker and "/app/healthcheck.py" in worker
    assert "EXPOSE 9100" in worker and "MOODMOJI_WORKER_METRICS_PORT=9100" in worker
    assert "COPY models /app/models" in worker
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "data", "runs", ".git"} <= set(ignored)


# --- systemd ---------------------------------------------------------------------------


def unit_sections(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, value = line.split("=", 1)
            current.setdefault(key, []).append(value)
    return sections


def test_systemd_units_restart_run_unprivileged_and_stop_gently():
    bot = unit_sections(DEPLOY / "systemd" / "moodmoji-bot.service")
    worker = unit_sections(DEPLOY / "systemd" / "moodmoji-worker@.service")
    for unit in (bot, worker):
        service = unit["Service"]
        assert service["User"] == ["moodmoji"] and service["Restart"] == ["always"]
        assert "/etc/moodmoji/moodmoji.env" in service["EnvironmentFile"]
        assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert bot["Service"]["ExecStart"][0].endswith("moodmoji bot")
    assert worker["Service"]["ExecStart"][0].rstrip("'").endswith("moodmoji worker")
    assert "%i" in worker["Service"]["ExecStart"][0]  # the instance picks the device
    assert "/etc/moodmoji/discord.env" in bot["Service"]["EnvironmentFile"]
    example = (DEPLOY / "systemd" / "moodmoji.env.example").read_text()
    assert "\nMOODMOJI_DISCORD_TOKEN" not in example  # the token lives apart, root-only


def test_systemd_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for name in ("moodmoji-bot.service", "moodmoji-worker@.service"):
        shutil.copy(DEPLOY / "systemd" / name, tmp_path / name)
    (tmp_path / "moodmoji-worker@0.service").symlink_to("moodmoji-worker@.service")
    (tmp_path / "bad.service").write_text("[Service]\nExecStrat=/bin/true\n")
    for name, fine in (
        ("moodmoji-bot.service", True),
        ("moodmoji-worker@0.service", True),
        ("bad.service", False),
    ):
        done = subprocess.run(
            [analyze, "verify", str(tmp_path / name)], capture_output=True, text=True
        )
        # The install paths (/opt/moodmoji) do not exist on this machine; anything else counts.
        problems = [
            line
            for line in (done.stdout + done.stderr).splitlines()
            if line.strip() and "/opt/moodmoji/" not in line
        ]
        assert (problems == []) is fine, problems


# --- the worker's liveness probe -------------------------------------------------------


def probe(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.redis
def test_the_liveness_probe_reads_the_worker_heartbeat():
    prefix = unique_prefix()
    client = redis.Redis.from_url(REDIS_URL)
    env = {
        "MOODMOJI_REDIS_URL": REDIS_URL,
        "MOODMOJI_QUEUE_PREFIX": prefix,
        "MOODMOJI_WORKER_ID": "pod-7",
        "MOODMOJI_WORKER_HEARTBEAT_S": "2",
    }
    try:
        missing = probe(env)
        assert missing.returncode == 1 and "no heartbeat" in missing.stdout

        def beat(age_s: float) -> None:
            info = {"worker_id": "pod-7", "host": "pod-7", "at": time.time() - age_s}
            client.set(f"{prefix}:heartbeat:pod-7", json.dumps(info), px=60_000)

        beat(1.0)
        fresh = probe(env)
        assert fresh.returncode == 0, fresh.stdout
        beat(30.0)  # a hung event loop: the key lingers but stops moving
        stale = probe(env)
        assert stale.returncode == 1 and "old (limit 6 s)" in stale.stdout
    finally:
        client.close()
        delete_prefix(prefix)


def test_the_liveness_probe_does_not_blame_the_worker_for_a_missing_redis():
    done = probe({"MOODMOJI_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert done.returncode == 0 and "redis unreachable" in done.stdout


def test_the_redis_deployed_is_one_whose_group_lag_survives_an_aof_restart():
    # Redis 7.0 and 7.2 restore a stale consumer-group entries-read from an AOF rewrite
    # (redis/redis#12898, fixed in 7.4.0): KEDA scales on that lag. The bench and the
    # fault tests show the queue itself does not trust it (tests/test_faults_queue.py).
    images = [yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["redis"]["image"]]
    for document in yaml.safe_load_all((K8S / "redis.yaml").read_text()):
        if document["kind"] == "StatefulSet":
            images += [c["image"] for c in document["spec"]["template"]["spec"]["containers"]]
    for image in images:
        version = image.split(":")[1].split("-")[0]
        assert version.count(".") == 2, f"{image}: pin an exact release"
        assert tuple(int(part) for part in version.split(".")) >= (7, 4, 0), image


# --- monitoring: alert rules and the Grafana dashboard --------------------------------

MONITORING = DEPLOY / "monitoring"
PROMQL_BUILTINS = {"up"}  # series Prometheus makes itself for every scrape target


def exported_series() -> set[str]:
    """Every series name a worker's /metrics can carry, from the metrics it defines."""
    from worker.metrics import WorkerMetrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {
        family.name + suffix
        for family in WorkerMetrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def series_in(expression: str) -> set[str]:
    """Metric names an expression reads: moodmoji_* identifiers, and the builtins."""
    names = set(re.findall(r"\bmoodmoji_[a-z_]+\b", expression))
    return names | {name for name in PROMQL_BUILTINS if re.search(rf"\b{name}\b", expression)}


def test_alert_rules_parse_and_read_only_series_the_worker_exports():
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    # The three the operators asked for: a worker silent, the backlog growing, dead letters.
    assert {"MoodmojiWorkerSilent", "MoodmojiBacklogGrowing", "MoodmojiDeadLetters"} <= set(alerts)
    known = exported_series() | PROMQL_BUILTINS
    assert "moodmoji_worker_dead_letters" in known  # the gauge the dead-letter alert watches
    for name, rule in alerts.items():
        used = series_in(rule["expr"])
        assert used, f"{name} reads no series"
        assert used <= known, f"{name} reads series no worker exports: {used - known}"
        assert rule["annotations"]["summary"]


def test_the_grafana_dashboard_parses_and_reads_only_exported_series():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) >= 8
    known = exported_series() | PROMQL_BUILTINS
    for expression in expressions:
        assert series_in(expression) <= known, expression
    read = set().union(*map(series_in, expressions))
    assert {"moodmoji_worker_latency_seconds_bucket", "moodmoji_worker_queue_depth"} <= read


def test_the_gpu_worker_asks_for_the_cores_its_encoding_pool_is_sized_by():
    [worker] = [w for w in workloads() if w["metadata"]["name"] == "moodmoji-worker"]
    [container] = worker["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    # The CPU limit is the cgroup quota `available_cpus` reads; a request below it would let
    # the pod land where those cores are not free.
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"]
    assert int(resources["limits"]["cpu"]) >= 8
    assert resources["limits"]["nvidia.com/gpu"] == 1
    env = container_env(container)
    assert env["MOODMOJI_DEVICE"] == "cuda" and int(env["MOODMOJI_WORKER_MAX_BATCH"]) >= 256
