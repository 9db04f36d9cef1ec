"""The lip-line benchmark's reading of a face's own line between the lips, and where it lands in the frame."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from benchmarks.lip_line import face_line, in_frame, line_offsets
from benchmarks.mouth_detail import portrait_frame


def test_the_line_from_a_renders_68_points_and_a_photos_template(tmp_path) -> None:
    points = np.zeros((68, 2))
    points[60:68] = [[0, 10], [2, 8], [4, 8], [6, 8], [8, 10], [6, 12], [4, 12], [2, 12]]  # inner lips, parted 4 px
    (tmp_path / "neutral.landmarks.json").write_text(json.dumps({"points": points.tolist()}))
    np.testing.assert_array_equal(face_line(tmp_path / "neutral.png"), [[0, 10], [2, 10], [4, 10], [6, 10], [8, 10]])
    template = np.arange(378, dtype=np.float64).reshape(189, 2)
    np.savetxt(tmp_path / "001.landmarks189.txt", template)
    np.testing.assert_array_equal(face_line(tmp_path / "001.jpg"), template[94:104])
    assert face_line(tmp_path / "002.jpg") is None


def test_points_land_where_the_frame_shows_them(tmp_path) -> None:
    picture = np.zeros((100, 100, 3), np.uint8)
    picture[70, 30] = 255  # one bright pixel, centre (30, 70)
    Image.fromarray(picture).save(tmp_path / "p.png")
    for side in (1080, 1560):
        frame = portrait_frame(tmp_path / "p.png", side).astype(np.float64).sum(axis=2)
        frame[frame <= 3 * 90] = 0.0  # the frame's grey backdrop and the black portrait
        ys, xs = np.mgrid[: frame.shape[0], : frame.shape[1]]
        centre = np.array([(xs * frame).sum(), (ys * frame).sum()]) / frame.sum()
        np.testing.assert_allclose(in_frame(np.array([[30.0, 70.0]]), (100, 100), side)[0], centre, atol=0.3)


def test_offsets_are_positive_below_and_only_between_the_lines_ends() -> None:
    truth = np.array([[10.0, 50.0], [30.0, 50.0]])
    columns = np.arange(0, 41, dtype=np.float64)
    offsets = line_offsets(columns, np.full(41, 51.5), truth)
    assert len(offsets) == 19 and np.allclose(offsets, 1.5)
