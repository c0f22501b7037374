"""`moodmoji worker` (the sampling service), `moodmoji models` (the registry), `moodmoji retrain`
(operator retraining, see docs/operators.md), `bench worker`."""

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path

from moodmoji.errors import MoodmojiError
from worker.registry import registry_from_settings

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    worker = subparsers.add_parser(
        "worker", help="serve emoji requests from the Redis queue with the GAN"
    )
    worker.add_argument(
        "--labels", nargs="+", dest="worker_labels", help="labels to serve (default: both)"
    )
    worker.add_argument("--registry", type=Path, help="model registry folder")
    worker.add_argument("--device", help="cpu, cuda, cuda:1, mps or auto")
    worker.add_argument("--max-batch", type=int, help="most requests per forward pass")
    worker.add_argument("--batch-wait-ms", type=float, help="how long a batch waits to fill")
    worker.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: none)")
    worker.add_argument("--worker-id", help="consumer name (default: host-pid)")
    worker.set_defaults(handler=run_worker)

    demo = subparsers.add_parser(
        "demo", help="a message's mood and a fresh emoji for it, all on this machine"
    )
    demo.add_argument("text", help="the chat message")
    demo.add_argument("--out", type=Path, default=Path("emoji.png"), help="where to save it")
    demo.add_argument("--seed", type=int, help="latent seed (default: from the message)")
    demo.add_argument("--size", type=int, default=128, help="emoji size in pixels")
    demo.add_argument("--models", type=Path, help="folder with positive.pt and negative.pt")
    demo.add_argument("--no-show", action="store_true", help="do not draw it in the terminal")
    demo.set_defaults(handler=run_demo)

    models = subparsers.add_parser("models", help="the model registry the workers serve from")
    models.add_argument("--registry", type=Path, help="model registry folder")
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="versions with their scores; * marks the live one")
    listing.set_defaults(handler=run_models_list)
    show = actions.add_parser("show", help="a version's metrics, lineage, data and files")
    show.add_argument("version")
    show.set_defaults(handler=run_models_show)
    promote = actions.add_parser(
        "promote", help="make a version live, unless its FID/KID is worse than the live one's"
    )
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="promote even if worse")
    promote.set_defaults(handler=run_models_promote)
    rollback = actions.add_parser("rollback", help="go back to the version before the last promote")
    rollback.set_defaults(handler=run_models_rollback)
    compare = actions.add_parser(
        "compare", help="score the live version on a version's reference images, for promote"
    )
    compare.add_argument("version")
    compare.set_defaults(handler=run_models_compare)
    publish = actions.add_parser("publish", help="add a version from checkpoints")
    publish.add_argument("version")
    publish.add_argument("--positive", type=Path, help="checkpoint for positive emojis")
    publish.add_argument("--negative", type=Path, help="checkpoint for negative emojis")
    publish.add_argument("--activate", action="store_true", help="make it live at once, unchecked")
    publish.set_defaults(handler=run_models_publish)
    activate = actions.add_parser(
        "activate", help="make a version live with no check and no rollback entry (prefer promote)"
    )
    activate.add_argument("version")
    activate.set_defaults(handler=run_models_activate)

    retrain = subparsers.add_parser(
        "retrain", help="train the live configuration on your images into a new model version"
    )
    retrain.add_argument(
        "--data", type=Path, help="folder with positive/ and negative/ images, or such a zip"
    )
    retrain.add_argument("--from", dest="from_version", help="fine-tune this version's generators")
    retrain.add_argument("--labels", nargs="+", help="labels to retrain (default: both)")
    retrain.add_argument("--epochs", type=int, help="epochs per label (default: see settings)")
    retrain.add_argument("--version", help="name of the new version (default: retrain-<job>)")
    retrain.add_argument("--job", help="job folder name (default: derived from the request)")
    retrain.add_argument("--restart", action="store_true", help="discard the job's earlier work")
    retrain.add_argument("--registry", type=Path, help="model registry folder")
    retrain.add_argument("--device", help="cpu, cuda, cuda:1, mps or auto")
    retrain.add_argument(
        "--serve",
        action="store_true",
        help="instead: take retrain jobs from the Redis stream (Discord's /emoji-admin retrain)",
    )
    retrain.add_argument(
        "--worker-id",
        help="--serve: this runner's name (default host-pid); restarted with the same name, "
        "it takes its own unfinished jobs first",
    )
    retrain.set_defaults(handler=run_retrain)


