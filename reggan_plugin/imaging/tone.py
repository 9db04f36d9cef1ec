"""Small numeric helpers the runtime shares: smooth ramps and luma.

Luma comes in two standards, each with its weights as a named constant: Rec. 601 (``REC601_LUMA``), what the
picture's structure is read in (grain, the line between the lips, the mouth's softness), and Rec. 709
(``REC709_LUMA``), sRGB's primaries: how a change of colour is written as a change of grey or of shading.
"""
from __future__ import annotations

import numpy as np

from ..arrays import Array

REC601_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""Rec. 601 luma weights, RGB."""
REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""Rec. 709 luma weights, RGB (sRGB's primaries)."""


def luma(img: Array, weights: Array = REC601_LUMA) -> Array:
    """HxW float32 weighted sum of HxWxC ``img``'s first three channels. Written out, not ``img @ weights``: a BLAS
    product, even one this small, leaves OpenBLAS's threads spinning on the other cores for a while after it, a
    second core's worth of CPU through the numpy steps that follow."""
    x = np.asarray(img, np.float32)
    out = x[..., 0] * np.float32(weights[0])
    out += x[..., 1] * np.float32(weights[1])
    out += x[..., 2] * np.float32(weights[2])
    return out


def smoothstep(t: Array | float) -> Array:
    """3t^2 - 2t^3 of ``t`` clipped to [0, 1]: 0 at t<=0, 1 at t>=1, flat at both ends (of a float: a numpy scalar)."""
    t = np.clip(t, 0.0, 1.0)
    smooth: Array = t * t * (3.0 - 2.0 * t)
    return smooth


def smootherstep(t: Array) -> Array:
    """Perlin's 6t^5 - 15t^4 + 10t^3: 0 at t<=0, 1 at t>=1, flat first and second derivatives at both ends."""
    t = np.clip(t, 0.0, 1.0)
    smooth: Array = t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
    return smooth
