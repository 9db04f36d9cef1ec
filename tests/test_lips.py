"""The lips moved whole where the motion opens the mouth (reggan_plugin.edit.lips)."""
from __future__ import annotations

import numpy as np
import pytest

from reggan_plugin.edit.lips import lip_line, moved_corners, split_at_lips
from reggan_plugin.geometry.resample import sample
from reggan_plugin.tuning import BAND

SIZE = 128
CORNERS = np.array([[51.0, 84.0], [77.0, 84.0]])  # 26 px apart, as in the face crop
WIDTH = CORNERS[1, 0] - CORNERS[0, 0]


def closed_mouth(line: np.ndarray | None = None) -> np.ndarray:
    """A pale crop with two lips and the dark line between them at ``line`` (one row per column; default 84.3)."""
    crop = np.full((SIZE, SIZE, 3), 0.8, np.float32)
    crop[76:93, 45:84] = (0.75, 0.5, 0.5)
    rows = np.arange(SIZE, dtype=np.float32)[:, None]
    line = np.full(SIZE, 84.3, np.float32) if line is None else line
    crop -= (0.5 * np.exp(-0.5 * ((rows - line[None, :]) / 0.8) ** 2))[..., None]
    return crop


def opening_motion(drop: float = 8.0) -> np.ndarray:
    """Output px -> source px offsets: rows above 76 still, below 96 read `drop` px higher (the jaw and lower lip
    moved down by it), a smooth ramp between, as the model's mean flow opens a mouth."""
    rows = np.arange(SIZE, dtype=np.float32)
    ramp = -drop * np.clip((rows - 76.0) / 20.0, 0.0, 1.0)
    motion = np.zeros((SIZE, SIZE, 2), np.float32)
    motion[..., 1] = ramp[:, None]
    return motion


def test_the_line_between_the_lips_is_found_to_a_fraction_of_a_pixel() -> None:
    columns = np.arange(SIZE, dtype=np.float32)
    curve = 84.0 - 0.006 * (13.0**2 - (columns - 64.0) ** 2)  # through the corners, its middle 1 px higher
    crop = closed_mouth(curve)
    found_columns, rows = lip_line(crop, CORNERS)
    assert found_columns[0] < CORNERS[0, 0] and found_columns[-1] > CORNERS[1, 0]
    np.testing.assert_allclose(rows, curve[found_columns], atol=0.25)
    # the shadow under the lower lip near a corner, darker than the line there, does not bend it
    crop[88:90, 47:56] = 0.2
    _, shadowed = lip_line(crop, CORNERS)
    np.testing.assert_allclose(shadowed, curve[found_columns], atol=0.4)
    # nor does one as dark as the line all along the lower lip, as on photos
    crop = closed_mouth(curve)
    crop[88:90, 45:84] -= 0.45
    _, shadowed = lip_line(crop, CORNERS)
    np.testing.assert_allclose(shadowed, curve[found_columns], atol=0.3)


def test_an_opening_mouth_moves_each_lip_whole_and_leaves_a_gap_that_reads_the_line() -> None:
    motion = opening_motion()
    crop = closed_mouth()
    out, gap_map, _ = split_at_lips(crop, motion, CORNERS)
    source = np.arange(SIZE)[:, None] + out[..., 1]
    middle = 64
    columns, lines = lip_line(crop, CORNERS)
    line = lines[columns == middle][0]
    assert abs(line - 84.3) < 0.2
    column = source[:, middle]
    assert np.all(np.diff(column) >= -1e-4)  # rows are still read in order: nothing folds
    band = BAND * WIDTH
    upper_lip = (column > line - band + 0.5) & (column < line - 0.5)
    lower_lip = (column > line + 0.5) & (column < line + band - 0.5)
    # whole lips: one output row per source row (the ramp stretched them to two), so their edges stay sharp
    for lip in (upper_lip, lower_lip):
        assert lip.sum() >= band - 2
        np.testing.assert_allclose(np.diff(column[lip]), 1.0, atol=1e-3)
    gap = np.abs(column - line) < 1e-3
    assert gap.sum() >= 4  # the stretch is left where the mouth opens, reading the dark line itself
    # the gap map marks those rows, as much as the column is split: wholly in the middle, none outside the mouth
    assert np.all(gap_map[gap, middle][1:-1] == 1.0) and np.all(gap_map[~gap, middle] < 1.0)
    assert gap_map[:, : int(CORNERS[0, 0])].max() == 0 and gap_map[:, int(CORNERS[1, 0]) + 1 :].max() == 0
    # past the band the motion is the model's own
    np.testing.assert_array_equal(out[:60], motion[:60])
    np.testing.assert_array_equal(out[110:], motion[110:])
    assert np.array_equal(out[..., 0], motion[..., 0])


