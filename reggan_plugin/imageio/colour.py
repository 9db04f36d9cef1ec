"""Stored pixels <-> the network's colour: sRGB curves, `to_network_rgb`, and `compose_output` (an edit written back).

A frame with a ``colour`` (its own colour space, from OpenColorIO: ``imageio.ocio``) goes to the network through
scene-linear Rec.709 and the sRGB curve, and its edit comes back the same way as a change in the frame's own space.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from reggan_plugin.imageio.image import ImageData
from reggan_plugin.imaging.tone import REC709_LUMA

from ..arrays import Array, BoolArray, FloatArray


def srgb_encode(linear: Array) -> FloatArray:
    """Scene-linear -> sRGB-encoded (IEC 61966-2-1 piecewise curve), not clipped: values above 1
    follow the same power law, negatives are mirrored."""
    x = np.asarray(linear, dtype=np.float32)
    a = np.abs(x)
    enc = np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1.0 / 2.4, dtype=np.float32) - 0.055)
    encoded: FloatArray = (np.sign(x) * enc).astype(np.float32)
    return encoded


def srgb_decode(encoded: Array) -> FloatArray:
    """Inverse of ``srgb_encode``."""
    e = np.asarray(encoded, dtype=np.float32)
    a = np.abs(e)
    lin = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4, dtype=np.float32))
    decoded: FloatArray = (np.sign(e) * lin).astype(np.float32)
    return decoded


def _encoded(pixels: Array, linear: bool) -> Array:
    """Colour channels of stored pixels (N x C or HxWxC) -> float32 sRGB-encoded, unclipped."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535)
    v = np.nan_to_num(pixels.astype(np.float32, copy=False), nan=0.0, posinf=65504.0, neginf=-65504.0)
    return srgb_encode(v) if linear else v


def _non_finite(pixels: Array) -> BoolArray:
    """N x C stored pixels -> N bools: a colour channel is NaN or inf."""
    bad: BoolArray = ~np.isfinite(pixels).all(axis=-1)
    return bad


def non_finite_pixels(image: ImageData) -> int:
    """How many pixels of a float picture hold NaN or inf in a colour channel (0 for 8/16-bit ones). The network
    reads them as 0 (NaN, -inf) or 1 (inf); `write_edit` writes them back as they were."""
    if image.pixels.dtype != np.float32:
        return 0
    return int(np.count_nonzero(_non_finite(image.pixels[..., : image.colour_channels])))


def _stored_rgb(pixels: Array) -> Array:
    """Stored pixels (..., C) -> (..., 3) float32 in the file's own encoding: 8/16-bit values scaled to [0, 1],
    float ones made finite, grey replicated, alpha dropped."""
    nc = 3 if pixels.shape[-1] >= 3 else 1
    if pixels.dtype in (np.uint8, np.uint16):
        top = np.float32(255 if pixels.dtype == np.uint8 else 65535)
        v = pixels[..., :nc].astype(np.float32) / top
    else:
        v = np.nan_to_num(pixels[..., :nc].astype(np.float32), nan=0.0, posinf=65504.0, neginf=-65504.0)
    return np.ascontiguousarray(np.repeat(v, 3, axis=-1) if nc == 1 else v)


def _managed_encoded(image: ImageData) -> Array:
    """A frame with a colour space -> HxWx3 float32 sRGB-encoded Rec.709, unclipped."""
    assert image.colour is not None
    return srgb_encode(image.colour.to_linear(_stored_rgb(image.pixels)))


def detector_rgb(image: ImageData) -> Array:
    """What the face detector reads: 8-bit sRGB pixels as they are (no float copy of the frame), anything
    else as network colour (the detector quantises it to 8 bits the same way)."""
    if image.pixels.dtype == np.uint8 and image.channels >= 3 and not image.linear and image.colour is None:
        return image.pixels
    return to_network_rgb(image)


def to_network_rgb(image: ImageData) -> Array:
    """HxWx3 float32 sRGB-encoded in [0, 1]: grey replicated, linear data encoded, alpha dropped, clipped; a frame
    with a colour space is converted from it first."""
    if image.colour is not None:
        return np.clip(_managed_encoded(image), 0.0, 1.0)
    nc = image.colour_channels
    out = np.empty((image.height, image.width, 3), np.float32)
    for c in range(3):  # channel by channel: converting HxWx3 of HxWx4 at once walks three values at a time
        np.clip(_encoded(image.pixels[..., min(c, nc - 1)], image.linear), 0.0, 1.0, out=out[..., c])
    return out


