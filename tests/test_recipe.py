"""One recipe, one command (training/recipe.py): recipe files are checked before anything runs, per-expression
stage-1 settings, and the tiny recipe rebuilt end to end (render -> fit -> train -> export -> render)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

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
])
def test_a_bad_recipe_is_refused_before_anything_runs(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=reason) as err:
        load_recipe(path)
    assert "bad.toml" in str(err.value)


def test_the_shipped_recipes_load() -> None:
    for path in sorted((REPO / "recipes").glob("*.toml")):
        recipe = load_recipe(path)
        assert recipe.phases and recipe.data and recipe.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bundled_face_model_is_its_recipe() -> None:
    """The shipped face model was built by recipes/default.toml as it is in the repository (its text and sha256 are
    in the model's metadata, its provenance names it): one recipe, one command, no grafts."""
    from reggan_plugin.artifact import default_model_path, load_artifact

    recipe = REPO / "recipes" / "default.toml"
    artifact = load_artifact(default_model_path())
    stamped = json.loads(artifact.metadata["reggan.recipe"])
    assert stamped["sha256"] == hashlib.sha256(recipe.read_bytes()).hexdigest() and stamped["text"] == recipe.read_text()
    assert artifact.provenance["training"] == "reggan-plugin recipe default.toml"
    assert [p["name"] for p in artifact.provenance["recipe"]["phases"]] == [p.name for p in load_recipe(recipe).phases]


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
    stamp = json.loads(artifact.metadata["reggan.recipe"])
    assert stamp["sha256"] == hashlib.sha256(recipe.read_bytes()).hexdigest() and stamp["text"] == recipe.read_text()
    provenance = artifact.provenance
    assert provenance["training"] == "reggan-plugin recipe tiny.toml"
    assert [p["name"] for p in provenance["recipe"]["phases"]] == ["base", "refit", "final"]
    assert provenance["recipe"]["phases"][0]["iterations"] == 10  # the base phase stopped early, by its schedule
    assert "/" not in json.dumps(provenance["data"])  # no machine paths
    assert provenance["stage1"]["fitted"]["happy"]["lambda"] == 0.01  # its own stage-1 settings, no graft
    assert artifact.warp == "bicubic"  # the recipe's kernel, carried through every phase
    assert json.loads(artifact.metadata["reggan.paste_gains"])["photo"]["happy"]["upper"] == 0.0
    assert json.loads((tmp_path / "runs" / "tiny" / "base" / "latest.json").read_text())["iteration"] == 10
    # run again: every step is found done and the model is written the same
    again = cli("recipe", recipe, "--data-root", tmp_path / "data", "--runs", tmp_path / "runs", "--out",
                tmp_path / "again.onnx", "--face-model", ict_model_path)
    assert again.returncode == 0 and again.stderr.count(": done") == 3
    assert load_artifact(tmp_path / "again.onnx").sha256 == artifact.sha256
    # and the model renders
    out = tmp_path / "out"
    proc = cli("render", "--frames", REPO / "samples" / "frames", "--out", out, "--model", model,
               "--faces", REPO / "samples" / "faces.json", "--expression", "happy")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(out.glob("*.png"))) == len(list((REPO / "samples" / "frames").glob("*.png")))
