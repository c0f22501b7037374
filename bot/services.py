"""The bot's services, wired once: what the cogs and `moodmoji chat` both drive.

- `emojis` (`bot.emojis.EmojiRequests`): /emoji, Re-roll, Flip, Add; the per-user limits.
- `guilds` (`bot.guilds.GuildBook`) and `suggestions` (`bot.suggestions.Suggestions`):
  a server's own settings and the auto-suggestions they switch on.
- `operations` (`bot.operations.Operations`): the operators' fleet and model actions.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.emojis import EmojiRequests
from bot.guilds import GuildBook
from bot.operations import Operations
from bot.settings import BotSettings
from bot.state import BotState
from bot.suggestions import Suggestions
from worker import ModelRegistry, WorkerClient, registry_from_settings
from worker.retraining import RetrainQueue


@dataclass
class Services:
    settings: BotSettings
    client: WorkerClient
    state: BotState
    emojis: EmojiRequests
    guilds: GuildBook
    suggestions: Suggestions
    operations: Operations

    async def close(self) -> None:
        """Stop reading results, then release every connection."""
        await self.client.close()
        await self.client.transport.close()
        if self.operations.retrain_queue is not None:
            await self.operations.retrain_queue.close()
        await self.state.close()


def make_services(
    client: WorkerClient,
    state: BotState,
    settings: BotSettings,
    *,
    registry: ModelRegistry | None = None,
    retrain_queue: RetrainQueue | None = None,
    read_moods: Callable[[Sequence[str]], list[Any]] | None = None,
) -> Services:
    """`registry`: default, the one the worker settings name; `retrain_queue`: None, no
    retraining from Discord (chat without Redis, tests that do not need it)."""
    guilds = GuildBook(state, settings)
    emojis = EmojiRequests(client, state, guilds, settings, read_moods)
    operations = Operations(
        client,
        state,
        registry or registry_from_settings(client.settings),
        retrain_queue,
        registry_poll_s=client.settings.registry_poll_s,
    )
    return Services(
        settings=settings,
        client=client,
        state=state,
        emojis=emojis,
        guilds=guilds,
        suggestions=Suggestions(emojis, guilds, state),
        operations=operations,
    )
