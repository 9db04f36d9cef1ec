"""The mouth pass (reggan_plugin.edit.mouth): its crop, where it runs, what it changes, and the models it accepts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model
from test_cli import cli

from reggan_plugin.artifact import default_model_path, load_artifact
from reggan_plugin.config import InferenceConfig
from reggan_plugin.edit.mouth import PASS_KEY, bundled_mouth_model_path, pass_expressions, strength
from reggan_plugin.errors import ModelError
from reggan_plugin.faces import Face
from reggan_plugin.faces.face import box_from_landmarks
from reggan_plugin.geometry.align import (
    CANONICAL_5PT,
    MOUTH_CENTRE,
    apply_affine,
    crop_template,
    units_to_crop_px,
)
from reggan_plugin.renderer import ExpressionRenderer
from reggan_plugin.tuning import MOUTH_ZOOM

SIDE = 700


@pytest.fixture(scope="module")
def tiny_mouth_model(tmp_path_factory) -> Path:
    """A tiny model of the mouth crop, its regression stage alone (as the mouth model ships)."""
    folder = tmp_path_factory.mktemp("mouth")
    full = make_tiny_model(folder / "full.onnx", seed=1, crop="mouth")
    out = folder / "mouth.onnx"
    proc = cli("export", "regression-stage", "--model", full, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def cli_tool(name: str, *args: object) -> int:
    """Exit status of ``tools/<name>`` run with ``args``."""
    tool = Path(__file__).resolve().parent.parent / "tools" / name
    return subprocess.run([sys.executable, str(tool), *map(str, args)], capture_output=True, timeout=300).returncode


def frame(seed: int = 0) -> np.ndarray:
    """A smooth, textured picture: every pixel the pass changes shows."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (-(-SIDE // 8), -(-SIDE // 8), 3)).astype(np.float32)
    big = np.kron(small, np.ones((8, 8, 1)))[:SIDE, :SIDE]
    return np.clip(big * 0.6 + rng.normal(60, 20, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)


def face_of(crop_px: float) -> tuple[Face, np.ndarray]:
    """A face whose face crop spans ``crop_px`` frame pixels, centred; and its mouth centre in frame px."""
    offset = (SIDE - crop_px) / 2
    points = CANONICAL_5PT * crop_px + offset
    return Face(box=box_from_landmarks(points), landmarks=points), MOUTH_CENTRE * crop_px + offset


def test_mouth_template_is_the_face_template_magnified_about_the_mouth():
    mouth = crop_template("mouth")
    assert np.allclose(mouth - 0.5, MOUTH_ZOOM * (CANONICAL_5PT - MOUTH_CENTRE))
    assert np.allclose(crop_template("face"), CANONICAL_5PT)
    with pytest.raises(ValueError, match="unknown crop"):
        crop_template("nose")  # type: ignore[arg-type]


def test_training_crops_the_mouth_and_measures_registration_in_face_units():
    from training.data.crop import CropGeometry

    points = CANONICAL_5PT * 300 + 50
    geometry = CropGeometry(64, crop="mouth")
    m = geometry.matrix(points)
    placed = apply_affine(m[:2], points) - geometry.margin
    assert np.abs(placed - units_to_crop_px(crop_template("mouth"), 64)).max() < 1e-6
    # cache px -> the face crop's units, whatever the crop: the landmarks land on the face template
    units = apply_affine(geometry.px_to_units()[:2], apply_affine(m[:2], points))
    assert np.abs(units - CANONICAL_5PT).max() < 1e-9


def test_mouth_pass_repaints_the_mouth_of_a_large_face_and_nothing_else(tiny_model, tiny_mouth_model):
    face, (cx, cy) = face_of(600)  # mouth crop: 300 frame px into 64 crop px, the pass runs in full
    with_pass = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_model=tiny_mouth_model, backend="cpu"))
    without = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu"))  # own model, no mouth model named
    assert without.mouth is None and with_pass.mouth is not None
    picture = frame()
    prepared = with_pass.prepare_image(_image(picture), [face])
    assert prepared.mouths is not None and len(prepared.mouths.crops) == 1
    a = with_pass.apply_array(picture, faces=[face], expression="happy").astype(int)
    b = without.apply_array(picture, faces=[face], expression="happy").astype(int)
    changed = np.abs(a - b).max(-1) > 0
    assert changed.sum() > 500
    ys, xs = np.nonzero(changed)
    reach = 600 / MOUTH_ZOOM / 2  # half the mouth crop's side in frame px
    assert np.abs(xs - cx).max() <= reach and np.abs(ys - cy).max() <= reach


