"""Where one shot ends and the next begins, so that face tracks are never smoothed across a cut.

Each frame gets a 32 x 32 grey thumbnail; two neighbouring frames belong to different shots when their
thumbnails differ by more than CUT_THRESHOLD (mean absolute difference, 0-1) or their sizes differ. A
slow pan of a real face changes the thumbnail by about 0.007 per frame, render noise (sigma 10 levels)
by 0.001; two different portraits of the London set, taken alike in front of the same backdrop, by
0.03-0.09.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from ..arrays import FloatArray
from ..imageio import ImageData, to_network_rgb
from ..imaging.tone import REC709_LUMA, luma

CUT_THRESHOLD = 0.02
THUMB = 32


@dataclasses.dataclass(frozen=True)
class Thumb:
    size: tuple[int, int]  # the frame's height and width
    grey: FloatArray  # THUMB x THUMB float32 in [0, 1]


def thumbnail(image: ImageData) -> Thumb:
    """A small grey picture of the whole frame, from a strided view (a few ms for a 4K frame)."""
    step = max(1, min(image.height, image.width) // (4 * THUMB))
    small = dataclasses.replace(image, pixels=image.pixels[::step, ::step])
    grey = luma(to_network_rgb(small), REC709_LUMA)
    resized = Image.fromarray(grey, mode="F").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    return Thumb((image.height, image.width), np.asarray(resized, np.float32))


def is_cut(a: Thumb | None, b: Thumb | None) -> bool:
    """True when frames a and b are not one shot (an unreadable frame ends a shot too)."""
    if a is None or b is None or a.size != b.size:
        return True
    return float(np.abs(a.grey - b.grey).mean()) > CUT_THRESHOLD
