"""Synthetic ICT face renders (training/synth): recipes, parameters, converter, and a tiny real render."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from reggan_plugin.errors import InputError, UsageError
from training.synth.cli import dataset
from training.synth.face_model import load_face_model
from training.synth.obj_convert import convert_obj_folder, read_obj
from training.synth.recipes import RECIPES_PATH, image_stem, load_recipes, parse_expressions
from training.synth.render import merge_manifest
from training.synth.variation import sample_identity

HAS_BPY = importlib.util.find_spec("bpy") is not None
NO_BPY = "bpy (Blender as a Python module) is not importable: pip install 'reggan-plugin[blender]'"
MOUTH = slice(48, 68)
NOSE_BRIDGE = slice(27, 30)


# ---- recipes and parameters (no bpy) -------------------------------------------------------------
def test_recipes_cover_basic_and_compound_expressions():
    table = load_recipes()
    for name in ("neutral", "happy", "sad", "surprised", "angry", "disgusted", "fearful",
                 "happily_surprised", "sadly_angry"):
        table.aus(name)
    happy = table.blendshapes("happy")
    assert happy["mouthSmile_L"] == happy["mouthSmile_R"] > 0.5
    assert table.blendshapes("neutral") == {}
    half = table.blendshapes("happy", 0.5)
    assert half["mouthSmile_L"] == pytest.approx(happy["mouthSmile_L"] / 2)
    assert all(0 < w <= table.max_weight <= 1.5 for name in table.names() for w in table.blendshapes(name).values())
    assert parse_expressions(("happy,sad",), table) == ("neutral", "happy", "sad")
    assert set(parse_expressions(("compound",), table)) == {"neutral"} | set(table.compound)
    assert image_stem("happy", 0.5) == "happy_050" and image_stem("happy", 1.0) == "happy"


def test_recipe_blendshapes_exist_in_the_model(ict_model_path):
    model = load_face_model(ict_model_path)
    table = load_recipes()
    for name in table.names():
        model.expression_vector(table.blendshapes(name))  # raises on an unknown blendshape


def _recipes_with_happy(tmp_path: Path, aus: dict[str, float]) -> Path:
    """The bundled recipe table with happy made of ``aus``, written to a file."""
    data = json.loads(RECIPES_PATH.read_text())
    data["expressions"]["happy"]["aus"] = aus
    path = tmp_path / "my_recipes.json"
    path.write_text(json.dumps(data))
    return path


def test_a_recipe_file_that_is_not_one_is_refused_by_name(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"expressions": ')
    with pytest.raises(InputError, match=r"broken\.json"):
        load_recipes(broken)
    unknown = _recipes_with_happy(tmp_path, {"AU99": 1.0})
    result = CliRunner().invoke(dataset, ["render", "--out", str(tmp_path / "o"), "--identities", "1",
                                          "--recipes", str(unknown)])
    assert result.exit_code != 0
    assert "my_recipes.json" in result.output and "AU99" in result.output
    assert not (tmp_path / "o").exists()


def test_a_folder_refuses_another_recipe_for_an_expression_it_holds(tmp_path):
    path = tmp_path / "manifest.json"
    settings = {"seed": 7, "size": 96, "samples": 6, "denoise": True, "look": "studio", "lips": "fixed",
                "face_model_sha256": "x", "intensities": [1.0]}
    gains = {"AU6": {"cheekSquint_L": 1.0}, "AU12": {"mouthSmile_L": 1.0}}
    old = {"settings": settings, "identities": {}, "expressions": ["neutral", "happy"],
           "recipes": {"neutral": {}, "happy": {"AU6": 0.9, "AU12": 1.0}}, "au_to_blendshapes": gains}
    path.write_text(json.dumps(old))
    same = {**old, "versions": {}}
    assert merge_manifest(path, same)["recipes"]["happy"] == {"AU6": 0.9, "AU12": 1.0}
    sad = {**same, "expressions": ["neutral", "sad"], "recipes": {"neutral": {}, "sad": {"AU12": 0.2}}}
    assert set(merge_manifest(path, sad)["recipes"]) == {"neutral", "happy", "sad"}  # a new expression joins
    other_strengths = {**same, "recipes": {"neutral": {}, "happy": {"AU12": 1.0}}}
    other_gains = {**same, "au_to_blendshapes": {**gains, "AU12": {"mouthSmile_L": 1.3}}}
    for other in (other_strengths, other_gains):
        with pytest.raises(UsageError, match="happy was rendered with another recipe"):
            merge_manifest(path, other)


def test_same_seed_same_parameters_and_other_seed_differs():
    table = load_recipes()
    a = sample_identity(7, 3, 100, table).to_dict()
    b = sample_identity(7, 3, 100, table).to_dict()
    c = sample_identity(8, 3, 100, table).to_dict()
    assert a == b
    assert a["identity_weights"] != c["identity_weights"]
    tones = [sample_identity(0, i, 100, table).skin.tone for i in range(200)]
    assert min(tones) < 0.1 and max(tones) > 0.9  # the whole range of skin tones is drawn


def test_turned_heads_are_the_same_identities_turned_either_way():
    """``--yaw 18,35 --pitch 15``: each identity's camera yaw lies 18-35 degrees to either side and its pitch within 15;
    everything else (shape, skin, light) is the frontal identity's."""
    table = load_recipes()
    turned = [sample_identity(5, i, 100, table, yaw=(18.0, 35.0), pitch=15.0) for i in range(60)]
    yaws = np.array([p.camera.yaw for p in turned])
    assert np.all((np.abs(yaws) >= 18) & (np.abs(yaws) <= 35)) and (yaws > 0).any() and (yaws < 0).any()
    assert all(abs(p.camera.pitch) <= 15 for p in turned) and max(abs(p.camera.pitch) for p in turned) > 8
    frontal = sample_identity(5, 7, 100, table).to_dict()
    again = turned[7].to_dict()
    assert abs(frontal["camera"]["yaw"]) <= 12
    assert {k: v for k, v in frontal.items() if k != "camera"} == {k: v for k, v in again.items() if k != "camera"}


