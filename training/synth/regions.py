"""Soft per-vertex region masks used by the procedural skin shader (numpy only).

The ICT model has no skin texture; lips, eyebrows, cheek redness and short scalp hair are painted by
the shader from these masks, which are computed from the identity's own neutral landmarks (cm) and
travel with the vertices when an expression deforms the mesh.
"""
from __future__ import annotations

import numpy as np

from .face_model import FaceModel


def smoothstep(e0: float | np.ndarray, e1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of 2-D points p (N, 2) to segment ab, and the position t in [0, 1] along it."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1), t


def _polyline_distance(p: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to a polyline and the arc-length fraction (0 at line[0], 1 at line[-1])."""
    lengths = np.linalg.norm(np.diff(line, axis=0), axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)]) / lengths.sum()
    best = np.full(len(p), np.inf)
    frac = np.zeros(len(p))
    for i in range(len(line) - 1):
        d, t = _segment_distance(p, line[i], line[i + 1])
        better = d < best
        best[better] = d[better]
        frac[better] = starts[i] + t[better] * (starts[i + 1] - starts[i])
    return best, frac


def _inside_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(p), bool)
    x, y = p[:, 0], p[:, 1]
    for i in range(len(poly)):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % len(poly)]
        cross = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= cross & (x < xi)
    return inside


def region_masks(model: FaceModel, neutral_cm: np.ndarray, brow_thickness: float = 1.0) -> np.ndarray:
    """(V, 4) float32 masks in [0, 1]: lips, eyebrows, cheek/nose redness, scalp hair."""
    v = neutral_cm
    lm = v[model.landmarks68]
    xy = v[:, :2]
    front = smoothstep(lm[:, 2].min() - 2.0, lm[:, 2].min(), v[:, 2])
    out = np.zeros((len(v), 4), np.float32)

    # lips: inside the outer lip contour (landmarks 48-59), feathered over 1.5 mm
    lips = lm[48:60, :2]
    d, _ = _polyline_distance(xy, np.vstack([lips, lips[:1]]))
    inside = _inside_polygon(xy, lips)
    lip_front = smoothstep(lm[48:60, 2].min() - 1.5, lm[48:60, 2].min() - 0.5, v[:, 2])
    out[:, 0] = np.where(inside, 1.0, smoothstep(0.15, 0.0, d)) * lip_front

    # eyebrows: a band around each brow polyline, thick at the inner end, tapering outwards
    brows = np.zeros(len(v))
    eye_z = lm[36:48, 2].min()
    for ids, inner_last in ((range(17, 22), True), (range(22, 27), False)):
        line = lm[list(ids), :2].copy()
        line[:, 1] -= 0.3
        d, frac = _polyline_distance(xy, line)
        inner = frac if inner_last else 1 - frac
        half = (0.25 + 0.3 * inner) * brow_thickness
        brows = np.maximum(brows, smoothstep(half, half * 0.4, d))
    out[:, 1] = brows * smoothstep(eye_z - 1.5, eye_z, v[:, 2])

    # redness: cheeks (between nose wing and jaw) and nose tip
    red = np.zeros(len(v))
    for wing, jaw in ((31, 2), (35, 14)):
        c = 0.55 * lm[wing] + 0.45 * lm[jaw]
        red = np.maximum(red, np.exp(-np.sum((v - c) ** 2, axis=1) / (2 * 1.6**2)))
    red = np.maximum(red, 0.6 * np.exp(-np.sum((v - lm[30]) ** 2, axis=1) / (2 * 0.9**2)))
    out[:, 2] = red * front

    # scalp: above a hairline that runs from the forehead over the ears to the nape
    brow_y = lm[17:27, 1].max()
    hairline = brow_y + np.interp(v[:, 2], [-9, -3, 2, 7, 12], [-8.0, -2.5, 0.8, 4.0, 5.0])
    out[:, 3] = smoothstep(hairline - 0.3, hairline + 0.9, v[:, 1])
    return out
