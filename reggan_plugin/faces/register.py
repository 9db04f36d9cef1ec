"""Detected landmarks registered to the face the model's crops expect.

The detector's points (BlazeFace's keypoints through ``keypoint_map``) are where the renders' own landmarks lie on
average for keypoints like these; a face unlike the average (turned away, another build) can still be 2.5-3 px off in
a 128 px crop, enough to cost a map fitted on crops aligned on true landmarks 1-3 dB. So the crop the points give
is turned (``ANGLES``), moved (up to ``REACH`` px) and scaled (``SCALES``) to best match a template, the mean
Laplacian-of-Gaussian of the luma of neutral training crops aligned on their true landmarks
(``models/align_template.npy``, made by ``tools/make_align_template.py``). Normalised cross-correlation of edges is
blind to skin tone, exposure and render look; the template is the average face, so the match settles on where
faces' eyes, nose, mouth and brows are, not on one person's. The five points move together, so the eyes may leave
their detected places a little to bring the nose and mouth nearer (docs/DETECTION.md). On renders the crops stay
as near the true ones on average as the mapped points' (docs/DETECTION.md), and the edit under other tools' boxes
gains: on three held-out sets the five boxes lose 0.09-0.16 dB on average registered, 0.21-0.37 not, the worst
single face 1.6 dB against 4.1 (docs/experiments/MODEL_NOTES.md).

The turn matters most: on a head turned away from the camera the eyes tilt the crop by a few degrees, and a map fitted
on upright crops lost up to 5 dB on such a face. It is searched first, at the detected scale, from
upright outwards while the match still rises (``_climb``: on 336 renders of ``ict160`` and ``heldout_hd`` the same
turns as matching all of ``ANGLES``, at 3-4 matches instead of 7 for a nearly upright face), and kept only where the
match peaks clearly (``ANGLE_MIN_SCORE``): a face with little edge structure (a beard, soft light) matches every
turn about equally. The scale found is then multiplied by ``SCALE_BIAS``: on the training renders the match settles
with the face 1.4% larger than the true crop has it (the template is an average, blurrier than any face).

Where the best match lies at the edge of the search, or matches poorly (a picture the template does not describe),
the points are returned as they were.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from reggan_plugin.geometry.align import apply_affine, crop_matrix_from_landmarks, invert_affine, matrix_scale
from reggan_plugin.geometry.resample import crop_roi, prefilter, warp_to_crop
from reggan_plugin.imaging.filters import shifted
from reggan_plugin.imaging.tone import luma

from ..arrays import Array, Float64Array, FloatArray

TEMPLATE_PATH = Path(__file__).resolve().parent / "models" / "align_template.npy"
SIZE = 128  # crop side the template is made at (the search's units: px of this crop)
REACH = 4  # largest shift searched, crop px each way
SCALES = (0.97, 1.0, 1.03)  # zooms about the crop centre searched (and between them)
ANGLES = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)  # turns about the crop centre searched (and between), degrees
ANGLE_MIN_SCORE = 0.4  # the crop is turned only where the best turn's correlation reaches this
SCALE_BIAS = 0.986  # the scale found is multiplied by this (the module docstring)
SIGMA = 1.5  # Gaussian of the Laplacian-of-Gaussian, crop px
MIN_SCORE = 0.2  # normalised cross-correlation below which the match is not trusted


def _blurred(plane: Array) -> FloatArray:
    """A Gaussian blur (SIGMA, edges repeated) of an HxW plane, tap by tap along each axis: a blur matrix product
    would be a BLAS call, and those leave OpenBLAS's threads spinning (``imaging.tone.luma``)."""
    radius = int(np.ceil(3 * SIGMA))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / SIGMA) ** 2).astype(np.float32)
    taps /= taps.sum()
    out = np.asarray(plane, np.float32)
    for axis in (0, 1):
        out = sum(w * tap for w, tap in zip(taps, shifted(out, axis, radius), strict=True))
    return out


