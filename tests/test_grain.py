"""reggan_plugin.imaging.filters: an edge-preserving split of a picture into structure and grain."""
from __future__ import annotations

import numpy as np
import pytest

from reggan_plugin.imaging.filters import nonlocal_mean
from reggan_plugin.imaging.tone import REC601_LUMA, luma
from reggan_plugin.tuning import NOISE_FLOOR, SEARCH_RADIUS, STRENGTH


def test_nonlocal_mean_keeps_edges_and_drops_grain() -> None:
    rng = np.random.default_rng(0)
    step = np.zeros((40, 40, 3), np.float32)
    step[:, 20:] = 0.6  # an edge far above the grain's contrast
    noise = rng.normal(0, 4 / 255, step.shape).astype(np.float32)
    smooth = nonlocal_mean(step + noise, 4 / 255)
    assert np.abs(smooth - step)[:, :17].std() < 0.5 * noise.std()  # flat areas: the grain is gone
    assert np.abs(smooth[:, 21:] - 0.6).mean() < 0.01  # the edge is kept where it is
    assert smooth[:, 19].mean() < 0.05 and smooth[:, 20].mean() > 0.55


def test_a_flat_picture_is_its_own_structure() -> None:
    flat = np.full((16, 24, 3), 0.3, np.float32)
    np.testing.assert_allclose(nonlocal_mean(flat, 3 / 255), flat, atol=1e-6)


def test_nonlocal_mean_weighs_each_pair_once_as_a_pixel_by_pixel_mean_would() -> None:
    """The pairwise loop against the definition: every pixel, every neighbour of its window, edges repeated."""
    rng = np.random.default_rng(4)
    img = (rng.random((11, 9, 3)) * 0.3 + np.arange(9)[None, :, None] * 0.05).astype(np.float32)
    level = 0.05
    s, m = SEARCH_RADIUS, SEARCH_RADIUS + 1
    p = np.pad(img, ((m, m), (m, m), (0, 0)), mode="edge").astype(np.float64)
    want = np.zeros_like(img, dtype=np.float64)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            y, x = i + m, j + m
            num, den = 0.0, 0.0
            for dy in range(-s, s + 1):
                for dx in range(-s, s + 1):
                    d = ((p[y - 1 : y + 2, x - 1 : x + 2] - p[y + dy - 1 : y + dy + 2, x + dx - 1 : x + dx + 2]) ** 2).sum()
                    w = np.exp(-max(d - 2 * 27 * level**2, 0) / (27 * (STRENGTH * level) ** 2))
                    num, den = num + w * p[y + dy, x + dx], den + w
            want[i, j] = num / den
    np.testing.assert_allclose(nonlocal_mean(img, level), want, atol=1e-5)


def test_noise_level_tells_grainy_pictures_from_clean_ones() -> None:
    from reggan_plugin.imaging.filters import noise_level

    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    face = np.stack([0.5 + 0.003 * xx, 0.4 + 0.002 * yy, 0.3 + 0.2 * (xx > 30)], axis=2)  # shading, an edge
    noisy = face + np.random.default_rng(0).normal(0, 3 / 255, face.shape).astype(np.float32)
    assert noise_level(face) < 0.3 * NOISE_FLOOR
    assert noise_level(noisy) > NOISE_FLOOR
    assert noise_level(np.repeat(noisy[..., :1], 3, axis=2)) < 1e-6  # grey noise has no chroma


def test_a_grainy_picture_is_split_at_its_stronger_noise_luma_or_chroma() -> None:
    from reggan_plugin.imaging.filters import grain_level, noise_level

    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    face = np.stack([0.5 + 0.003 * xx, 0.4 + 0.002 * yy, 0.3 + 0.2 * (xx > 40)], axis=2)
    rng = np.random.default_rng(1)
    gaussian = face + rng.normal(0, 6 / 255, face.shape).astype(np.float32)
    assert grain_level(gaussian) == pytest.approx(noise_level(gaussian), rel=0.1)  # white noise: as much in both
    # a path tracer's noise: mostly the same in every channel (luma), a little chroma
    traced = face + rng.normal(0, 12 / 255, (*face.shape[:2], 1)).astype(np.float32)
    traced += rng.normal(0, 3 / 255, face.shape).astype(np.float32)
    assert noise_level(traced) < 5 / 255
    norm = float(np.sqrt((REC601_LUMA * REC601_LUMA).sum()))  # the luma std of white noise of std 1 in each channel
    assert grain_level(traced) == pytest.approx(np.hypot(12, 3 * norm) / norm / 255, rel=0.1)
    assert grain_level(face) == noise_level(face)  # a clean picture: its chroma level, below the floor


