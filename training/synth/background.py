"""Backgrounds (plain, gradient, noise) and compositing of a straight-alpha render over them (numpy only)."""
from __future__ import annotations

import numpy as np

from .variation import Background


def make_background(bg: Background, size: int, seed: int) -> np.ndarray:
    """(size, size, 3) float32 sRGB in [0, 1]. Deterministic in (bg, size, seed)."""
    a = np.asarray(bg.colour_a, np.float32)
    b = np.asarray(bg.colour_b, np.float32)
    if bg.kind == "plain":
        return np.broadcast_to(a, (size, size, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
    if bg.kind == "gradient":
        ang = np.radians(bg.angle)
        t = np.clip(xx * np.cos(ang) + yy * np.sin(ang) + 0.5, 0, 1)[..., None]
        return (a * (1 - t) + b * t).astype(np.float32)
    # noise: smooth value noise, a few octaves upsampled bilinearly from coarse random grids
    rng = np.random.default_rng(seed)
    t = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    cells = max(2, int(bg.noise_scale))
    for _ in range(3):
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        t += amp * _bilinear(grid, size)
        total += amp
        amp *= 0.5
        cells *= 2
    t = (t / total)[..., None]
    return (a * (1 - t) + b * t).astype(np.float32)


def _bilinear(grid: np.ndarray, size: int) -> np.ndarray:
    n = grid.shape[0] - 1
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * n
    i = np.minimum(c.astype(int), n - 1)
    f = c - i
    f = f * f * (3 - 2 * f)
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def composite(render_rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Straight-alpha uint8 RGBA render over an sRGB float background -> uint8 RGBA.

    RGB is the full picture (face over background); alpha keeps the face's coverage (1 on the head,
    0 on the background) so that training can use it as a mask.
    """
    rgba = render_rgba.astype(np.float32) / 255.0
    alpha = rgba[..., 3:4]
    rgb = rgba[..., :3] * alpha + background * (1 - alpha)
    out = np.concatenate([rgb, alpha], axis=-1)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