def register_bench(bench_subparsers) -> None:
    bench = bench_subparsers.add_parser(
        "worker",
        help="emojis/s against batch size, the stage ladder and its ceiling, and one worker "
        "end to end: lone requests, an offered load, a backlog",
    )
    bench.add_argument("--rate", type=float, default=200.0, help="offered load, requests/s")
    bench.add_argument("--seconds", type=float, default=20.0, help="duration of the load run")
    bench.add_argument("--lone", type=int, default=200, help="requests sent one at a time")
    bench.add_argument("--drain", type=int, default=2000, help="requests of the backlog run")
    bench.add_argument("--rounds", type=int, default=1, help="end-to-end rounds per side")
    bench.add_argument(
        "--device",
        default="cpu",
        help="where the generator runs: cpu, cuda (the GPU ladder: a section of its own)",
    )
    bench.add_argument(
        "--compare-source",
        type=Path,
        help="another checkout (e.g. a git worktree of an older commit) whose workers are "
        "measured end to end in the same run, interleaved with this checkout's",
    )
    bench.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64], help="to measure"
    )
    bench.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (1: on a busy CPU more threads only spin against others)",
    )
    bench.add_argument("--checkpoint", type=Path, help="generator to bench (default: models/)")
    bench.add_argument(
        "--baseline",
        type=Path,
        help="a second generator measured in the same run, interleaved batch by batch, "
        "so the ratio is fair on a noisy machine",
    )
    bench.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    bench.set_defaults(handler=run_bench)

    from worker.loadbench import add_arguments, run_load_bench  # no torch at import

    load = bench_subparsers.add_parser("load", help="N bot clients, M workers, one local Redis")
    add_arguments(load)
    load.set_defaults(handler=lambda args: run_load_bench(args, _settings(args)))


# Settings field -> command-line option (argparse dest) that overrides it when given.
_OPTION_FOR_FIELD = {
    "registry_dir": "registry",
    "device": "device",
    "worker_labels": "worker_labels",
    "worker_max_batch": "max_batch",
    "worker_batch_wait_ms": "batch_wait_ms",
    "worker_metrics_port": "metrics_port",
    "worker_id": "worker_id",
    "models_dir": "models",
}


def _settings(args: argparse.Namespace, settings_class=None):
    """Settings from the environment and .env, overridden by the options a command has."""
    from worker.settings import WorkerSettings

    overrides = {field: getattr(args, option, None) for field, option in _OPTION_FOR_FIELD.items()}
    return (settings_class or WorkerSettings)(
        **{k: v for k, v in overrides.items() if v is not None}
    )


def run_worker(args: argparse.Namespace) -> int:
    from worker.protocol import LABELS
    from worker.redis_transport import RedisStreamsTransport
    from worker.service import SamplingService

    settings = _settings(args)
    unknown = sorted(set(settings.worker_labels) - set(LABELS))
    if unknown:
        raise MoodmojiError(f"unknown label {unknown[0]!r}; labels are {', '.join(LABELS)}")
    registry = registry_from_settings(settings)

    async def serve() -> None:
        transport = RedisStreamsTransport(settings)
        service = SamplingService(transport, settings, registry=registry)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, service.request_stop)
        try:
            await service.run()
        finally:
            await transport.close()

    asyncio.run(serve())
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo as demo

    # A demo shows its result; the embedded service's start/stop lines are for operators.
    if not args.verbose:
        logging.getLogger("worker").setLevel(logging.WARNING)

    return demo(args.text, args.out, args.seed, args.size, not args.no_show, _settings(args))


def _retrain_settings(args: argparse.Namespace):
    from worker.retraining import RetrainSettings

    return _settings(args, RetrainSettings)


def _scores_text(metrics: dict) -> str:
    return "; ".join(
        f"{label} " + " ".join(f"{k}={v:.4g}" for k, v in values.items())
        for label, values in sorted(metrics.items())
    )


def run_models_list(args: argparse.Namespace) -> int:
    registry = registry_from_settings(_settings(args))
    active = registry.active_version()
    for version in registry.versions():
        meta = registry.meta(version)
        marker = "*" if version == active else " "
        lineage = meta.get("lineage") or {}
        origin = f"from {lineage['base']}" if lineage.get("base") else "published"
        scores = _scores_text(meta.get("metrics") or {}) or "no metrics"
        labels = ", ".join(registry.labels(version))
        discarded = "  DISCARDED" if meta.get("discarded_at") is not None else ""
        print(f"{marker} {version}  [{labels}]  {origin}  {scores}{discarded}")
    if active == "default":
        print(f"* default  (shipped models in {registry.default_dir})")
    return 0


