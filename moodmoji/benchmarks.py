"""Writes benchmark results into `docs/benchmarks.md`, one section per benchmark.

Each `moodmoji bench NAME` owns the text between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`, so benchmarks run at different times (and on different
machines) never overwrite each other's figures.
"""

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_PATH = Path("docs/benchmarks.md")
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the command it names; re-run that command to refresh it.\n"
)


def describe_machine() -> str:
    """One line naming the CPU, its core count, and torch's accelerator if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores_text = str(os.cpu_count() or "?")
    return f"{cpu}, {cores_text} cores, {platform.system()} {platform.release()}"


def write_section(name: str, body: str, command: str, path: Path = DEFAULT_PATH) -> Path:
    """Replace (or append) section `name`, stamped with the command, machine and date."""
    stamp = (
        f"Command: `{command}`  \n"
        f"Machine: {describe_machine()}  \n"
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
    )
    block = f"<!-- bench:{name} -->\n{stamp}{body.rstrip()}\n<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.DOTALL
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + f"\n\n## {name}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path
