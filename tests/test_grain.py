"""reggan_plugin.grain: an edge-preserving split of a picture into structure and grain."""
from __future__ import annotations

import numpy as np

from reggan_plugin.grain import structure


def test_structure_keeps_edges_and_drops_grain() -> None:
    rng = np.random.default_rng(0)
    step = np.zeros((40, 40, 3), np.float32)
    step[:, 20:] = 0.6  # an edge far above the grain's contrast
    noise = rng.normal(0, 4 / 255, step.shape).astype(np.float32)
    smooth = structure(step + noise)
    assert np.abs(smooth - step)[:, :17].std() < 0.5 * noise.std()  # flat areas: the grain is gone
    assert np.abs(smooth[:, 23:] - 0.6).mean() < 0.01  # the edge is kept where it is
    assert smooth[:, 19].mean() < 0.2 and smooth[:, 20].mean() > 0.4


def test_a_flat_picture_is_its_own_structure() -> None:
    flat = np.full((16, 24, 3), 0.3, np.float32)
    np.testing.assert_allclose(structure(flat), flat, atol=1e-6)


def test_noise_level_tells_grainy_pictures_from_clean_ones() -> None:
    from reggan_plugin.grain import NOISE_FLOOR, noise_level

    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    face = np.stack([0.5 + 0.003 * xx, 0.4 + 0.002 * yy, 0.3 + 0.2 * (xx > 30)], axis=2)  # shading, an edge
    noisy = face + np.random.default_rng(0).normal(0, 3 / 255, face.shape).astype(np.float32)
    assert noise_level(face) < 0.3 * NOISE_FLOOR
    assert noise_level(noisy) > NOISE_FLOOR
    assert noise_level(np.repeat(noisy[..., :1], 3, axis=2)) < 1e-6  # grey noise has no chroma


def test_degrained_scales_with_the_noise_and_leaves_clean_pictures_alone() -> None:
    from reggan_plugin.grain import degrained

    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    face = np.stack([0.5 + 0.003 * xx, 0.4 + 0.002 * yy, 0.3 + 0.2 * (xx > 30)], axis=2)
    assert degrained(face) is face  # a clean picture's finest detail is its own
    noisy = face + np.random.default_rng(0).normal(0, 10 / 255, face.shape).astype(np.float32)
    # sigma 10 noise is about the fixed grain contrast: a fixed eps keeps much of it, the noise-scaled one does not
    fixed, scaled = np.abs(structure(noisy) - face).mean(), np.abs(degrained(noisy) - face).mean()
    assert scaled < 0.6 * fixed
    assert np.abs(degrained(noisy)[:, 34:, 2] - 0.5).mean() < 0.02  # the edge is still where it was
