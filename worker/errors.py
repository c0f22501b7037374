"""Refusals a caller of the queue handles: the same for every transport and the client."""

from moodmoji.errors import MoodmojiError


class WorkerBusy(MoodmojiError):
    """Refused before queueing; `retry_after_s` says when trying again makes sense."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueUnavailable(WorkerBusy):
    """The queue's server did not answer within the wait: refused, like a full queue.

    A subclass of `WorkerBusy`, so a bot that handles "busy, try again" handles an
    outage too, and never sees a raw connection error.
    """