def test_the_opening_narrows_to_nothing_at_the_corners_where_the_motion_puts_them() -> None:
    motion = opening_motion()
    motion[..., 0] = 0.1 * (np.arange(SIZE, dtype=np.float32)[None, :] - 64.0)  # corners drawn in, 1.3 px each
    left, right = moved_corners(motion, CORNERS)
    for point, corner in zip((left, right), CORNERS):  # the output point whose source is the corner
        np.testing.assert_allclose(point + sample(motion, point[0:1], point[1:2])[0], corner, atol=1e-3)
    assert CORNERS[0, 0] < left[0] < CORNERS[0, 0] + 2 and CORNERS[1, 0] - 2 < right[0] < CORNERS[1, 0]
    crop = closed_mouth()
    out, gap_map, _ = split_at_lips(crop, motion, CORNERS)
    # the gap's rows in each column, however much of it the split takes there (it fades out toward the corners)
    height = (gap_map > 0.5 * gap_map.max(axis=0, keepdims=True)).sum(axis=0) * (gap_map.max(axis=0) > 0)
    middle = int(round((left[0] + right[0]) / 2))
    assert height[middle] >= 4
    # a lens: as high as the motion opens in the middle, lower each column toward either corner, a parabola across
    for side in (range(middle, int(right[0]) + 1), range(middle, int(left[0]) - 1, -1)):
        assert np.all(np.diff(height[list(side)]) <= 0)
    quarter = int(round(left[0] + 0.25 * (right[0] - left[0])))
    assert abs(height[quarter] - 0.75 * height[middle]) <= 1.5
    # the lips close it, stretched over their bands: every column still reads its rows in order, nothing folds
    source = np.arange(SIZE)[:, None] + out[..., 1]
    assert np.all(np.diff(source[:, int(left[0]) : int(right[0]) + 1], axis=0) >= -1e-4)


def test_a_closed_mouth_and_the_corners_move_as_the_model_says() -> None:
    crop = closed_mouth()
    still = np.zeros((SIZE, SIZE, 2), np.float32)
    np.testing.assert_array_equal(split_at_lips(crop, still, CORNERS)[0], still)
    closing = -opening_motion()  # the lips pressed together: nothing to split
    np.testing.assert_array_equal(split_at_lips(crop, closing, CORNERS)[0], closing)
    out, _, _ = split_at_lips(crop, opening_motion(), CORNERS)
    changed = np.flatnonzero(np.abs(out - opening_motion()).max(axis=(0, 2)) > 0)
    assert changed.min() > CORNERS[0, 0] and changed.max() < CORNERS[1, 0]  # at the corners the split fades out
    middle = np.abs(out[:, 64, 1] - opening_motion()[:, 64, 1]).max()
    near_corner = np.abs(out[:, 53, 1] - opening_motion()[:, 53, 1]).max()
    assert near_corner < 0.5 * middle


def test_a_split_goes_as_far_as_its_amount() -> None:
    motion, crop = opening_motion(), closed_mouth()
    out, gap, share = split_at_lips(crop, motion, CORNERS)
    none = split_at_lips(crop, motion, CORNERS, amount=0.0)
    assert np.array_equal(none[0], motion) and not none[1].any() and not none[2].any()
    half = split_at_lips(crop, motion, CORNERS, amount=0.5)
    np.testing.assert_allclose(half[0], motion + 0.5 * (out - motion), atol=1e-5)
    np.testing.assert_allclose(half[1], 0.5 * gap, atol=1e-6)
    np.testing.assert_allclose(half[2], 0.5 * share, atol=1e-6)


