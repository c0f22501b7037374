"""`moodmoji worker` (the sampling service), `moodmoji models` (the registry), `bench worker`."""

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
    worker.add_argument("--labels", nargs="+", help="labels to serve (default: both)")
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
    listing = actions.add_parser("list", help="versions, and which one is active")
    listing.set_defaults(handler=run_models_list)
    publish = actions.add_parser("publish", help="add a version from checkpoints")
    publish.add_argument("version")
    publish.add_argument("--positive", type=Path, help="checkpoint for positive emojis")
    publish.add_argument("--negative", type=Path, help="checkpoint for negative emojis")
    publish.add_argument("--activate", action="store_true", help="make it live at once")
    publish.set_defaults(handler=run_models_publish)
    activate = actions.add_parser("activate", help="make a version live on every worker")
    activate.add_argument("version")
    activate.set_defaults(handler=run_models_activate)


def register_bench(bench_subparsers) -> None:
    bench = bench_subparsers.add_parser(
        "worker", help="emojis/s against batch size; end-to-end latency with 1 and 2 workers"
    )
    bench.add_argument("--rate", type=float, default=50.0, help="offered load, requests/s")
    bench.add_argument("--seconds", type=float, default=20.0, help="duration of each load run")
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
    bench.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    bench.set_defaults(handler=run_bench)

    from worker.loadbench import add_arguments, run_load_bench  # no torch at import

    load = bench_subparsers.add_parser("load", help="N bot clients, M workers, one local Redis")
    add_arguments(load)
    load.set_defaults(handler=lambda args: run_load_bench(args, _settings(args)))


def _settings(args: argparse.Namespace):
    from worker.settings import WorkerSettings

    overrides = {
        "registry_dir": getattr(args, "registry", None),
        "device": getattr(args, "device", None),
        "worker_labels": getattr(args, "labels", None),
        "worker_max_batch": getattr(args, "max_batch", None),
        "worker_batch_wait_ms": getattr(args, "batch_wait_ms", None),
        "worker_metrics_port": getattr(args, "metrics_port", None),
        "worker_id": getattr(args, "worker_id", None),
        "models_dir": getattr(args, "models", None),
    }
    return WorkerSettings(**{k: v for k, v in overrides.items() if v is not None})


def run_worker(args: argparse.Namespace) -> int:
    from worker.protocol import LABELS
    from worker.redis_transport import RedisStreamsTransport
    from worker.service import SamplingService

    settings = _settings(args)
    unknown = sorted(set(settings.worker_labels) - set(LABELS))
    if unknown:
        raise MoodmojiError(f"unknown label {unknown[0]!r}; labels are {', '.join(LABELS)}")
    registry = registry_from_settings(settings)
    version = registry.active_version()
    for label in settings.worker_labels:
        registry.checkpoint_path(label, version)  # a missing model is a one-line error

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


def run_models_list(args: argparse.Namespace) -> int:
    registry = registry_from_settings(_settings(args))
    active = registry.active_version()
    for version in registry.versions():
        meta = registry.meta(version)
        marker = "*" if version == active else " "
        print(f"{marker} {version}  {', '.join(registry.labels(version))}  {json.dumps(meta)}")
    if active == "default":
        print(f"* default  (shipped models in {registry.default_dir})")
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
    state = "active" if args.activate else "not active; `moodmoji models activate` it"
    print(f"published {args.version} to {target} ({state})")
    return 0


def run_models_activate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    registry_from_settings(settings).activate(args.version)
    print(f"{args.version} is active; workers switch within {settings.registry_poll_s:g} s")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from worker.bench import run_worker_bench

    return run_worker_bench(args, _settings(args))
