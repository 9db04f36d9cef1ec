"""Test pictures made on the fly: a smooth synthetic 'face' on a textured background."""
from __future__ import annotations

import numpy as np


def synthetic_frame(height: int = 120, width: int = 160, channels: int = 4, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """HxWxC picture as stored: a shaded ellipse with eyes and a mouth on a noisy gradient."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy, rx, ry = width / 2, height / 2, width / 5, height / 3
    base = np.stack([x / width, y / height, 0.5 + 0.2 * np.sin(x / 7)], -1) * 0.6 + 0.1
    base += rng.uniform(0, 0.05, base.shape)
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    base[inside] = [0.85, 0.65, 0.55]
    for ex in (cx - rx / 2.5, cx + rx / 2.5):
        base[(x - ex) ** 2 + (y - (cy - ry / 4)) ** 2 < (rx / 8) ** 2] = [0.1, 0.1, 0.15]
    base[(np.abs(x - cx) < rx / 2.5) & (np.abs(y - (cy + ry / 2)) < ry / 16)] = [0.6, 0.2, 0.2]
    base = np.clip(base, 0, 1)
    if channels in (2, 4):
        alpha = np.clip(0.5 + 0.5 * np.cos(x / 13), 0, 1)[..., None]
    colour = base if channels >= 3 else (base @ np.array([0.2126, 0.7152, 0.0722], np.float32))[..., None]
    pixels = np.concatenate([colour, alpha], -1) if channels in (2, 4) else colour
    if dtype == np.float32:
        return (pixels ** 2.2).astype(np.float32)  # a linear-light picture, as EXR holds
    top = np.iinfo(dtype).max
    return np.rint(pixels * top).astype(dtype)


def face_box(height: int = 120, width: int = 160) -> tuple[float, float, float, float]:
    """The synthetic face's box (x, y, w, h) as used with --region."""
    rx, ry = width / 5, height / 3
    return (width / 2 - rx, height / 2 - ry, 2 * rx, 2 * ry)
