"""All-or-nothing writes of a set folder: build beside it, then swap it in."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder next to `target`; swap it in only if the block succeeds.

    The staging folder lives in the same parent so the final renames stay on one
    file system. An interrupted or failed block removes it and leaves `target` as
    it was; the only window in which `target` is absent is between two renames.
    """
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.building-{os.getpid()}")
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    for leftover in (staging, retired):
        if leftover.exists():  # from a run of ours with the same pid that was killed
            shutil.rmtree(leftover)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