@pytest.mark.parametrize("subject, face_px, splits", [("render", 450, True), ("render", 150, False),
                                                      ("photo", 150, True)])
def test_the_renderer_splits_the_lips_of_large_faces_and_of_photographs(subject: str, face_px: int,
                                                                        splits: bool) -> None:
    """A render's small face keeps the paint at the crop's scale; a photograph's, edited without paint, has its lips
    split at every size and shows the model's paint in the gap alone."""
    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.renderer import ExpressionRenderer

    split = ExpressionRenderer(InferenceConfig(backend="cpu", subject=subject))  # type: ignore[arg-type]
    whole = ExpressionRenderer(InferenceConfig(backend="cpu", subject=subject,  # type: ignore[arg-type]
                                               lip_split=False))
    pixels, box = face_frame(900, 560, face_px)
    faces = [Face(box=box)]
    a = split.apply_array(pixels, faces=faces, expression="surprised")
    b = whole.apply_array(pixels, faces=faces, expression="surprised")
    differ = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 2
    if not splits:
        assert not differ.any()
        return
    assert differ.sum() > 200
    x, y, w, h = (int(v) for v in box)
    mouth = np.zeros_like(differ)
    mouth[y + int(0.6 * h) : y + h, x + int(0.3 * w) : x + int(0.9 * w)] = True
    # about the mouth only (a few single pixels elsewhere: the grain split reads a region as far as the
    # motion reaches, and the motion's reach changed)
    assert (differ & ~mouth).sum() < 0.01 * differ.sum()
    if subject == "photo":  # the opening is the paint's dark, not the lips stretched across it
        darkest = [np.percentile(out[mouth].mean(axis=-1), 1) for out in (a, b)]
        assert darkest[0] < darkest[1] - 8, darkest


@pytest.mark.slow  # an end-to-end render; the fast tier keeps the unit checks of the same behaviour
def test_the_cli_and_the_evaluation_report_turn_it_off(tmp_path) -> None:
    from PIL import Image
    from test_cli import cli

    from benchmarks.face_sizes import face_frame
    from reggan_plugin.imageio import read_image
    from training.evaluate.report import options_note
    from training.evaluate.runner import EvalConfig

    frames = tmp_path / "in"
    frames.mkdir()
    pixels, box = face_frame(900, 560, 450)
    Image.fromarray(pixels).save(frames / "f000.png")
    outs = []
    for name, extra in (("split", []), ("whole", ["--no-lip-split"])):
        proc = cli("render", "--frames", frames, "--out", tmp_path / name, "--backend", "cpu",
                   "--region", ",".join(str(round(v)) for v in box), "--expression", "surprised", *extra)
        assert proc.returncode == 0, proc.stderr
        outs.append(read_image(tmp_path / name / "f000.png").pixels)
    assert not np.array_equal(*outs)
    assert "no lip split" in options_note(EvalConfig(data=tmp_path, out=tmp_path, lip_split=False))
    assert "lip split" not in options_note(EvalConfig(data=tmp_path, out=tmp_path))