def test_lip_colours_vary_from_pale_to_lipstick_and_darken_on_darker_skin():
    table = load_recipes()
    skins = [sample_identity(0, i, 100, table, "varied").skin for i in range(400)]
    tint = np.array([s.lip_tint for s in skins])
    tone = np.array([s.tone for s in skins])
    green_to_red = tint[:, 1] / tint[:, 0]
    assert green_to_red.min() < 0.3 and green_to_red.max() > 0.75  # lipstick red to a pale mouth
    assert tint[:, 0].min() < 0.5 and tint[:, 0].max() > 0.95  # dark to light
    assert tint[tone > 0.7, 0].mean() < tint[tone < 0.3, 0].mean()
    assert (tint > 0).all()
    fixed, varied = sample_identity(0, 5, 100, table).to_dict(), sample_identity(0, 5, 100, table, "varied").to_dict()
    assert fixed["skin"].pop("lip_tint") != varied["skin"].pop("lip_tint")
    assert fixed == varied  # the lips change nothing else


# ---- OBJ converter (no bpy) ----------------------------------------------------------------------
def _write_obj(path: Path, verts: np.ndarray, with_faces: bool) -> None:
    lines = [f"v {x} {y} {z}" for x, y, z in verts]
    if with_faces:
        lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", "vt 0.5 0.5", "usemtl M_Face",
                  "f 1/1/1 2/2/1 3/3/1 4/4/1", "usemtl M_Teeth", "f 2/2 5/5 3/3"]
    path.write_text("# tiny test mesh\n" + "\n".join(lines) + "\n")


def test_convert_obj_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    neutral = rng.normal(size=(5, 3)).round(4)
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    _write_obj(folder / "generic_neutral_mesh.obj", neutral, with_faces=True)
    ident = {f"identity{i:03d}": neutral + rng.normal(size=(5, 3)).round(3) for i in range(2)}
    expr = {name: neutral + rng.normal(size=(5, 3)).round(3) for name in ("jawOpen", "mouthSmile_L")}
    for name, v in {**ident, **expr}.items():
        _write_obj(folder / f"{name}.obj", v, with_faces=name == "jawOpen")
    out = convert_obj_folder(folder, tmp_path / "tiny.npz", landmarks=(0, 3))

    model = load_face_model(out)
    assert model.expression_names == ("jawOpen", "mouthSmile_L")
    assert model.material_names == ("M_Face", "M_Teeth")
    assert model.face_sizes.tolist() == [4, 3] and model.face_material.tolist() == [0, 1]
    assert model.face_vertex_indices.tolist() == [0, 1, 2, 3, 1, 4, 2]
    assert model.landmarks68.tolist() == [0, 3]
    np.testing.assert_allclose(model.neutral, neutral, atol=1e-6)
    np.testing.assert_allclose(model.vertices(np.array([0.0, 1.0])), ident["identity001"], atol=2e-3)
    smile = model.vertices(np.zeros(2), model.expression_vector({"mouthSmile_L": 1.0}))
    np.testing.assert_allclose(smile, expr["mouthSmile_L"], atol=2e-3)
    assert read_obj(folder / "jawOpen.obj").uvs.shape == (5, 2)