def test_degrained_scales_with_the_noise_and_leaves_clean_pictures_alone() -> None:
    from reggan_plugin.imaging.filters import degrained

    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    face = np.stack([0.5 + 0.003 * xx, 0.4 + 0.002 * yy, 0.3 + 0.2 * (xx > 30)], axis=2)
    assert degrained(face) is face  # a clean picture's finest detail is its own
    noisy = face + np.random.default_rng(0).normal(0, 10 / 255, face.shape).astype(np.float32)
    # split at the level measured, sigma 10 noise goes; split as if it were a clean picture's, much of it stays
    fixed, scaled = np.abs(nonlocal_mean(noisy, NOISE_FLOOR) - face).mean(), np.abs(degrained(noisy) - face).mean()
    assert scaled < 0.6 * fixed
    assert np.abs(degrained(noisy)[:, 34:, 2] - 0.5).mean() < 0.02  # the edge is still where it was


def test_jpeg_blocks_count_as_grain_and_a_clean_render_has_none() -> None:
    import io
    from pathlib import Path

    from PIL import Image

    from reggan_plugin.imaging.filters import blockiness, grain_level
    from reggan_plugin.tuning import BLOCKY

    render = Image.open(Path(__file__).resolve().parents[1] / "samples" / "frames" / "shot_0003.png").convert("RGB")
    saved = io.BytesIO()
    render.save(saved, "JPEG", quality=50)
    clean = np.asarray(render, np.float32) / 255
    blocky = np.asarray(Image.open(saved).convert("RGB"), np.float32) / 255
    assert blockiness(clean) < BLOCKY <= blockiness(blocky)
    assert blockiness(blocky[3:, 5:]) >= BLOCKY  # whatever the grid's phase in the region
    assert grain_level(clean) < NOISE_FLOOR
    assert grain_level(blocky) == NOISE_FLOOR  # JPEG keeps chroma smooth: the blocks alone make it grainy


def test_fireflies_are_taken_out_and_gaussian_noise_and_edges_are_left() -> None:
    from reggan_plugin.imaging.filters import despeckled

    rng = np.random.default_rng(0)
    img = np.full((48, 48, 3), 0.3, np.float32)
    img[:, 30:] = 0.8  # an edge
    level = 3 / 255
    noisy = img + rng.normal(0, level, img.shape).astype(np.float32)
    firefly = noisy.copy()
    firefly[10, 10] = 1.0  # a single pixel far brighter than its neighbours
    out = despeckled(firefly, level)
    assert abs(float(out[10, 10].mean()) - 0.3) < 5 * level
    assert np.mean(out != firefly) < 0.01  # Gaussian noise is hardly touched ...
    np.testing.assert_array_equal(despeckled(img, level), img)  # ... and an edge is its own median


def test_a_pattern_finer_than_the_jpeg_grid_is_not_blocks() -> None:
    from reggan_plugin.imaging.filters import blockiness
    from reggan_plugin.tuning import BLOCKY

    checks = np.random.default_rng(1).uniform(0.2, 0.8, (40, 50, 1))
    two_px = np.repeat(np.kron(checks, np.ones((2, 2, 1))), 3, axis=2).astype(np.float32)  # steps every 2 px
    assert blockiness(two_px) < BLOCKY


def test_a_picture_too_small_to_tell_blocks_is_not_blocky() -> None:
    from reggan_plugin.imaging.filters import blockiness
    from reggan_plugin.tuning import BLOCKS_MIN_SIDE, BLOCKY

    blocks = np.kron(np.random.default_rng(2).uniform(0.2, 0.8, (20, 20, 3)), np.ones((8, 8, 1))).astype(np.float32)
    assert blockiness(blocks) > BLOCKY  # 160 px of hard 8 px blocks ...
    corner = blocks[:96, :96]
    assert corner.shape[0] < BLOCKS_MIN_SIDE and blockiness(corner) == 1.0  # ... and too few of them to tell


