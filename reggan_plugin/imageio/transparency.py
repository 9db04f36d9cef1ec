"""A transparent backdrop's colour kept out of the edit. Under fully transparent pixels lies whatever the renderer left
there (Blender's film-transparent renders keep the world's colour, often a saturated green or blue), and paste-back's
motion and interpolation would carry it into the face's edge as a coloured fringe. The edit reads the subject's own
colour there instead, and fully transparent pixels keep theirs (`renderer.ExpressionRenderer.compose`)."""
from __future__ import annotations

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


def alpha_of(image: ImageData) -> Array | None:
    """HxW float32 coverage in [0, 1] of a picture with alpha; None without."""
    if not image.has_alpha:
        return None
    alpha = image.pixels[..., -1]
    top = float(np.iinfo(alpha.dtype).max) if np.issubdtype(alpha.dtype, np.integer) else 1.0
    return np.clip(np.nan_to_num(alpha.astype(np.float32) / top), 0.0, 1.0)


def with_subject_colour_behind(rgb: Array, alpha: Array) -> Array:
    """``rgb`` (HxWx3 float32) with each fully transparent pixel within reach of the subject given the colour of the
    covered pixels nearest to it (alpha-weighted blurs normalised by the blurred alpha); covered and partly covered
    pixels, and those out of reach, unchanged."""
    todo = alpha <= 0.0
    if not todo.any() or todo.all():
        return rgb
    out = rgb.copy()
    weighted = rgb * alpha[..., None]
    for sigma in SPREAD_SIGMAS:
        reach = cv2.GaussianBlur(alpha, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        colour = cv2.GaussianBlur(weighted, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        now = todo & (reach > _REACHED)
        out[now] = colour[now] / reach[now][:, None]
        todo &= ~now
        if not todo.any():
            break
    return out
