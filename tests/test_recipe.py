"""One recipe, one command (training/recipe.py): recipe files are checked before anything runs, per-expression
stage-1 settings, every bundled model stamped by its recipe, and tiny recipes of each kind rebuilt end to end
(render -> fit -> train -> export -> render)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the recipe command trains (pip install .[train])")

from reggan_plugin.errors import UsageError
from training.recipe import load_recipe
from training.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("text", "reason"), [
    ('name = "x"\n[[data]]\nname = "d"\nidentities = 1\n', "no `phase`"),
    ('name = "x"\nbatch = 3\n[[data]]\nname = "d"\nidentities = 1\n[[phase]]\nname = "p"\niterations = 1\n',
     "unknown key"),
    ('name = "x"\n[[data]]\nname = "d"\nidentities = 1\n[[phase]]\nname = "p"\niterations = 1\nresume = "q"\n',
     "not an earlier phase"),
    ('name = "x"\n[[data]]\nname = "d"\nidentity = 1\n[[phase]]\nname = "p"\niterations = 1\n', "unknown key"),
    ('name = "x"\n[[data]\n', "not valid TOML"),
    ('name = "x"\nwarp = "lanczos"\n[[data]]\nname = "d"\nidentities = 1\n[[phase]]\nname = "p"\niterations = 1\n',
     "warp"),
    ('name = "x"\nkind = "mesh"\n[[data]]\nname = "d"\nidentities = 1\n', "kind 'mesh'"),
    ('name = "x"\nkind = "coverage"\n[[data]]\nname = "d"\nidentities = 1\n[[phase]]\nname = "p"\niterations = 1\n',
     "unknown key.*phase.*kind coverage"),
    ('name = "x"\nkind = "coverage"\n[[data]]\nname = "d"\nidentities = 1\n[coverage]\nstep = 3\n',
     r"unknown \[coverage\] key.*step"),
    ('name = "x"\n[[data]]\nname = "d"\nidentities = 1\n[[phase]]\nname = "p"\niterations = 1\n'
     '[photo_motion]\ngrids = 8\n', r"unknown \[photo_motion\] key.*grids"),
])
def test_a_bad_recipe_is_refused_before_anything_runs(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=reason) as err:
        load_recipe(path)
    assert "bad.toml" in str(err.value)


def test_a_recipes_photos_train_on_the_half_of_their_people_that_chooses_the_gains(london_faces: Path,
                                                                                   tmp_path: Path) -> None:
    """`photos = ["london-faces"]`: the pairs of the people below 0.5 of `identity_unit` are copied for training, each
    with its neutral and its expression; the other half, which checks the photo gains, is not."""
    from training.data.split import in_choosing_half
    from training.recipe import copy_choosing_half

    path = tmp_path / "photos.toml"
    path.write_text('name = "x"\nphotos = ["london-faces"]\n[[data]]\nname = "d"\nidentities = 1\n'
                    '[[phase]]\nname = "p"\niterations = 1\n')
    assert load_recipe(path).photos == ("london-faces",)
    copied = copy_choosing_half(london_faces, tmp_path / "runs" / "photos" / "london-faces")
    people = {p.name.split(".")[0] for p in (copied / "neutral").iterdir()}
    everyone = {p.name.split(".")[0] for p in (london_faces / "neutral").iterdir()}
    assert people == {n for n in everyone if in_choosing_half(f"london-faces/{n}")} and 0 < len(people) < len(everyone)
    assert {p.name for p in (copied / "happy").iterdir()} == {
        p.name for p in (london_faces / "happy").iterdir() if p.name.split(".")[0] in people}
    with pytest.raises(UsageError, match=r"nowhere.*REGGAN_SHARED_DATA"):
        copy_choosing_half(tmp_path / "nowhere", tmp_path / "out")


def test_the_shipped_recipes_load() -> None:
    for path in sorted((REPO / "recipes").glob("*.toml")):
        recipe = load_recipe(path)
        assert recipe.data and recipe.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert bool(recipe.phases) == (recipe.kind == "expression")


def _assert_stamped(stamp: dict, recipe: Path) -> None:
    assert stamp["sha256"] == hashlib.sha256(recipe.read_bytes()).hexdigest() and stamp["text"] == recipe.read_text()


def test_every_bundled_model_is_its_recipe() -> None:
    """Each file in reggan_plugin/models that training made carries the recipe in the repository that rebuilds it."""
    import onnx

    from reggan_plugin.edit.interior import RECIPE_ENTRY, STRIPS_FILE

    models = REPO / "reggan_plugin" / "models"
    for name in ("coverage", "channels"):
        proto = onnx.load(str(models / f"{name}.onnx"), load_external_data=False)
        _assert_stamped(json.loads({p.key: p.value for p in proto.metadata_props}["reggan.recipe"]),
                        REPO / "recipes" / f"{name}.toml")
    with np.load(STRIPS_FILE) as strips:
        _assert_stamped(json.loads(str(strips[RECIPE_ENTRY])), REPO / "recipes" / "interior.toml")
    reader = json.loads((models / "photo_reader.json").read_text())
    _assert_stamped(reader["recipe"], REPO / "recipes" / "photo_reader.toml")
    assert reader["fitted"] == "reggan-plugin recipe photo_reader.toml"


def test_the_bundled_face_model_is_its_recipe() -> None:
    """The shipped face model was built by recipes/default.toml as it is in the repository (its text and sha256 are
    in the model's metadata, its provenance names it): one recipe, one command, no grafts."""
    from reggan_plugin.artifact import default_model_path, load_artifact

    recipe = REPO / "recipes" / "default.toml"
    artifact = load_artifact(default_model_path())
    _assert_stamped(json.loads(artifact.metadata["reggan.recipe"]), recipe)
    assert artifact.provenance["training"] == "reggan-plugin recipe default.toml"
    assert [p["name"] for p in artifact.provenance["recipe"]["phases"]] == [p.name for p in load_recipe(recipe).phases]


def test_the_channel_models_keys_are_what_its_recipe_renders_below_weight_1() -> None:
    """The channel model's expressions, keys included, are those its recipe's data give (`model_config`): a key comes
    from renders at its weight and from nothing else."""
    from reggan_plugin.artifact import channels_model_path, load_artifact
    from training.recipe import model_config

    recipe = load_recipe(REPO / "recipes" / "channels.toml")
    artifact = load_artifact(channels_model_path())
    assert artifact.expressions == model_config(recipe).expressions
    assert artifact.keys and all(set(at) == {0.5, 1.0} for at in artifact.keys.values())


def test_renders_at_a_key_weight_are_found_or_named_missing(tmp_path: Path) -> None:
    """A data entry rendered at 0.5: its folder is done when each expression has its render at 0.5 (and the neutral),
    and its expressions become keys of the model."""
    from training.recipe import DataSpec, _missing_renders

    spec = DataSpec(name="keys", identities=1, seed=3, expressions=("neutral", "happy", "sad"), intensities=(0.5,))
    assert spec.key_names() == ["happy@0.5", "sad@0.5"]
    images = {"neutral": {"expression": "neutral", "intensity": 1.0}, "happy_050": {"expression": "happy",
                                                                                  "intensity": 0.5}}
    manifest = {"settings": {"seed": 3, "size": 128, "samples": 8, "look": "studio", "lips": "fixed"},
                "identities": {"id00000": {"index": 0, "name": "id00000", "images": images}}}
    (tmp_path / "id00000").mkdir()

    def write() -> str:
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        for stem in images:
            for suffix in (".png", ".landmarks.json"):
                (tmp_path / "id00000" / f"{stem}{suffix}").write_text("x")
        return _missing_renders(spec, tmp_path, spec.expression_names())

    assert "identity 0 is not fully rendered" in write()  # sad at 0.5 missing
    images["sad_050"] = {"expression": "sad", "intensity": 0.5}
    assert write() == ""


def test_per_expression_stage1_settings_group_the_fit() -> None:
    cfg = TrainConfig(ridge_lambdas=(0.1, 1.0), stage1_by_expression={"happy": ("ridge_lambdas=0.01",),
                                                                      "sad,angry": ("stage1_augment_copies=3",)})
    groups = cfg.stage1_groups(("happy", "sad", "surprised", "angry"))
    assert [names for _, names in groups] == [("surprised",), ("happy",), ("sad", "angry")]
    assert groups[0][0].ridge_lambdas == (0.1, 1.0) and groups[1][0].ridge_lambdas == (0.01,)
    assert groups[2][0].stage1_augment_copies == 3 and groups[1][0].stage1_augment_copies == 0
    with pytest.raises(ValueError, match="not a stage-1 setting"):
        TrainConfig(stage1_by_expression={"happy": ("lambda_cls=1",)})
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg  # a run's saved settings read back


@pytest.mark.slow
def test_the_tiny_recipe_rebuilds_a_model_that_names_its_recipe_and_renders(ict_model_path: Path, tmp_path: Path
                                                                            ) -> None:
    from reggan_plugin.artifact import load_artifact
    from tests.test_cli import cli

    recipe = REPO / "recipes" / "tiny.toml"
    model = tmp_path / "tiny.onnx"
    proc = cli("recipe", recipe, "--data-root", tmp_path / "data", "--runs", tmp_path / "runs", "--out", model,
               "--face-model", ict_model_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    artifact = load_artifact(model)
    _assert_stamped(json.loads(artifact.metadata["reggan.recipe"]), recipe)
    provenance = artifact.provenance
    assert provenance["training"] == "reggan-plugin recipe tiny.toml"
    assert [p["name"] for p in provenance["recipe"]["phases"]] == ["base", "refit", "final"]
    assert provenance["recipe"]["phases"][0]["iterations"] == 10  # the base phase stopped early, by its schedule
    assert "/" not in json.dumps(provenance["data"])  # no machine paths
    assert "london-faces" in {entry["name"] for entry in provenance["data"]}  # the photos trained beside the renders
    # its own stage-1 settings, no graft, at each turn key
    assert [provenance["stage1"]["fitted"][f"happy~turn{k}"]["lambda"] for k in range(3)] == [0.01] * 3
    assert artifact.turn_keys == (-0.35, 0.0, 0.35)
    assert artifact.warp == "bicubic"  # the recipe's kernel, carried through every phase
    assert json.loads(provenance["model_config"])["mix"] == "carried"  # and its way of mixing expressions
    assert json.loads(artifact.metadata["reggan.paste_gains"])["photo"]["happy"]["upper"] == 0.0
    assert json.loads((tmp_path / "runs" / "tiny" / "base" / "latest.json").read_text())["iteration"] == 10
    # a long phase says where it is: as stage 1 is fitted, at each checkpoint and at its end
    for line in ("phase base: fitting stage 1", "phase base: iteration 5/10, ", "phase refit: refitting stage 1",
                 "phase refit: iteration 12/12, ", "phase final: fitting stage 1"):
        assert line in proc.stderr, proc.stderr[-2000:]
    assert "phase base: iteration 10/10, " in proc.stderr and proc.stderr.count(" s each, done") == 2
    # run again without the face model, the first phase as if stopped after its last checkpoint: it goes on from
    # there, every other render and step is found done, and the model is written the same
    (tmp_path / "runs" / "tiny" / "base" / "summary.json").unlink()
    again = _recipe_without_face_model(recipe, tmp_path, tmp_path / "again.onnx")
    assert again.returncode == 0 and again.stderr.count(": done") == 2, again.stderr[-2000:]
    assert "phase base: iteration" not in again.stderr and "phase base: fitting stage 1" not in again.stderr
    assert (tmp_path / "runs" / "tiny" / "base" / "summary.json").is_file()
    assert "every render there" in again.stderr
    assert load_artifact(tmp_path / "again.onnx").sha256 == artifact.sha256
    # and the model renders
    out = tmp_path / "out"
    proc = cli("render", "--frames", REPO / "samples" / "frames", "--out", out, "--model", model,
               "--faces", REPO / "samples" / "faces.json", "--expression", "happy")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(out.glob("*.png"))) == len(list((REPO / "samples" / "frames").glob("*.png")))


def _recipe_without_face_model(recipe: Path, root: Path, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "REGGAN_ICT_MODEL"}
    return subprocess.run([sys.executable, "-m", "reggan_plugin.cli", "recipe", str(recipe), "--data-root",
                           str(root / "data"), "--runs", str(root / "runs"), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_a_recipe_with_renders_missing_and_no_face_model_says_what_is_missing(tmp_path: Path) -> None:
    proc = _recipe_without_face_model(REPO / "recipes" / "tiny.toml", tmp_path, tmp_path / "m.onnx")
    assert proc.returncode == 2 and "data tiny64" in proc.stderr and "face model" in proc.stderr
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_tiny_coverage_and_interior_recipes_build_what_the_runtime_loads(ict_model_path: Path, tmp_path: Path
                                                                         ) -> None:
    from reggan_plugin.edit.coverage import FaceCoverage
    from reggan_plugin.edit.interior import MouthInterior
    from tests.test_cli import cli

    data = ('[[data]]\nname = "{name}"\nidentities = 2\nsize = 64\nseed = 5151\nsamples = 1\n'
            'expressions = {expressions}\n')
    coverage = tmp_path / "cov.toml"
    coverage.write_text('name = "cov"\nkind = "coverage"\n' + data.format(name="c64", expressions='["neutral"]')
                        + '[coverage]\nsteps = 3\nbatch = 2\n')
    interior = tmp_path / "inside.toml"
    interior.write_text('name = "inside"\nkind = "interior"\n'
                        + data.format(name="i64", expressions='["surprised", "disgusted", "fearful"]'))
    for recipe, out in ((coverage, tmp_path / "coverage.onnx"), (interior, tmp_path / "inside.npz")):
        proc = cli("recipe", recipe, "--data-root", tmp_path / "data", "--runs", tmp_path / "runs", "--out", out,
                   "--face-model", ict_model_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    crops = np.random.default_rng(0).random((2, 128, 128, 3)).astype(np.float32)
    heads, layers = FaceCoverage(tmp_path / "coverage.onnx")(crops)
    assert heads.shape == layers.shape == (2, 128, 128)
    assert set(MouthInterior.load(tmp_path / "inside.npz").strips) == {"surprised", "disgusted", "fearful"}
    import onnx

    proto = onnx.load(str(tmp_path / "coverage.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    _assert_stamped(json.loads(meta["reggan.recipe"]), coverage)
    assert json.loads(meta["reggan.coverage"])["training"] == "reggan-plugin recipe cov.toml"
    with np.load(tmp_path / "inside.npz") as strips:
        _assert_stamped(json.loads(str(strips["recipe"])), interior)