def compose_output(image: ImageData, new_rgb: Array, mask: Array) -> ImageData:
    """Write an edited picture into a copy of ``image``: same dtype, channels, format and info.

    new_rgb: HxWx3 float32 sRGB [0, 1] (the edited ``to_network_rgb(image)``); mask: HxW float32,
    only pixels with mask > 0 are written. Every pixel with mask == 0 is bit-identical to the input,
    and alpha is never touched.

    The change is applied as a delta in sRGB-encoded space to the UNCLIPPED stored values: for EXR a
    highlight above 1.0 (which the network saw clipped to 1) keeps its value plus the edit instead of
    being clamped; the result is decoded back to linear. Grey images receive the Rec. 709 luminance of
    the change. 8/16-bit results are rounded to the nearest level and clipped to the range.

    A float pixel holding NaN or inf in a colour channel (a render's bad sample) is written as it was: the network
    read it as 0 (NaN, -inf) or 1 (inf), and no edit is made of a value that is no colour.

    A frame with a colour space (``image.colour``) gets the change converted into that space: the stored value
    plus (edited - unedited), both taken back from scene-linear Rec.709, so a pixel the edit leaves alone keeps
    its bits and conversion round-off never reaches the frame.
    """
    out = image.pixels.copy()
    write_edit(out, image, new_rgb, mask)
    return dataclasses.replace(image, pixels=out)


def write_edit(out: Array, image: ImageData, new_rgb: Array, mask: Array) -> None:
    """`compose_output` into ``out`` (``image.pixels``' shape and dtype, a copy of them or a view into one)."""
    h, w = image.height, image.width
    new_rgb = np.asarray(new_rgb, dtype=np.float32)
    mask = np.asarray(mask)
    if new_rgb.shape != (h, w, 3):
        raise ValueError(f"new_rgb must be {h}x{w}x3, got {new_rgb.shape}")
    if mask.shape != (h, w):
        raise ValueError(f"mask must be {h}x{w}, got {mask.shape}")
    sel = mask > 0
    if not sel.any():
        return
    if image.colour is not None:
        _write_managed(out, image, new_rgb, sel)
        return
    nc, pixels = image.colour_channels, image.pixels
    # channel by channel over the selected pixels: numpy runs N x 3 arithmetic three values at a time
    enc = [_encoded(pixels[..., c][sel], image.linear) for c in range(nc)]  # unclipped
    kept = _non_finite(pixels[sel][:, :nc]) if pixels.dtype == np.float32 else None
    new = [new_rgb[..., c][sel] for c in range(3)]
    if nc == 1:
        seen = np.clip(enc[0], 0.0, 1.0)
        deltas = [float(REC709_LUMA[0]) * (new[0] - seen) + float(REC709_LUMA[1]) * (new[1] - seen)
                  + float(REC709_LUMA[2]) * (new[2] - seen)]
    else:
        deltas = [new[c] - np.clip(enc[c], 0.0, 1.0) for c in range(3)]
    dt = image.pixels.dtype
    for c in range(nc):
        changed = enc[c] + deltas[c]
        if dt == np.float32:
            changed = np.maximum(changed, np.minimum(enc[c], 0.0))  # an edit never makes a pixel negative
            vals = srgb_decode(changed) if image.linear else changed
            # exact bits where the edit did nothing, and a NaN/inf pixel as it was (the network saw it as 0 or 1)
            vals = np.where((deltas[c] == 0) | kept, pixels[..., c][sel], vals)
        else:
            top = 255 if dt == np.uint8 else 65535
            vals = np.clip(np.rint(changed * top), 0, top)
        out[..., c][sel] = vals.astype(dt)


def _write_managed(out: Array, image: ImageData, new_rgb: Array, sel: Array) -> None:
    """`write_edit` for a frame with a colour space: the change made in network colour, carried into the frame's."""
    colour = image.colour
    assert colour is not None
    nc, dt = image.colour_channels, image.pixels.dtype
    original = image.pixels[sel][:, :nc]  # N x nc as stored
    stored = _stored_rgb(original)  # N x 3 in the frame's encoding
    enc = srgb_encode(colour.to_linear(stored))  # unclipped network colour
    delta: Array = new_rgb[sel] - np.clip(enc, 0.0, 1.0)
    changed = np.maximum(enc + delta, np.minimum(enc, 0.0))  # an edit never makes a pixel negative
    edited = np.any(delta != 0, axis=1)
    if dt == np.float32:
        edited &= ~_non_finite(original)  # a NaN/inf pixel is written as it was
    moved = colour.from_linear(srgb_decode(changed)) - colour.from_linear(srgb_decode(enc))
    moved[~edited] = 0.0
    if nc == 1:
        moved = moved @ REC709_LUMA[:, None]
    result = stored[:, :nc] + moved
    if dt == np.float32:
        vals = np.where(edited[:, None], result, original)  # exact bits where the edit did nothing
    else:
        top = 255 if dt == np.uint8 else 65535
        vals = np.clip(np.rint(result * top), 0, top)
    for c in range(nc):
        out[..., c][sel] = vals[:, c].astype(dt)
