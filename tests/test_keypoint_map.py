"""BlazeFace's keypoints mapped to the five points the model's crops are cut on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_register import SAMPLES, _crop_error, _sample

from reggan_plugin.errors import ModelError
from reggan_plugin.faces import FaceDetector
from reggan_plugin.faces.detector import face_keypoints
from reggan_plugin.faces.keypoint_map import five_points, frame_points, load_map


def test_the_map_brings_the_detectors_points_nearer_the_true_ones() -> None:
    detector = FaceDetector()
    raw, mapped = [], []
    for frame in sorted((SAMPLES / "frames").glob("*.png")):  # a head turning 20 degrees each way
        pixels, true = _sample(frame.name)
        found = detector.find(pixels)
        keypoints = face_keypoints(found, 0)
        assert np.allclose(detector.detect(pixels)[0].landmarks, five_points(keypoints))  # what faces get
        raw.append(_crop_error(frame_points(keypoints), true))
        mapped.append(_crop_error(five_points(keypoints), true))
    # the crop of the turned head is where the true points put it: here the mean error halves
    assert np.mean(mapped) < 0.7 * np.mean(raw)
    assert np.max(np.mean(mapped, axis=1)) < np.max(np.mean(raw, axis=1))


@pytest.mark.parametrize("turn, scale, shift", [(0.0, 1.0, (0.0, 0.0)), (25.0, 2.5, (300.0, -40.0)),
                                                (-90.0, 0.4, (-12.5, 7.0))])
def test_the_map_is_blind_to_where_the_face_is_how_large_and_how_turned(turn: float, scale: float,
                                                                        shift: tuple[float, float]) -> None:
    keypoints = np.array([[90.0, 100.0], [150.0, 102.0], [121.0, 135.0], [119.0, 168.0]])
    a = np.radians(turn)
    similarity = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = five_points(keypoints @ similarity.T + shift)
    assert np.allclose(moved, five_points(keypoints) @ similarity.T + shift, atol=1e-6)


def test_a_map_file_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "keypoint_map.npy"
    broken.write_bytes(b"not a numpy file")
    with pytest.raises(ModelError, match=r"keypoint_map\.npy: cannot read"):
        load_map(broken)
    np.save(broken, np.zeros((4, 10)))
    load_map.cache_clear()
    with pytest.raises(ModelError, match=r"is \(4, 10\)"):
        load_map(broken)
