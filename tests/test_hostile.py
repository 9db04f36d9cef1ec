"""Hostile but realistic input through the `reggan-plugin` commands, one class per test.

Each case checks what the README promises: the documented exit code, one line naming the file or option
and the reason, no traceback, no input changed, no stray file left, every good frame of a batch written.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from imagegen import face_box, synthetic_frame
from PIL import Image

from reggan_plugin.cli import main
from reggan_plugin.imageio import read_image

H, W = 120, 160
REGION = ",".join(str(int(v)) for v in face_box(H, W))


def frames_dir(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(synthetic_frame(H, W, 4, np.uint8, seed=i)).save(folder / f"f{i:03d}.png")
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Name -> content hash of every entry (links by their target path): proves inputs are unchanged."""
    return {p.name: (os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir())}


class Run:
    def __init__(self, args: list[str]) -> None:
        result = CliRunner().invoke(main, [str(a) for a in args])
        self.code, self.stderr, self.exception = result.exit_code, result.stderr, result.exception

    def error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, self.stderr
        return lines[0]

    def failed(self) -> dict[str, str]:
        return {line.split(": ", 2)[1]: line for line in self.stderr.splitlines() if line.startswith("failed:")}


def render(tmp_path: Path, model: Path, *extra: object, frames: Path | None = None, out: Path | None = None) -> Run:
    frames = frames or frames_dir(tmp_path / "in")
    run = Run(["render", "--frames", frames, "--out", out or tmp_path / "out", "--model", model, "--backend", "cpu",
               *extra])
    assert "Traceback" not in run.stderr and (run.exception is None or isinstance(run.exception, SystemExit)), run.stderr
    return run


def only_outputs(out: Path) -> set[str]:
    """The file names in `out`; fails on any hidden (temporary) file left behind."""
    names = {p.name for p in out.iterdir()} if out.is_dir() else set()
    assert not [n for n in names if n.startswith(".")], names
    return names


# 1. bad face geometry fails that frame alone, in one line
@pytest.mark.parametrize("face", [
    {"landmarks": [[60.0, 50.0]] * 5},  # five identical landmarks
    {"box": [40, 30, 2, 2]},  # a 2 px box (under a pixel is bad input: test_hostile_classes.py)
], ids=["identical-landmarks", "box-2px"])
def test_bad_face_geometry_fails_that_frame_alone(tmp_path, tiny_model, face):
    frames = frames_dir(tmp_path / "in")
    before = snapshot(frames)
    faces = tmp_path / "faces.json"
    faces.write_text(json.dumps({"version": 1, "default": [{"box": list(face_box(H, W))}], "frames": {"f002.png": [face]}}))
    run = render(tmp_path, tiny_model, "--faces", faces, "--trust-box", frames=frames)
    assert run.code == 1
    assert set(run.failed()) == {str(frames / "f002.png")} and "face 1" in run.failed()[str(frames / "f002.png")]
    assert only_outputs(tmp_path / "out") == {"f000.png", "f001.png", "f003.png"}
    assert snapshot(frames) == before


@pytest.mark.parametrize("region", ["100,100,0.001,0.001", "100,100,0.01,0.01"])
def test_a_region_under_a_pixel_is_an_option_error(tmp_path, tiny_model, region):
    run = render(tmp_path, tiny_model, "--region", region)
    assert run.code == 2 and "--region" in run.error_line() and "at least 1 pixel" in run.error_line()
    assert not (tmp_path / "out").exists() or only_outputs(tmp_path / "out") == set()


# 2. an output that cannot be written: exit 2, one line, before any work
@pytest.mark.parametrize("where", ["existing-file", "under-a-file", "proc"])
def test_unwritable_out_is_an_option_error(tmp_path, tiny_model, where):
    (tmp_path / "a_file").write_text("x")
    out = {"existing-file": tmp_path / "a_file", "under-a-file": tmp_path / "a_file" / "out",
           "proc": Path("/proc/reggan-test/out")}[where]
    run = render(tmp_path, tiny_model, "--region", REGION, out=out)
    assert run.code == 2, run.stderr
    assert "--out" in run.error_line() and str(out) in run.error_line()
    assert (tmp_path / "a_file").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: run as a user to test this")
def test_read_only_out_is_an_option_error(tmp_path, tiny_model):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        run = render(tmp_path, tiny_model, "--region", REGION, out=out)
        assert run.code == 2 and "cannot write" in run.error_line()
    finally:
        out.chmod(0o755)


