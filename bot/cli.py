"""`moodmoji bot` (the Discord client) and `moodmoji chat` (the same handlers in a terminal)."""

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    bot = subparsers.add_parser("bot", help="run the Discord bot (needs MOODMOJI_DISCORD_TOKEN)")
    bot.add_argument(
        "--sync",
        action="store_true",
        help="sync slash commands now (otherwise only when they changed since the last sync)",
    )
    bot.set_defaults(handler=run_bot)

    chat = subparsers.add_parser(
        "chat", help="talk to the bot in this terminal: auto-suggest and /emoji, no Discord"
    )
    chat.add_argument(
        "--redis",
        action="store_true",
        help="use the Redis queue, workers and shared state (default: embedded worker)",
    )
    chat.add_argument("--out", type=Path, help="folder for the PNGs (default runs/chat)")
    chat.add_argument("--no-autosuggest", action="store_true", help="only /emoji answers")
    chat.add_argument(
        "--suggest-every", type=int, default=0, help="least seconds between auto-suggestions"
    )
    chat.add_argument("--no-pictures", action="store_true", help="save PNGs, do not draw them")
    chat.add_argument("--width", type=int, default=32, help="picture width in characters")
    # SUPPRESS: without -v here, the top-level `moodmoji -v` still counts.
    chat.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show log lines on the screen (default: in chat.log next to the PNGs)",
    )
    chat.set_defaults(handler=run_chat)


def run_bot(args: argparse.Namespace) -> int:
    from bot.discord_bot import run_bot as run
    from bot.settings import BotSettings

    asyncio.run(run(BotSettings(), force_sync=args.sync))
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from bot.settings import BotSettings

    settings = BotSettings()
    if not args.verbose:
        _logs_to_file((args.out or settings.chat_output_dir) / "chat.log")
    return asyncio.run(_chat(args, settings))


def _logs_to_file(path: Path) -> None:
    """Log lines (the worker's INFO, warnings) go to a file, not between the chat's lines;
    `moodmoji -v chat` keeps them on the screen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def _step(text: str) -> None:
    print(f"moodmoji chat: {text}", flush=True)


async def _chat(args: argparse.Namespace, settings) -> int:
    from bot.chat import ChatSession, chat_loop
    from bot.services import make_services
    from bot.state import MemoryState, RedisState
    from worker import (
        InProcessTransport,
        RedisStreamsTransport,
        WorkerClient,
        WorkerSettings,
        embedded_worker,
    )

    worker_settings = WorkerSettings()
    async with contextlib.AsyncExitStack() as stack:
        if args.redis:
            _step("connecting to the Redis queue…")
            transport = RedisStreamsTransport(worker_settings)
            state = RedisState(settings)
            stack.push_async_callback(state.close)
        else:
            transport = InProcessTransport()
            state = MemoryState(settings)
            _step("loading the emoji models (a few seconds)…")
            await stack.enter_async_context(embedded_worker(transport, worker_settings))
        stack.push_async_callback(transport.close)
        client = WorkerClient(transport, worker_settings, per_user_cap=False)
        await client.start()
        stack.push_async_callback(client.close)
        services = make_services(client, state, settings)
        _step("loading the mood reader…")
        await services.emojis.read_mood("hello")  # the first message then answers at once
        session = ChatSession(
            services,
            args.out or settings.chat_output_dir,
            pictures=not args.no_pictures,
            width=args.width,
        )
        await session.start(not args.no_autosuggest, args.suggest_every)
        where = (
            "on the screen"
            if args.verbose
            else f"in {(args.out or settings.chat_output_dir) / 'chat.log'}"
        )
        _step(f"ready; type a message, or /help (Ctrl-D to leave); logs are {where}")
        return await chat_loop(session)
