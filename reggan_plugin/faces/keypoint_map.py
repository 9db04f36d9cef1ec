"""BlazeFace's keypoints to the five points the model's crops are cut on.

BlazeFace gives eyes, nose tip and mouth centre (and ear tragions) where its own training data put them, not where the
model's crops were aligned (the renders' own landmarks, ``align.CANONICAL_5PT`` order), and no mouth corners. Taken as
they are (the corners the mouth centre +/- ``MOUTH_HALF_WIDTH`` x the eye-to-eye vector), they give a crop whose face
pixels lie 2.4 px from where the true crop has them on held-out renders facing the camera, 4.2 px on turned ones (128
px crop; 1.5 and 2.0 px mapped, docs/DETECTION.md), and a face turned away from the camera a crop tilted by up to 6
degrees. A linear map, fitted by least squares on the training renders' neutrals, facing the camera and turned up to
35 degrees (``tools/make_keypoint_map.py``), takes the four keypoints to the five points instead: fitted on those
facing the camera alone, it left a turned head's points 1.8-2.3 px off and its nose low enough to misread the head's
tilt (docs/experiments/MODEL_NOTES.md). Both are read in the frame of the crop the keypoints give as they are, so the
map is blind to where the face is, how large and how turned. The ears are left out: hair covers them, and on the
training renders they told the map nothing the other four did not (cross-validated crop error 0.92 px with them and
without).
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from reggan_plugin.errors import ModelError
from reggan_plugin.geometry.align import apply_affine, crop_matrix_from_landmarks, invert_affine

from ..arrays import Array, Float64Array

MAP_PATH = Path(__file__).resolve().parent / "models" / "keypoint_map.npy"
SIZE = 128  # crop side the map works in (its units: px of this crop, centred and divided by SIZE)
MOUTH_HALF_WIDTH = 0.40
"""Mouth corners as the mouth centre +/- this x the eye-to-eye vector (ArcFace's template has 0.41): the frame the map
reads in."""
FEATURES = 9  # the four keypoints' x, y and a constant
OUTPUTS = 10  # the five points' x, y


def frame_points(keypoints: Array) -> Array:
    """(4, 2) image-left eye, image-right eye, nose, mouth centre -> (5, 2) points with derived mouth corners."""
    left_eye, right_eye, nose, mouth = np.asarray(keypoints, np.float64)
    across = right_eye - left_eye
    return np.stack([left_eye, right_eye, nose, mouth - MOUTH_HALF_WIDTH * across, mouth + MOUTH_HALF_WIDTH * across])


def features(keypoints: Array) -> tuple[Array, Array]:
    """(the frame px -> crop px map of the keypoints' own crop, the map's FEATURES inputs)."""
    m = crop_matrix_from_landmarks(frame_points(keypoints), SIZE)
    return m, np.concatenate([apply_affine(m, keypoints).ravel() / SIZE - 0.5, [1.0]])


def target(m: Array, points: Array) -> Array:
    """The five true points (frame px) as the map's OUTPUTS, in the crop of ``m``."""
    return apply_affine(m, points).ravel() / SIZE - 0.5


@cache
def load_map(path: Path = MAP_PATH) -> Float64Array:
    """FEATURES x OUTPUTS float64."""
    try:
        weights: Float64Array = np.load(path).astype(np.float64)
    except (OSError, ValueError) as e:
        raise ModelError(path, f"cannot read the keypoint map ({e}); reinstall reggan-plugin") from e
    if weights.shape != (FEATURES, OUTPUTS):
        raise ModelError(path, f"the keypoint map is {weights.shape}, not {(FEATURES, OUTPUTS)}")
    return weights


def five_points(keypoints: Array) -> Array:
    """(4, 2) frame px (image-left eye, image-right eye, nose, mouth centre) -> the five points (5, 2) frame px."""
    m, x = features(keypoints)
    crop = ((x @ load_map()).reshape(5, 2) + 0.5) * SIZE
    return apply_affine(invert_affine(m), crop)
