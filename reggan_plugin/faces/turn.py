"""How far a face is turned from the camera and tilted up or down, read from its five landmarks, and the weights a
model's turn and tilt keys take.

The turn is the nose tip's offset from the centre of the eyes and the mouth corners, along the line through the
eyes, in eye distances: 0 facing the camera, negative with the nose towards the picture's left. On renders of the
ICT Face Model it follows the head's yaw closely (81 t - 96 t^3 degrees to 2 degrees on average, from the renders'
landmarks: 0.35 is 24 degrees) and needs no model of its own: the runtime has the five points of every face it
edits. A mirrored face turns the other way by as much.

A model fitted with turn keys (`ModelConfig.turn_keys`, e.g. -0.35, 0, 0.35) has each expression's stage 1 fitted
at each key, on the pairs near it; a face between two keys takes both, by linear interpolation (`turn_weights`).

The tilt is the nose tip's offset from the same centre across that line, in eye distances, positive with the nose
towards the mouth: the head bowed, or seen from above. Facing the camera the ICT Face Model's renders read -0.16 to
0.03 (the nose's own length), pitched 15 degrees either way -0.24 to 0.11. A model with tilt keys
(`ModelConfig.tilt_keys`) moves each turn key's input by a flow fitted at each tilt key: how far an opening jaw drops
over the neck, and where the chin's edge lies, follow the head's pitch.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..arrays import Array
from .face import Face, landmarks68_to_5


class Pose(NamedTuple):
    """A face's turn and tilt (`pose_of`); a tilt of None is unknown (a face known by its box alone)."""

    turn: float = 0.0
    tilt: float | None = None


FACING = Pose()  # facing the camera, tilt unknown


def _nose_offset(points: Array) -> tuple[float, float] | None:
    """The nose tip's offset from the centre of the eyes and mouth corners of five points (5, 2), along and across the
    line through the eyes, in eye distances; None where the points are not finite or the eyes coincide."""
    pts = np.asarray(points, np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected (5, 2) points, got {pts.shape}")
    if not np.isfinite(pts).all():
        return None
    left, right, nose = pts[0], pts[1], pts[2]
    across = right - left
    distance = float(np.hypot(*across))
    if distance <= 0.0:
        return None
    offset = nose - (left + right + pts[3] + pts[4]) / 4.0
    down = np.array([-across[1], across[0]])  # across turned a quarter clockwise (y down): towards the mouth
    return float(offset @ across) / distance**2, float(offset @ down) / distance**2


def turn_of(points: Array) -> float:
    """The turn of five points (5, 2): image-left eye, image-right eye, nose tip, mouth corners. NaN points: 0."""
    offset = _nose_offset(points)
    return 0.0 if offset is None else offset[0]


def pose_of(points: Array) -> Pose:
    """The turn and tilt of five points (5, 2) as `turn_of` takes them; NaN points: facing, tilt unknown."""
    offset = _nose_offset(points)
    return FACING if offset is None else Pose(*offset)


def face_pose(face: Face) -> Pose:
    """A located face's pose (`pose_of`); facing the camera, tilt unknown, for a face known by its box alone."""
    if face.landmarks is None:
        return FACING
    points = np.asarray(face.landmarks, np.float64)
    return pose_of(landmarks68_to_5(points) if len(points) == 68 else points)


def valid_keys(keys: Sequence[float]) -> bool:
    """Whether ``keys`` can be a model's turn keys: none, or two or more ascending numbers."""
    return not keys or (len(keys) > 1 and all(isinstance(k, (int, float)) for k in keys)
                        and list(keys) == sorted(set(keys)))


def valid_tilt_keys(tilt_keys: Sequence[float], turn_keys: Sequence[float]) -> bool:
    """Whether ``tilt_keys`` can be a model's beside its ``turn_keys``: none, or `valid_keys` where it has turn keys."""
    return valid_keys(tilt_keys) and (not tilt_keys or bool(turn_keys))


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


def tilt_weights(tilt: float | None, keys: Sequence[float]) -> Array:
    """Weights over tilt ``keys`` (`turn_weights`); an unknown tilt shares its weight evenly between them."""
    return np.full(len(keys), 1.0 / len(keys), np.float32) if tilt is None else turn_weights(tilt, keys)


def pose_weights(pose: Pose, turn_keys: Sequence[float], tilt_keys: Sequence[float] = ()) -> Array:
    """Weights over a model's pose keys, turn-major ([len(turn_keys) * len(tilt_keys)], or [len(turn_keys)] without
    tilt keys): the turn's `turn_weights` times the tilt's `tilt_weights`. They sum to 1."""
    turn = turn_weights(pose.turn, turn_keys)
    if not tilt_keys:
        return turn
    weights: Array = np.outer(turn, tilt_weights(pose.tilt, tilt_keys)).reshape(-1).astype(np.float32)
    return weights
