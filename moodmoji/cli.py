"""The one `moodmoji` command. Each package registers its own subcommands.

A package's `cli` module exposes `register(subparsers)`, and may expose
`register_bench(bench_subparsers)` to add `moodmoji bench NAME`. It keeps heavy imports
(torch, transformers, discord) inside its handlers, so `moodmoji --help`
stays fast and `bot` commands never pull in torch.
"""

import argparse
import importlib
import logging
import sys

from pydantic import ValidationError

from moodmoji import __version__
from moodmoji.errors import MoodmojiError

# Order here is the order in `moodmoji --help`.
COMMAND_MODULES = (
    "gan.cli",
    "gan.emoji_set.cli",
    "sentiment.cli",
    "worker.cli",
    "bot.cli",
    "console.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moodmoji",
        description="Read a message's mood and answer with a freshly generated emoji.",
    )
    parser.add_argument("--version", action="version", version=f"moodmoji {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench = subparsers.add_parser(
        "bench", help="measure speed; results go to docs/benchmarks.md"
    ).add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    settings = subparsers.add_parser("settings", help="every MOODMOJI_* setting and its value")
    settings.add_argument("--example", action="store_true", help="print .env.example instead")
    settings.set_defaults(handler=show_settings)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # A package that has not grown its commands yet; anything else is a bug.
            if error.name and (module_name + ".").startswith(error.name + "."):
                continue
            raise
        module.register(subparsers)
        if hasattr(module, "register_bench"):
            module.register_bench(bench)
    return parser


def show_settings(args: argparse.Namespace) -> int:
    from moodmoji.settings import redacted
    from moodmoji.settings_doc import env_example, settings_sections

    if args.example:
        print(env_example(), end="")
        return 0
    for title, cls, names in settings_sections():
        values = cls().model_dump()  # SecretStr fields dump as '**********'
        print(f"{title}:")
        for name in names:
            print(f"  MOODMOJI_{name.upper()} = {redacted(values[name])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except MoodmojiError as error:
        print(f"moodmoji: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        # A bad MOODMOJI_* value (or .env line): name the setting, not a traceback.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or error.title}: {e['msg']}"
            for e in error.errors()
        )
        print(f"moodmoji: error: invalid setting ({error.title}) {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("moodmoji: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
