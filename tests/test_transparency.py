"""A film-transparent render's backdrop colour stays out of the edit: no coloured fringe at the face's edge, and the
transparent pixels keep their bits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from reggan_plugin.config import InferenceConfig
from reggan_plugin.faces.faces_json import load_faces_json
from reggan_plugin.imageio.transparency import with_subject_colour_behind
from reggan_plugin.renderer import ExpressionRenderer

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_transparent_pixels_take_the_nearest_subject_colour_and_the_rest_stays():
    rgb = np.zeros((20, 20, 3), np.float32)
    rgb[:, :10] = [0.9, 0.6, 0.5]  # the subject
    rgb[:, 10:] = [0.0, 1.0, 0.0]  # the renderer's green under the transparency
    alpha = np.zeros((20, 20), np.float32)
    alpha[:, :10] = 1.0
    out = with_subject_colour_behind(rgb, alpha)
    np.testing.assert_array_equal(out[:, :10], rgb[:, :10])
    np.testing.assert_allclose(out[:, 10:14], 0 * out[:, 10:14] + [0.9, 0.6, 0.5], atol=1e-5)


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
