"""Full-reference image metrics (numpy only): L1, PSNR, SSIM.

Images are HxWxC (or HxW) arrays in [0, 1] (float) or uint8 (divided by 255 here); both of a pair
have one shape. Every function returns one float for one pair.

SSIM is Wang, Bovik, Sheikh & Simoncelli (2004), "Image quality assessment: from error visibility
to structural similarity", with the paper's constants: an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, dynamic range L = 1, computed on each colour channel over the 'valid' part of
the image (no padding) and averaged over the channels and the pixels. That is what
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)`` computes, written here in numpy so
the evaluation needs no scikit-image.
"""
from __future__ import annotations

import numpy as np

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def as_unit_float(img: np.ndarray) -> np.ndarray:
    """uint8 -> /255, anything else -> float64 as is; HxW -> HxWx1."""
    arr = np.asarray(img)
    out = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    return out[..., None] if out.ndim == 2 else out


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_unit_float(a), as_unit_float(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    return x, y


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, values in [0, 1]."""
    x, y = _pair(a, b)
    return float(np.abs(x - y).mean())


def psnr(a: np.ndarray, b: np.ndarray, max_db: float = 100.0) -> float:
    """Peak signal-to-noise ratio in dB for a peak of 1; identical images give ``max_db``."""
    x, y = _pair(a, b)
    mse = float(((x - y) ** 2).mean())
    if mse <= 10.0 ** (-max_db / 10.0):
        return max_db
    return float(10.0 * np.log10(1.0 / mse))


def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _filter_valid(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable correlation of HxWxC with the 1-D window ``w`` along H and W, 'valid' output."""
    k = len(w)
    h, wd = img.shape[:2]
    rows = sum(w[i] * img[i : h - k + 1 + i] for i in range(k))
    return sum(w[i] * rows[:, i : wd - k + 1 + i] for i in range(k))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over channels and pixels (see the module docstring). Images need >= 11 px a side."""
    x, y = _pair(a, b)
    if min(x.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least {2 * SSIM_RADIUS + 1} px a side, got {x.shape[:2]}")
    w = gaussian_window()
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mx, my = _filter_valid(x, w), _filter_valid(y, w)
    sxx = _filter_valid(x * x, w) - mx * mx
    syy = _filter_valid(y * y, w) - my * my
    sxy = _filter_valid(x * y, w) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float((num / den).mean())
