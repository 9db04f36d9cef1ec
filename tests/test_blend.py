"""Paste-back: feathered mask, bit identity outside it, no seam, colour matching."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.mouth_detail import laplacian_variance
from reggan_plugin import tuning
from reggan_plugin.edit import blend
from reggan_plugin.geometry import align, resample
from reggan_plugin.imaging.tone import REC709_LUMA

SIZE = 96


def _frame(h: int = 160, w: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([0.5 + 0.3 * np.sin(xx / 17.0), 0.4 + 0.3 * np.cos(yy / 13.0), 0.2 + 0.5 * xx / w], -1)
    return img.astype(np.float32)


def _face_matrix() -> np.ndarray:
    # face of ~60 px eye-to-mouth scale centred in the frame, slightly rotated
    pts = np.array([[88.0, 70.0], [118.0, 72.0], [102.0, 88.0], [90.0, 106.0], [115.0, 107.0]])
    return align.crop_matrix_from_landmarks(pts, SIZE)


def test_feather_mask_shape_range_and_zero_border() -> None:
    mask = blend.feather_mask(SIZE)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == 1.0
    b = tuning.MASK_BORDER_PX
    assert not mask[:b].any() and not mask[-b:].any() and not mask[:, :b].any() and not mask[:, -b:].any()
    # the template's face points are fully inside
    pts = align.units_to_crop_px(align.CANONICAL_5PT, SIZE).round().astype(int)
    assert (mask[pts[:, 1], pts[:, 0]] == 1.0).all()
    # smooth falloff: smootherstep's steepest slope is 1.875 per feather width
    width_px = tuning.MASK_FEATHER * min(tuning.MASK_RADII) * SIZE
    assert max(np.abs(np.diff(mask, axis=0)).max(), np.abs(np.diff(mask, axis=1)).max()) < 2.0 / width_px
    with pytest.raises(ValueError):
        blend.feather_mask(SIZE, radii=(0.45, 0.45))


def test_zero_delta_returns_input_bit_identical() -> None:
    frame = _frame()
    m = _face_matrix()
    crop = resample.warp_to_crop(frame, m, SIZE)
    new, fmask = blend.paste_back(frame, crop, crop.copy(), m, blend.feather_mask(SIZE))
    np.testing.assert_array_equal(new, frame)
    assert fmask.shape == frame.shape[:2] and fmask.max() > 0.99


def test_outside_mask_bit_identical_and_inside_changed() -> None:
    frame = _frame()
    m = _face_matrix()
    crop = resample.warp_to_crop(frame, m, SIZE)
    rng = np.random.default_rng(0)
    out = np.clip(crop + rng.normal(0, 0.1, crop.shape).astype(np.float32), 0, 1)
    new, fmask = blend.paste_back(frame, crop, out, m, blend.feather_mask(SIZE), colour_match=False)
    outside = fmask == 0
    assert outside.sum() > 0.5 * outside.size
    np.testing.assert_array_equal(new[outside], frame[outside])
    assert np.abs(new - frame)[fmask > 0.9].mean() > 0.03
    # the frame mask is 0 outside the crop's footprint
    inv = align.invert_affine(m)
    corners = align.apply_affine(inv, np.array([[0, 0], [SIZE, 0], [0, SIZE], [SIZE, SIZE]], float))
    ys, xs = np.nonzero(fmask)
    assert xs.min() >= corners[:, 0].min() and xs.max() <= corners[:, 0].max()
    assert ys.min() >= corners[:, 1].min() and ys.max() <= corners[:, 1].max()


def test_no_seam_applied_delta_is_continuous() -> None:
    frame = np.full((160, 200, 3), 0.5, np.float32)
    m = _face_matrix()
    crop = resample.warp_to_crop(frame, m, SIZE)
    out = crop + np.array([0.2, 0.2, 0.2], np.float32)  # a uniform change: worst case for a seam
    new, _fmask = blend.paste_back(frame, crop, out, m, blend.feather_mask(SIZE), colour_match=False)
    applied = (new - frame)[..., 0]
    assert applied.max() == pytest.approx(0.2, abs=1e-5)
    # frame px per crop px ~ 1 / scale; the feather spans >= 0.25 * 0.29 * SIZE crop px
    feather_frame_px = tuning.MASK_FEATHER * min(tuning.MASK_RADII) * SIZE / align.matrix_scale(m)
    bound = 0.2 * 2.0 / feather_frame_px  # smootherstep's steepest slope is 1.875 / width
    step = max(np.abs(np.diff(applied, axis=0)).max(), np.abs(np.diff(applied, axis=1)).max())
    assert step < bound
    assert step < 0.05  # a hard mask would jump by 0.2


def test_colour_matching_removes_cast_keeps_shape_change() -> None:
    base = _frame()
    yy, xx = np.mgrid[0:160, 0:200].astype(np.float32)

    def with_mouth(cy: float) -> np.ndarray:
        blob = np.exp(-((xx - 103) ** 2 + (yy - cy) ** 2) / (2 * 6.0**2))
        return np.clip(base * (1 - 0.6 * blob[..., None]), 0, 1).astype(np.float32)

    frame = with_mouth(95.0)
    m = _face_matrix()
    mask = blend.feather_mask(SIZE)
    crop = resample.warp_to_crop(frame, m, SIZE)
    # the "model": moves a feature (the dark mouth drops 3 px: a shape-only change) and adds a cast
    cast = np.array([0.06, -0.04, 0.03], np.float32)
    out = resample.warp_to_crop(with_mouth(98.0), m, SIZE) + cast
    drift = {}
    for cm in (False, True):
        new, fmask = blend.paste_back(frame, crop, out, m, mask, colour_match=cm)
        face = fmask > 0.5
        drift[cm] = np.abs(new[face].mean(0) - frame[face].mean(0)).max()
        if cm:  # the shape change survives: the mouth moved
            assert np.abs(new - frame)[face].max() > 0.05
    assert drift[False] > 0.03
    assert drift[True] < 0.005
    np.testing.assert_allclose(blend.colour_cast(out - crop, mask), cast, atol=1e-3)


def test_several_faces_by_repeated_calls() -> None:
    frame = np.full((120, 300, 3), 0.3, np.float32)
    mask = blend.feather_mask(SIZE)
    m1 = align.crop_matrix_from_box((30, 30, 60, 60), SIZE)
    m2 = align.crop_matrix_from_box((200, 30, 60, 60), SIZE)
    new = frame
    total = np.zeros(frame.shape[:2], np.float32)
    for mm in (m1, m2):
        crop = resample.warp_to_crop(new, mm, SIZE)
        new, fm = blend.paste_back(new, crop, crop + 0.1, mm, mask, colour_match=False)
        total = np.maximum(total, fm)
    assert new[60, 60, 0] == pytest.approx(0.4, abs=1e-5) and new[60, 230, 0] == pytest.approx(0.4, abs=1e-5)
    np.testing.assert_array_equal(new[total == 0], frame[total == 0])
    assert new[60, 150, 0] == np.float32(0.3)


def test_result_is_clipped_to_unit_range() -> None:
    frame = np.full((100, 100, 3), 0.95, np.float32)
    m = align.crop_matrix_from_box((25, 25, 50, 50), SIZE)
    crop = resample.warp_to_crop(frame, m, SIZE)
    new, _ = blend.paste_back(frame, crop, crop + 0.5, m, blend.feather_mask(SIZE), colour_match=False)
    assert new.max() <= 1.0 and new.min() >= 0.0


def test_face_partly_outside_the_frame() -> None:
    frame = _frame(120, 150)
    m = align.crop_matrix_from_box((110.0, -20.0, 70.0, 70.0), SIZE)  # hangs off the top right corner
    crop = resample.warp_to_crop(frame, m, SIZE)
    new, fmask = blend.paste_back(frame, crop, crop + 0.1, m, blend.feather_mask(SIZE), colour_match=False)
    assert new.shape == frame.shape and fmask.shape == frame.shape[:2]
    assert fmask[0, -1] == pytest.approx(1.0) and fmask[-1, 0] == 0
    np.testing.assert_array_equal(new[fmask == 0], frame[fmask == 0])
    np.testing.assert_allclose(new[0, -1], np.clip(frame[0, -1] + 0.1, 0, 1), atol=1e-6)


def _sharp_frame(h: int = 160, w: int = 200) -> np.ndarray:
    """Grey 2 px checks of random brightness: detail finer than the crop can hold, with no chroma noise (not grain)."""
    checks = np.random.default_rng(1).uniform(0.2, 0.8, (h // 2, w // 2, 1))
    return np.repeat(np.kron(checks, np.ones((2, 2, 1))), 3, axis=2).astype(np.float32)


def test_motion_moves_the_frame_at_its_own_resolution() -> None:
    """A model that only moves pixels: the frame is moved exactly inside the mask, not pasted as a blurred delta."""
    frame = _sharp_frame()
    m = _face_matrix()
    assert align.matrix_scale(m) < 1  # the crop is coarser than the frame
    shift = np.array([3.0, -2.0])  # frame px
    motion = np.broadcast_to((m[:, :2] @ shift).astype(np.float32), (SIZE, SIZE, 2))
    mask = blend.feather_mask(SIZE)
    crop = resample.warp_to_crop(frame, m, SIZE)
    gy, gx = np.mgrid[0:SIZE, 0:SIZE]
    moved = resample.sample(crop, gx + motion[..., 0], gy + motion[..., 1])
    new, fmask = blend.paste_back(frame, crop, moved, m, mask, motion=motion, colour_match=False)
    inside = fmask == 1.0
    ys, xs = np.nonzero(inside)
    assert len(ys) > 500
    # the frame's structure moves exactly; its grain (pixel-scale detail below the grain contrast) stays put
    from reggan_plugin.imaging.filters import grain_level, moving_structure

    smooth = moving_structure(frame, grain_level(frame))
    np.testing.assert_allclose(new[ys, xs], smooth[ys - 2, xs + 3] + (frame - smooth)[ys, xs], atol=1e-4)
    np.testing.assert_array_equal(new[fmask == 0], frame[fmask == 0])
    # the same edit pasted as a difference only approximates the move at the crop's resolution
    as_delta, _ = blend.paste_back(frame, crop, moved, m, mask, colour_match=False)
    assert np.abs(as_delta[ys, xs] - frame[ys - 2, xs + 3]).mean() > 10 * np.abs(new[ys, xs] - frame[ys - 2, xs + 3]).mean()


def test_motion_keeps_a_clean_frames_pixel_detail() -> None:
    """A large clean face moved by fractions of a pixel (0.4 px each way here, near the worst case) keeps most of its
    fine detail (skin texture a few pixels across), where bilinear interpolation would keep under half of it."""
    rng = np.random.default_rng(4)
    pores = cv2.GaussianBlur(rng.uniform(-0.02, 0.02, (640, 800)).astype(np.float32), (0, 0), 0.7)
    frame = np.clip(_frame(640, 800) + pores[..., None], 0, 1).astype(np.float32)  # grey
    m = _face_matrix() / np.array([[4.0], [4.0]]) * np.array([1.0, 1.0, 4.0])  # the same face 4x larger
    motion = np.broadcast_to((m[:, :2] @ np.array([1.4, -0.6])).astype(np.float32), (SIZE, SIZE, 2))
    crop = resample.warp_to_crop(frame, m, SIZE)
    gy, gx = np.mgrid[0:SIZE, 0:SIZE]
    moved = resample.sample(crop, gx + motion[..., 0], gy + motion[..., 1])
    new, fmask = blend.paste_back(frame, crop, moved, m, blend.feather_mask(SIZE), motion=motion, colour_match=False)
    rows, cols = np.nonzero(fmask == 1.0)
    inside = (slice(rows.min() + 2, rows.max() - 2), slice(cols.min() + 2, cols.max() - 2))
    kept = laplacian_variance(new[inside].mean(axis=2)) / laplacian_variance(frame[inside].mean(axis=2))
    gy, gx = np.mgrid[inside].astype(np.float32)
    shift = np.linalg.solve(m[:, :2], motion[0, 0])  # the frame px the motion reads from
    bilinear = resample.sample(frame, gx + shift[0], gy + shift[1]).mean(axis=2)
    assert kept > 0.65 and laplacian_variance(bilinear) < 0.4 * laplacian_variance(frame[inside].mean(axis=2))
    np.testing.assert_allclose(new[inside].mean(), frame[inside].mean(), atol=0.01)


def test_motion_pastes_the_painted_rest_as_a_delta() -> None:
    frame = _frame()
    m = _face_matrix()
    mask = blend.feather_mask(SIZE)
    crop = resample.warp_to_crop(frame, m, SIZE)
    zero = np.zeros((SIZE, SIZE, 2), np.float32)
    painted = np.clip(crop + 0.1, 0, 1)
    with_zero, _ = blend.paste_back(frame, crop, painted, m, mask, motion=zero)
    plain, _ = blend.paste_back(frame, crop, painted, m, mask)
    np.testing.assert_array_equal(with_zero, plain)  # no motion: exactly the delta paste
    unchanged, _ = blend.paste_back(frame, crop, crop.copy(), m, mask, motion=zero)
    np.testing.assert_array_equal(unchanged, frame)
    with pytest.raises(ValueError, match="motion"):
        blend.paste_back(frame, crop, painted, m, mask, motion=zero[:-1])


def test_motion_moves_a_face_but_not_its_render_noise() -> None:
    """Render noise belongs to the picture, not to the face: a moved face keeps the noise where it was, so the
    edit (output - input) of a noisy frame is the noise-free frame's edit."""
    yy, xx = np.mgrid[0:160, 0:200].astype(np.float32)
    frame = np.stack([0.3 + 0.002 * xx, 0.4 + 0.001 * yy, 0.5 + 0.2 * (xx > 100)], axis=2)  # shading and an edge
    m = _face_matrix()
    shift = np.array([3.0, -2.0])
    motion = np.broadcast_to((m[:, :2] @ shift).astype(np.float32), (SIZE, SIZE, 2))
    mask = blend.feather_mask(SIZE)
    noise = np.random.default_rng(0).normal(0, 6 / 255, frame.shape).astype(np.float32)

    def edit(picture: np.ndarray) -> np.ndarray:
        crop = resample.warp_to_crop(picture, m, SIZE)
        gy, gx = np.mgrid[0:SIZE, 0:SIZE]
        moved = resample.sample(crop, gx + motion[..., 0], gy + motion[..., 1])
        new, fmask = blend.paste_back(picture, crop, moved, m, mask, motion=motion, colour_match=False)
        return (new - picture)[fmask == 1.0]

    clean, noisy = edit(frame), edit(np.clip(frame + noise, 0, 1))
    moved_noise = float(np.std(noise[..., 0]) * np.sqrt(2))  # what moving every pixel would add to the edit
    assert float(np.std(noisy - clean)) < 0.5 * moved_noise


