"""reggan_plugin.edit.calibration: the model's gains for photographs, read from its metadata and applied to edited crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.edit.calibration import (
    Gains,
    calibrated,
    dump_gains,
    flow_field,
    lower_face,
    mixed,
    parse_gains,
)
from reggan_plugin.errors import ModelError
from reggan_plugin.geometry.resample import sample

S = 128
PHOTO_SMILE = Gains(motion=(0.5, 0.5), paint=0.7, upper=0.0)
GRID = np.round(np.stack([np.linspace(-2, 2, 16)[None].repeat(16, 0), np.linspace(0, -1.5, 16)[:, None].repeat(16, 1)],
                         -1), 2)
WIDER = Gains(paint=0.0, flow=tuple(GRID.ravel()))  # a flow pulling the lower face sideways and up


def test_gains_read_back_as_written() -> None:
    table = {"photo": {"happy": PHOTO_SMILE, "sad": Gains(paint=0.0, upper=1.5), "angry": WIDER}}
    back = parse_gains(Path("m.onnx"), dump_gains(table))
    assert back == table and np.allclose(back["photo"]["angry"].grid, GRID)


def test_an_old_models_teeth_and_rest_of_the_paint_gains_are_ignored() -> None:
    text = '{"photo": {"happy": {"motion": [0.5, 0.5], "paint": 0.7, "rest_paint": 0.7, "teeth": 1.6, "upper": 0.0}}}'
    assert parse_gains(Path("old.onnx"), text) == {"photo": {"happy": PHOTO_SMILE}}


@pytest.mark.parametrize("text, why", [
    ("{not json", "not JSON"),
    ('{"photo": [1, 2]}', "not JSON of the form"),
    ('{"photo": {"happy": {"motion": [0.5]}}}', "not JSON of the form"),
    ('{"photo": {"happy": {"upper": -1}}}', "must lie in [0, 10]"),
    ('{"photo": {"happy": {"paint": NaN}}}', "must lie in [0, 10]"),
    ('{"photo": {"happy": {"paint": 11}}}', "must lie in [0, 10]"),
    ('{"photo": {"happy": {"flow": [[1, 2], [3, 4]]}}}', "not JSON of the form"),
    ('{"photo": {"happy": {"flow": [[[1, 2, 3]]]}}}', "not JSON of the form"),
    ('{"photo": {"happy": {"flow": [[[1, 1e9]]]}}}', "flow must be finite"),
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
    assert half.motion == pytest.approx((0.75, 0.75)) and half.paint == pytest.approx(0.85)
    assert half.upper == pytest.approx(0.5)
    assert mixed(gains, expressions, np.array([0, 0, 1.0])).is_identity  # sad has none
    assert mixed({}, expressions, np.array([0, 1.0, 0])).is_identity


def test_a_mix_and_a_share_take_the_flow_in_proportion() -> None:
    expressions = ("neutral", "happy", "sad")
    half = mixed({"happy": WIDER}, expressions, np.array([0, 0.5, 0.5]))
    assert np.allclose(half.grid, GRID / 2) and half.paint == pytest.approx(0.5)
    assert np.allclose(WIDER.partly(0.25).grid, GRID / 4)
    assert not Gains(flow=tuple(GRID.ravel())).is_identity and Gains(flow=(0.0,) * 8).is_identity


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


LOWER = lower_face(S)


def test_gains_that_move_nothing_leave_the_edit_as_it_is() -> None:
    crop_in = _crop()
    edited = _edited(crop_in, np.full((S, S, 3), 0.1, np.float32), (2.0, -3.0))
    out, withheld = calibrated(crop_in, edited, Gains(), LOWER)
    assert out is edited and withheld is None


def test_the_motion_is_scaled_by_direction_and_the_paint_stays_where_it_was_painted() -> None:
    crop_in = _crop()
    paint = np.zeros((S, S, 3), np.float32)
    paint[60:70, 50:80] = 0.05
    edited = _edited(crop_in, paint, (4.0, -5.0))
    out, withheld = calibrated(crop_in, edited, Gains(motion=(0.5, 0.6)), LOWER)
    assert withheld is None  # all the paint kept
    assert np.allclose(out[0, ..., 3:], (2.0, -3.0))
    assert np.allclose(out, _edited(crop_in, paint, (2.0, -3.0)), atol=1e-5)
    assert not np.allclose(out[0, ..., :3], edited[0, ..., :3], atol=1e-3)


def test_without_paint_the_edit_is_the_input_moved_by_the_motion_alone() -> None:
    crop_in = _crop()
    paint = np.zeros((S, S, 3), np.float32)
    paint[60:70, 50:80] = 0.2  # a patch on the mouth
    edited = _edited(crop_in, paint, (3.0, -2.0))
    out, withheld = calibrated(crop_in, edited, Gains(paint=0.0), LOWER)
    assert np.allclose(out, _edited(crop_in, np.zeros_like(paint), (3.0, -2.0)), atol=1e-5)
    assert np.allclose(withheld[0], paint, atol=1e-5)  # what an opened mouth gets back
    half, withheld = calibrated(crop_in, edited, Gains(paint=0.5), LOWER)
    assert np.allclose(half[0, 65, 60, :3] - out[0, 65, 60, :3], 0.1, atol=1e-5)
    assert np.allclose(withheld[0], paint / 2, atol=1e-5)


def test_the_upper_gain_keeps_the_upper_face_as_it_was_and_the_lower_face_as_edited() -> None:
    crop_in = _crop()
    edited = _edited(crop_in, np.full((S, S, 3), 0.1, np.float32), (3.0, -2.0))
    out = calibrated(crop_in, edited, Gains(upper=0.0), LOWER)[0][0]
    brow, chin = (30, 64), (100, 64)  # far outside the lower face's ellipse; inside it
    assert LOWER[brow] < 1e-3 and LOWER[chin] > 0.999
    assert np.allclose(out[brow][:3], crop_in[0][brow], atol=1e-3) and np.allclose(out[brow][3:], 0.0, atol=1e-2)
    assert np.allclose(out[chin], edited[0][chin], atol=1e-3)
    half = calibrated(crop_in, edited, Gains(upper=0.5), LOWER)[0][0]
    assert np.allclose(half[brow][3:], (1.5, -1.0), atol=1e-2)


def test_the_flow_moves_the_lower_face_alone_by_the_intensity() -> None:
    crop_in = _crop()
    edited = _edited(crop_in, np.zeros((S, S, 3), np.float32), (1.0, -1.0))
    field = flow_field(GRID, LOWER)
    brow, chin = (30, 64), (100, 64)
    assert np.allclose(field[brow], 0.0, atol=1e-2) and np.abs(field[chin]).max() > 0.5
    for intensity in (1.0, 0.4):
        out = calibrated(crop_in, edited, WIDER, LOWER, intensity=intensity)[0][0]
        assert np.allclose(out[..., 3:], (1.0, -1.0) + intensity * field, atol=1e-5)
        assert np.allclose(out[..., :3], _moved(crop_in[0], out[..., 3:]), atol=1e-5)


def _moved(crop: np.ndarray, motion: np.ndarray) -> np.ndarray:
    from reggan_plugin.geometry.resample import moved_crop

    return moved_crop(crop, motion)


def _image(pixels: np.ndarray):
    from reggan_plugin.imageio import ImageData

    return ImageData(pixels=pixels, path=None, format="png", linear=False, info={})


def test_the_bundled_model_edits_photos_by_its_motion_alone() -> None:
    """On a photograph every expression is the input moved by the model's motion, its paint left out (a smile's upper
    face moved half as far); a render gets the edit as fitted."""
    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.geometry.resample import moved_crop
    from reggan_plugin.renderer import ExpressionRenderer

    photo = ExpressionRenderer(InferenceConfig(backend="cpu", subject="photo"))
    render = ExpressionRenderer(InferenceConfig(backend="cpu", subject="render"))
    smile = Gains(paint=0.0, upper=0.5)  # recipes/default.toml, docs/PHOTO_GAINS.md
    assert photo.gains == {"happy": smile, **{e: Gains(paint=0.0) for e in ("sad", "angry", "surprised", "disgusted",
                                                                             "fearful")}}
    assert render.gains == {} and render.lower_face is None
    pixels, box = face_frame(640, 480, 200)
    prepared = photo.prepare_image(_image(pixels), [Face(box=box)])
    lower = lower_face(photo.size)[..., None]
    for expression, upper in (("happy", smile.upper), ("sad", 1.0)):
        raw = photo.forward(prepared.crops, EditConfig(expression), poses=prepared.poses)
        edited = photo.forward_images([prepared], EditConfig(expression))[0]
        assert np.allclose(edited.faces[..., 3:], raw[..., 3:] * (lower + upper * (1 - lower)), atol=1e-6)
        for crop, face in zip(prepared.crops, edited.faces):
            assert np.allclose(face[..., :3], moved_crop(crop, face[..., 3:], photo.artifact.warp), atol=1e-5)
        assert not np.allclose(raw[..., :3], edited.faces[..., :3], atol=1e-3)  # the paint the render keeps
        assert edited.interior is None  # no drawn inside
        assert np.array_equal(render.forward_images([prepared], EditConfig(expression))[0].faces, raw)
