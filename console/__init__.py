"""The operator console: a web page over the registry, the queue, the workers and retrain
jobs, with promote, rollback, discard and retrain behind an operator token.

A front end like the bot: it reads Redis and the registry through the worker package's
public surface and changes them through the same calls as the CLI, so no worker ever
imports it, and its web process imports no torch (contact sheets are drawn by a child
process). See docs/operators.md#the-operator-console.
"""

from console.app import build_app
from console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "build_app"]