def _noisy_frame() -> np.ndarray:
    yy, xx = np.mgrid[0:160, 0:200].astype(np.float32)
    frame = np.stack([0.3 + 0.002 * xx, 0.4 + 0.001 * yy, 0.5 + 0.2 * (xx > 100)], axis=2)
    noisy = frame + np.random.default_rng(1).normal(0, 6 / 255, frame.shape)
    return np.clip(noisy, 0, 1).astype(np.float32)


def test_a_grainy_frame_that_nothing_moves_comes_back_bit_identical() -> None:
    # all grain: a float sum of structure and grain that does not give back each pixel's own bits would show here
    frame = np.random.default_rng(2).random((160, 200, 3), dtype=np.float32)
    m, mask = _face_matrix(), blend.feather_mask(SIZE)
    crop = resample.warp_to_crop(frame, m, SIZE)
    new, fmask = blend.paste_back(frame, crop, crop.copy(), m, mask, motion=np.zeros((SIZE, SIZE, 2), np.float32))
    assert (fmask > 0).sum() > 500
    np.testing.assert_array_equal(new, frame)


def test_a_grainy_face_pastes_the_same_into_a_region_of_the_frame_as_into_the_whole_frame() -> None:
    """The renderer pastes into the face's region of the frame: the grain split must not see where the region ends."""
    frame, m, mask = _noisy_frame(), _face_matrix(), blend.feather_mask(SIZE)
    shift = np.array([2.5, -1.5])
    motion = np.broadcast_to((m[:, :2] @ shift).astype(np.float32), (SIZE, SIZE, 2))
    crop = resample.warp_to_crop(frame, m, SIZE)
    gy, gx = np.mgrid[0:SIZE, 0:SIZE]
    moved = resample.sample(crop, gx + motion[..., 0], gy + motion[..., 1])
    whole, fmask = blend.paste_back(frame, crop, moved, m, mask, motion=motion, colour_match=False)
    ys, xs = np.nonzero(fmask)
    top, left = ys.min() - 8, xs.min() - 8  # the region the renderer would take: the mask's box and a margin
    region = frame[top : ys.max() + 9, left : xs.max() + 9]
    local = m.copy()
    local[:, 2] += m[:, 0] * left + m[:, 1] * top  # the same map from the region's pixels
    part, _ = blend.paste_back(region, crop, moved, local, mask, motion=motion, colour_match=False)
    np.testing.assert_allclose(part, whole[top : ys.max() + 9, left : xs.max() + 9], atol=1e-6)