def test_texture_out_errors(tmp_path, tiny_model):
    picture = tmp_path / "face.png"
    Image.fromarray(synthetic_frame(H, W, 3, np.uint8)).save(picture)
    same = Run(["texture", picture, "--out", picture, "--model", tiny_model])
    assert same.code == 2 and "input file" in same.error_line()
    folder = Run(["texture", picture, "--out", tmp_path, "--model", tiny_model])
    assert folder.code == 2 and "directory" in folder.error_line()
    under = Run(["texture", picture, "--out", picture / "x.png", "--model", tiny_model])
    assert under.code == 2 and "--out" in under.error_line()
    assert only_outputs(tmp_path) == {"face.png"}


# 3. a face box wholly outside the frame is no face
def test_a_box_outside_the_frame_is_a_frame_without_a_face(tmp_path, tiny_model):
    frames = frames_dir(tmp_path / "in", 2)
    run = render(tmp_path, tiny_model, "--region", "5000,5000,60,60", frames=frames)
    assert run.code == 1 and run.stderr.count("no face found") == 2
    for name in ("f000.png", "f001.png"):  # written unchanged: the sequence stays complete
        assert np.array_equal(read_image(tmp_path / "out" / name).pixels, read_image(frames / name).pixels)
    faces = tmp_path / "faces.json"
    faces.write_text(json.dumps({"version": 1, "default": [{"box": [-500, -500, 100, 100]}]}))
    again = render(tmp_path, tiny_model, "--faces", faces, frames=frames, out=tmp_path / "out2")
    assert again.code == 1 and again.stderr.count("no face found") == 2
    texture = Run(["texture", frames / "f000.png", "--out", tmp_path / "t.png", "--model", tiny_model,
                   "--region", "5000,5000,60,60"])
    assert texture.code == 1 and "no face found inside --region" in texture.error_line()
    assert not (tmp_path / "t.png").exists()


# 4. a dangling link among the frames is a failed frame
def test_a_dangling_link_is_a_failed_frame(tmp_path, tiny_model):
    frames = frames_dir(tmp_path / "in", 3)
    (frames / "f001b.png").symlink_to(tmp_path / "gone.png")
    run = render(tmp_path, tiny_model, "--region", REGION, frames=frames)
    assert run.code == 1 and "3 done" in run.stderr and "1 failed" in run.stderr
    assert "broken link" in run.failed()[str(frames / "f001b.png")]
    assert only_outputs(tmp_path / "out") == {"f000.png", "f001.png", "f002.png"}


# 5. non-finite option values
@pytest.mark.parametrize("option, value", [("--intensity", "nan"), ("--intensity", "inf"), ("--smooth", "nan")])
def test_non_finite_options_are_refused(tmp_path, tiny_model, option, value):
    run = render(tmp_path, tiny_model, option, value)
    assert run.code == 2 and option in run.stderr and ("finite" in run.stderr or "range" in run.stderr)
    assert not (tmp_path / "out").exists()


# 6. export tensorrt on a file that is not a model
@pytest.mark.parametrize("content", [b"not an onnx file", None], ids=["text", "truncated"])
def test_export_tensorrt_refuses_a_bad_onnx_as_a_bad_model(tmp_path, tiny_model, content):
    pytest.importorskip("onnx", reason="export needs onnx (pip install .[export])")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content if content is not None else tiny_model.read_bytes()[:5000])
    run = Run(["export", "tensorrt", "--onnx", bad, "--out", tmp_path / "engines"])
    assert run.code == 3 and "bad.onnx" in run.error_line() and "Traceback" not in run.stderr


