"""reggan_plugin.edit.calibration: the model's gains for photographs, read from its metadata and applied to edited crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.edit.calibration import Gains, calibrated, dump_gains, lower_face, mixed, mouth_ellipse, parse_gains
from reggan_plugin.errors import ModelError
from reggan_plugin.geometry.resample import sample

S = 128
PHOTO_SMILE = Gains(motion=(0.5, 0.5), rest_paint=0.7, upper=0.0)


def test_gains_read_back_as_written() -> None:
    table = {"photo": {"happy": PHOTO_SMILE, "sad": Gains(rest_paint=1.5)}}
    assert parse_gains(Path("m.onnx"), dump_gains(table)) == table


def test_an_old_models_teeth_gain_is_ignored() -> None:
    text = '{"photo": {"happy": {"motion": [0.5, 0.5], "rest_paint": 0.7, "teeth": 1.6, "upper": 0.0}}}'
    assert parse_gains(Path("old.onnx"), text) == {"photo": {"happy": PHOTO_SMILE}}


@pytest.mark.parametrize("text, why", [
    ("{not json", "not JSON"),
    ('{"photo": [1, 2]}', "not JSON of the form"),
    ('{"photo": {"happy": {"motion": [0.5]}}}', "not JSON of the form"),
    ('{"photo": {"happy": {"upper": -1}}}', "must lie in [0, 10]"),
    ('{"photo": {"happy": {"rest_paint": NaN}}}', "must lie in [0, 10]"),
])
def test_malformed_gains_are_refused_naming_the_file_and_the_key(text: str, why: str) -> None:
    with pytest.raises(ModelError) as error:
        parse_gains(Path("broken.onnx"), text)
    assert "broken.onnx" in str(error.value) and "reggan.paste_gains" in str(error.value) and why in str(error.value)


def test_a_mix_takes_each_expressions_gains_by_its_weight() -> None:
    gains = {"happy": PHOTO_SMILE}
    expressions = ("neutral", "happy", "sad")
    assert mixed(gains, expressions, np.array([0, 1.0, 0])) == PHOTO_SMILE
    half = mixed(gains, expressions, np.array([0, 0.5, 0.5]))
    assert half.motion == pytest.approx((0.75, 0.75)) and half.rest_paint == pytest.approx(0.85)
    assert half.upper == pytest.approx(0.5)
    assert mixed(gains, expressions, np.array([0, 0, 1.0])).is_identity  # sad has none
    assert mixed({}, expressions, np.array([0, 1.0, 0])).is_identity


def _crop() -> np.ndarray:
    """A smooth colour gradient, so that moving it changes it."""
    y, x = np.mgrid[0:S, 0:S].astype(np.float32) / S
    return np.stack([0.2 + 0.5 * x, 0.3 + 0.4 * y, 0.5 - 0.2 * x * y], -1)[None]


def _edited(crop_in: np.ndarray, paint: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """An edit that moves ``crop_in`` by a uniform ``shift`` (crop px) and adds ``paint``: [1,S,S,5]."""
    gy, gx = np.mgrid[0:S, 0:S].astype(np.float32)
    moved = sample(crop_in[0], gx + shift[0], gy + shift[1])
    motion = np.broadcast_to(np.asarray(shift, np.float32), (S, S, 2))
    return np.concatenate([moved + paint, motion], -1)[None].astype(np.float32)


MOUTH = mouth_ellipse(S, None)
LOWER = lower_face(S)


def test_gains_that_move_nothing_leave_the_edit_as_it_is() -> None:
    crop_in = _crop()
    edited = _edited(crop_in, np.full((S, S, 3), 0.1, np.float32), (2.0, -3.0))
    assert calibrated(crop_in, edited, Gains(), MOUTH, LOWER) is edited


def test_the_motion_is_scaled_by_direction_and_the_paint_stays_where_it_was_painted() -> None:
    crop_in = _crop()
    paint = np.zeros((S, S, 3), np.float32)
    paint[60:70, 50:80] = 0.05
    edited = _edited(crop_in, paint, (4.0, -5.0))
    out = calibrated(crop_in, edited, Gains(motion=(0.5, 0.6)), MOUTH, LOWER)
    assert np.allclose(out[0, ..., 3:], (2.0, -3.0))
    assert np.allclose(out, _edited(crop_in, paint, (2.0, -3.0)), atol=1e-5)
    assert not np.allclose(out[0, ..., :3], edited[0, ..., :3], atol=1e-3)


def test_the_rest_of_the_paint_is_scaled_outside_the_mouth_only() -> None:
    crop_in = _crop()
    edited = _edited(crop_in, np.full((S, S, 3), 0.1, np.float32), (0.0, 0.0))
    change = calibrated(crop_in, edited, Gains(rest_paint=0.5), MOUTH, LOWER)[0, ..., :3] - crop_in[0]
    mouth = np.unravel_index(np.argmax(MOUTH), MOUTH.shape)
    assert np.allclose(change[mouth], 0.1, atol=1e-5)
    assert MOUTH[30, 64] == 0 and np.allclose(change[30, 64], 0.05, atol=1e-5)  # the brow


def test_the_upper_gain_keeps_the_upper_face_as_it_was_and_the_lower_face_as_edited() -> None:
    crop_in = _crop()
    edited = _edited(crop_in, np.full((S, S, 3), 0.1, np.float32), (3.0, -2.0))
    out = calibrated(crop_in, edited, Gains(upper=0.0), MOUTH, LOWER)[0]
    brow, chin = (30, 64), (100, 64)  # far outside the lower face's ellipse; inside it
    assert LOWER[brow] < 1e-3 and LOWER[chin] > 0.999
    assert np.allclose(out[brow][:3], crop_in[0][brow], atol=1e-3) and np.allclose(out[brow][3:], 0.0, atol=1e-2)
    assert np.allclose(out[chin], edited[0][chin], atol=1e-3)
    half = calibrated(crop_in, edited, Gains(upper=0.5), MOUTH, LOWER)[0]
    assert np.allclose(half[brow][3:], (1.5, -1.0), atol=1e-2)


def test_the_mouth_ellipse_follows_the_crop_template() -> None:
    from reggan_plugin.geometry.align import CANONICAL_5PT

    rows = np.arange(S)
    lower = mouth_ellipse(S, CANONICAL_5PT + np.array([0.0, 0.05]))
    assert ((lower[:, 64] * rows).sum() / lower[:, 64].sum() - (MOUTH[:, 64] * rows).sum() / MOUTH[:, 64].sum()
            == pytest.approx(0.05 * S, abs=0.5))


def _image(pixels: np.ndarray):
    from reggan_plugin.imageio import ImageData

    return ImageData(pixels=pixels, path=None, format="png", linear=False, info={})


def test_the_bundled_model_smiles_with_its_photo_gains_for_photos_alone() -> None:
    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.renderer import ExpressionRenderer

    photo = ExpressionRenderer(InferenceConfig(backend="cpu", subject="photo"))
    render = ExpressionRenderer(InferenceConfig(backend="cpu", subject="render"))
    bundled = Gains(motion=(1.0, 0.5), upper=0.5)  # docs/PHOTO_GAINS.md's choice
    assert photo.gains["happy"] == bundled and render.gains == {} and render.mouth_ellipse is None
    pixels, box = face_frame(640, 480, 200)
    prepared = photo.prepare_image(_image(pixels), [Face(box=box)])
    for expression, calibrated_here in (("happy", True), ("sad", False)):
        raw = photo.forward(prepared.crops, EditConfig(expression), turns=prepared.turns)
        edited = photo.forward_images([prepared], EditConfig(expression))[0]
        if calibrated_here:
            lower = lower_face(photo.size)[..., None]
            assert np.allclose(edited.faces[..., 3:], raw[..., 3:] * np.array(bundled.motion, np.float32)
                               * (lower + bundled.upper * (1 - lower)), atol=1e-6)  # the upper face moved half as far
        else:
            assert np.array_equal(edited.faces, raw)
        assert edited.interior is None  # neither draws an inside
        assert np.array_equal(render.forward_images([prepared], EditConfig(expression))[0].faces, raw)
