"""Hostile but realistic use, one defect class per section (the sections of the hostile review): each case
checks the documented exit code, one line naming the file and the reason, no traceback, nothing lost.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from test_hostile import Run


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def no_traceback(run: Run) -> Run:
    assert "Traceback" not in run.stderr and (run.exception is None or isinstance(run.exception, SystemExit)), run.stderr
    return run


# 1. export never writes over its own input (the same file by another name included)
def _aliases(path: Path) -> list[Path]:
    link = path.parent / f"link-{path.name}"
    link.symlink_to(path)
    hard = path.parent / f"hard-{path.name}"
    os.link(path, hard)
    return [path, link, hard, path.parent / "." / path.name, path.parent / ".." / path.parent.name / path.name]


def test_export_regression_stage_refuses_out_as_its_model(tmp_path, tiny_model):
    pytest.importorskip("onnx")
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_model.read_bytes())
    before = digest(model)
    for out in _aliases(model):
        run = no_traceback(Run(["export", "regression-stage", "--model", model, "--out", out]))
        assert run.code == 2 and "input file" in run.error_line() and str(out) in run.error_line(), run.stderr
        assert digest(model) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_onnx_refuses_out_as_the_checkpoint(tmp_path):
    pytest.importorskip("torch")
    from training.checkpoint import checkpoint_paths, save_generator
    from training.config import TINY
    from training.models import RegGAN

    weights, config = checkpoint_paths(save_generator(tmp_path / "7-G", RegGAN(TINY), {"iterations": 7}))
    before = {p: digest(p) for p in (weights, config)}
    for out in [*_aliases(weights), config, tmp_path / "." / config.name]:
        run = no_traceback(Run(["export", "onnx", "--checkpoint", tmp_path / "7-G", "--out", out]))
        assert run.code == 2 and "input file" in run.error_line(), run.stderr
        assert {p: digest(p) for p in before} == before
