"""Contact sheets of a version: `console_sheet_samples` emojis per label, drawn once.

Sampling needs torch, which the console's web process keeps out of itself: a sheet is
drawn by `moodmoji sample ... --grid` in a child process at low priority on the CPU, one
at a time, and kept under `<cache_dir>/console-sheets/`, named by the checkpoint's
content hash (versions are immutable, and the shipped `default` may change in place).
Every version draws the same latents (`console_sheet_seed`), so sheets compare.
"""

import asyncio
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from worker import ModelRegistry

log = logging.getLogger(__name__)

SHEET_PIXELS = 64  # the generators' native size: no upscaling on the sheet
CHILD_NICENESS = 10


class SheetMaker:
    def __init__(self, settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.folder = Path(settings.cache_dir) / "console-sheets"
        self._drawing: dict[Path, asyncio.Task] = {}
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

    async def sheet(self, version: str, label: str) -> tuple[Path | None, str]:
        """(the sheet, "ready"), or (None, "drawing" / why it failed). Starts the drawing."""
        checkpoint = await asyncio.to_thread(self.registry.checkpoint_path, label, version)
        digest = await asyncio.to_thread(self._digest, checkpoint)
        path = self.folder / f"{label}-{digest}-n{self.settings.console_sheet_samples}.png"
        if path.is_file():
            return path, "ready"
        if path in self._failed:
            return None, self._failed[path]
        if path not in self._drawing:
            self._drawing[path] = asyncio.create_task(self._draw(checkpoint, path))
        return None, "drawing"

    async def _draw(self, checkpoint: Path, path: Path) -> None:
        async with self._one_at_a_time:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Beside the cache, so the finished sheet is renamed in, never copied half-way.
            scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=".drawing-"))
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._lower_priority,
                    sys.executable,
                    "-m",
                    "moodmoji.cli",
                    "sample",
                    str(checkpoint),
                    "-n",
                    str(self.settings.console_sheet_samples),
                    "--seed",
                    str(self.settings.console_sheet_seed),
                    "--size",
                    str(SHEET_PIXELS),
                    "--out",
                    str(scratch / "emojis"),
                    "--grid",
                    str(scratch / "sheet.png"),
                    "--device",
                    "cpu",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                _out, err = await process.communicate()
                if process.returncode != 0:
                    lines = err.decode(errors="replace").strip().splitlines()
                    self._failed[path] = f"could not draw the sheet: {lines[-1] if lines else '?'}"
                    log.error("%s (%s)", self._failed[path], checkpoint)
                    return
                os.replace(scratch / "sheet.png", path)  # whole, or not there
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
                self._drawing.pop(path, None)
