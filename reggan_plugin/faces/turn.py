"""How far a face is turned from the camera, read from its five landmarks, and the weights a model's turn keys take.

The turn is the nose tip's offset from the centre of the eyes and the mouth corners, along the line through the
eyes, in eye distances: 0 facing the camera, negative with the nose towards the picture's left. On renders of the
ICT Face Model it follows the head's yaw closely (81 t - 96 t^3 degrees to 2 degrees on average, from the renders'
landmarks: 0.35 is 24 degrees) and needs no model of its own: the runtime has the five points of every face it
edits. A mirrored face turns the other way by as much.

A model fitted with turn keys (`ModelConfig.turn_keys`, e.g. -0.35, 0, 0.35) has each expression's stage 1 fitted
at each key, on the pairs near it; a face between two keys takes both, by linear interpolation (`turn_weights`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..arrays import Array
from .face import Face, landmarks68_to_5


def turn_of(points: Array) -> float:
    """The turn of five points (5, 2): image-left eye, image-right eye, nose tip, mouth corners. NaN points: 0."""
    pts = np.asarray(points, np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected (5, 2) points, got {pts.shape}")
    if not np.isfinite(pts).all():
        return 0.0
    left, right, nose = pts[0], pts[1], pts[2]
    across = right - left
    distance = float(np.hypot(*across))
    if distance <= 0.0:
        return 0.0
    centre = (left + right + pts[3] + pts[4]) / 4.0
    return float((nose - centre) @ across) / distance**2


def face_turn(face: Face) -> float:
    """A located face's turn (`turn_of`); 0 for a face known by its box alone."""
    if face.landmarks is None:
        return 0.0
    points = np.asarray(face.landmarks, np.float64)
    return turn_of(landmarks68_to_5(points) if len(points) == 68 else points)


def valid_keys(keys: Sequence[float]) -> bool:
    """Whether ``keys`` can be a model's turn keys: none, or two or more ascending numbers."""
    return not keys or (len(keys) > 1 and all(isinstance(k, (int, float)) for k in keys)
                        and list(keys) == sorted(set(keys)))


def symmetric_keys(keys: Sequence[float]) -> bool:
    """Whether ``keys`` (ascending) turn as far each way: a mirror image's turn is a key whenever the turn is."""
    return len(keys) > 1 and all(a == -b for a, b in zip(keys, reversed(keys)))


def turn_weights(turn: float, keys: Sequence[float]) -> Array:
    """Weights over ``keys`` (ascending) for a face at ``turn``: the hat functions of linear interpolation between
    neighbouring keys, all on the end key beyond it. They sum to 1."""
    at = np.asarray(keys, np.float64)
    weights = np.zeros(len(at), np.float32)
    if len(at) == 1 or turn <= at[0]:
        weights[0] = 1.0
        return weights
    if turn >= at[-1]:
        weights[-1] = 1.0
        return weights
    upper = int(np.searchsorted(at, turn, side="right"))
    t = (turn - at[upper - 1]) / (at[upper] - at[upper - 1])
    weights[upper - 1], weights[upper] = 1.0 - t, t
    return weights
