"""The runtime's layers hold at run time: no torch, onnx, training, export or benchmarks on a CPU path."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnx", "training", "export", "benchmarks")


def _imported_tops(package: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                found.setdefault(name.split(".")[0], []).append(str(path.relative_to(REPO)))
    return found


def test_the_runtime_never_names_training_export_or_benchmarks() -> None:
    tops = _imported_tops(REPO / "reggan_plugin")
    assert not {m: f for m, f in tops.items() if m in ("training", "export", "benchmarks")}


def test_the_addon_imports_only_the_runtime() -> None:
    tops = _imported_tops(REPO / "blender_addon")
    assert not {m: f for m, f in tops.items() if m in HEAVY and not all(p.endswith("build.py") for p in f)}


def _modules_after(code: str, tmp: Path) -> set[str]:
    script = code + f"\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def test_info_and_an_auto_render_leave_torch_and_onnx_out(tmp_path: Path) -> None:
    frames = REPO / "samples" / "frames"
    code = f"""
from click.testing import CliRunner
from reggan_plugin.cli import main
for args in (["info"], ["render", "--frames", {str(frames)!r}, "--out", {str(tmp_path / 'out')!r},
                         "--faces", {str(REPO / 'samples' / 'faces.json')!r}, "--backend", "auto"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
"""
    assert _modules_after(code, tmp_path) == set()
    assert len(list((tmp_path / "out").glob("*.png"))) == len(list(frames.glob("*.png")))


def test_no_extra_installs_onnxruntime_gpu_beside_onnxruntime():
    """Both wheels fill the same `onnxruntime` package; an extra cannot remove the base one, so none adds the GPU one."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("onnxruntime") and not d.startswith("onnxruntime-gpu") for d in project["dependencies"])
    for name, deps in project["optional-dependencies"].items():
        assert not [d for d in deps if d.startswith("onnxruntime-gpu")], name