def test_shading_keeps_the_paints_luma_and_the_faces_own_colour() -> None:
    """A texture map's paint (``shading``): a green paint on skin comes back as a change of the skin's own shading
    (the same luma, the skin's hue)."""
    rng = np.random.default_rng(0)
    crop_in = (np.array([0.75, 0.55, 0.45]) * rng.uniform(0.8, 1.0, (SIZE, SIZE, 1))).astype(np.float32)
    paint = np.zeros((SIZE, SIZE, 3), np.float32)
    paint[..., 0] = -0.2  # greener and darker, as a render-learnt patch
    paint[..., 1] = -0.1
    mask = blend.feather_mask(SIZE)
    as_painted = blend.crop_planes(crop_in, crop_in + paint, mask, colour_match=False)[..., :3]
    shaded = blend.crop_planes(crop_in, crop_in + paint, mask, colour_match=False, shading=True)[..., :3]
    np.testing.assert_allclose(shaded @ REC709_LUMA, as_painted @ REC709_LUMA, atol=1e-6)  # the same change of light
    ratio = shaded / crop_in  # a change of shading: every channel scaled alike
    np.testing.assert_allclose(ratio, ratio[..., :1].repeat(3, axis=-1), atol=1e-5)
    assert (ratio < 0).all() and not np.allclose(shaded, as_painted, atol=0.05)  # darker, and not green