def test_a_long_straight_edge_is_not_blocks() -> None:
    from reggan_plugin.imaging.filters import blockiness
    from reggan_plugin.tuning import BLOCKY

    ramp = 0.001 * np.arange(256, dtype=np.float32)[None, :, None]
    frame = np.full((256, 256, 3), 0.4, np.float32) + ramp
    frame[:, 96:] += 0.3  # a photo's border, say: one column of large steps, on one phase of the grid
    assert blockiness(frame) < BLOCKY


def test_luma_is_the_weighted_sum_of_the_colour_channels() -> None:
    rgba = np.random.default_rng(3).random((7, 9, 4), dtype=np.float32)
    assert np.allclose(luma(rgba), rgba[..., :3] @ REC601_LUMA, atol=1e-6)
    assert np.allclose(luma(rgba, np.array([0.0, 1.0, 0.0])), rgba[..., 1])


def test_what_moves_of_a_clean_picture_is_the_picture_and_of_a_grainy_one_less_than_its_structure() -> None:
    from reggan_plugin.imaging.filters import degrained, gaussian_blurred, grain_level, moving_structure

    yy, xx = np.mgrid[0:64, 0:80].astype(np.float32)
    ramp = np.stack([0.3 + 0.004 * xx, 0.4 + 0.002 * yy, 0.5 + 0.2 * (xx > 40)], axis=2)
    assert moving_structure(ramp, grain_level(ramp)) is ramp  # clean: everything moves, the finest detail included
    noisy = np.clip(ramp + np.random.default_rng(0).normal(0, 6 / 255, ramp.shape), 0, 1).astype(np.float32)
    level = grain_level(noisy)
    left = [float(np.sqrt(((x - ramp)[4:-4, 4:36] ** 2).mean())) * 255
            for x in (noisy, degrained(noisy, level), moving_structure(noisy, level))]  # levels of grain on flat shading
    assert left[1] < 0.3 * left[0] and left[2] < left[1] - 0.05  # about 5.9, 1.2, 1.1: what the structure kept goes too
    flat = np.full((9, 7, 3), 0.25, np.float32)
    np.testing.assert_allclose(gaussian_blurred(flat, 0.5), flat, atol=1e-6)


def test_the_split_in_bands_is_the_split_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands keep the split's memory small on large pictures; every pixel must come out as in one piece."""
    from reggan_plugin.imaging import filters

    rng = np.random.default_rng(5)
    img = np.clip(rng.random((360, 41, 3), dtype=np.float32) * 0.2 + 0.4 + rng.normal(0, 0.05, (360, 41, 3)), 0, 1)
    img[np.arange(360), np.arange(360) * 7 % 41] = 1.0  # a firefly on every row, the bands' edges too
    level = filters.grain_level(img)
    banded = filters.degrained(img, level), filters.moving_structure(img, level)
    assert filters.BAND_ROWS < 200  # two bands or more
    monkeypatch.setattr(filters, "BAND_ROWS", 1000)
    whole = filters.degrained(img, level), filters.moving_structure(img, level)
    for got, want in zip(banded, whole):
        np.testing.assert_array_equal(got, want)


def test_the_gaussian_is_the_taps_summed_and_bands_blur_as_the_whole() -> None:
    """OpenCV's separable filter gives the Gaussian taps' sum (edges repeated) to float rounding, for 3 and 7 planes,
    and a picture worked in bands gets the bytes it gets in one piece."""
    from benchmarks.filters import numpy_blurred
    from reggan_plugin.imaging.filters import BAND_ROWS, gaussian_blurred, in_bands

    rng = np.random.default_rng(5)
    for planes, sigma in ((3, 1.5), (7, 0.8)):
        img = rng.random((BAND_ROWS * 2 + 31, 90, planes)).astype(np.float32)
        blurred = gaussian_blurred(img, sigma)
        assert blurred.shape == img.shape and np.abs(blurred - numpy_blurred(img, sigma)).max() < 1e-6
        reach = int(np.ceil(3 * sigma))
        np.testing.assert_array_equal(in_bands(img, reach, lambda band, s=sigma: gaussian_blurred(band, s)), blurred)
