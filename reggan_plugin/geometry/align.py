"""Face alignment geometry: canonical crop template and similarity fits (pure numpy; the warps that use them:
`reggan_plugin.geometry.resample`).

Conventions:
- Points are (x, y) in pixels with pixel CENTRES at integer coordinates: pixel (0, 0) spans
  [-0.5, 0.5] x [-0.5, 0.5].
- Crop units: [0, 1] from the crop's left/top EDGE to its right/bottom EDGE, so crop unit ``u`` is crop
  pixel ``u * size - 0.5`` (see :func:`units_to_crop_px`).
- A ``Matrix`` is a (2, 3) float64 affine map taking frame pixels to crop pixels:
  ``crop = M[:, :2] @ frame + M[:, 2]``. Alignment matrices are similarities (rotation, uniform
  scale, translation, no reflection).
- Images are HxWxC float32 (any C), values not range-limited here.

The canonical crop: the ArcFace 112x112 5-point template (Deng et al., insightface) divided by 112,
shrunk about the crop centre by ``TEMPLATE_SCALE`` = 0.75 (the ArcFace crop cuts the forehead and
chin) and moved up by ``TEMPLATE_SHIFT_Y`` = 0.08 so that brows-to-chin sits near the middle. Fitting
a standard 68-point mean face (OpenFace's template) to these five points puts the brows at y ~ 0.30,
the chin at y ~ 0.85 and the cheeks/jaw at x ~ 0.225 .. 0.78: a margin of ~0.15 below the chin and
the forehead up to ~0.12 stay in the crop, room for the blend mask to fall to 0 before the border.
"""
from __future__ import annotations

from typing import TypeAlias

import numpy as np

from ..arrays import Array, Float64Array
from ..tuning import FULL_LARGE_FACE_SCALE, LARGE_FACE_SCALE, TEMPLATE_SCALE, TEMPLATE_SHIFT_Y

Matrix: TypeAlias = Float64Array
"""(2, 3) float64 affine map, frame pixels -> crop pixels."""
Landmarks: TypeAlias = Float64Array
"""(N, 2) float (x, y) pixel coordinates, centres at integers."""
Box: TypeAlias = tuple[float, float, float, float]
"""(x, y, w, h) in pixels: left/top edge and size."""

# ArcFace (insightface) 112x112 template: left eye, right eye, nose tip, left/right mouth corner.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
CANONICAL_5PT: Float64Array = 0.5 + TEMPLATE_SCALE * (ARCFACE_112 / 112.0 - 0.5) - np.array([0.0, TEMPLATE_SHIFT_Y])
"""(5, 2) crop units: left eye ~(0.381, 0.391), right eye ~(0.617, 0.390), nose ~(0.500, 0.525),
mouth corners ~(0.403, 0.664), ~(0.599, 0.662). "Left" = image left."""
CANONICAL_5PT.setflags(write=False)


CANONICAL_BOX: tuple[float, float, float, float] = (0.225, 0.30, 0.55, 0.555)
"""(x, y, w, h) crop units of a typical detector box (brows to chin, cheek to cheek) in this crop,
measured by fitting a 68-point mean face to ``CANONICAL_5PT`` (brows y 0.305, chin y 0.854,
jaw x 0.225 .. 0.782)."""

_EPS = 1e-12


def units_to_crop_px(units: Array, size: int) -> Float64Array:
    """Crop units ([0, 1] edge to edge) -> crop pixel coordinates (centres at integers)."""
    return np.asarray(units, dtype=np.float64) * size - 0.5


def similarity_from_points(src: Landmarks, dst: Landmarks) -> Matrix:
    """Least-squares similarity (Umeyama 1991) mapping ``src`` onto ``dst``; (2, 3) float64.

    Minimises sum |s R src_i + t - dst_i|^2 over rotation R (no reflection), scale s > 0 and t.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks contain NaN or inf")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s < _EPS:
        raise ValueError("source points are all at one place; no similarity fits")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[-1] = -1.0
    rot = u @ np.diag(e) @ vt
    scale = float((sig * e).sum() / var_s)
    if scale <= 1e-9:
        raise ValueError("landmarks fit no rotation and scale (mirrored left/right, or collinear?)")
    trans = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, trans[:, None]])


def invert_affine(m: Matrix) -> Matrix:
    """Inverse of a (2, 3) affine map. The 2x2 inverse is written out: np.linalg.inv goes through LAPACK and
    took ~4 ms a call here while the BLAS threads were busy (a frame calls this several times)."""
    m = np.asarray(m, dtype=np.float64)
    (a, b), (c, d) = m[:, :2]
    det = a * d - b * c
    if det == 0 or not np.isfinite(det):
        raise np.linalg.LinAlgError(f"affine map {m.tolist()} is not invertible")
    a_inv = np.array([[d, -b], [-c, a]]) / det
    return np.hstack([a_inv, (-a_inv @ m[:, 2])[:, None]])


def apply_affine(m: Matrix, points: Array) -> Float64Array:
    """Map (N, 2) points through a (2, 3) affine map."""
    pts = np.asarray(points, dtype=np.float64)
    out: Float64Array = pts @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]
    return out


def shift_to_region(m: Matrix, rows: slice, cols: slice) -> Matrix:
    """Frame px -> crop px map re-based on a region whose top-left pixel is (cols.start, rows.start)."""
    m = np.array(m, dtype=np.float64)
    m[:, 2] += m[:, 0] * cols.start + m[:, 1] * rows.start
    return m


def matrix_scale(m: Matrix) -> float:
    """Linear scale factor of an affine map (sqrt |det|): crop pixels per frame pixel."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2]))))


def large_face_share(m: Matrix) -> float:
    """How large a face a crop map ``m`` shows: 0 at ``LARGE_FACE_SCALE`` crop px per frame px and above, 1 at
    ``FULL_LARGE_FACE_SCALE`` and below, linear in between."""
    scale = matrix_scale(m)
    return float(np.clip((LARGE_FACE_SCALE - scale) / (LARGE_FACE_SCALE - FULL_LARGE_FACE_SCALE), 0.0, 1.0))


def crop_matrix_from_landmarks(points5: Landmarks, size: int, template: Array = CANONICAL_5PT) -> Matrix:
    """Frame px -> crop px similarity fitting five landmarks (order of ``CANONICAL_5PT``) to a crop template (crop
    units; `crop_template`)."""
    return similarity_from_points(points5, units_to_crop_px(template, size))


def crop_matrix_from_box(box: Box, size: int) -> Matrix:
    """Frame px -> crop px map (no rotation) putting a detector box onto ``CANONICAL_BOX * size``.

    The scale is uniform (a similarity): the geometric mean of the x and y scales, so a box whose
    aspect differs from the canonical one is fitted by area and centred.
    """
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0 and np.isfinite([x, y, w, h]).all()):
        raise ValueError(f"bad face box {box}: width and height must be positive and finite")
    bx, by, bw, bh = CANONICAL_BOX
    scale = size * float(np.sqrt((bw * bh) / (w * h)))
    # Box centre in frame px and in crop px; the two centres coincide after the map.
    cx, cy = x + w / 2.0, y + h / 2.0
    ccx, ccy = units_to_crop_px(np.array([bx + bw / 2.0, by + bh / 2.0]), size)
    return np.array([[scale, 0.0, ccx - scale * cx], [0.0, scale, ccy - scale * cy]])
