"""The child process that draws contact sheets: `python -m console.draw_sheets N SEED
CHECKPOINT=OUT.png ...`. It imports torch; the console's web process only starts it.

All of a version's labels in one process, so torch is imported once per version: what
`moodmoji sample CHECKPOINT -n N --seed SEED --size 64 --grid OUT.png` draws for each.
"""

import os
import sys
from pathlib import Path

SHEET_PIXELS = 64  # the generators' native size: no upscaling on the sheet


def main(argv: list[str]) -> int:
    from gan.plot import save_grid
    from gan.sample import sample_emojis

    count, seed, *pairs = argv
    for pair in pairs:
        checkpoint, out = pair.split("=", 1)
        images = sample_emojis(checkpoint, None, int(count), int(seed), SHEET_PIXELS, device="cpu")
        partial = Path(out).with_suffix(".partial.png")
        save_grid(images, partial)
        os.replace(partial, out)  # whole, or not there
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
