"""Alignment geometry: template, Umeyama, crop matrices, warps."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.mouth_detail import laplacian_variance
from reggan_plugin.geometry import align, resample


def _similarity(theta: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def _smooth_image(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([0.5 + 0.4 * np.sin(xx / 23.0), 0.5 + 0.4 * np.cos(yy / 19.0), (xx + yy) / (h + w)], -1)
    return img.astype(np.float32)


def test_canonical_template_layout() -> None:
    pts = align.CANONICAL_5PT
    assert pts.shape == (5, 2)
    assert ((pts > 0.2) & (pts < 0.8)).all()
    # eyes level, left eye left of right eye, nose between and below, mouth below nose
    assert pts[0, 0] < pts[2, 0] < pts[1, 0]
    assert abs(pts[0, 1] - pts[1, 1]) < 0.01
    assert pts[0, 1] < pts[2, 1] < pts[3, 1]
    assert abs(pts[:, 0].mean() - 0.5) < 0.01
    x, y, w, h = align.CANONICAL_BOX
    assert x > 0 and x + w < 1 and y > 0 and y + h < 1
    # the box contains every template point
    assert ((pts[:, 0] > x) & (pts[:, 0] < x + w) & (pts[:, 1] > y) & (pts[:, 1] < y + h)).all()


@pytest.mark.parametrize("theta,scale", [(0.0, 1.0), (0.4, 2.5), (-2.8, 0.3)])
def test_umeyama_recovers_known_similarity(theta: float, scale: float) -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(-50, 150, size=(7, 2))
    truth = _similarity(theta, scale, 12.5, -40.0)
    dst = align.apply_affine(truth, src)
    np.testing.assert_allclose(align.similarity_from_points(src, dst), truth, atol=1e-10)


def test_umeyama_never_reflects_and_rejects_degenerate() -> None:
    src = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    dst = src * np.array([-1.0, 1.0])  # a mirror image: best similarity has positive determinant
    m = align.similarity_from_points(src, dst)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError, match="mirror"):  # fully symmetric: no rotation fits at all
        square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        align.similarity_from_points(square, square * np.array([-1.0, 1.0]))
    with pytest.raises(ValueError):
        align.similarity_from_points(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        align.similarity_from_points(np.full((5, 2), np.nan), np.zeros((5, 2)))


def test_crop_matrix_from_landmarks_maps_to_template() -> None:
    size = 128
    truth = _similarity(0.2, 0.6, -30.0, 15.0)  # some frame->crop similarity
    template_px = align.units_to_crop_px(align.CANONICAL_5PT, size)
    frame_pts = align.apply_affine(align.invert_affine(truth), template_px)
    m = align.crop_matrix_from_landmarks(frame_pts, size)
    np.testing.assert_allclose(m, truth, atol=1e-9)


def test_crop_matrix_from_box() -> None:
    size = 256
    box = (100.0, 50.0, 80.0, 80.0)
    m = align.crop_matrix_from_box(box, size)
    assert m[0, 1] == 0 and m[1, 0] == 0 and m[0, 0] == m[1, 1] > 0
    bx, by, bw, bh = align.CANONICAL_BOX
    centre = align.apply_affine(m, np.array([[box[0] + box[2] / 2, box[1] + box[3] / 2]]))[0]
    np.testing.assert_allclose(centre, align.units_to_crop_px(np.array([bx + bw / 2, by + bh / 2]), size))
    np.testing.assert_allclose(m[0, 0] * box[2], np.sqrt(bw * bh) * size)
    with pytest.raises(ValueError):
        align.crop_matrix_from_box((0, 0, 0, 10), size)


def test_warp_to_crop_identity_and_shift_are_exact() -> None:
    img = _smooth_image(40, 50)
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    np.testing.assert_array_equal(resample.warp_to_crop(img, ident, 32), img[:32, :32])
    shift = np.array([[1.0, 0, -5.0], [0, 1.0, -3.0]])  # crop (0,0) = frame (5,3)
    np.testing.assert_array_equal(resample.warp_to_crop(img, shift, 32), img[3:35, 5:37])


def test_warp_to_crop_edge_replicates() -> None:
    img = _smooth_image(20, 20)
    shift = np.array([[1.0, 0, 10.0], [0, 1.0, 10.0]])  # crop (10,10) = frame (0,0); crop (0,0) is outside
    crop = resample.warp_to_crop(img, shift, 16)
    np.testing.assert_array_equal(crop[0, 0], img[0, 0])
    np.testing.assert_array_equal(crop[10, 15], img[0, 5])


def test_round_trip_reproduces_smooth_image_inside_crop() -> None:
    img = _smooth_image(200, 260)
    m = _similarity(0.3, 1.4, -80.0, -20.0)  # upsampling into the crop, rotated
    size = 96
    crop = resample.warp_to_crop(img, m, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.float32
    (ys, xs), back = resample.warp_from_crop(crop, m, img.shape)
    assert back.shape == (ys.stop - ys.start, xs.stop - xs.start, 3)
    _, cover = resample.warp_from_crop(np.ones((size, size), np.float32), m, img.shape)
    inside = cover > 0.999
    assert inside.sum() > 0.3 * inside.size
    assert np.abs(back - img[ys, xs])[inside].max() < 2e-3


@pytest.mark.parametrize("scale", [1.4, 0.3])  # upsampling, and a shrink that mean-pools first
def test_warp_from_crop_box_gives_the_full_warp_where_values_live(scale: float) -> None:
    rng = np.random.default_rng(3)
    size = 64
    vals = np.zeros((size, size, 4), np.float32)
    vals[10:40, 20:50] = rng.random((30, 30, 4), dtype=np.float32)  # values live in box x 20..50, y 10..40
    m = _similarity(0.3, scale, -80.0 * scale, -20.0 * scale)
    shape = (400, 500, 3)
    canvases = []
    for box in (None, (20, 10, 50, 40)):
        (ys, xs), warped = resample.warp_from_crop(vals, m, shape, box)
        canvas = np.zeros((*shape[:2], 4), np.float32)
        canvas[ys, xs] = warped
        canvases.append((canvas, (ys.stop - ys.start) * (xs.stop - xs.start)))
    (full, full_area), (part, part_area) = canvases
    assert full.any() and part_area < 0.5 * full_area
    np.testing.assert_array_equal(part, full)


def test_warp_from_crop_is_zero_outside_and_restricted_to_roi() -> None:
    m = _similarity(0.0, 0.5, -10.0, -20.0)  # crop shows frame x in [20, 84), y in [40, 104)
    vals = np.ones((32, 32, 2), np.float32)
    (ys, xs), warped = resample.warp_from_crop(vals, m, (1000, 1000))
    assert ys.stop - ys.start < 80 and xs.stop - xs.start < 80
    full = np.zeros((1000, 1000, 2), np.float32)
    full[ys, xs] = warped
    inv = align.invert_affine(m)
    yy, xx = np.mgrid[0:1000, 0:1000]
    cx = m[0, 0] * xx + m[0, 2]
    cy = m[1, 1] * yy + m[1, 2]
    outside = (cx < -1) | (cx > 32) | (cy < -1) | (cy > 32)
    assert (full[outside] == 0).all()
    centre = align.apply_affine(inv, np.array([[16.0, 16.0]]))[0].round().astype(int)
    np.testing.assert_allclose(full[centre[1], centre[0]], 1.0)


def test_warp_to_crop_antialiases_strong_downscale() -> None:
    # A one-pixel checkerboard shrunk 8x must come out as flat grey, not an aliasing pattern.
    yy, xx = np.mgrid[0:800, 0:800]
    checker = ((xx + yy) % 2).astype(np.float32)[..., None]
    m = np.array([[0.125, 0, 0], [0, 0.125, 0]])
    crop = resample.warp_to_crop(checker, m, 64)
    assert abs(float(crop.mean()) - 0.5) < 0.02
    assert float(crop.std()) < 0.05


def test_warp_from_crop_downscale_keeps_mean() -> None:
    size = 256
    m = np.array([[4.0, 0, -100.0], [0, 4.0, -100.0]])  # the crop is 4x the face in the frame
    yy, xx = np.mgrid[0:size, 0:size]
    checker = ((xx + yy) % 2).astype(np.float32)
    _roi, warped = resample.warp_from_crop(checker, m, (200, 200))
    core = warped[4:-4, 4:-4]
    assert abs(float(core.mean()) - 0.5) < 0.02 and float(core.std()) < 0.05


def test_sample_planes_cubic_keeps_the_pixel_detail_bilinear_averages_away() -> None:
    """About half a pixel off in both directions, bilinear keeps under a tenth of white noise's Laplacian energy
    (the finest detail there is) and bicubic over three times as much, while both move a smooth ramp exactly (to
    OpenCV's 1/32 px) and integer shifts return the pixels bit for bit."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:60, 0:70].astype(np.float32)
    ramp = 0.2 + 0.004 * xx + 0.003 * yy
    img = (ramp + rng.uniform(-0.03, 0.03, ramp.shape))[..., None].astype(np.float32)
    inner = (slice(4, -4), slice(4, -4))
    gy, gx = yy[inner], xx[inner]
    before = laplacian_variance(img[..., 0][inner])
    cubic = resample.sample_planes_cubic(img, gx + 0.45, gy + 0.45)[0]
    blurred = resample.sample_planes(img, gx + 0.45, gy + 0.45)[0]
    assert laplacian_variance(blurred) < 0.1 * before
    assert laplacian_variance(cubic) > 3 * laplacian_variance(blurred)
    moved_ramp = resample.sample_planes_cubic(ramp[..., None], gx + 0.3, gy - 0.7)[0]
    np.testing.assert_allclose(moved_ramp, ramp[inner] + 0.004 * 0.3 - 0.003 * 0.7, atol=5e-4)
    np.testing.assert_array_equal(resample.sample_planes_cubic(img, gx + 2, gy - 1)[0], img[3:-5, 6:-2, 0])
    assert resample.sample_planes_cubic(img, np.zeros(40000), np.zeros(40000)).shape == (1, 40000)  # any count