def _image(pixels: np.ndarray):
    from reggan_plugin.imageio import ImageData

    return ImageData(pixels=pixels, path=None, format="png", linear=False, info={})


def test_mouth_pass_leaves_a_small_face_to_the_face_model(tiny_model, tiny_mouth_model):
    face, _ = face_of(200)  # mouth crop: 100 frame px into 64 crop px, the face crop's paint magnified 3x: no pass
    with_pass = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_model=tiny_mouth_model, backend="cpu"))
    without = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_pass=False, backend="cpu"))
    picture = frame(1)
    prepared = with_pass.prepare_image(_image(picture), [face])
    assert prepared.mouths is not None and prepared.mouths.matrices == [None] and len(prepared.mouths.crops) == 0
    a = with_pass.apply_array(picture, faces=[face], expression="sad")
    assert np.array_equal(a, without.apply_array(picture, faces=[face], expression="sad"))


def test_the_pass_fades_in_as_the_face_grows():
    assert [strength(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]])) for k in (0.8, 0.5, 0.375, 0.25, 0.1)] == [0, 0, 0.5, 1, 1]


def test_an_expression_the_mouth_model_lacks_keeps_the_face_models_mouth(tiny_model, tmp_path):
    full = make_tiny_model(tmp_path / "full.onnx", seed=2, crop="mouth", expressions=("neutral", "happy"))
    mouth = tmp_path / "mouth.onnx"
    assert cli("export", "regression-stage", "--model", full, "--out", mouth).returncode == 0
    face, _ = face_of(600)
    picture = frame(3)
    with_pass = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_model=mouth, backend="cpu"))
    without = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_pass=False, backend="cpu"))
    assert with_pass.mouth is not None and with_pass.mouth.covers("happy") and not with_pass.mouth.covers("sad")
    assert not with_pass.mouth.covers("happy=0.5,sad=0.5") and with_pass.mouth.covers("happy=1,sad=0")
    for expression, same in (("sad", True), ("happy", False)):
        a = with_pass.apply_array(picture, faces=[face], expression=expression)
        assert np.array_equal(a, without.apply_array(picture, faces=[face], expression=expression)) == same


def test_an_expression_left_out_of_the_pass_keeps_the_face_models_mouth(tiny_model, tiny_mouth_model, tmp_path):
    """`tools/set_mouth_pass.py` names the expressions the pass paints; the others keep the face model's mouth."""
    pytest.importorskip("onnx")
    mouth = tmp_path / "mouth.onnx"
    assert cli_tool("set_mouth_pass.py", "--model", tiny_mouth_model, "--expressions", "sad", "--out", mouth) == 0
    assert load_artifact(mouth).metadata[PASS_KEY] == '["sad"]'
    face, _ = face_of(600)
    picture = frame(4)
    with_pass = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_model=mouth, backend="cpu"))
    without = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_pass=False, backend="cpu"))
    assert with_pass.mouth is not None and with_pass.mouth.expressions == ("sad",)
    for expression, same in (("happy", True), ("sad", False)):
        a = with_pass.apply_array(picture, faces=[face], expression=expression)
        assert np.array_equal(a, without.apply_array(picture, faces=[face], expression=expression)) == same


@pytest.mark.parametrize("value", ['["smile"]', '"sad"', "{not json"])
def test_a_malformed_pass_list_is_refused_naming_the_file_and_the_key(tiny_mouth_model, tmp_path, value):
    pytest.importorskip("onnx")
    from export.metadata import with_metadata

    mouth = tmp_path / "odd_mouth.onnx"
    with_metadata(tiny_mouth_model, PASS_KEY, value, mouth)
    with pytest.raises(ModelError) as error:
        pass_expressions(load_artifact(mouth))
    assert "odd_mouth.onnx" in str(error.value) and PASS_KEY in str(error.value)