def test_convert_obj_rejects_a_folder_without_the_neutral_mesh(tmp_path):
    result = CliRunner().invoke(dataset, ["convert-obj", str(tmp_path), str(tmp_path / "x.npz")])
    assert result.exit_code == 2
    assert "generic_neutral_mesh.obj" in result.output


# ---- CLI (no bpy) ----------------------------------------------------------------------------------
def test_importing_the_cli_does_not_import_bpy():
    code = "import sys, training.synth.cli; assert 'bpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_defaults_are_the_config_defaults():
    import dataclasses

    from training.synth.render import RenderConfig

    params = {p.name: p for p in dataset.commands["render"].params}
    for field in dataclasses.fields(RenderConfig):
        if field.name in params and field.default is not dataclasses.MISSING:
            default = params[field.name].default
            if field.name == "intensities":
                default = tuple(float(x) for x in default.split(","))
            assert default == field.default, field.name


def test_missing_face_model_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("REGGAN_ICT_MODEL", raising=False)
    result = CliRunner().invoke(dataset, ["render", "--out", str(tmp_path / "o"), "--identities", "1"])
    assert result.exit_code != 0
    assert "ICT-FaceKit" in result.output and "convert-obj" in result.output


# ---- a real render ---------------------------------------------------------------------------------
SIZE = 64


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, ict_model_path):
    if not HAS_BPY:
        pytest.skip(NO_BPY)
    from training.synth.render import RenderConfig, render_dataset

    out = tmp_path_factory.mktemp("synth") / "set"
    config = RenderConfig(out=out, face_model=ict_model_path, identities=1, expressions=("neutral", "happy"),
                          size=SIZE, seed=11, samples=4, workers=1)
    summary = render_dataset(config, progress=False)
    return config, summary


def _landmarks(folder: Path, stem: str) -> np.ndarray:
    return np.asarray(json.loads((folder / f"{stem}.landmarks.json").read_text())["points"])


@pytest.mark.blender
def test_render_writes_images_landmarks_and_manifest(rendered):
    config, summary = rendered
    assert summary.rendered == 2
    folder = config.out / "id00000"
    for stem in ("neutral", "happy"):
        im = Image.open(folder / f"{stem}.png")
        assert im.mode == "RGBA" and im.size == (SIZE, SIZE)
        assert _landmarks(folder, stem).shape == (68, 2)
    manifest = json.loads((config.out / "manifest.json").read_text())
    assert manifest["settings"]["seed"] == 11
    assert manifest["versions"]["bpy"] and manifest["versions"]["reggan_plugin"]
    ident = manifest["identities"]["id00000"]
    assert ident["images"]["happy"]["blendshapes"]["mouthSmile_L"] > 0.5
    # the manifest holds exactly the parameters the seed gives
    expected = json.loads(json.dumps(sample_identity(11, 0, 100, load_recipes()).to_dict()))
    assert {k: ident[k] for k in expected} == expected


@pytest.mark.blender
def test_landmarks_fall_on_the_face(rendered):
    config, _ = rendered
    folder = config.out / "id00000"
    for stem in ("neutral", "happy"):
        alpha = np.asarray(Image.open(folder / f"{stem}.png"))[..., 3].astype(float) / 255
        pts = _landmarks(folder, stem)
        assert (pts >= 0).all() and (pts <= SIZE - 1).all()
        ix = np.clip(np.round(pts).astype(int), 0, SIZE - 1)
        on_face = alpha[ix[:, 1], ix[:, 0]] > 0.5
        assert on_face.sum() >= 64, f"{stem}: only {on_face.sum()} of 68 landmarks on the face"
        # the inner face (brows, eyes, nose, mouth) lies well inside the silhouette
        assert on_face[17:].all()


@pytest.mark.blender
def test_mouth_moves_between_neutral_and_happy_and_the_rest_stays_aligned(rendered):
    config, _ = rendered
    folder = config.out / "id00000"
    neutral, happy = _landmarks(folder, "neutral"), _landmarks(folder, "happy")
    mouth_shift = np.linalg.norm(happy[MOUTH] - neutral[MOUTH], axis=1).mean()
    assert mouth_shift > 0.5
    width = lambda p: np.linalg.norm(p[54] - p[48])  # noqa: E731
    assert width(happy) > width(neutral) + 0.5      # a smile widens the mouth
    # same camera for the pair: the nose bridge barely moves (a smile pulls the nose tip a little)
    assert np.abs(happy[NOSE_BRIDGE] - neutral[NOSE_BRIDGE]).max() < 0.3


