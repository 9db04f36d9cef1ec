"""``--subject auto``: photographs of people take the model's gains for photographs, renders the edit as fitted."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.config import InferenceConfig
from reggan_plugin.edit.calibration import Gains
from reggan_plugin.edit.subject import (
    FEATURE_NAMES,
    READER_PATH,
    PhotoReader,
    photo_features,
    photo_reader,
    photo_weights,
)
from reggan_plugin.errors import ModelError
from reggan_plugin.faces import Face, load_faces_json
from reggan_plugin.imageio import read_image, to_network_rgb
from reggan_plugin.renderer import ExpressionRenderer

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


@pytest.fixture(scope="module")
def renderers() -> dict[str, ExpressionRenderer]:
    return {subject: ExpressionRenderer(InferenceConfig(backend="cpu", subject=subject))  # type: ignore[arg-type]
            for subject in ("auto", "render", "photo")}


def _edits(renderers: dict[str, ExpressionRenderer], pixels: np.ndarray, face: Face) -> dict[str, np.ndarray]:
    return {subject: r.apply_array(pixels, faces=[face], expression="happy") for subject, r in renderers.items()}


def test_shipped_reader_loads_and_matches_the_features() -> None:
    reader = photo_reader()
    crop = np.random.default_rng(0).random((128, 128, 3), np.float32)
    assert photo_features(crop).shape == (len(FEATURE_NAMES),) == reader.weights.shape
    assert reader.ramp[0] < reader.ramp[1]
    assert json.loads(READER_PATH.read_text())["features"] == FEATURE_NAMES


def test_a_malformed_reader_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "reader.json"
    bad.write_text(json.dumps({"mean": [0.0], "scale": [1.0], "weights": [1.0], "bias": 0.0, "ramp": [1, 2]}))
    with pytest.raises(ModelError, match=r"reader\.json"):
        photo_reader(bad)
    bad.write_text("{")
    with pytest.raises(ModelError, match="not a photo reader"):
        photo_reader(bad)


def test_weights_rise_over_the_ramp() -> None:
    n = len(FEATURE_NAMES)
    weights = np.zeros(n)
    crops = np.zeros((3, 128, 128, 3), np.float32)
    readers = [PhotoReader(np.zeros(n), np.ones(n), weights, bias, (1.0, 2.0)) for bias in (0.5, 1.5, 3.0)]
    assert [float(r.weights_of(crops)[0]) for r in readers] == pytest.approx([0.0, 0.5, 1.0])


def test_partial_gains_lie_between_none_and_whole() -> None:
    g = Gains(motion=(0.5, 0.7), paint=0.7, upper=0.0)
    assert g.partly(0.0).is_identity
    assert g.partly(1.0) == g
    half = g.partly(0.5)
    assert half.motion == pytest.approx((0.75, 0.85))
    assert half.upper == pytest.approx(0.5) and half.paint == pytest.approx(0.85)


@pytest.mark.slow  # an end-to-end render; the fast tier keeps the unit checks of the same behaviour
def test_the_demo_renders_read_as_renders_and_are_edited_as_fitted(renderers) -> None:
    given = load_faces_json(SAMPLES / "faces.json")
    for frame in sorted((SAMPLES / "frames").glob("*.png")):
        pixels = read_image(frame).pixels
        face = given.faces_for(frame.name)[0]
        crops = renderers["auto"].prepare_image(read_image(frame), [face]).crops
        assert photo_weights(crops)[0] == 0.0, frame.name
        edits = _edits(renderers, pixels, face)
        assert np.array_equal(edits["auto"], edits["render"])
        assert not np.array_equal(edits["auto"], edits["photo"])  # the gains for photographs do change a smile


@pytest.mark.slow  # the bundled model on London's portraits, every gains setting: the fast tier stays under 2 minutes
def test_photographs_read_as_photographs_and_take_their_gains(renderers, london_faces: Path) -> None:
    from reggan_plugin.faces import FaceDetector

    detector = FaceDetector()
    pictures = sorted((london_faces / "neutral").glob("*.jpg"))
    assert len(pictures) == 70
    for picture in pictures[::10]:
        image = read_image(picture)
        face = detector.detect(to_network_rgb(image))[0]
        assert photo_weights(renderers["auto"].prepare_image(image, [face]).crops)[0] == 1.0, picture.name
        edits = _edits(renderers, image.pixels, face)
        assert np.array_equal(edits["auto"], edits["photo"])
        assert not np.array_equal(edits["auto"], edits["render"])


def test_a_picture_on_the_edge_takes_the_gains_in_part() -> None:
    """A picture whose faces read halfway takes half of each gain's departure."""
    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import EditConfig
    from reggan_plugin.edit.calibration import calibrated
    from reggan_plugin.imageio import ImageData

    class Halfway(ExpressionRenderer):
        def photo_shares(self, prepared, gains):  # type: ignore[no-untyped-def]
            return [0.5] * len(prepared)

    renderer = Halfway(InferenceConfig(backend="cpu"))
    pixels, box = face_frame(640, 480, 200)
    image = ImageData(pixels=pixels, path=None, format="png", linear=False, info={})
    prepared = renderer.prepare_image(image, [Face(box=box)])
    edited = renderer.forward_images([prepared], EditConfig("happy"))[0]
    whole = renderer.gains["happy"]
    raw = renderer.forward(prepared.crops, EditConfig("happy"), poses=prepared.poses)
    expected, withheld = calibrated(prepared.crops, raw, whole.partly(0.5), renderer.lower_face,
                                    renderer.artifact.warp)
    assert np.array_equal(edited.faces, expected) and np.array_equal(edited.withheld, withheld)
    assert withheld is not None and np.abs(withheld).max() > 0  # half of the paint left out, kept for an opening
    assert not np.array_equal(edited.faces, raw)
    assert edited.photo == 0.5 and edited.interior is None


def test_the_fit_separates_two_classes_and_reports_them() -> None:
    from training.photo_reader import CONDITIONS, Row, fit_logistic, report_lines

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - 0.5 * x[:, 2] > 0).astype(float)
    w, b = fit_logistic(x, y)
    assert ((x @ w + b > 0) == (y == 1)).mean() > 0.97
    assert w[0] > abs(w[1]) and w[2] < 0
    rows = [Row("photos (held out)", CONDITIONS[0], True, False, np.zeros(3)),
            Row("renders", CONDITIONS[0], False, True, np.zeros(3))]
    lines = report_lines(rows, np.array([2.5, -3.0]), "python -m training.photo_reader ...")
    assert "| photos (held out) | photographs | 1 | 2.50 | 2.50 | 2.50 | 1 | 1 |" in lines
    assert "| renders | renders, fitted | 1 | -3.00 | -3.00 | -3.00 | 0 | 0 |" in lines
    assert f"| {CONDITIONS[0]} | 2.50 |  | -3.00 |" in lines