def test_shading_on_black_is_a_grey_change_of_light() -> None:
    delta = np.array([[[0.0, 0.3, 0.0]]], np.float32)
    out = blend.as_shading(delta, np.zeros((1, 1, 3), np.float32))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], np.full(3, float(delta[0, 0] @ REC709_LUMA)), atol=1e-6)


def test_a_blurred_paint_keeps_the_inputs_own_texture_and_pastes_the_broad_change() -> None:
    """A regression paints its input smoothed: pasted whole, its change takes the input's fine texture away; blurred
    (``paint_blur``), it leaves that texture and still pastes the broad change it paints."""
    rng = np.random.default_rng(0)
    smooth = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    texture = rng.normal(0.0, 0.05, (SIZE, SIZE, 1)).astype(np.float32).repeat(3, axis=2)
    broad = np.zeros((SIZE, SIZE, 3), np.float32)
    broad[:, SIZE // 2 :] = -0.1  # a darker half: the expression's change
    crop_in, crop_out = smooth + texture, smooth + broad  # the paint lost the texture
    mask = blend.feather_mask(SIZE)
    whole = blend.crop_planes(crop_in, crop_out, mask, colour_match=False)[..., :3]
    blurred = blend.crop_planes(crop_in, crop_out, mask, colour_match=False, paint_blur=2.0)[..., :3]
    inner = (slice(8, -8), slice(8, SIZE // 2 - 8))  # away from the change's edge and the crop's border
    assert np.corrcoef(whole[inner].ravel(), texture[inner].ravel())[0, 1] < -0.99  # the texture taken away
    assert np.abs(blurred[inner]).max() < 0.5 * np.abs(whole[inner]).max()  # mostly left where it was
    np.testing.assert_allclose(blurred[8:-8, SIZE // 2 + 8 : -8].mean(), -0.1, atol=0.01)  # the change pasted
    np.testing.assert_array_equal(blend.crop_planes(crop_in, crop_out, mask, colour_match=False, paint_blur=0.0),
                                  blend.crop_planes(crop_in, crop_out, mask, colour_match=False))