def test_the_gap_shows_the_paint_alone() -> None:
    """Whatever the picture's row the gap reads holds (teeth and the dark lines between them, at the picture's own
    resolution), the paste shows the paint there; elsewhere the moved picture plus the paint's difference."""
    from reggan_plugin.edit.blend import apply_planes, crop_planes
    from reggan_plugin.geometry.resample import warp_to_crop

    rng = np.random.default_rng(0)
    picture = rng.uniform(0.2, 0.9, (256, 256, 3)).astype(np.float32)  # detail at the picture's every pixel
    m = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])  # picture px -> crop px
    crop_in = warp_to_crop(picture, m, 64)
    paint = np.full((64, 64, 3), 0.5, np.float32)
    mask = np.zeros((64, 64), np.float32)
    mask[8:56, 8:56] = 1.0
    motion = np.zeros((64, 64, 2), np.float32)
    gap = np.zeros((64, 64), np.float32)
    gap[24:40, 24:40] = 1.0
    planes = crop_planes(crop_in, paint, mask, motion=motion, colour_match=False, gap=gap)
    assert planes.shape[-1] == 7
    out, _ = apply_planes(picture, planes, m)
    np.testing.assert_allclose(out[104:152, 104:152], 0.5, atol=1e-5)  # well inside the gap: the paint
    without, _ = apply_planes(picture, planes[..., :6], m)
    assert np.abs(without[104:152, 104:152] - 0.5).max() > 0.2  # without the gap plane: the picture's detail
    np.testing.assert_array_equal(out[40:80, 40:80], without[40:80, 40:80])  # outside the gap: as before


def test_the_paint_is_taken_against_what_the_split_reads_in_the_picture() -> None:
    """Where the split reads the line: a line a picture pixel thick that the crop, averaging four picture rows a
    pixel, shows a quarter as dark. The difference the paint is pasted as must be taken against the picture's row."""
    from reggan_plugin.edit.lips import moved_in_picture

    picture = np.full((256, 256, 3), 0.8, np.float32)
    picture[129] = 0.0  # frame row 129: crop row 32.25 with m below
    m = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])  # picture px -> crop px: a crop pixel is 4 picture pixels
    crop = picture.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    still = np.zeros((64, 64, 2), np.float32)
    wholly = np.ones(64, np.float32)  # every column takes the picture's mean
    assert np.array_equal(moved_in_picture(crop, still, still, wholly, picture, m), crop)  # nothing split: the crop itself
    split = still.copy()
    rows = np.arange(64, dtype=np.float32)
    split[36:44, 20:40, 1] = (32.25 - rows[36:44])[:, None]  # eight crop rows read the line itself
    moved = moved_in_picture(crop, still, split, wholly, picture, m)
    assert np.all(moved[37:43, 21:39] < 0.1)  # the line as the picture has it, dark
    assert np.all(crop[32] > 0.55)  # where the crop alone would have read it pale
    np.testing.assert_array_equal(moved[:30], crop[:30])  # away from the split the crop moved as it was


def test_a_column_starting_to_split_takes_the_pictures_mean_only_as_far_as_it_is_split() -> None:
    """A shot's mouth opening a little more each frame: where a column starts to split, the crop the paint is taken
    against passes from the crop's own to the picture's mean as far as the column is split, not in one frame."""
    from reggan_plugin.edit.lips import lips_whole, moved_in_picture
    from reggan_plugin.geometry.resample import moved_crop

    picture = np.repeat(np.repeat(closed_mouth(), 2, axis=0), 2, axis=1)  # two picture px a crop px
    picture[::2] -= 0.1  # row-scale detail that the crop's own pixels average away
    m = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    crop = picture.reshape(SIZE, 2, SIZE, 2, 3).mean(axis=(1, 3))
    for drop in np.linspace(0.0, 4.0, 41):
        motion = opening_motion(float(drop))
        split, _, share = split_at_lips(crop, motion, CORNERS)
        if 0 < share.max() < 0.05:
            break
    else:
        raise AssertionError("no opening in the sweep starts a split")
    own = moved_crop(crop, split)
    wholly = moved_in_picture(crop, motion, split, np.ones_like(share), picture, m)
    assert np.abs(wholly - own).max() > 0.04  # the picture's mean is another reading of the lips
    _, moved, _ = lips_whole(crop, motion, CORNERS, picture, m)
    assert np.abs(moved - own).max() < 0.05 * 0.1  # split under 5%: under 5% of the way to it
    half = np.full_like(share, 0.5)
    np.testing.assert_allclose(moved_in_picture(crop, motion, split, half, picture, m), (own + wholly) / 2,
                               atol=1e-5)
