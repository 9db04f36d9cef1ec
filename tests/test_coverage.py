"""The face-coverage model: where the head covers an aligned crop, so the edit never drags the backdrop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reggan_plugin.edit.coverage import FaceCoverage, kept_on_the_head, without_holes
from reggan_plugin.errors import ModelError
from reggan_plugin.faces import Face
from reggan_plugin.geometry.align import crop_matrix_from_landmarks
from reggan_plugin.geometry.resample import warp_to_crop

TURNED = Path(__file__).resolve().parent / "data" / "turned"


@pytest.mark.parametrize("identity", ["id00000", "id00002"])
def test_the_shipped_model_finds_a_turned_heads_silhouette(identity):
    """On renders it was not fitted on, heads turned 18-35 degrees, its coverage is the render's own alpha: the head
    and its backdrop told apart on 97% or more of the crop."""
    with Image.open(TURNED / f"{identity}_neutral.png") as im:
        rgba = np.asarray(im.convert("RGBA"), np.float32) / 255.0
    points = np.asarray(json.loads((TURNED / f"{identity}_neutral.landmarks.json").read_text())["points"], float)
    five = Face(box=(0, 0, 1, 1), landmarks=points).landmarks5()
    assert five is not None
    crop = warp_to_crop(rgba, crop_matrix_from_landmarks(five, 128), 128)
    coverage = FaceCoverage()(crop[None, ..., :3])[0][0]
    head = crop[..., 3] > 0.5
    assert 1 - head.mean() > 0.2, "the far side of a turned head's crop is backdrop"
    assert np.mean((coverage > 0.5) == head) >= 0.97


@pytest.mark.parametrize("identity", ["id00000", "id00002"])
def test_the_shipped_model_finds_a_turned_heads_jaw_line(identity):
    """On the same renders its face layer is the head above the render's own jaw line (its 68 landmarks) on 97% or
    more of the crop, and on 90% or more of the band 6 px either side of that line, where the neck begins."""
    pytest.importorskip("torch")
    from training.coverage import jaw_agreement, render_crop

    crop, alpha, jaw = render_crop(TURNED / f"{identity}_neutral.png", np.random.default_rng(0), 0.0)
    raw = FaceCoverage().session.run(["face"], {"crop": crop[None]})[0][0]
    crop_share, band_share = jaw_agreement(raw, alpha, jaw)
    assert crop_share >= 0.97
    assert band_share >= 0.90, band_share


def test_a_hole_inside_the_head_is_covered_and_the_backdrop_is_not():
    coverage = np.zeros((40, 40), np.float32)
    coverage[5:35, 8:32] = 1.0
    coverage[15:19, 14:18] = 0.1  # a dark pupil the model missed
    coverage[20:35, 8] = 0.6  # the soft edge, open to the backdrop
    filled = without_holes(coverage)
    assert np.all(filled[15:19, 14:18] == 1.0)
    np.testing.assert_array_equal(filled[20:35, 8], 0.6)
    np.testing.assert_array_equal(filled[:5], 0.0)


def test_the_edit_stays_off_pixels_that_would_read_the_backdrop():
    """A pixel on the head whose motion reads the backdrop keeps nothing of the edit; one reading the head keeps it."""
    mask = np.ones((16, 16), np.float32)
    coverage = np.zeros((16, 16), np.float32)
    coverage[:, :8] = 1.0  # the head on the left half
    motion = np.zeros((16, 16, 2), np.float32)
    motion[:, :, 0] = 3.0  # every pixel reads 3 px to its right
    kept = kept_on_the_head(mask, coverage, motion)
    assert np.all(kept[:, :4] == 1.0)  # reads the head
    assert np.all(kept[:, 6:8] == 0.0)  # on the head, reads the backdrop
    assert np.all(kept[:, 8:] == 0.0)  # the backdrop itself
    np.testing.assert_array_equal(kept_on_the_head(mask, coverage, None), coverage)


def test_below_the_jaw_only_what_the_chin_moves_over_takes_the_edit():
    """A chin dropping 4 px over the neck: the neck it moves onto takes the edit (it reads the face), the neck further
    down keeps its own pixels (it reads the neck), and the face keeps the edit."""
    mask = np.ones((32, 32), np.float32)
    coverage = np.ones((32, 32), np.float32)
    face = np.zeros((32, 32), np.float32)
    face[:16] = 1.0  # the face above row 16, the neck below
    motion = np.zeros((32, 32, 2), np.float32)
    motion[..., 1] = -4.0  # every pixel reads 4 px above: the jaw drops
    kept = kept_on_the_head(mask, coverage, motion, face)
    assert np.all(kept[:20] == 1.0)
    assert np.all(kept[21:] == 0.0)
    np.testing.assert_array_equal(kept_on_the_head(mask, coverage, None, face), face)


def test_the_face_layer_a_model_learns_ends_at_the_jaw_line():
    """The face layer's target: 1 above the landmarks' jaw line and 0 below it, and beside the line's span (the lips
    and nose of a turned head reach past its far end) nothing is below it."""
    pytest.importorskip("torch")
    from training.coverage import face_layer

    jaw = np.array([(10.0, 20.0), (32.0, 50.0), (54.0, 20.0)])  # ear, chin, ear
    layer = face_layer(jaw, 64)
    assert layer[45, 32] == 1.0 and layer[55, 32] == 0.0  # above and below the chin
    assert layer[30, 20] == 1.0 and layer[40, 20] == 0.0  # the jaw at x = 20 is at y = 33.6
    assert np.all(layer[:, :10] == 1.0) and np.all(layer[:, 55:] == 1.0)
    assert np.count_nonzero((layer[:, 32] > 0) & (layer[:, 32] < 1)) <= 1  # an edge one pixel wide


def test_a_file_that_is_no_coverage_model_is_refused_naming_it(tmp_path, tiny_onnx):
    with pytest.raises(ModelError, match="missing"):
        FaceCoverage(tmp_path / "none.onnx")
    with pytest.raises(ModelError, match="not a coverage model") as caught:
        FaceCoverage(Path(tiny_onnx))
    assert str(Path(tiny_onnx)) in str(caught.value)


def test_a_picture_it_sees_no_head_in_is_edited_as_without_it():
    """A gradient with noise (a texture, a stylised face the model never saw): no head in the face's core, so the
    coverage is trusted nowhere and the whole crop is kept."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    crop = np.clip(np.stack([xx, yy, 0.5 + 0.2 * np.sin(xx * 25)], -1) + rng.uniform(-0.05, 0.05, (128, 128, 3)), 0, 1)
    coverage = FaceCoverage()
    raw = coverage.session.run(["coverage"], {"crop": crop[None].astype(np.float32)})[0][0]
    assert raw.mean() < 0.5  # the model itself finds no head
    heads, layers = coverage(crop[None].astype(np.float32))
    np.testing.assert_array_equal(heads[0], 1.0)
    np.testing.assert_array_equal(layers[0], 1.0)
