"""Errors meant for the person at the keyboard.

Raise a `MoodmojiError` (or a subclass) for anything a user can fix: a missing
folder, a bad flag, a file that is not a checkpoint. The command line prints
its message as one line and exits with status 2; anything else is a bug and
keeps its traceback.
"""


class MoodmojiError(Exception):
    """A user-facing error whose message says what went wrong and what to do."""
