"""reggan_plugin.edit.face_level: faces darker than the model's range edited brought up into it, the edit scaled back."""
from __future__ import annotations

import numpy as np
import pytest

from reggan_plugin.edit.face_level import face_levels, lift_gains, lifted, scaled_back
from reggan_plugin.imageio.colour import srgb_decode, srgb_encode
from reggan_plugin.tuning import DARKEST_FACE

S = 64


def _face_crops(levels: list[float]) -> np.ndarray:
    """Crops of a shaded face-like pattern whose linear light is scaled to each mean level."""
    y, x = np.mgrid[0:S, 0:S].astype(np.float32) / S
    shade = 0.6 + 0.4 * np.cos(6 * x) * np.sin(5 * y)
    base = np.stack([shade, 0.7 * shade, 0.5 * shade], axis=-1)
    crops = []
    for level in levels:
        one = base * (level / float(face_levels(srgb_encode(base)[None])[0]))
        crops.append(np.clip(srgb_encode(one), 0, 1))
    return np.stack(crops).astype(np.float32)


def test_only_faces_under_the_range_are_lifted_and_up_to_its_edge() -> None:
    crops = _face_crops([DARKEST_FACE / 4, DARKEST_FACE * 2])
    gains = lift_gains(crops)
    assert gains[0] == pytest.approx(4.0, rel=1e-3) and gains[1] == 1.0
    up = lifted(crops, gains)
    assert face_levels(up)[0] == pytest.approx(DARKEST_FACE, rel=1e-3)
    assert np.array_equal(up[1], crops[1])
    within = crops[1:]
    assert lifted(within, gains[1:]) is within  # nothing to lift: the same array


def test_an_edit_scaled_back_is_the_same_change_in_proportion_to_the_faces_light() -> None:
    crops = _face_crops([DARKEST_FACE / 3])
    gains = lift_gains(crops)
    up = lifted(crops, gains)
    unchanged = scaled_back(crops, up, up.copy(), gains)
    assert np.array_equal(unchanged, crops)  # no change: the crop's own pixels, bit for bit
    darker = np.clip(srgb_encode(srgb_decode(up) * 0.7), 0, 1)  # an edit that darkens the lifted face 30%
    back = scaled_back(crops, up, darker, gains)
    assert np.allclose(srgb_decode(back), srgb_decode(crops) * 0.7, atol=2e-4)


def test_the_bundled_model_edits_a_face_under_its_range_as_the_same_face_at_its_edge_darkened() -> None:
    """Below the range the edit follows the light: a face at half the edge's brightness gets the edit of the face at
    the edge, darkened by half in linear light (an additive paint would go twice as deep, into black)."""
    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.imageio import ImageData
    from reggan_plugin.renderer import ExpressionRenderer

    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    pixels, box = face_frame(480, 360, 160)
    prepared = renderer.prepare_image(ImageData(pixels=pixels, path=None, format="png", linear=False, info={}),
                                      [Face(box=box)])
    at_edge = lifted(prepared.crops, DARKEST_FACE / face_levels(prepared.crops))
    half = np.clip(srgb_encode(srgb_decode(at_edge) * 0.5), 0, 1)
    assert lift_gains(at_edge)[0] == pytest.approx(1.0, abs=1e-3) and lift_gains(half)[0] == pytest.approx(2.0, rel=1e-2)
    edit = EditConfig("happy")
    edge_edit = renderer.forward(at_edge, edit)[..., :3]
    half_edit = renderer.forward(half, edit)[..., :3]
    change = srgb_decode(half_edit) - srgb_decode(half)
    expected = (srgb_decode(edge_edit) - srgb_decode(at_edge)) * 0.5
    assert np.abs(change - expected).max() < 0.01 and np.abs(change).max() > 0.01
