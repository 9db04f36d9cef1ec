"""Face location: faces.json, --region, whole image, the BlazeFace detector, temporal smoothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.errors import InputError, UsageError
from reggan_plugin.faces import (
    Face,
    box_from_landmarks,
    iou,
    landmarks68_to_5,
    load_faces_json,
    parse_region,
    region_fits,
    whole_image_face,
)

FIVE = [[900, 350], [1010, 348], [955, 410], [910, 470], [1000, 468]]


def write_json(tmp_path: Path, doc: object, name: str = "faces.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


# --- faces.json -------------------------------------------------------------------------------


def test_faces_json_happy_path(tmp_path: Path) -> None:
    pts68 = np.stack([np.linspace(100, 300, 68), np.linspace(200, 400, 68)], axis=1)
    path = write_json(
        tmp_path,
        {
            "version": 1,
            "comment": "from the Blender camera",
            "default": [{"box": [700, 200, 420, 420]}],
            "frames": {
                "shot_0001.png": [{"box": [812.5, 240, 300, 300], "landmarks": FIVE}],
                "shot_0002.png": {"landmarks": pts68.tolist()},
                "shot_0003": [{"box": [1, 2, 3, 4]}, {"box": [10, 20, 30, 40]}],
                "shot_0004.png": [],
            },
        },
    )
    faces = load_faces_json(path)
    f1 = faces.faces_for("shot_0001.png")
    assert f1 is not None and len(f1) == 1
    assert f1[0].box == (812.5, 240.0, 300.0, 300.0)
    assert f1[0].source == "given" and f1[0].score == 1.0
    np.testing.assert_array_equal(f1[0].landmarks, np.array(FIVE, dtype=float))
    # looked up by file name when a path is given, and by stem for another extension
    assert faces.faces_for("/renders/shot_0001.png") == f1
    assert [f.box for f in faces.faces_for("out/shot_0003.exr") or []] == [(1, 2, 3, 4), (10, 20, 30, 40)]
    # 68 landmarks alone: the box is derived and contains every point
    (f2,) = faces.faces_for("shot_0002.png") or []
    assert f2.landmarks is not None and f2.landmarks.shape == (68, 2)
    x, y, w, h = f2.box
    assert x <= 100 and y <= 200 and x + w >= 301 and y + h >= 401
    np.testing.assert_allclose(f2.landmarks5()[2], pts68[30])
    assert faces.faces_for("shot_0004.png") == []  # explicitly no face
    assert [f.box for f in faces.faces_for("shot_0099.png") or []] == [(700, 200, 420, 420)]  # default


def test_faces_json_without_default_returns_none(tmp_path: Path) -> None:
    faces = load_faces_json(write_json(tmp_path, {"frames": {"a.png": [{"box": [0, 0, 5, 5]}]}}))
    assert faces.faces_for("b.png") is None
    only_default = load_faces_json(write_json(tmp_path, {"default": {"box": [0, 0, 5, 5]}}, "d.json"))
    assert [f.box for f in only_default.faces_for("anything.png") or []] == [(0, 0, 5, 5)]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("", "empty"),
        ("{not json", "invalid JSON at line 1"),
        ([1, 2], "top level must be a JSON object"),
        ({"frame": {}}, "unknown top-level key 'frame'"),
        ({"version": 2, "frames": {}}, "'version' is 2"),
        ({"comment": "x"}, "needs a 'frames' object and/or a 'default'"),
        ({"frames": []}, "'frames' must be an object"),
        ({"frames": {"a.png": 3}}, "frames['a.png']: expected a list of faces"),
        ({"frames": {"a.png": [7]}}, "frames['a.png'][0]: a face must be an object"),
        ({"frames": {"a.png": [{"bbox": [0, 0, 1, 1]}]}}, "frames['a.png'][0]: unknown key 'bbox'"),
        ({"frames": {"a.png": [{}]}}, "frames['a.png'][0]: a face needs 'box'"),
        ({"frames": {"a.png": [{"box": [0, 0, 1]}]}}, "frames['a.png'][0].box: expected 4 numbers [x, y, w, h], got 3 items"),
        ({"frames": {"a.png": [{"box": [0, "0", 1, 1]}]}}, "frames['a.png'][0].box[1]: expected a number"),
        ({"frames": {"a.png": [{"box": [0, 0, True, 1]}]}}, "frames['a.png'][0].box[2]: expected a number, got a boolean"),
        ({"frames": {"a.png": [{"box": [0, 0, 0, 1]}]}}, "frames['a.png'][0].box: width and height must be > 0"),
        ('{"frames": {"a.png": [{"box": [0, NaN, 1, 1]}]}}', "frames['a.png'][0].box[1]: expected a finite number"),
        ({"frames": {"a.png": [{"landmarks": FIVE[:4]}]}}, "frames['a.png'][0].landmarks: expected 5 or 68 [x, y] points, got 4 points"),
        ({"frames": {"a.png": [{"landmarks": [[1, 2, 3]] * 5}]}}, "frames['a.png'][0].landmarks[0]: expected a point [x, y]"),
        ({"default": [{"box": None}]}, "default[0].box: expected 4 numbers"),
    ],
)
def test_faces_json_errors_name_file_and_problem(tmp_path: Path, doc: object, expected: str) -> None:
    path = write_json(tmp_path, doc)
    with pytest.raises(InputError) as info:
        load_faces_json(path)
    message = str(info.value)
    assert info.value.path == path
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_faces_json_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="faces file not found"):
        load_faces_json(tmp_path / "nope.json")
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        load_faces_json(binary)


# --- region / whole image / Face ----------------------------------------------------------------


def test_parse_region() -> None:
    face = parse_region(" 10, 20.5,300 ,400")
    assert face.box == (10.0, 20.5, 300.0, 400.0)
    assert face.source == "region" and face.landmarks is None
    assert region_fits(face, height=1080, width=1920)
    assert not region_fits(face, height=400, width=1920)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,20,300", "four comma-separated numbers"),
        ("10,20,300,400,5", "four comma-separated numbers"),
        ("10,,300,400", "four comma-separated numbers"),
        ("10,y,300,400", "Y='y' is not a number"),
        ("10,20,inf,400", "W='inf' is not a finite number"),
        ("-1,20,300,400", "X and Y must be >= 0"),
        ("10,20,0,400", "W and H must be > 0"),
        ("", "four comma-separated numbers"),
    ],
)
def test_parse_region_errors(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_region(text)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_whole_image_face() -> None:
    face = whole_image_face(1080, 1920)
    assert face.box == (0.0, 0.0, 1920.0, 1080.0) and face.source == "whole"
    assert face.center == (959.5, 539.5)  # the centre pixel, in pixel-centre coordinates
    with pytest.raises(ValueError):
        whole_image_face(0, 10)


def test_face_validates_and_compares_by_value() -> None:
    a = Face(box=(1, 2, 3, 4), landmarks=np.array(FIVE), score=0.9, source="detector")
    b = Face(box=(1.0, 2.0, 3.0, 4.0), landmarks=np.array(FIVE, dtype=np.float32), score=0.9, source="detector")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Face(box=(1, 2, 3, 4), landmarks=None, score=0.9, source="detector")
    assert a.landmarks is not None and not a.landmarks.flags.writeable
    with pytest.raises(ValueError, match="shape"):
        Face(box=(0, 0, 1, 1), landmarks=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="positive"):
        Face(box=(0, 0, -1, 1))
    with pytest.raises(ValueError, match="source"):
        Face(box=(0, 0, 1, 1), source="guess")  # type: ignore[arg-type]


def test_landmark_helpers() -> None:
    pts68 = np.zeros((68, 2))
    pts68[36:42] = [10, 20]
    pts68[42:48] = [30, 20]
    pts68[30] = [20, 30]
    pts68[48] = [12, 40]
    pts68[54] = [28, 40]
    np.testing.assert_allclose(landmarks68_to_5(pts68), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])
    box = box_from_landmarks(np.array(FIVE, dtype=float))
    x, y, w, h = box
    assert x < 900 and x + w > 1010 and y < 348 and y + h > 470
    assert iou(box, box) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
