"""Register a target crop onto its neutral crop with a similarity (Lucas-Kanade, numpy only).

Photographed pairs (the London set, CFEE) are not pixel-aligned: the head moves a little between
the shots. Cropping the target with the neutral's transform alone leaves that motion in the pair,
and a regression trained on misaligned pairs learns a blur.
So the target is first cropped with the neutral's transform and then registered onto the neutral
over the upper face (forehead, brows, eyes, nose bridge and tip), which an expression moves least.

Conventions: images HxW float; ``W`` is a 3x3 matrix taking FIXED (neutral) crop pixels to MOVING
(target) crop pixels, so the registered target is ``moving(W p)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reggan_plugin.geometry.align import invert_affine
from reggan_plugin.geometry.resample import warp_to_crop
from reggan_plugin.imaging.tone import REC601_LUMA

UPPER_FACE_UNITS = (0.20, 0.12, 0.80, 0.56)  # x0, y0, x1, y1 in canonical crop units


@dataclass(frozen=True)
class Registration:
    matrix: np.ndarray  # 3x3, fixed crop px -> moving crop px
    ncc_before: float  # normalised cross-correlation over the mask, identity warp
    ncc_after: float

    @property
    def scale(self) -> float:
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:2, :2]))))

    @property
    def rotation_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.matrix[1, 0], self.matrix[0, 0])))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an HxW array, edges replicated."""
    if sigma <= 0:
        return img
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    out = img.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return out


def _downsample2(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _sample(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """img(W p) for every pixel p of an image the size of img (bilinear, edges replicated)."""
    return warp_to_crop(img, invert_affine(w[:2]), img.shape[0])


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    wsum = mask.sum()
    am = a - (a * mask).sum() / wsum
    bm = b - (b * mask).sum() / wsum
    den = np.sqrt((mask * am * am).sum() * (mask * bm * bm).sum())
    return float((mask * am * bm).sum() / den) if den > 0 else 0.0


def _lk_level(fixed: np.ndarray, moving: np.ndarray, mask: np.ndarray, w: np.ndarray, iterations: int) -> np.ndarray:
    h, wd = fixed.shape
    gy, gx = np.mgrid[0:h, 0:wd].astype(np.float64)
    cx, cy = (wd - 1) / 2.0, (h - 1) / 2.0
    dx, dy = gx - cx, gy - cy
    f = (fixed - (fixed * mask).sum() / mask.sum()).astype(np.float64)
    f /= np.sqrt((mask * f * f).sum() / mask.sum()) + 1e-8
    for _ in range(iterations):
        warped = _sample(moving, w).astype(np.float64)
        mean = (warped * mask).sum() / mask.sum()
        std = np.sqrt((mask * (warped - mean) ** 2).sum() / mask.sum()) + 1e-8
        m = (warped - mean) / std
        grad_y, grad_x = np.gradient(m)
        # d(moving(W dW p))/d(a, b, tx, ty) for dW(p) = [[1+a, -b], [b, 1+a]] (p - c) + c + t
        jac = np.stack([grad_x * dx + grad_y * dy, -grad_x * dy + grad_y * dx, grad_x, grad_y], axis=-1)
        err = m - f
        hess = np.einsum("hwi,hwj,hw->ij", jac, jac, mask)
        rhs = np.einsum("hwi,hw,hw->i", jac, err, mask)
        delta = -np.linalg.solve(hess + 1e-6 * np.eye(4), rhs)
        a, b, tx, ty = delta
        rot = np.array([[1 + a, -b], [b, 1 + a]])
        dw = np.eye(3)
        dw[:2, :2] = rot
        dw[:2, 2] = np.array([cx, cy]) + np.array([tx, ty]) - rot @ np.array([cx, cy])
        w = w @ dw
        if abs(a) + abs(b) < 1e-5 and abs(tx) + abs(ty) < 1e-3:
            break
    return w


def upper_face_mask(size: int, margin: int) -> np.ndarray:
    """HxW weights (1 inside UPPER_FACE_UNITS of the canonical crop, 0 outside) for a cache crop
    whose central ``size - 2 * margin`` square is the canonical crop."""
    inner = size - 2 * margin
    x0, y0, x1, y1 = UPPER_FACE_UNITS
    p = np.arange(size, dtype=np.float64)
    u = (p + 0.5 - margin) / inner
    mx = ((u >= x0) & (u <= x1)).astype(np.float32)
    my = ((u >= y0) & (u <= y1)).astype(np.float32)
    return my[:, None] * mx[None, :]


def register_pair(fixed_rgb: np.ndarray, moving_rgb: np.ndarray, margin: int, init: np.ndarray | None = None,
                  iterations: int = 30) -> Registration:
    """Similarity W registering ``moving_rgb`` onto ``fixed_rgb`` (both SxSx3 cache crops, any range)
    over the upper face; coarse to fine, starting from ``init`` (3x3, default identity)."""
    size = fixed_rgb.shape[0]
    fixed = gaussian_blur(fixed_rgb.astype(np.float32) @ REC601_LUMA, 1.0)
    moving = gaussian_blur(moving_rgb.astype(np.float32) @ REC601_LUMA, 1.0)
    mask = upper_face_mask(size, margin)
    ident = np.eye(3)
    ncc_before = _ncc(fixed, moving, mask)
    pyramid = [(fixed, moving, mask)]
    while pyramid[-1][0].shape[0] >= 64:
        f, m, k = pyramid[-1]
        pyramid.append((_downsample2(f), _downsample2(m), _downsample2(k)))
    # fine px = 2 * coarse px + 0.5 (pixel centres at integers)
    up = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
    w = ident if init is None else np.asarray(init, dtype=np.float64)
    for _ in range(len(pyramid) - 1):
        w = np.linalg.inv(up) @ w @ up
    for level in reversed(range(len(pyramid))):
        f, m, k = pyramid[level]
        w = _lk_level(f, m, k, w, iterations)
        if level:
            w = up @ w @ np.linalg.inv(up)
    ncc_after = _ncc(fixed, _sample(moving, w), mask)
    return Registration(w, ncc_before, ncc_after)
