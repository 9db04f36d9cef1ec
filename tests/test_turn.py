"""A face's turn and tilt from its five landmarks, the pose keys' weights, and models with turn and tilt keys in the
runtime."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.faces import Face, box_from_landmarks
from reggan_plugin.faces.turn import (
    FACING,
    Pose,
    face_pose,
    pose_of,
    pose_weights,
    symmetric_keys,
    turn_of,
    turn_weights,
)

FRONTAL = np.array([[40.0, 50.0], [72.0, 50.0], [56.0, 66.0], [44.0, 82.0], [68.0, 82.0]])


def _mirrored(points: np.ndarray, width: float = 128.0) -> np.ndarray:
    flipped = points.copy()
    flipped[:, 0] = width - flipped[:, 0]
    return flipped[[1, 0, 2, 4, 3]]  # the image-left eye and mouth corner are the other ones now


def test_the_turn_is_the_noses_offset_in_eye_distances_and_a_mirror_turns_back():
    assert turn_of(FRONTAL) == pytest.approx(0.0)
    right = FRONTAL.copy()
    right[2, 0] += 8.0  # nose a quarter of the eye distance to the right
    assert turn_of(right) == pytest.approx(0.25)
    assert turn_of(_mirrored(right)) == pytest.approx(-0.25)
    angle = np.deg2rad(30)  # the same face rolled and scaled: the same turn
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert turn_of(right @ rotation.T * 1.7 + 5) == pytest.approx(0.25)
    assert face_pose(Face(box=(0, 0, 10, 10))).turn == 0.0  # a box alone faces the camera


def test_the_tilt_is_the_noses_offset_towards_the_mouth_and_a_mirror_keeps_it():
    assert pose_of(FRONTAL) == (pytest.approx(0.0), pytest.approx(0.0))
    bowed = FRONTAL.copy()
    bowed[2, 1] += 8.0  # the nose a quarter of the eye distance towards the mouth
    assert pose_of(bowed) == (pytest.approx(0.0), pytest.approx(0.25))
    assert pose_of(_mirrored(bowed)).tilt == pytest.approx(0.25)
    angle = np.deg2rad(30)  # rolled and scaled: the same tilt
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert pose_of(bowed @ rotation.T * 1.7 + 5).tilt == pytest.approx(0.25)
    assert face_pose(Face(box=(0, 0, 10, 10))) == FACING and FACING.tilt is None  # a box alone: tilt unknown


def test_pose_weights_are_the_turns_times_the_tilts_and_an_unknown_tilt_is_even():
    turns, tilts = (-0.2, 0.0, 0.2), (-0.2, 0.1)
    weights = pose_weights(Pose(0.1, 0.0), turns, tilts).reshape(3, 2)
    assert weights.sum() == pytest.approx(1.0)
    assert np.allclose(weights.sum(1), turn_weights(0.1, turns)) and np.allclose(weights.sum(0), [1 / 3, 2 / 3])
    assert np.allclose(pose_weights(Pose(0.1, None), turns, tilts).reshape(3, 2).sum(0), [0.5, 0.5])
    assert np.allclose(pose_weights(Pose(0.1, 0.0), turns), turn_weights(0.1, turns))  # no tilt keys


def test_rendered_heads_read_as_facing_the_camera_or_turned():
    """Renders facing the camera (up to 12 degrees off) read under 0.15; heads turned 18-35 degrees, over it."""
    data = Path(__file__).resolve().parent / "data"
    for path in sorted(data.glob("*/*.landmarks.json")):
        points = np.asarray(json.loads(path.read_text())["points"], float)
        turn = abs(face_pose(Face(box=box_from_landmarks(points), landmarks=points)).turn)
        turned = path.parent.name == "turned" or path.name.startswith("turned")
        assert turn > 0.15 if turned else turn < 0.15, (path.name, turn)


@pytest.mark.parametrize("turn, expected", [(-0.5, [1, 0, 0]), (-0.175, [0.5, 0.5, 0]), (0.0, [0, 1, 0]),
                                            (0.07, [0, 0.8, 0.2]), (0.9, [0, 0, 1])])
def test_turn_weights_interpolate_between_neighbouring_keys(turn, expected):
    assert np.allclose(turn_weights(turn, (-0.35, 0.0, 0.35)), expected, atol=1e-6)


@pytest.mark.parametrize("keys, symmetric", [((-0.35, 0.0, 0.35), True), ((-0.2, 0.2), True),
                                             ((-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6), True), ((-0.35, 0.0, 0.3), False),
                                             ((0.0, 0.35), False), ((0.0,), False), ((), False)])
def test_keys_are_symmetric_when_each_turn_has_its_mirror_image(keys, symmetric):
    assert symmetric_keys(keys) is symmetric


def test_a_model_with_turn_keys_edits_each_face_at_its_own_turn(tmp_path):
    """The exported model takes a weight per expression and key; each face gets its turn's share of the keys, and
    faces turned apart get different edits from keys fitted apart."""
    import torch

    from export.onnx_export import export_model
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.imageio.image import ImageData
    from reggan_plugin.renderer import ExpressionRenderer
    from training.config import TINY
    from training.models import RegGAN

    keys = (-0.3, 0.0, 0.3)
    torch.manual_seed(0)
    model = RegGAN(dataclasses.replace(TINY, turn_keys=keys))
    with torch.no_grad():
        model.stage1.bias.normal_(0, 0.3)
    artifact = load_artifact(export_model(model, tmp_path / "keyed.onnx"))
    assert artifact.turn_keys == keys and artifact.input_width == 3 * len(TINY.expressions)
    renderer = ExpressionRenderer(InferenceConfig(model=artifact.path, backend="cpu"))
    rng = np.random.default_rng(0)
    crop = rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    left, middle, right = (renderer.forward(crop, EditConfig("happy"), poses=[Pose(t)])[..., :3] for t in (-0.3, 0.0, 0.3))
    assert np.abs(left - right).max() > 0.01
    assert np.array_equal(middle, renderer.forward(crop, EditConfig("happy"))[..., :3])  # no turn: facing the camera

    points = FRONTAL * 2.5 + 40
    points[2, 0] += 20.0  # turned: the nose a quarter of the eye distance to the right
    picture = ImageData((rng.uniform(0, 1, (320, 320, 3)) * 255).astype(np.uint8), format="png")
    prepared = renderer.prepare_image(picture, [Face(box=box_from_landmarks(points), landmarks=points)])
    assert prepared.poses == (Pose(pytest.approx(0.25), pytest.approx(0.0)),)  # the nose level with the centre


def test_a_model_with_tilt_keys_moves_each_face_by_its_own_tilts_flow(tmp_path):
    """A model whose flows differ by tilt key edits a face bowed and one raised apart, and a face between the keys by
    the blend of their flows: what the runtime reads from the file (its tilt keys, the expression input's width)."""
    import torch

    from export.onnx_export import export_model
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.renderer import ExpressionRenderer
    from training.config import TINY
    from training.models import RegGAN

    turns, tilts = (-0.3, 0.0, 0.3), (-0.2, 0.1)
    model = RegGAN(dataclasses.replace(TINY, turn_keys=turns, tilt_keys=tilts))
    with torch.no_grad():
        model.refiner.start_as_identity(20.0)  # the output is stage 1's, its motion stage 1's flow
        flows = model.stage1.flow.view(len(TINY.expressions), len(turns), len(tilts), 2, 32, 32)
        flows[:, :, 1, 1] = 4 * 2 / 32  # at the upper tilt key every face moves 4 px down
    artifact = load_artifact(export_model(model, tmp_path / "tilted.onnx"))
    assert artifact.tilt_keys == tilts and artifact.input_width == 3 * 2 * len(TINY.expressions)
    renderer = ExpressionRenderer(InferenceConfig(model=artifact.path, backend="cpu"))
    crop = np.repeat(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None, None], 32, 2).repeat(3, 3)  # rows ramp
    motion = {t: renderer.forward(crop, EditConfig("happy"), poses=[Pose(0.0, t)])[0, 16, 16, 3:]
              for t in (-0.2, -0.05, 0.1)}
    assert motion[-0.2] == pytest.approx([0.0, 0.0], abs=1e-4)
    assert motion[0.1] == pytest.approx([0.0, 4.0], abs=1e-3)
    assert motion[-0.05] == pytest.approx([0.0, 2.0], abs=1e-3)  # halfway between the keys
