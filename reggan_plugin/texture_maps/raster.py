"""A z-buffered triangle rasterizer in numpy: which triangle covers each pixel centre, and where inside it.

Triangles are binned by the size of their bounding box and each bin is tested against all its candidate pixels at
once, so a 50,000-triangle head at 512 px takes a fraction of a second without a graphics context. A pixel (r, c) is
sampled at its centre (c + 0.5, r + 0.5)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..arrays import Array


class Coverage(NamedTuple):
    """Per pixel: the covering triangle (-1 where none) and its barycentric weights [H,W,3] (perspective-correct when
    the triangles' depths were given)."""

    triangle: Array
    weights: Array

    def interpolate(self, values: Array) -> Array:
        """``values`` [F,3,C] given at each triangle's corners -> [H,W,C] (zero where no triangle covers)."""
        out = np.zeros((*self.triangle.shape, values.shape[-1]), np.float32)
        hit = self.triangle >= 0
        out[hit] = np.einsum("nk,nkc->nc", self.weights[hit], values[self.triangle[hit]])
        return out


def rasterize(corners: Array, shape: tuple[int, int], depth: Array | None = None) -> Coverage:
    """``corners`` [F,3,2] in pixels (x right, y down); ``depth`` [F,3] (positive, nearer is smaller) picks the
    nearest triangle where several cover a pixel and makes the weights perspective-correct; without it the first
    triangle given wins (a UV layout)."""
    height, width = shape
    corners = np.asarray(corners, np.float64)
    lo = np.ceil(corners.min(axis=1) - 0.5).astype(np.int64)
    hi = np.floor(corners.max(axis=1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    extent = (hi - lo + 1).max(axis=1)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    usable = (extent > 0) & (np.abs(area) > 1e-12)
    pixels, triangles, weights = [], [], []
    size = 1
    while True:
        chosen = np.flatnonzero(usable & (extent <= size) & (extent > size // 2))
        if len(chosen):
            oy, ox = np.mgrid[0:size, 0:size].reshape(2, -1)
            px = lo[chosen, 0:1] + ox  # [n, size*size]
            py = lo[chosen, 1:2] + oy
            x, y = px + 0.5, py + 0.5
            ca, cb, cc, d = a[chosen], b[chosen], c[chosen], area[chosen][:, None]
            l0 = ((cb[:, 1:2] - cc[:, 1:2]) * (x - cc[:, 0:1]) + (cc[:, 0:1] - cb[:, 0:1]) * (y - cc[:, 1:2])) / d
            l1 = ((cc[:, 1:2] - ca[:, 1:2]) * (x - cc[:, 0:1]) + (ca[:, 0:1] - cc[:, 0:1]) * (y - cc[:, 1:2])) / d
            l2 = 1.0 - l0 - l1
            inside = ((l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
                      & (px <= hi[chosen, 0:1]) & (py <= hi[chosen, 1:2]))
            row, col = np.nonzero(inside)
            pixels.append(py[row, col] * width + px[row, col])
            triangles.append(chosen[row])
            weights.append(np.stack([l0[row, col], l1[row, col], l2[row, col]], axis=1))
        if size >= extent[usable].max(initial=0):
            break
        size *= 2
    triangle = np.full(height * width, -1, np.int64)
    bary = np.zeros((height * width, 3), np.float32)
    if pixels and sum(len(p) for p in pixels):
        pix, tri, w = np.concatenate(pixels), np.concatenate(triangles), np.concatenate(weights)
        if depth is not None:
            inv = 1.0 / np.asarray(depth, np.float64)[tri]  # perspective-correct: weights over depth, renormalised
            w = w * inv
            z = 1.0 / w.sum(axis=1)
            w = w * z[:, None]
            order = np.lexsort((z, pix))
        else:
            order = np.lexsort((tri, pix))
        pix, tri, w = pix[order], tri[order], w[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        triangle[pix[first]] = tri[first]
        bary[pix[first]] = w[first]
    return Coverage(triangle.reshape(height, width), bary.reshape(height, width, 3))
