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


def test_the_table_scores_the_mouth_pass_against_the_face_model_alone() -> None:
    ratios_ = {"mouth": 1.0, "cheek": 1.0, "eyes": 1.0}
    rows = [FaceDetail(600.0, ratios_, ratios_, np.zeros((1, 1, 3)), [30.0, 28.0]),
            FaceDetail(620.0, ratios_, ratios_, np.zeros((1, 1, 3)), [27.0, 29.0])]
    line = next(text for text in table("renders", 1080, "happy", rows) if text.startswith("PSNR"))
    assert "28.50 dB with the mouth pass, 28.50 dB with the face model alone" in line
    assert "better with the pass on 1 of 2 faces" in line
    # the box it is scored in reaches below the mouth corners (a jaw drop) and past them (a smile)
    rows_, cols = reach_box(LANDMARKS)
    assert rows_.start < 80 < rows_.stop and rows_.stop - 80 > 80 - rows_.start and cols.start < 45 and cols.stop > 75
    same = [row._replace(psnr=[28.0, 28.0]) for row in rows]
    line = next(text for text in table("renders", 1080, "happy", same) if text.startswith("PSNR"))
    assert "28.00 dB (the face model alone" in line


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
