"""Stored pixels <-> the network's colour: sRGB curves, `to_network_rgb`, and `compose_output` (an edit written back)."""
from __future__ import annotations

import dataclasses

import numpy as np

from reggan_plugin.imageio.image import LUMA, ImageData


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> sRGB-encoded (IEC 61966-2-1 piecewise curve), not clipped: values above 1
    follow the same power law, negatives are mirrored."""
    x = np.asarray(linear, dtype=np.float32)
    a = np.abs(x)
    enc = np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1.0 / 2.4, dtype=np.float32) - 0.055)
    return (np.sign(x) * enc).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of ``srgb_encode``."""
    e = np.asarray(encoded, dtype=np.float32)
    a = np.abs(e)
    lin = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4, dtype=np.float32))
    return (np.sign(e) * lin).astype(np.float32)


def _encoded(pixels: np.ndarray, linear: bool) -> np.ndarray:
    """Colour channels of stored pixels (N x C or HxWxC) -> float32 sRGB-encoded, unclipped."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535)
    v = np.nan_to_num(pixels.astype(np.float32, copy=False), nan=0.0, posinf=65504.0, neginf=-65504.0)
    return srgb_encode(v) if linear else v


def detector_rgb(image: ImageData) -> np.ndarray:
    """What the face detector reads: 8-bit sRGB pixels as they are (no float copy of the frame), anything
    else as network colour (the detector quantises it to 8 bits the same way)."""
    if image.pixels.dtype == np.uint8 and image.channels >= 3 and not image.linear:
        return image.pixels
    return to_network_rgb(image)


def to_network_rgb(image: ImageData) -> np.ndarray:
    """HxWx3 float32 sRGB-encoded in [0, 1]: grey replicated, linear data encoded, alpha dropped, clipped."""
    nc = image.colour_channels
    enc = _encoded(image.pixels[..., :nc], image.linear)
    if nc == 1:
        enc = np.repeat(enc, 3, axis=2)
    return np.clip(enc, 0.0, 1.0)


def compose_output(image: ImageData, new_rgb: np.ndarray, mask: np.ndarray) -> ImageData:
    """Write an edited picture into a copy of ``image``: same dtype, channels, format and info.

    new_rgb: HxWx3 float32 sRGB [0, 1] (the edited ``to_network_rgb(image)``); mask: HxW float32,
    only pixels with mask > 0 are written. Every pixel with mask == 0 is bit-identical to the input,
    and alpha is never touched.

    The change is applied as a delta in sRGB-encoded space to the UNCLIPPED stored values: for EXR a
    highlight above 1.0 (which the network saw clipped to 1) keeps its value plus the edit instead of
    being clamped; the result is decoded back to linear. Grey images receive the Rec. 709 luminance of
    the change. 8/16-bit results are rounded to the nearest level and clipped to the range.
    """
    h, w = image.height, image.width
    new_rgb = np.asarray(new_rgb, dtype=np.float32)
    mask = np.asarray(mask)
    if new_rgb.shape != (h, w, 3):
        raise ValueError(f"new_rgb must be {h}x{w}x3, got {new_rgb.shape}")
    if mask.shape != (h, w):
        raise ValueError(f"mask must be {h}x{w}, got {mask.shape}")
    out = image.pixels.copy()
    sel = mask > 0
    if sel.any():
        nc = image.colour_channels
        orig = image.pixels[sel][:, :nc]  # N x nc as stored
        enc = _encoded(orig, image.linear)  # unclipped
        seen = np.clip(enc if nc == 3 else np.repeat(enc, 3, axis=1), 0.0, 1.0)
        delta = new_rgb[sel] - seen  # N x 3
        if nc == 1:
            delta = (delta @ LUMA)[:, None]
        changed = enc + delta
        dt = image.pixels.dtype
        if dt == np.float32:
            changed = np.maximum(changed, np.minimum(enc, 0.0))  # an edit never makes a pixel negative
            vals = srgb_decode(changed) if image.linear else changed
            unchanged = delta == 0  # keep exact bits where the edit did nothing
            vals = np.where(unchanged, orig, vals).astype(np.float32)
        else:
            top = 255 if dt == np.uint8 else 65535
            vals = np.clip(np.rint(changed * top), 0, top).astype(dt)
        block = out[sel]
        block[:, :nc] = vals
        out[sel] = block
    return dataclasses.replace(image, pixels=out)
