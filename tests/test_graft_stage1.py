"""tools/graft_stage1.py: some expressions' stage 1 taken from another export of the same network."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

TOOL = Path(__file__).resolve().parent.parent / "tools" / "graft_stage1.py"


def _module():
    spec = importlib.util.spec_from_file_location("graft_stage1", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(path: Path, seed: int, stage1_seed: int) -> Path:
    from export.onnx_export import export_model
    from training.config import TINY
    from training.models import RegGAN

    torch.manual_seed(seed)
    model = RegGAN(dataclasses.replace(TINY, image_size=64))
    gen = torch.Generator().manual_seed(stage1_seed)
    with torch.no_grad():  # a stage 1 of its own, the refiner of `seed`
        model.stage1.bias.copy_(torch.randn(model.stage1.bias.shape, generator=gen) * 0.2)
        model.stage1.weight.add_(torch.randn(model.stage1.weight.shape, generator=gen) * 0.05)
        model.stage1.flow.copy_(torch.randn(model.stage1.flow.shape, generator=gen) * 0.01)
    return export_model(model, path, provenance={"training": "random init (tests)", "iterations": 0})


def _graft(into: Path, donor: Path, expressions: str, out: Path):
    return CliRunner().invoke(_module().main, ["--into", str(into), "--donor", str(donor),
                                               "--expressions", expressions, "--out", str(out)])


def _run(path: Path, expression: str) -> np.ndarray:
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.backends import create_backend
    from reggan_plugin.backends.parity import sample_face

    artifact = load_artifact(path)
    backend = create_backend(artifact, "cpu")
    image = sample_face(artifact.input_size)
    return backend.run(image, artifact.expression_weights(expression)[None], np.ones(1, np.float32))["output"]


def test_grafted_expressions_come_from_the_donor_and_the_rest_stays(tmp_path):
    donor = _export(tmp_path / "donor.onnx", seed=0, stage1_seed=1)
    into = _export(tmp_path / "into.onnx", seed=0, stage1_seed=2)
    out = tmp_path / "grafted.onnx"
    result = _graft(into, donor, "happy", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(_run(out, "happy"), _run(donor, "happy"))
    np.testing.assert_array_equal(_run(out, "sad"), _run(into, "sad"))
    assert not np.array_equal(_run(into, "happy"), _run(donor, "happy"))  # the graft changed something

    from reggan_plugin.artifact import load_artifact

    again = tmp_path / "grafted_twice.onnx"
    assert _graft(out, into, "sad", again).exit_code == 0
    grafts = json.loads(load_artifact(again).metadata["reggan.provenance"])["stage1_grafted"]
    assert [g["expressions"] for g in grafts] == [["happy"], ["sad"]]  # every graft is recorded, oldest first


def test_a_donor_with_another_refiner_is_refused(tmp_path):
    donor = _export(tmp_path / "donor.onnx", seed=5, stage1_seed=1)
    into = _export(tmp_path / "into.onnx", seed=0, stage1_seed=2)
    out = tmp_path / "grafted.onnx"
    result = _graft(into, donor, "happy", out)
    assert result.exit_code != 0 and "do not share the rest of the network" in result.output
    assert not out.exists()
    result = _graft(into, into, "smug", out)
    assert result.exit_code != 0 and "unknown expression" in result.output and not out.exists()


def test_the_provenance_tells_how_each_grafted_expression_was_fitted():
    into = {"stage1": {"fitted": {"happy": {"lambda": 0.2, "train_pairs": 10}, "sad": {"lambda": 1.0, "train_pairs": 10}}},
            "metrics": {"happy": {"reggan_psnr": 30.0}, "sad": {"reggan_psnr": 31.0}}}
    donor = {"stage1": {"fitted": {"happy": {"lambda": 0.01, "train_pairs": 30}, "sad": {"lambda": 0.04, "train_pairs": 30}}},
             "metrics": {"happy": {"reggan_psnr": 35.0}, "sad": {"reggan_psnr": 36.0}},
             "train_config": {"stage1_augment_copies": 2, "ridge_lambdas": [0.01], "g_lr": 0.0005}}
    _module().record_graft(into, donor, ["happy"], "donor.onnx", "abc")
    assert into["stage1"]["fitted"] == {"happy": {"lambda": 0.01, "train_pairs": 30}, "sad": {"lambda": 1.0, "train_pairs": 10}}
    assert into["metrics"] == {"happy": {"reggan_psnr": 35.0}, "sad": {"reggan_psnr": 31.0}}
    assert into["stage1_grafted"] == [{"expressions": ["happy"], "from": "donor.onnx", "from_sha256": "abc",
                                       "stage1_settings": {"stage1_augment_copies": 2, "ridge_lambdas": [0.01]}}]
