"""A transparent backdrop's colour kept out of the edit. Under fully transparent pixels lies whatever the renderer left
there (Blender's film-transparent renders keep the world's colour, often a saturated green or blue), and the partly
covered pixels of the subject's antialiased edge may mix it in; paste-back's motion and interpolation would carry it
into the face's edge as a coloured fringe. The edit reads the subject's own colour there instead, and those pixels
keep theirs (`renderer.ExpressionRenderer.compose`)."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..arrays import Array
from .image import ImageData

# Gaussians (px) by which the covered pixels' colour spreads into the transparent ones, finest first: each pixel takes
# the finest that reaches it. The widest reaches as far as a face crop's margin around a face, which the network sees;
# pixels further out keep their colour, and a region of the picture grown by REACH colours its own pixels as the whole
# picture would.
SPREAD_SIGMAS = (2.0, 8.0, 32.0)
REACH = 130  # px: 4 sigmas of the widest Gaussian (OpenCV's kernel radius), and two to spare
_REACHED = 1e-3  # of the blurred coverage: a pixel the colours reached
# px from a fully transparent pixel within which a partly covered one is the subject's antialiased edge (a renderer's
# pixel filter spreads an edge over about two pixels; the demo's frame 6: 1090 of its 1094 partly covered pixels)
EDGE = 2


def alpha_of(image: ImageData) -> Array | None:
    """HxW float32 coverage in [0, 1] of a picture with alpha; None without."""
    if not image.has_alpha:
        return None
    alpha = image.pixels[..., -1]
    top = float(np.iinfo(alpha.dtype).max) if np.issubdtype(alpha.dtype, np.integer) else 1.0
    return np.clip(np.nan_to_num(alpha.astype(np.float32) / top), 0.0, 1.0)


def behind_the_subject(alpha: Array, edge: bool = True) -> Array:
    """HxW bool: where a picture's colour is not the subject's: its fully transparent pixels and, with ``edge`` where
    some pixel is fully covered, the partly covered ones within ``EDGE`` px of one (the antialiased edge, mixed with
    whatever lies under the transparency; with no fully covered pixel there is no subject's own colour to read there
    instead). The edit reads the subject's colour there (`with_subject_colour_behind`) and writes nothing there
    (`renderer.compose`)."""
    clear = alpha <= 0.0
    if not edge or not clear.any() or not (alpha >= 1.0).any():
        return clear
    near = cv2.dilate(clear.astype(np.uint8), np.ones((2 * EDGE + 1,) * 2, np.uint8)) > 0
    return clear | (near & (alpha < 1.0))


def region_behind_the_subject(image: ImageData, rows: slice, cols: slice) -> Array | None:
    """`behind_the_subject` over a region of ``image`` as the whole picture has it (read from the region grown by
    ``EDGE``); None for a picture without alpha."""
    if not image.has_alpha:
        return None
    height, width = image.pixels.shape[:2]
    top, left = max(rows.start - EDGE, 0), max(cols.start - EDGE, 0)
    grown = image.pixels[top : min(rows.stop + EDGE, height), left : min(cols.stop + EDGE, width)]
    alpha = alpha_of(dataclasses.replace(image, pixels=grown))
    assert alpha is not None
    behind = behind_the_subject(alpha)
    return behind[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]


def with_subject_colour_behind(rgb: Array, alpha: Array, edge: bool = True) -> Array:
    """``rgb`` (HxWx3 float32) with each pixel `behind_the_subject` within reach of the subject given the subject's
    colour nearest to it (blurs of the colour weighted by the coverage, normalised by the blurred coverage); the
    other pixels, and those out of reach, unchanged. With ``edge`` the antialiased edge too, and the colour from the
    fully covered pixels alone (the edge's own mixes in what lies under the transparency); without, the colour of
    every covered pixel by its alpha (so too with ``edge`` where no pixel is fully covered)."""
    covered = alpha >= 1.0
    edge = edge and bool(covered.any())
    todo = behind_the_subject(alpha, edge)
    solid = covered.astype(np.float32) if edge else alpha
    if not todo.any() or not solid.any():
        return rgb
    out = rgb.copy()
    weighted = rgb * solid[..., None]
    for sigma in SPREAD_SIGMAS:
        reach = cv2.GaussianBlur(solid, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        colour = cv2.GaussianBlur(weighted, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        now = todo & (reach > _REACHED)
        out[now] = colour[now] / reach[now][:, None]
        todo &= ~now
        if not todo.any():
            break
    return out
