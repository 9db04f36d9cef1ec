"""One picture made ready for the network (`PreparedImage`): the face region it reads and writes (`face_region`),
that region in network colour, and its faces' aligned crops. Arrays follow reggan_plugin.imageio's conventions."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .arrays import Array
from .faces.turn import Pose
from .geometry.align import Matrix, matrix_scale
from .geometry.resample import crop_roi
from .imageio import ImageData, to_network_rgb
from .imageio.transparency import REACH, alpha_of, with_subject_colour_behind
from .imaging.filters import GRAIN_REACH


@dataclass
class PreparedImage:
    """One picture's faces, aligned and ready for the network; only the face region is held in float.

    roi: (rows, cols) slices of the picture that alignment reads and paste-back writes; rgb: that region
    as network colour (HxWx3 float32 sRGB [0,1]), or None when dropped while the picture waits (a 4K
    close-up's is 40 MB; `region_rgb` makes it again); matrices: region px -> crop px, one per face; crops:
    [n,S,S,3] float32 sRGB [0,1], of the region's structure where it is grainy (``reggan_plugin.imaging.filters``).
    """

    image: ImageData
    roi: tuple[slice, slice]
    rgb: Array | None
    matrices: list[Matrix]
    crops: Array
    non_finite: int = 0  # pixels of the region holding NaN or inf (float frames): written back as they were
    poses: tuple[Pose, ...] = ()  # each face's turn and tilt (`reggan_plugin.faces.turn`), for pose keys

    def region_rgb(self) -> Array:
        if self.rgb is not None:
            return self.rgb
        return network_rgb(self.image, *self.roi)


def network_rgb(image: ImageData, rows: slice, cols: slice) -> Array:
    """A region of the picture in the network's colour, with the subject's colour behind its transparent pixels and
    its antialiased edge (`imageio.transparency`): what paste-back reads. See `network_rgbs`."""
    return network_rgbs(image, rows, cols, (True,))[0]


def network_rgbs(image: ImageData, rows: slice, cols: slice, edges: Sequence[bool]) -> list[Array]:
    """The region in the network's colour once for each of ``edges``: with the subject's colour behind its transparent
    pixels and, where ``edge``, its antialiased edge, spread from the region grown by the spread's reach, so that a
    region gets what the whole picture would. The grown region is converted once for all of them."""
    if not image.has_alpha:
        return [to_network_rgb(dataclasses.replace(image, pixels=image.pixels[rows, cols]))] * len(edges)
    height, width = image.pixels.shape[:2]
    grown = (slice(max(rows.start - REACH, 0), min(rows.stop + REACH, height)),
             slice(max(cols.start - REACH, 0), min(cols.stop + REACH, width)))
    around = dataclasses.replace(image, pixels=image.pixels[grown])
    alpha = alpha_of(around)
    assert alpha is not None
    rgb = to_network_rgb(around)
    top, left = rows.start - grown[0].start, cols.start - grown[1].start
    inner = (slice(top, top + rows.stop - rows.start), slice(left, left + cols.stop - cols.start))
    return [with_subject_colour_behind(rgb, alpha, edge)[inner] for edge in edges]


def face_region(matrices: Sequence[Matrix], size: int, shape: Sequence[int]) -> tuple[slice, slice]:
    """The part of a frame that aligning (warp_to_crop, with its anti-alias prefilter) and pasting back
    (warp_from_crop) these faces touch, with margin: everything outside it is copied, never converted."""
    height, width = int(shape[0]), int(shape[1])
    y0, x0, y1, x1 = height, width, 0, 0
    for m in matrices:
        ys, xs = crop_roi(m, size, (height, width))
        k = max(1, int(np.floor(1.0 / matrix_scale(m))))  # the prefilter reads up to 2k + 1 px past the crop
        margin = 2 * k + 2 + GRAIN_REACH  # and a grainy region's structure there reads GRAIN_REACH px further
        y0, x0 = min(y0, ys.start - margin), min(x0, xs.start - margin)
        y1, x1 = max(y1, ys.stop + margin), max(x1, xs.stop + margin)
    y0, x0 = max(0, y0), max(0, x0)
    return slice(y0, max(y0, min(height, y1))), slice(x0, max(x0, min(width, x1)))
