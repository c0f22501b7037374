"""`moodmoji console`: the operator console's web server."""

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    console = subparsers.add_parser(
        "console", help="a web page of versions, retrains, the queue and workers; promote there"
    )
    console.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    console.add_argument("--port", type=int, help="port (default 8470)")
    console.add_argument("--registry", type=Path, help="model registry folder")
    console.set_defaults(handler=run_console)


def run_console(args: argparse.Namespace) -> int:
    from aiohttp import web

    from console import ConsoleSettings, build_app
    from moodmoji.settings import redacted

    overrides = {
        "console_host": args.host,
        "console_port": args.port,
        "registry_dir": args.registry,
    }
    settings = ConsoleSettings(**{k: v for k, v in overrides.items() if v is not None})
    operators = sorted(settings.console_operators)
    log.info(
        "operator console on http://%s:%d (registry %s, redis %s, %s)",
        settings.console_host,
        settings.console_port,
        settings.registry_dir,
        redacted(settings.redis_url),
        f"operators: {', '.join(operators)}" if operators else "read-only: no operator tokens",
    )
    web.run_app(
        build_app(settings),
        host=settings.console_host,
        port=settings.console_port,
        print=None,
        access_log=None,
    )
    return 0
