"""What an operator may change from the console, and who they are.

Every change goes through the same code as the CLI and the bot: `promote_checked` (the
FID/KID gate and the load check), `ModelRegistry.rollback`, `ModelRegistry.discard` and
`RetrainQueue.submit`; the operator's name goes into the registry's history (or the
version's meta, or the retrain request) and into the console's action log, a capped Redis
stream `<prefix>:console:actions` that the page lists.

Tokens are secrets: compared in constant time (as SHA-256 digests, so neither content
nor length leaks through timing), never logged, never sent back.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time

from moodmoji.errors import MoodmojiError
from worker import LABELS, ModelRegistry
from worker.retraining import RetrainQueue, promote_checked

log = logging.getLogger(__name__)

ACTION_LOG_MAXLEN = 1000
ACTIONS_SHOWN = 30


class NotAllowed(MoodmojiError):
    """No token, or one that names no operator."""


def operator_for(token: str | None, operators: dict) -> str:
    """The operator `token` belongs to; NotAllowed otherwise. `operators`: name -> SecretStr."""
    if not operators:
        raise NotAllowed("this console is read-only: no operator tokens are configured")
    if not token:
        raise NotAllowed("this action needs an operator token")
    offered = hashlib.sha256(token.encode()).digest()
    found = None
    for name, secret in operators.items():  # no early exit: every token is compared
        expected = hashlib.sha256(secret.get_secret_value().encode()).digest()
        if hmac.compare_digest(offered, expected):
            found = name
    if found is None:
        raise NotAllowed("that operator token is not valid")
    return found


class Actions:
    def __init__(self, settings, registry: ModelRegistry, retrain_queue: RetrainQueue, redis):
        """`redis`: a redis.asyncio client (the action log); the queue keeps its own."""
        self.settings = settings
        self.registry = registry
        self.retrain_queue = retrain_queue
        self.redis = redis
        self.log_key = f"{settings.queue_prefix}:console:actions"

    async def _record(self, action: str, by: str, ok: bool, message: str, **details) -> dict:
        entry = {"at": time.time(), "action": action, "by": by, "ok": ok, "message": message}
        entry.update(details)
        log.info("console: %s by %s: %s", action, by, message)
        await self.redis.xadd(
            self.log_key,
            {"entry": json.dumps(entry)},
            maxlen=ACTION_LOG_MAXLEN,
            approximate=True,
        )
        return entry

    async def recent(self) -> list[dict]:
        entries = await self.redis.xrevrange(self.log_key, count=ACTIONS_SHOWN)
        found = []
        for _entry_id, fields in entries:
            raw = fields.get("entry") or fields.get(b"entry")
            try:
                found.append(json.loads(raw))
            except (TypeError, ValueError):
                continue  # not ours
        return found

    @contextlib.asynccontextmanager
    async def _refusals_recorded(self, action: str, by: str, version: str | None = None):
        """A refusal from below (an unknown version, nothing to roll back) is logged as
        this operator's failed action too, then answered as an error."""
        try:
            yield
        except MoodmojiError as error:
            await self._record(action, by, False, str(error), version=version)
            raise

    async def promote(self, version: str, force: bool, by: str) -> dict:
        async with self._refusals_recorded("promote", by, version):
            verdict, previous = await asyncio.to_thread(
                promote_checked, self.registry, version, force, by
            )
        table = verdict.comparison.table() if verdict.comparison else None
        if not verdict.allowed:
            message = f"{version} not promoted: {verdict.reason}"
            return await self._record("promote", by, False, message, version=version, table=table)
        message = (
            f"{version} is live (was {previous}; {verdict.reason}); workers switch within "
            f"{self.settings.registry_poll_s:g} s"
        )
        return await self._record(
            "promote", by, True, message, version=version, forced=force, table=table
        )

    async def rollback(self, by: str) -> dict:
        async with self._refusals_recorded("rollback", by):
            current, previous = await asyncio.to_thread(self.registry.rollback, by)
        message = f"{previous} is live again (was {current})"
        return await self._record("rollback", by, True, message, version=previous)

    async def discard(self, version: str, by: str) -> dict:
        if version == self.registry.active_version():
            message = f"{version} is live; promote another version or roll back first"
            return await self._record("discard", by, False, message, version=version)
        async with self._refusals_recorded("discard", by, version):
            await asyncio.to_thread(self.registry.discard, version, by)
        message = f"{version} discarded; it stays in the registry but will not go live"
        return await self._record("discard", by, True, message, version=version)

    async def retrain(
        self, upload: bytes, by: str, from_version: str | None, labels: list[str]
    ) -> dict:
        labels = [label for label in labels if label in LABELS] or list(LABELS)
        async with self._refusals_recorded("retrain", by, from_version):
            request = await self.retrain_queue.submit(
                upload, requested_by=by, from_version=from_version or None, labels=labels
            )
        message = (
            f"retrain {request.request_id} queued ({', '.join(labels)}"
            f"{f', from {from_version}' if from_version else ''}); a retrain runner "
            "(`moodmoji retrain --serve`) takes it"
        )
        return await self._record("retrain", by, True, message, job=request.request_id)