def edges(rgb: Array) -> FloatArray:
    """Laplacian of Gaussian of the luma of a square HxHx3 crop (float32): what the template and a crop are compared
    on."""
    blurred = _blurred(luma(rgb))
    p = np.pad(blurred, 1, mode="edge")
    laplacian: FloatArray = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * blurred
    return laplacian


@cache
def load_template() -> FloatArray:
    """SIZE x SIZE float32: zero outside the face, zero mean and unit norm inside it."""
    template: FloatArray = np.load(TEMPLATE_PATH).astype(np.float32)
    return template


@cache
def _support() -> FloatArray:
    """1 where the template describes the face, 0 elsewhere (float32)."""
    support: FloatArray = (load_template() != 0).astype(np.float32)
    return support


def _zoom(scale: float, shift: tuple[float, float] = (0.0, 0.0), angle: float = 0.0) -> Float64Array:
    """3x3 crop px -> crop px: zoom by ``scale`` and turn by ``angle`` degrees about the crop centre, then move by
    ``shift``."""
    a, b = scale * np.cos(np.radians(angle)), scale * np.sin(np.radians(angle))
    h = SIZE / 2.0
    return np.array([[a, -b, h - a * h + b * h + shift[0]], [b, a, h - b * h - a * h + shift[1]], [0.0, 0.0, 1.0]])


def _vertex(a: float, b: float, c: float) -> float:
    """Where a parabola through (-1, a), (0, b), (1, c) peaks, in [-0.5, 0.5] when b is the largest; 0 if flat."""
    den = a - 2.0 * b + c
    return 0.0 if den >= 0 else 0.5 * (a - c) / den


def _best(grid: tuple[float, ...], peaks: list[float]) -> tuple[float, bool]:
    """The best of ``grid`` (between grid points where a neighbour on each side tells), and whether it is inside it."""
    k = int(np.argmax(peaks))
    if not 0 < k < len(grid) - 1:
        return grid[k], False
    return grid[k] + _vertex(peaks[k - 1], peaks[k], peaks[k + 1]) * (grid[k + 1] - grid[k - 1]) / 2.0, True