# 7. stale temp files, untrusted outputs, SIGTERM
def test_a_run_removes_what_a_killed_run_left_and_redoes_broken_outputs(tmp_path, tiny_model):
    frames = frames_dir(tmp_path / "in", 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".f001.png.0123abcd.tmp.png").write_bytes(b"half a frame")  # left by a SIGKILL
    (out / ".other.png.0123abcd.tmp.png").write_bytes(b"another shot's")  # not this run's: kept
    (out / "f000.png").write_bytes(b"")  # an empty output
    (out / "f002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # an undecodable output
    run = render(tmp_path, tiny_model, "--region", REGION, "--skip-existing", frames=frames)
    assert run.code == 0 and "3 done, 0 skipped" in run.stderr, run.stderr
    assert {p.name for p in out.iterdir()} == {"f000.png", "f001.png", "f002.png", ".other.png.0123abcd.tmp.png"}
    for name in ("f000.png", "f002.png"):
        assert read_image(out / name).pixels.shape == (H, W, 4)


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c(tmp_path, tiny_model):
    frames = frames_dir(tmp_path / "in", 60)
    before = snapshot(frames)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "reggan_plugin.cli", "render", "--frames", str(frames), "--out",
                             str(out), "--model", str(tiny_model), "--backend", "cpu", "--region", REGION, "--batch", "1"],
                            stderr=subprocess.PIPE, text=True)
    for _ in range(2400):  # a hang guard (2 minutes), not a speed check
        if out.is_dir() and any(p.suffix == ".png" and not p.name.startswith(".") for p in out.iterdir()):
            break
        assert proc.poll() is None, "the render ended before it could be stopped"
        time.sleep(0.05)
    else:
        pytest.fail("no frame was written")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    written = only_outputs(out)
    assert 0 < len(written) < 60
    for name in written:
        assert read_image(out / name).pixels.shape == (H, W, 4)
    assert snapshot(frames) == before


# 8. every documented exit code
def _nan_model(tiny_model: Path, path: Path) -> Path:
    onnx = pytest.importorskip("onnx", reason="building a damaged model needs onnx")
    from onnx import numpy_helper

    proto = onnx.load(str(tiny_model))
    biggest = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(biggest).copy()
    values[...] = np.nan
    biggest.CopyFrom(numpy_helper.from_array(values, biggest.name))
    onnx.save(proto, str(path))
    return path


def test_documented_exit_codes(tmp_path, tiny_model):
    assert render(tmp_path, tiny_model, "--region", REGION, out=tmp_path / "ok").code == 0
    frames = frames_dir(tmp_path / "in")
    Image.new("RGB", (W, H), (128, 128, 128)).save(frames / "blank.png")
    assert render(tmp_path, tiny_model, frames=frames, out=tmp_path / "o1").code == 1  # a frame without a face
    assert render(tmp_path, tiny_model, "--expression", "smug", out=tmp_path / "o2").code == 2
    (tmp_path / "m.onnx").write_text("no")
    assert render(tmp_path, tmp_path / "m.onnx", out=tmp_path / "o3").code == 3
    assert render(tmp_path, tiny_model, "--backend", "tensorrt", out=tmp_path / "o4").code in (4,)
    nan = render(tmp_path, _nan_model(tiny_model, tmp_path / "nan.onnx"), "--region", REGION, out=tmp_path / "o5")
    assert nan.code == 5 and "fp32" in nan.stderr


def test_readme_exit_code_table_matches_the_errors():
    from reggan_plugin import errors

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = dict(line.strip("|").split("|")[:2] for line in readme.splitlines() if line.startswith("| ") and
                 line.split("|")[1].strip().isdigit())
    codes = {int(k.strip()): v.strip() for k, v in table.items()}
    assert codes[errors.InputError.exit_code].startswith("bad input") and errors.UsageError.exit_code == 2
    assert "model" in codes[errors.ModelError.exit_code]
    assert "backend" in codes[errors.BackendUnavailable.exit_code]
    assert "NaN" in codes[errors.NumericalError.exit_code]
    assert set(codes) == {0, 1, 2, 3, 4, 5, 6, 130}


# 9. large frames inside the stated limit
@pytest.mark.slow
def test_a_frame_inside_the_size_limit_is_read(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (14000, 13000), 90).save(path, compress_level=1)
    image = read_image(path)
    assert image.pixels.shape == (13000, 14000, 1)


# 10. texture on a picture without a face refuses it, naming the bake; told it is one face, edits it with a warning
def test_texture_refuses_a_picture_without_a_face_unless_told_it_is_one(tmp_path, tiny_model):
    flat = tmp_path / "flat.png"
    Image.new("RGB", (256, 256), (180, 120, 100)).save(flat)
    run = Run(["texture", flat, "--out", tmp_path / "flat_happy.png", "--model", tiny_model])
    assert run.code == 2 and "no face found" in run.error_line() and "reggan-plugin bake-maps" in run.error_line()
    assert not (tmp_path / "flat_happy.png").exists()
    run = Run(["texture", flat, "--out", tmp_path / "flat_happy.png", "--model", tiny_model, "--whole-image"])
    assert run.code == 0 and "warning:" in run.stderr and "no face detected" in run.stderr
    assert (tmp_path / "flat_happy.png").is_file()
