"""Cut aligned, paired crops with the runtime's own alignment code (``reggan_plugin.geometry.align``).

Each pair is cropped with ONE transform, the neutral's: its 5 landmarks fitted to the crop's template
(``CANONICAL_5PT``) by ``similarity_from_points`` (Umeyama),
exactly as the runtime aligns a face before inference.
Crops are cut ``margin`` pixels wider on every side than the canonical S x S crop, so augmentation
can jitter the geometry without running off the edge; the central S x S square IS the runtime crop.

For pairs that are not pixel-aligned (photos: the head moves between shots) the target gets the
neutral's transform followed by a small registration (``register.py``) onto the neutral's upper
face; pairs the registration cannot explain with a small similarity are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from reggan_plugin.errors import InputError
from reggan_plugin.geometry.align import apply_affine, crop_matrix_from_landmarks, similarity_from_points
from reggan_plugin.geometry.resample import warp_to_crop

from .register import Registration, register_pair

REGISTER_SIZE = 128  # registration runs on canonical crops of this size, whatever S is
MAX_SCALE_CHANGE = 0.15
MAX_ROTATION_DEG = 12.0
MAX_SHIFT_UNITS = 0.12


@dataclass(frozen=True)
class CropGeometry:
    size: int  # S, the canonical crop (the model's input size)
    margin_fraction: float = 0.125

    @property
    def margin(self) -> int:
        return int(round(self.size * self.margin_fraction))

    @property
    def total(self) -> int:
        return self.size + 2 * self.margin

    def matrix(self, points5: np.ndarray) -> np.ndarray:
        """3x3 frame px -> cache crop px: the runtime's crop matrix, shifted by the margin."""
        m = np.vstack([crop_matrix_from_landmarks(points5, self.size), [0.0, 0.0, 1.0]])
        m[:2, 2] += self.margin
        return m

    def px_to_units(self) -> np.ndarray:
        """3x3 cache px -> the crop's units (0..1 edge to edge of its central S x S crop): registration is measured
        there."""
        s, m = float(self.size), float(self.margin)
        return np.array([[1 / s, 0.0, (0.5 - m) / s], [0.0, 1 / s, (0.5 - m) / s], [0.0, 0.0, 1.0]])


def load_rgb(path) -> np.ndarray:
    """An image file -> HxWx3 uint8 RGB (alpha dropped: the renders are composited over a background)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(path, f"unreadable image: {exc}") from None


def _warp(rgb: np.ndarray, m3: np.ndarray, size: int) -> np.ndarray:
    return warp_to_crop(rgb, m3[:2], size)


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def crop_pair(
    neutral_rgb: np.ndarray,
    target_rgb: np.ndarray,
    neutral_pts: np.ndarray,
    geometry: CropGeometry,
    pixel_aligned: bool,
    target_pts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, Registration | None]:
    """(neutral crop, target crop) as total x total x 3 uint8, and the registration used (or None).

    Raises ValueError when a photographed pair cannot be registered with a small similarity.
    """
    m_n = geometry.matrix(neutral_pts)
    neutral = _warp(neutral_rgb, m_n, geometry.total)
    if pixel_aligned:
        return _to_u8(neutral), _to_u8(_warp(target_rgb, m_n, geometry.total)), None
    work = CropGeometry(REGISTER_SIZE, geometry.margin_fraction)  # the face crop
    mw = work.matrix(neutral_pts)
    init = None
    if target_pts is not None:  # eyes and nose tip: the points a smile moves least
        src = apply_affine(mw[:2], neutral_pts[:3])
        dst = apply_affine(mw[:2], np.asarray(target_pts, dtype=np.float64)[:3])
        init = np.vstack([similarity_from_points(src, dst), [0.0, 0.0, 1.0]])
    reg = register_pair(_warp(neutral_rgb, mw, work.total), _warp(target_rgb, mw, work.total), work.margin, init)
    w_units = _in_units(reg, geometry)
    shift = np.abs(w_units[:2, 2] + w_units[:2, :2] @ [0.5, 0.5] - [0.5, 0.5]).max()
    if (abs(reg.scale - 1) > MAX_SCALE_CHANGE or abs(reg.rotation_deg) > MAX_ROTATION_DEG
            or shift > MAX_SHIFT_UNITS or reg.ncc_after < reg.ncc_before - 0.02):
        raise ValueError(f"registration failed (scale {reg.scale:.3f}, rotation {reg.rotation_deg:.1f} deg, "
                         f"shift {shift:.3f}, ncc {reg.ncc_before:.3f} -> {reg.ncc_after:.3f})")
    m_t = _registered(m_n, w_units, geometry)
    return _to_u8(neutral), _to_u8(_warp(target_rgb, m_t, geometry.total)), reg


def _in_units(reg: Registration, geometry: CropGeometry) -> np.ndarray:
    """3x3: the registration ``reg``, found on the face crop of ``REGISTER_SIZE`` px, in crop units."""
    k_work = CropGeometry(REGISTER_SIZE, geometry.margin_fraction).px_to_units()
    return k_work @ reg.matrix @ np.linalg.inv(k_work)


def _registered(m_n: np.ndarray, w_units: np.ndarray, geometry: CropGeometry) -> np.ndarray:
    """3x3 target frame px -> neutral-registered cache px: the neutral's matrix ``m_n`` and the registration
    ``w_units`` (crop units), in ``geometry``'s cache crop."""
    k_out = geometry.px_to_units()
    w_out = np.linalg.inv(k_out) @ w_units @ k_out
    return np.linalg.inv(w_out) @ m_n


def registered_target_matrix(neutral_pts: np.ndarray, geometry: CropGeometry, reg: Registration) -> np.ndarray:
    """3x3 target frame px -> neutral-registered cache px, as `crop_pair` cut the target with ``reg``."""
    return _registered(geometry.matrix(neutral_pts), _in_units(reg, geometry), geometry)
