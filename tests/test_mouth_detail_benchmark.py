"""The mouth-detail benchmark's true targets: where it finds them, and how it scores them."""
from __future__ import annotations

import numpy as np

from benchmarks.mouth_detail import FaceDetail, ratios, reach_box, region_boxes, table, true_target

LANDMARKS = np.array([[40.0, 40.0], [80.0, 40.0], [60.0, 60.0], [45.0, 80.0], [75.0, 80.0]])


def test_true_targets_of_renders_and_of_photos(tmp_path) -> None:
    render = tmp_path / "renders" / "id1"
    render.mkdir(parents=True)
    (render / "neutral.png").touch()
    (render / "happy.png").touch()
    assert true_target(render.parent, render / "neutral.png", "happy") == render / "happy.png"
    assert true_target(render.parent, render / "neutral.png", "sad") is None
    (tmp_path / "faces" / "neutral").mkdir(parents=True)
    (tmp_path / "faces" / "happy").mkdir()
    (tmp_path / "faces" / "neutral" / "001.jpg").touch()
    (tmp_path / "faces" / "happy" / "001.jpg").touch()
    photos = tmp_path / "faces" / "neutral"
    assert true_target(photos, photos / "001.jpg", "happy") == tmp_path / "faces" / "happy" / "001.jpg"
    assert true_target(photos, photos / "001.jpg", "sad") is None


def test_a_target_taken_apart_is_scored_in_its_own_boxes() -> None:
    """The same textured mouth 20 px lower in the target: in the neutral's boxes it looks lost, in its own kept."""
    rng = np.random.default_rng(0)
    before = np.full((160, 160, 3), 0.5, np.float32)
    before[66:94, 35:85] = rng.random((28, 50, 3))
    after = np.full_like(before, 0.5)
    after[86:114, 35:85] = before[66:94, 35:85]
    cuts = region_boxes(LANDMARKS)
    moved = region_boxes(LANDMARKS + np.array([0.0, 20.0]))
    assert ratios(before, after, cuts)["mouth"] < 0.5
    assert abs(ratios(before, after, cuts, moved)["mouth"] - 1.0) < 1e-6


def test_the_table_scores_the_mouth_against_the_true_target() -> None:
    ratios_ = {"mouth": 1.0, "cheek": 1.0, "eyes": 1.0}
    rows = [FaceDetail(600.0, ratios_, ratios_, np.zeros((1, 1, 3)), 30.0),
            FaceDetail(620.0, ratios_, ratios_, np.zeros((1, 1, 3)), 27.0)]
    line = next(text for text in table("renders", 1080, "happy", rows) if text.startswith("PSNR"))
    assert "mean: 28.50 dB" in line
    assert not any(text.startswith("PSNR") for text in table("renders", 1080, "happy", [rows[0]._replace(psnr=None)]))
    # the box it is scored in reaches below the mouth corners (a jaw drop) and past them (a smile)
    rows_, cols = reach_box(LANDMARKS)
    assert rows_.start < 80 < rows_.stop and rows_.stop - 80 > 80 - rows_.start and cols.start < 45 and cols.stop > 75
    # what a paint at the crops' resolution keeps: each crop's mean and lowest, only where every face has it
    through = [row._replace(through={"the face crop": v, "a finer crop": 2 * v}) for row, v in zip(rows, (0.02, 0.04))]
    line = next(text for text in table("renders", 1080, "happy", through) if text.startswith("The true target"))
    assert "through the face crop 0.03 (lowest 0.02), through a finer crop 0.06 (lowest 0.04)" in line
    assert not any(text.startswith("The true target") for text in table("renders", 1080, "happy", through[:1] + rows[1:]))


def test_a_portrait_lies_in_the_middle_of_the_frame_whatever_its_side(tmp_path) -> None:
    from PIL import Image

    from benchmarks.mouth_detail import FRAME, portrait_frame

    photo = tmp_path / "p.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(photo)
    width, height = FRAME
    for side in (400, 1560):  # smaller than the frame's height: all of it; larger: its middle rows
        frame = portrait_frame(photo, side)
        assert frame.shape == (height, width, 3)
        rows, cols = np.nonzero(frame[..., 0] == 200)
        assert cols.min() == (width - side) // 2 and cols.max() == (width - side) // 2 + side - 1
        assert (rows.min(), rows.max()) == (((height - side) // 2, (height - side) // 2 + side - 1) if side < height
                                            else (0, height - 1))


def test_a_crop_coarser_than_the_frame_keeps_none_of_its_finest_detail() -> None:
    """The true target through a crop: unchanged outside it; inside, at the frame's own scale the picture itself, at
    a quarter of it the pixel-scale texture gone (what a paint at that resolution keeps, however right)."""
    from benchmarks.mouth_detail import laplacian_variance, through_crop

    rng = np.random.default_rng(1)
    picture = rng.random((120, 120, 3)).astype(np.float32)
    same_scale = np.array([[1.0, 0.0, -30.0], [0.0, 1.0, -30.0]])  # frame px (30..94) -> crop px (0..64)
    out = through_crop(picture, same_scale, 64)
    assert np.array_equal(out[:28], picture[:28]) and np.array_equal(out[:, 96:], picture[:, 96:])
    np.testing.assert_allclose(out[34:90, 34:90], picture[34:90, 34:90], atol=1e-5)
    quarter = np.array([[0.25, 0.0, -5.0], [0.0, 0.25, -5.0]])  # frame px (20..148) -> crop px (0..32)
    coarse = through_crop(picture, quarter, 32)
    inside = (slice(40, 100), slice(40, 100))
    assert laplacian_variance(coarse[inside][..., 0]) < 0.02 * laplacian_variance(picture[inside][..., 0])
    assert np.array_equal(coarse[:18, :18], picture[:18, :18])