@pytest.mark.blender
def test_rerun_resumes_and_same_seed_gives_same_pixels(rendered, tmp_path):
    from training.synth.render import RenderConfig, render_dataset

    config, _ = rendered
    again = render_dataset(config, progress=False)
    assert again.rendered == 0 and again.skipped == 2
    other = RenderConfig(**{**config.__dict__, "out": tmp_path / "again", "expressions": ("neutral",)})
    render_dataset(other, progress=False)
    a = np.asarray(Image.open(config.out / "id00000" / "neutral.png")).astype(int)
    b = np.asarray(Image.open(other.out / "id00000" / "neutral.png")).astype(int)
    assert np.abs(a - b).max() <= 2


@pytest.mark.blender
def test_a_recipe_file_changes_what_an_expression_is(rendered, tmp_path):
    from training.synth.render import RenderConfig, render_dataset

    config, _ = rendered
    half_smile = _recipes_with_happy(tmp_path, {"AU12": 0.5})
    with pytest.raises(UsageError, match="another recipe"):  # the folder's happy stays one expression
        render_dataset(RenderConfig(**{**config.__dict__, "recipes": half_smile}), progress=False)
    other = RenderConfig(**{**config.__dict__, "out": tmp_path / "half", "recipes": half_smile})
    assert render_dataset(other, progress=False).rendered == 2
    manifest = json.loads((other.out / "manifest.json").read_text())
    assert manifest["recipes"]["happy"] == {"AU12": 0.5}
    half = manifest["identities"]["id00000"]["images"]["happy"]["blendshapes"]
    full = json.loads((config.out / "manifest.json").read_text())["identities"]["id00000"]["images"]["happy"]
    assert "cheekSquint_L" in full["blendshapes"] and "cheekSquint_L" not in half  # the bundled happy's AU6, gone
    assert half["mouthSmile_L"] == pytest.approx(full["blendshapes"]["mouthSmile_L"] / 2)
    width = lambda p: np.linalg.norm(p[54] - p[48])  # noqa: E731
    assert width(_landmarks(other.out / "id00000", "happy")) < width(_landmarks(config.out / "id00000", "happy"))


@pytest.mark.blender
def test_contact_sheet_of_the_render(rendered, tmp_path):
    config, _ = rendered
    result = CliRunner().invoke(dataset, ["contact-sheet", str(config.out), str(tmp_path / "sheet.png"),
                                          "--tile", "32"])
    assert result.exit_code == 0, result.output
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size == (64 + 2 * 32, 18 + 32)


@pytest.mark.blender
@pytest.mark.slow
def test_two_workers_render_two_identities(ict_model_path, tmp_path):
    if not HAS_BPY:
        pytest.skip(NO_BPY)
    from training.synth.render import RenderConfig, render_dataset

    config = RenderConfig(out=tmp_path / "w2", face_model=ict_model_path, identities=2, expressions=("neutral",),
                          size=32, seed=3, samples=2, workers=2)
    summary = render_dataset(config, progress=False)
    assert summary.rendered == 2
    for name in ("id00000", "id00001"):
        assert Image.open(config.out / name / "neutral.png").size == (32, 32)


@pytest.mark.blender
@pytest.mark.slow
def test_the_curves_benchmarks_true_ramp_smiles_then_opens(ict_model_path, tmp_path):
    """tools/make_samples.py --ramp: the truth benchmarks/curves.py scores, with each frame's landmarks."""
    if not HAS_BPY:
        pytest.skip(NO_BPY)
    tool = Path(__file__).resolve().parent.parent / "tools" / "make_samples.py"
    command = [sys.executable, str(tool), "--face-model", str(ict_model_path), "--ramp", "8", "--size", "64",
               "--samples", "1", "--out", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True)
    folder = tmp_path / "expressions"
    frames = json.loads((folder / "faces.json").read_text())["frames"]
    assert sorted(frames) == [f"f{i:04d}.png" for i in range(1, 9)]
    assert all(Image.open(folder / name).size == (64, 64) for name in frames)
    points = {int(name[1:5]): np.asarray(frames[name][0]["landmarks"]) for name in frames}
    width = {k: np.linalg.norm(p[54] - p[48]) for k, p in points.items()}
    opening = {k: p[57, 1] - p[51, 1] for k, p in points.items()}  # lower lip's bottom below the upper's top
    assert width[4] > width[1] + 0.3  # frame 4 (of 8) is the smile's key
    assert opening[8] > opening[4] + 0.5 and opening[8] > opening[1] + 0.5  # surprise opens the mouth
    assert np.abs(points[1][30:36] - points[8][30:36]).max() < 0.5  # one camera: the nose stays where it was
    stamp = (folder / "f0005.png").stat().st_mtime_ns
    subprocess.run(command, check=True, capture_output=True)  # a second run renders nothing again
    assert (folder / "f0005.png").stat().st_mtime_ns == stamp