def _climb(grid: tuple[float, ...], score: Callable[[float], float]) -> tuple[float, bool, float]:
    """``_best`` of ``grid``, scored from its middle outwards only while the best lies at the edge of what has been
    scored (the match peaks once over the turns searched: an upright face's far turns need not be matched).
    Returns the best, whether it is inside the grid, and the highest score."""
    peaks = {len(grid) // 2: score(grid[len(grid) // 2])}
    while True:
        k = max(peaks, key=peaks.__getitem__)
        new = [i for i in (k - 1, k + 1) if 0 <= i < len(grid) and i not in peaks]
        if not new:
            break
        peaks.update((i, score(grid[i])) for i in new)
    lo, hi = min(peaks), max(peaks)
    best, inside = _best(grid[lo : hi + 1], [peaks[i] for i in range(lo, hi + 1)])
    return best, inside, max(peaks.values())


def _region(image: Array, m: Float64Array) -> tuple[Array, Float64Array]:
    """The part of the frame every searched crop reads, mean-pooled once where the face is large (so no search
    step resamples the whole face again), and ``m`` (3x3) as a map from that part's pixels."""
    turn = np.radians(max(abs(a) for a in ANGLES))
    margin = REACH + int(np.ceil((SIZE / 2.0 + REACH) * (np.cos(turn) + np.sin(turn) - 1.0)))  # turned crops' corners
    widest = _zoom(min(SCALES)) @ m
    widest[:2, 2] += margin
    out = (SIZE + 2 * margin, SIZE + 2 * margin)
    ys, xs = crop_roi(widest[:2], out[0], (image.shape[0], image.shape[1]))
    pad = int(np.ceil(2.0 / matrix_scale(m[:2]))) + 2
    y0, x0 = max(ys.start - pad, 0), max(xs.start - pad, 0)
    part = image[y0 : min(ys.stop + pad, image.shape[0]), x0 : min(xs.stop + pad, image.shape[1])]
    origin = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    pooled, reduced = prefilter(part, (widest @ origin)[:2], out)
    # pooled px -> part px (invert_affine: np.linalg.inv goes through LAPACK, whose threads then spin, ``imaging.tone.luma``)
    to_part = np.vstack([invert_affine((widest @ origin)[:2]), [0.0, 0.0, 1.0]]) @ np.vstack([reduced, [0.0, 0.0, 1.0]])
    return pooled, m @ origin @ to_part


def _scores(image: Array, m: Float64Array, scale: float, angle: float, template: Array) -> Array:
    """(2 REACH + 1)^2 normalised cross-correlations of the template with the crop of ``m`` zoomed by ``scale``,
    turned by ``angle`` and moved by (dx, dy) = (column - REACH, row - REACH) crop px."""
    zoomed = _zoom(scale, angle=angle) @ m
    zoomed[:2, 2] += REACH  # a crop REACH px wider on every side, so every shift reads real pixels
    f = edges(warp_to_crop(image, zoomed[:2], SIZE + 2 * REACH))
    num = np.einsum("ijyx,yx->ij", sliding_window_view(f, (SIZE, SIZE)), template)  # [row, column, y, x] views
    energy = np.einsum("ijyx,yx->ij", sliding_window_view(f * f, (SIZE, SIZE)), _support())
    scores: Array = num / np.sqrt(np.maximum(energy, 1e-12))
    return scores


def register_landmarks(rgb: Array, points: Array) -> Array:
    """``points`` (5, 2 frame px, ``CANONICAL_5PT`` order) moved so that the crop they give matches the template.

    rgb: HxWx3 (or 4), any dtype and range. Returns new points (the old ones moved by one similarity), or
    ``points`` itself where the match is poor or at the edge of the search. Turn, shift and scale are found to a
    fraction of a step (parabolas through the best and its neighbours), so a face moving slowly through a shot
    gets points that move smoothly too."""
    tpl = load_template()
    m = np.vstack([crop_matrix_from_landmarks(points, SIZE), [0.0, 0.0, 1.0]])
    image, local = _region(np.asarray(rgb)[..., :3], m)  # any range: the correlation is normalised
    matched: dict[tuple[float, float], Array] = {}  # (scale, angle) -> scores: the steps below meet again

    def match(scale: float, angle: float) -> Array:
        if (scale, angle) not in matched:
            matched[scale, angle] = _scores(image, local, scale, angle, tpl)
        return matched[scale, angle]

    angle, inside, peak = _climb(ANGLES, lambda turn: float(match(1.0, turn).max()))
    if not inside or peak < ANGLE_MIN_SCORE:
        angle = 0.0
    scale, _ = _best(SCALES, [float(match(scale, angle).max()) for scale in SCALES])
    scores = match(scale, angle)
    iy, ix = (int(v) for v in np.unravel_index(int(np.argmax(scores)), scores.shape))
    if scores[iy, ix] < MIN_SCORE or iy in (0, 2 * REACH) or ix in (0, 2 * REACH):
        return points
    dx = float(ix) - REACH + _vertex(scores[iy, ix - 1], scores[iy, ix], scores[iy, ix + 1])
    dy = float(iy) - REACH + _vertex(scores[iy - 1, ix], scores[iy, ix], scores[iy + 1, ix])
    # the template matches the crop moved by (dx, dy): the registered crop map reads there
    registered = _zoom(1.0, (-dx, -dy)) @ _zoom(scale * SCALE_BIAS, angle=angle) @ m
    correction = invert_affine(registered[:2]) @ m  # frame px -> frame px, a similarity
    return apply_affine(correction[:2], np.asarray(points, np.float64))