def test_the_bundled_mouth_model_leaves_a_smile_to_the_face_model():
    pass_ = ExpressionRenderer(InferenceConfig(backend="cpu")).mouth
    assert pass_ is not None and "happy" in pass_.artifact.expressions
    assert pass_.covers("sad") and pass_.covers("angry") and pass_.covers("fearful") and not pass_.covers("happy")


def test_pictures_batched_together_get_each_its_own_mouths(tiny_model, tiny_mouth_model):
    from reggan_plugin.config import EditConfig

    renderer = ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_model=tiny_mouth_model, backend="cpu"))
    (large, _), (small, _) = face_of(600), face_of(200)
    pictures = [(frame(5), large), (frame(6), small), (frame(7), large)]
    prepared = [renderer.prepare_image(_image(p), [face]) for p, face in pictures]
    batched = renderer.forward_images(prepared, EditConfig("happy"))
    assert [0 if e.mouths is None else len(e.mouths) for e in batched] == [1, 0, 1]  # the large faces' alone
    for (picture, face), p, e in zip(pictures, prepared, batched):
        alone = renderer.apply_array(picture, faces=[face], expression="happy")
        got = renderer.finish_image(p, e).pixels.astype(int)
        assert np.abs(got - alone).max() <= 1  # a batch of three may round apart from one of one by a level


def test_a_preview_runs_the_mouth_models_regression_stage_alone(tiny_model, tiny_mouth_model, tmp_path):
    full = make_tiny_model(tmp_path / "full.onnx", seed=1, crop="mouth")  # tiny_mouth_model's weights, refiner kept
    face, _ = face_of(600)
    picture = frame(4)

    def edit(mouth: Path, stage: str) -> np.ndarray:
        config = InferenceConfig(model=tiny_model, mouth_model=mouth, backend="cpu", stage=stage)  # type: ignore[arg-type]
        return ExpressionRenderer(config).apply_array(picture, faces=[face], expression="happy")

    assert np.array_equal(edit(full, "regression"), edit(tiny_mouth_model, "regression"))
    assert not np.array_equal(edit(full, "full"), edit(tiny_mouth_model, "full"))  # the mouth's refiner ran


def test_a_face_model_is_refused_as_mouth_model(tiny_model):
    with pytest.raises(ModelError, match="not a mouth model"):
        ExpressionRenderer(InferenceConfig(model=tiny_model, mouth_model=tiny_model, backend="cpu"))


@pytest.mark.skipif(not bundled_mouth_model_path().is_file(), reason="no bundled mouth model in this checkout")
def test_the_bundled_face_model_brings_the_bundled_mouth_model():
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    assert renderer.mouth is not None and renderer.mouth.artifact.path == bundled_mouth_model_path().resolve()
    assert set(load_artifact(bundled_mouth_model_path()).expressions) < set(load_artifact(default_model_path()).expressions)
    assert ExpressionRenderer(InferenceConfig(backend="cpu", mouth_pass=False)).mouth is None


def test_cli_renders_with_and_without_the_mouth_pass(tmp_path, tiny_model, tiny_mouth_model):
    from PIL import Image

    from reggan_plugin.imageio import read_image

    frames = tmp_path / "in"
    frames.mkdir()
    Image.fromarray(frame(2)).save(frames / "f000.png")
    face, _ = face_of(600)
    faces = tmp_path / "faces.json"
    faces.write_text(json.dumps({"version": 1, "default": [{"box": list(face.box),
                                                            "landmarks": np.asarray(face.landmarks).tolist()}]}))
    outs = []
    for name, extra in (("with", ["--mouth-model", tiny_mouth_model]), ("without", ["--no-mouth-pass", "--mouth-model",
                                                                                    tiny_mouth_model])):
        proc = cli("render", "--frames", frames, "--out", tmp_path / name, "--model", tiny_model, "--backend", "cpu",
                   "--faces", faces, "--expression", "surprised", *extra)
        assert proc.returncode == 0, proc.stderr
        outs.append(read_image(tmp_path / name / "f000.png").pixels)
    assert not np.array_equal(*outs)
    bad = cli("render", "--frames", frames, "--out", tmp_path / "bad", "--model", tiny_model, "--backend", "cpu",
              "--faces", faces, "--mouth-model", tiny_model)
    assert bad.returncode == 3 and "not a mouth model" in bad.stderr
