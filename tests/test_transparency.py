"""A film-transparent render's backdrop colour stays out of the edit: no coloured fringe at the face's edge, and the
transparent pixels keep their bits."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from reggan_plugin.config import InferenceConfig
from reggan_plugin.faces.faces_json import load_faces_json
from reggan_plugin.imageio.transparency import behind_the_subject, with_subject_colour_behind
from reggan_plugin.renderer import ExpressionRenderer

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
FRINGE = 10.0  # levels: the bundled models give 4-5 on the demo's turned frame, the edge's green read as it is 27-67


def test_transparent_pixels_take_the_nearest_subject_colour_and_the_rest_stays():
    rgb = np.zeros((20, 20, 3), np.float32)
    rgb[:, :10] = [0.9, 0.6, 0.5]  # the subject
    rgb[:, 10:] = [0.0, 1.0, 0.0]  # the renderer's green under the transparency
    alpha = np.zeros((20, 20), np.float32)
    alpha[:, :10] = 1.0
    out = with_subject_colour_behind(rgb, alpha)
    np.testing.assert_array_equal(out[:, :10], rgb[:, :10])
    np.testing.assert_allclose(out[:, 10:14], 0 * out[:, 10:14] + [0.9, 0.6, 0.5], atol=1e-5)


def test_a_partly_covered_edge_reads_as_the_subject_and_a_partly_covered_inside_stays():
    """The antialiased edge mixes the subject with the colour under the transparency: it takes the subject's colour.
    A partly covered pixel further than the edge's width from any transparent one (glass, a veil) keeps its own."""
    subject, green = np.array([0.9, 0.6, 0.5], np.float32), np.array([0.0, 1.0, 0.0], np.float32)
    rgb = np.zeros((20, 30, 3), np.float32)
    alpha = np.zeros((20, 30), np.float32)
    rgb[:, :20], alpha[:, :20] = subject, 1.0
    rgb[:, 20:], alpha[:, 20] = green, 0.5
    rgb[:, 20] = 0.5 * subject + 0.5 * green  # the edge, mixed with the green
    rgb[5, 5], alpha[5, 5] = [0.2, 0.2, 0.8], 0.5  # a half-transparent blue pixel inside the subject
    out = with_subject_colour_behind(rgb, alpha)
    np.testing.assert_allclose(out[:, 20], 0 * out[:, 20] + subject, atol=1e-5)
    np.testing.assert_array_equal(out[5, 5], rgb[5, 5])
    np.testing.assert_array_equal(out[:, :5], rgb[:, :5])


def test_without_a_fully_covered_pixel_only_the_transparent_ones_are_behind_the_subject():
    """Paste-back writes nothing where it read the subject's colour instead of the picture's: with no fully covered
    pixel it reads the partly covered edge as it is, so it writes it too."""
    alpha = np.zeros((6, 8), np.float32)
    alpha[:, :4] = 0.5
    assert not behind_the_subject(alpha)[:, :4].any() and behind_the_subject(alpha)[:, 4:].all()
    alpha[:, :2] = 1.0
    assert behind_the_subject(alpha)[:, 2:4].all()  # a fully covered pixel: the edge next to the clear ones is behind


def test_the_colour_under_a_transparent_backdrop_changes_nothing_of_the_edit():
    """The demo's renders keep a saturated green under their transparency (a fringe of up to 25 levels at the jaw when
    the paste read it): the same frame with magenta there instead is edited to the same pixels wherever it is not fully
    transparent, and the fully transparent pixels keep their bits."""
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    faces = load_faces_json(SAMPLES / "faces.json").faces_for("shot_0001.png")
    with Image.open(SAMPLES / "frames" / "shot_0001.png") as im:
        green = np.asarray(im.convert("RGBA"))
    transparent = green[..., 3] == 0
    assert green[transparent][:, 1].mean() > 140
    magenta = green.copy()
    magenta[transparent, :3] = [230, 20, 200]
    out_green, out_magenta = (renderer.apply_array(f, faces=faces, expression="happy") for f in (green, magenta))
    np.testing.assert_array_equal(out_green[~transparent], out_magenta[~transparent])
    np.testing.assert_array_equal(out_magenta[transparent], magenta[transparent])
    assert np.abs(out_green[~transparent].astype(int) - green[~transparent]).max() > 20  # the face was edited


@pytest.mark.parametrize("expression", ["surprised", "angry"])
def test_a_turned_demo_frame_gets_no_fringe_of_the_colour_under_its_transparency(expression):
    """The demo's frame 6 (the head turned a little) edited: on the opaque side of the head's edge, within 3 px of it,
    the output is no greener than the input by more than ``FRINGE`` levels (green less the mean of red and blue, its
    99.5th percentile): 5 and 4 levels; reading the green its antialiased edge mixes in, 27 and 67."""
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    faces = load_faces_json(SAMPLES / "faces.json").faces_for("shot_0006.png")
    with Image.open(SAMPLES / "frames" / "shot_0006.png") as im:
        frame = np.asarray(im.convert("RGBA"))
    alpha = frame[..., 3]
    band = (alpha == 255) & (cv2.dilate((alpha < 255).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
    out = renderer.apply_array(frame, faces=faces, expression=expression)

    def green(pixels: np.ndarray) -> np.ndarray:
        rgb = pixels[..., :3].astype(np.float64)
        return rgb[..., 1] - (rgb[..., 0] + rgb[..., 2]) / 2

    assert np.percentile(green(out)[band] - green(frame)[band], 99.5) <= FRINGE
