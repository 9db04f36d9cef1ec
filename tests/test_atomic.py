"""reggan_plugin.atomic: the one atomic write every writer of models, engines, caches and reports uses."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from reggan_plugin.atomic import atomic_path, write_bytes, write_text


def test_a_write_replaces_the_file_whole_and_leaves_an_ordinary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.md"
    write_text(target, "first")
    write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
