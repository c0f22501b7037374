"""Contact sheets of a version: `console_sheet_samples` emojis per label, drawn once.

Sampling needs torch, which the console's web process keeps out of itself: a version's
sheets are drawn by `console.draw_sheets` in a child process at low priority on the CPU
(all its labels in one, so torch is imported once), one version at a time, and kept
under `<cache_dir>/console-sheets/`, named by the checkpoint's content hash (versions are
immutable, and the shipped `default` may change in place). Every version draws the
same latents (`console_sheet_seed`), so sheets compare.
"""

import asyncio
import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path

from worker import ModelRegistry

log = logging.getLogger(__name__)

CHILD_NICENESS = 10


class SheetMaker:
    def __init__(self, settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.folder = Path(settings.cache_dir) / "console-sheets"
        self._drawing: dict[str, asyncio.Task] = {}  # version -> its drawing
        self._failed: dict[Path, str] = {}
        self._digests: dict[tuple, str] = {}
        self._one_at_a_time = asyncio.Semaphore(1)
        # `nice` rather than a preexec_fn: the console runs threads, and a fork that runs
        # Python code between fork and exec in a threaded process can deadlock.
        nice = shutil.which("nice")
        self._lower_priority = [nice, "-n", str(CHILD_NICENESS)] if nice else []

    def _digest(self, checkpoint: Path) -> str:
        stat = checkpoint.stat()
        key = (str(checkpoint), stat.st_mtime_ns, stat.st_size)
        if key not in self._digests:
            self._digests[key] = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
        return self._digests[key]

    def _sheets_of(self, version: str) -> dict[str, tuple[Path, Path]]:
        """label -> (checkpoint, its sheet's place in the cache), for every label."""
        found = {}
        for label in self.registry.labels(version):
            checkpoint = self.registry.checkpoint_path(label, version)
            name = f"{label}-{self._digest(checkpoint)}-n{self.settings.console_sheet_samples}"
            found[label] = (checkpoint, self.folder / f"{name}.png")
        return found

    async def sheet(self, version: str, label: str) -> tuple[Path | None, str]:
        """(the sheet, "ready"), or (None, "drawing" / why it failed). Starts the drawing."""
        await asyncio.to_thread(self.registry.checkpoint_path, label, version)  # or refuse
        sheets = await asyncio.to_thread(self._sheets_of, version)
        path = sheets[label][1]
        if path.is_file():
            return path, "ready"
        if path in self._failed:
            return None, self._failed[path]
        if version not in self._drawing:
            missing = [pair for pair in sheets.values() if not pair[1].is_file()]
            self._drawing[version] = asyncio.create_task(self._draw(version, missing))
        return None, "drawing"

    async def _draw(self, version: str, sheets: list[tuple[Path, Path]]) -> None:
        async with self._one_at_a_time:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._lower_priority,
                    sys.executable,
                    "-m",
                    "console.draw_sheets",
                    str(self.settings.console_sheet_samples),
                    str(self.settings.console_sheet_seed),
                    *(f"{checkpoint}={out}" for checkpoint, out in sheets),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                _out, err = await process.communicate()
                if process.returncode != 0:
                    lines = err.decode(errors="replace").strip().splitlines()
                    why = f"could not draw the sheet: {lines[-1] if lines else '?'}"
                    log.error("%s (version %s)", why, version)
                    self._failed.update({out: why for _checkpoint, out in sheets})
            finally:
                self._drawing.pop(version, None)
