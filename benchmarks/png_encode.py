"""How fast can a 1920x1080 RGBA PNG be written here? (Evidence for imageio's PNG settings.)

    python benchmarks/png_encode.py [--rounds 3]

Compares Pillow at compress_level 3 (imageio's former setting), 1 and 0 with imageio's own writer
(`imageio.encode_png`: the PNG 'Up' filter on every row, one vectorised subtraction, then deflate level 1
with zlib or, its default, ISA-L). Every file is
decoded again and checked against the source pixels. Interleaved rounds, best kept.
"""
from __future__ import annotations

import argparse
import io
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from benchmarks.pipeline import synthetic_frame
from benchmarks.timing import time_per_call
from reggan_plugin.imageio import encode_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frame = synthetic_frame(1920, 1080, 0, (960, 540, 270))
    picture = Image.fromarray(frame, "RGBA")

    def pillow(level: int) -> bytes:
        buffer = io.BytesIO()
        picture.save(buffer, "PNG", compress_level=level)
        return buffer.getvalue()

    writers: dict[str, Callable[..., bytes]] = {f"Pillow compress_level={lv}": (lambda lv=lv: pillow(lv)) for lv in (3, 1, 0)}
    writers["imageio.encode_png (Up filter + zlib level 1)"] = lambda: encode_png(frame, deflate=zlib.compress)
    writers["imageio.encode_png (Up filter + ISA-L level 1, the default)"] = lambda: encode_png(frame)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, write in writers.items():
            best[name] = min(best.get(name, 1e9), time_per_call(write, 0.5))
    print("| writer (1920x1080 RGBA) | ms | MB | decoded equal |\n|---|---|---|---|")
    for name, write in writers.items():
        data = write()
        same = np.array_equal(np.asarray(Image.open(io.BytesIO(data))), frame)
        print(f"| {name} | {best[name] * 1e3:.0f} | {len(data) / 1e6:.1f} | {same} |")


if __name__ == "__main__":
    main()