def run_models_show(args: argparse.Namespace) -> int:
    from worker.retraining import compare

    registry = registry_from_settings(_settings(args))
    if args.version not in registry.versions():
        raise MoodmojiError(f"no version {args.version!r} in {registry.root}")
    meta = registry.meta(args.version)
    folder = registry.version_dir(args.version)
    active = registry.active_version()
    print(f"{args.version}{'  (live)' if args.version == active else ''}  {folder}")
    print(json.dumps(meta, indent=2))
    if meta.get("metrics") and args.version != active:
        print(f"\ncompared with the live version {active}:")
        print(compare(registry, args.version, active).table())
    return 0


def run_models_promote(args: argparse.Namespace) -> int:
    from worker.retraining import promote_checked

    settings = _settings(args)
    registry = registry_from_settings(settings)
    verdict, previous = promote_checked(registry, args.version, args.force, by=_cli_operator())
    if verdict.comparison is not None and verdict.comparison.active_scores is not None:
        print(verdict.comparison.table())
    if not verdict.allowed:
        raise MoodmojiError(f"not promoted: {verdict.reason}")
    print(
        f"{args.version} is live (was {previous}; {verdict.reason}); workers switch within "
        f"{settings.registry_poll_s:g} s; `moodmoji models rollback` undoes it"
    )
    return 0


def _cli_operator() -> str | None:
    """Who runs this command, for the registry's history ("cli:alice")."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return None


def run_models_rollback(args: argparse.Namespace) -> int:
    settings = _settings(args)
    current, previous = registry_from_settings(settings).rollback(by=_cli_operator())
    print(
        f"{previous} is live again (was {current}); workers switch within "
        f"{settings.registry_poll_s:g} s"
    )
    return 0


def run_models_compare(args: argparse.Namespace) -> int:
    from worker.retraining.evaluate import compare_with_live

    settings = _retrain_settings(args)
    registry = registry_from_settings(settings)
    print(compare_with_live(registry, args.version, settings).table())
    return 0


def run_models_publish(args: argparse.Namespace) -> int:
    registry = registry_from_settings(_settings(args))
    checkpoints = {
        label: path
        for label, path in (("positive", args.positive), ("negative", args.negative))
        if path is not None
    }
    if not checkpoints:
        raise MoodmojiError("give at least one of --positive and --negative")
    target = registry.publish(args.version, checkpoints, activate=args.activate)
    state = "active" if args.activate else "not active; `moodmoji models promote` it"
    print(f"published {args.version} to {target} ({state})")
    return 0


def run_models_activate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    registry_from_settings(settings).activate(args.version)
    print(f"{args.version} is active; workers switch within {settings.registry_poll_s:g} s")
    return 0


def run_retrain(args: argparse.Namespace) -> int:
    settings = _retrain_settings(args)
    if args.serve:
        from worker.retraining.queue import serve_retrain_jobs

        serve_retrain_jobs(settings)
        return 0
    if args.data is None:
        raise MoodmojiError("give --data FOLDER_OR_ZIP (or --serve to take jobs from Redis)")
    from tqdm.auto import tqdm

    from worker.retraining import RetrainSpec, retrain

    spec = RetrainSpec(
        source=str(args.data.resolve()),
        from_version=args.from_version,
        labels=args.labels or ["positive", "negative"],
        epochs=args.epochs,
        version=args.version,
    )
    with tqdm(total=1, unit="step", desc="retrain") as bar:

        def show(progress) -> None:
            # Units: one per epoch of each label, then evaluate and publish; tqdm shows the ETA.
            bar.total = progress.total
            bar.n = progress.done
            bar.set_description(progress.stage)
            bar.set_postfix_str(progress.detail, refresh=False)
            bar.refresh()

        state = retrain(spec, settings, on_progress=show, job_id=args.job, restart=args.restart)
    registry = registry_from_settings(settings)
    meta = registry.meta(state.version)
    print(f"published {state.version} ({registry.version_dir(state.version)})")
    from worker.retraining import compare

    print(compare(registry, state.version).table())
    print(f"`moodmoji models promote {state.version}` makes it live if it is no worse")
    if meta.get("files"):
        print("sample grid and curves: " + ", ".join(meta["files"].values()))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from worker.bench import run_worker_bench

    return run_worker_bench(args, _settings(args))
