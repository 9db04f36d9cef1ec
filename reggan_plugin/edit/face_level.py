"""Faces darker than the model was fitted on, brought up into its range for the network and the edit scaled back.

A regression's paint is additive: the shading an expression casts (a smile's cheek fold), fitted on faces of the
training renders' brightness, is as many levels deep on a face far darker, where it goes black, a dark blotch; an
under-exposed frame is such a face too. A face crop whose mean linear luma over the face (`face_levels`) is under
``DARKEST_FACE`` goes to the network scaled in linear light up to it, and the change the network makes is scaled back
down by the same factor: the face gets the edit a face of the range's edge would, in proportion to its own light, as
an exposure change would have it. Crops within the range go through untouched, bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..arrays import Array, FloatArray
from ..imageio.colour import srgb_decode, srgb_encode
from ..imaging.tone import REC709_LUMA
from ..tuning import DARKEST_FACE, FACE_ELLIPSE
from .calibration import ellipse_region


def face_levels(crops: Array) -> FloatArray:
    """[n,S,S,3] float32 sRGB crops -> [n] the mean linear luma over each crop's `FACE_ELLIPSE`."""
    if not len(crops):
        return np.zeros(0, np.float32)
    weight = ellipse_region(crops.shape[1], FACE_ELLIPSE)
    luma = srgb_decode(np.clip(crops, 0.0, 1.0)) @ np.asarray(REC709_LUMA, np.float32)
    levels: FloatArray = ((luma * weight).sum(axis=(1, 2)) / weight.sum()).astype(np.float32)
    return levels


def lift_gains(crops: Array, darkest: float = DARKEST_FACE) -> FloatArray:
    """[n] the linear gain that brings each crop's face up to ``darkest``, 1 for a face at or above it."""
    levels = face_levels(crops)
    gains: FloatArray = (np.maximum(levels, darkest) / np.maximum(levels, 1e-6)).astype(np.float32)
    return gains


def lifted(crops: Array, gains: Array) -> Array:
    """``crops`` with each one's linear light scaled by its gain (clipped to [0, 1]); ``crops`` itself where none
    changes."""
    if np.all(gains == 1.0):
        return crops
    out = crops.copy()
    for i in np.flatnonzero(gains != 1.0):
        out[i] = np.clip(srgb_encode(srgb_decode(crops[i]) * gains[i]), 0.0, 1.0)
    return out


def scaled_back(crops: Array, lifted_crops: Array, edited: Array, gains: Array) -> Array:
    """The edit of ``lifted_crops`` (``edited``, [n,S,S,3]) carried to ``crops``: its change in linear light divided by
    each crop's gain, added to the crop's own light (``edited`` itself where no gain changes a crop; where the change
    is none, the crop's pixels exactly)."""
    if np.all(gains == 1.0):
        return edited
    out = edited.copy()
    for i in np.flatnonzero(gains != 1.0):
        own = srgb_decode(crops[i])
        change = (srgb_decode(edited[i]) - srgb_decode(lifted_crops[i])) / gains[i]
        out[i] = crops[i] + (srgb_encode(np.maximum(own + change, 0.0)) - srgb_encode(own))
    return out
