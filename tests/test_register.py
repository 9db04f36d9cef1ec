"""Detected landmarks registered to the crop template: nearer the true points, and left alone where unsure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.faces import FaceDetector, load_faces_json
from reggan_plugin.faces.detector import face_keypoints
from reggan_plugin.faces.keypoint_map import frame_points
from reggan_plugin.faces.refine import BOX_HINTS
from reggan_plugin.faces.register import ANGLES, SIZE, _best, _climb, load_template, register_landmarks
from reggan_plugin.geometry.align import apply_affine, crop_matrix_from_landmarks
from reggan_plugin.imageio import read_image

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _sample(name: str = "shot_0003.png") -> tuple[np.ndarray, np.ndarray]:
    """A bundled avatar render and its true 5 points (from the 68 of samples/faces.json)."""
    image = read_image(SAMPLES / "frames" / name)
    faces = load_faces_json(SAMPLES / "faces.json").faces_for(name)
    assert faces
    return image.pixels[..., :3], faces[0].landmarks5()


def _crop_error(points: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per point, how far the true points land from where the true crop puts them, in the crop ``points`` give."""
    return np.linalg.norm(apply_affine(crop_matrix_from_landmarks(points, SIZE), true)
                          - apply_affine(crop_matrix_from_landmarks(true, SIZE), true), axis=1)


def test_the_template_is_the_face_alone_with_zero_mean_and_unit_norm() -> None:
    tpl = load_template()
    assert tpl.shape == (SIZE, SIZE) and tpl[0].max() == tpl[0].min() == 0  # nothing at the crop border
    inside = tpl != 0
    assert 0.3 < inside.mean() < 0.8
    assert abs(float(tpl[inside].mean())) < 1e-3 and float(np.linalg.norm(tpl)) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("shift", [(2.5, 0.0), (0.0, -2.5), (-2.0, 1.5)])
def test_a_crop_moved_off_the_face_is_moved_back(shift: tuple[float, float]) -> None:
    pixels, true = _sample()
    m = crop_matrix_from_landmarks(true, SIZE)
    frame_shift = np.linalg.solve(m[:, :2], np.asarray(shift))  # crop px -> frame px
    moved = true + frame_shift
    assert _crop_error(moved, true).mean() > 1.5
    assert _crop_error(register_landmarks(pixels, moved), true).mean() < 1.0


@pytest.mark.parametrize("degrees", [-7.0, 7.0])
def test_a_crop_turned_off_the_face_is_turned_back(degrees: float) -> None:
    pixels, true = _sample()
    centre = true.mean(axis=0)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    turned = (true - centre) @ np.array([[c, s], [-s, c]]) + centre  # eyes tilted as on a head turned away
    assert _crop_error(turned, true).mean() > 1.5
    assert _crop_error(register_landmarks(pixels, turned), true).mean() < 1.0


@pytest.mark.parametrize("peak", [0.0, 3.0, -8.0, 11.0, 15.0])
def test_the_turn_search_climbs_from_upright_to_the_same_best_turn(peak: float) -> None:
    scored: list[float] = []

    def score(turn: float) -> float:
        scored.append(turn)
        return 1.0 - ((turn - peak) / 20.0) ** 2

    best, inside, top = _climb(ANGLES, score)
    assert (best, inside) == _best(ANGLES, [score(turn) for turn in ANGLES])
    assert top == max(score(turn) for turn in ANGLES)
    climbed = scored[: len(scored) - 2 * len(ANGLES)]
    assert len(climbed) == len(set(climbed))  # no turn matched twice
    nearest, middle = min(range(len(ANGLES)), key=lambda k: abs(ANGLES[k] - peak)), len(ANGLES) // 2
    lo, hi = max(min(nearest, middle) - 1, 0), min(max(nearest, middle) + 1, len(ANGLES) - 1)
    assert sorted(climbed) == list(ANGLES[lo : hi + 1])  # the best and one turn past it: upright, 3 of the 7


def test_blazefaces_own_points_come_nearer_the_true_ones() -> None:
    detector = FaceDetector()
    before, after = [], []
    for frame in sorted((SAMPLES / "frames").glob("*.png")):  # a head turning 20 degrees each way
        pixels, true = _sample(frame.name)
        raw = frame_points(face_keypoints(detector.find(pixels), 0))  # the keypoints as BlazeFace places them
        before.append(_crop_error(raw, true))
        after.append(_crop_error(register_landmarks(pixels, raw), true))
    # nearer on the whole (here by 40%) and at the mouth
    assert np.mean(after) < 0.8 * np.mean(before) and np.mean(np.array(after)[:, 3:]) < np.mean(np.array(before)[:, 3:])


def test_box_hints_are_aligned_on_the_mapped_points_registered() -> None:
    pixels, _ = _sample()
    mapped = FaceDetector().detect(pixels)[0].landmarks
    assert np.allclose(FaceDetector(config=BOX_HINTS).detect(pixels)[0].landmarks, register_landmarks(pixels, mapped))


def test_a_picture_the_template_does_not_describe_keeps_its_points() -> None:
    _, true = _sample()
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert register_landmarks(noise, true) is true
    flat = np.full((256, 256, 3), 128, np.uint8)
    assert register_landmarks(flat, true) is true
