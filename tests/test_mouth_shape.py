"""The mouth-shape judge (training.evaluate.mouth_shape): Face Mesh's lips on canonical crops."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.curves import sample_face
from reggan_plugin.config import InferenceConfig
from reggan_plugin.faces.face import landmarks68_to_5
from reggan_plugin.geometry.align import apply_affine, crop_matrix_from_landmarks
from reggan_plugin.geometry.resample import warp_to_crop
from reggan_plugin.renderer import ExpressionRenderer
from training.evaluate import mouth_shape
from training.evaluate.cases import given_face

HERE = Path(__file__).resolve().parent
SIZE = 256


@pytest.fixture(scope="module")
def judge() -> mouth_shape.MouthShapeJudge:
    reason = mouth_shape.unavailable_reason()
    if reason:
        pytest.skip(f"mouth-shape judge not available ({reason}); pip install '.[evaluate]'")
    return mouth_shape.MouthShapeJudge()


def _canonical(rgb: np.ndarray, points68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = crop_matrix_from_landmarks(landmarks68_to_5(points68), SIZE)
    return np.clip(warp_to_crop(rgb.astype(np.float32), m, SIZE) + 0.5, 0, 255).astype(np.uint8), m


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_the_lips_corners_are_where_the_face_model_puts_them(judge) -> None:
    rgb, points = sample_face(1.0)  # the demo shot's first frame on white, and its 68 landmarks
    crop, m = _canonical(rgb, points)
    lips = judge.lips(crop)
    assert lips.shape == (40, 2)
    corners = apply_affine(m, points[[48, 54]]) / SIZE  # the render's own mouth corners, projected from its mesh
    assert np.linalg.norm(lips[[0, 10]] - corners, axis=1).max() < 0.02
    assert mouth_shape.lips_error(lips, lips) == 0.0


def test_an_edit_takes_the_lips_most_of_the_way_to_the_rendered_expression(judge) -> None:
    """The renders at half intensity (tests/data/half): the edit's lips lie far nearer the true ones than the
    neutral's do; a mouth that does not move, or moves elsewhere, stays as far as the neutral."""
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    half = HERE / "data" / "half"
    shares = []  # the bundled model's: 0.19 to 0.52 of the neutral's distance, 0.33 on average
    for identity in ("id09450", "id09451"):
        neutral = _rgb(half / f"{identity}_neutral.png")
        points = np.asarray(json.loads((half / f"{identity}_neutral.landmarks.json").read_text())["points"], float)
        for expression in ("happy", "surprised"):
            face = given_face(points)
            out = renderer.apply_array(neutral, faces=[face], expression=expression, intensity=0.5)
            real = judge.lips(_canonical(_rgb(half / f"{identity}_{expression}_050.png"), points)[0])
            before = mouth_shape.lips_error(judge.lips(_canonical(neutral, points)[0]), real)
            after = mouth_shape.lips_error(judge.lips(_canonical(out, points)[0]), real)
            assert before > 0.8 and after < 0.6 * before, (identity, expression, before, after)
            shares.append(after / before)
    assert np.mean(shares) < 0.4, shares
