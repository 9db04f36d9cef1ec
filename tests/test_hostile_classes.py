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


# 2. --skip-existing trusts an output only when it decodes fully
def _png_chunk(tag: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _broken_outputs(good: dict[str, bytes]) -> dict[str, bytes]:
    """Outputs a crashed tool, a full disk or a copy cut short leave: each begins and ends like its format."""
    import struct

    png = good["f000.png"]
    ihdr = png[8:33]
    return {
        "f000.png": png[:33] + _png_chunk(b"IDAT", os.urandom(3000)) + _png_chunk(b"IEND", b""),  # garbage inside
        "f001.png": png[:8] + ihdr + _png_chunk(b"IEND", b""),  # a header alone
        "f002.png": png[:8] + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 160, 120, 16, 6, 0, 0, 0))
        + _png_chunk(b"IDAT", png[41:400]) + _png_chunk(b"IEND", b""),  # 16-bit header, data cut short
        "f003.tif": good["f003.tif"][: len(good["f003.tif"]) * 2 // 3],
        "f004.exr": good["f004.exr"][: len(good["f004.exr"]) * 2 // 3],
        "f005.jpg": good["f005.jpg"][: len(good["f005.jpg"]) // 2],
    }


def test_skip_existing_renders_outputs_that_do_not_decode_again(tmp_path, tiny_model):
    import numpy as np
    from imagegen import synthetic_frame
    from test_hostile import REGION, only_outputs, render

    from reggan_plugin.imageio import ImageData, read_image, write_image

    frames = tmp_path / "in"
    frames.mkdir()
    for i, (suffix, dtype, c) in enumerate([(".png", np.uint8, 4), (".png", np.uint8, 4), (".png", np.uint16, 4),
                                            (".tif", np.uint16, 3), (".exr", np.float32, 4), (".jpg", np.uint8, 3)]):
        write_image(frames / f"f{i:03d}{suffix}", ImageData(synthetic_frame(120, 160, c, dtype, seed=i),
                                                           format=suffix, linear=dtype == np.float32))
    first = render(tmp_path, tiny_model, "--region", REGION, frames=frames)
    assert first.code == 0, first.stderr
    out = tmp_path / "out"
    good = {p.name: p.read_bytes() for p in out.iterdir()}
    for name, data in _broken_outputs(good).items():
        (out / name).write_bytes(data)
    run = render(tmp_path, tiny_model, "--region", REGION, "--skip-existing", frames=frames)
    assert run.code == 0 and "6 done, 0 skipped" in run.stderr, run.stderr
    assert only_outputs(out) == set(good)
    for name in good:
        assert read_image(out / name).pixels.shape[:2] == (120, 160)
    again = render(tmp_path, tiny_model, "--region", REGION, "--skip-existing", frames=frames)
    assert again.code == 0 and "0 done, 6 skipped" in again.stderr, again.stderr


# 3. numbers no frame can mean in faces.json: exit 2 naming the file and the entry, before any frame
@pytest.mark.parametrize("text, entry", [
    ('{"frames": {"f001.png": [{"box": [40, 30, 1e12, 80]}]}}', "frames['f001.png'][0].box[2]"),
    ('{"frames": {"f001.png": [{"box": [40, 30, 1e-300, 1e-300]}]}}', "frames['f001.png'][0].box"),
    ('{"frames": {"f001.png": [{"box": [40, 30, 1e-9, 80]}]}}', "frames['f001.png'][0].box"),
    ('{"frames": {"f001.png": [{"box": [1e308, 30, 80, 80]}]}}', "frames['f001.png'][0].box[0]"),
    ('{"default": [{"landmarks": [[1e308, 1], [2, 2], [3, 3], [4, 4], [5, 5]]}]}', "default[0].landmarks[0][0]"),
    ('{"frames": {"f001.png": [{"box": [%s, 30, 80, 80]}]}}' % ("9" * 400), "frames['f001.png'][0].box[0]"),
    ('{"frames": {"f001.png": [{"box": [%s, 30, 80, 80]}]}}' % ("9" * 5000), ""),
    ('{"frames": ' + "[" * 100000 + "]" * 100000 + "}", "nested"),
], ids=["size-1e12", "size-1e-300", "size-1e-9", "x-1e308", "landmark-1e308", "400-digits", "5000-digits", "deep"])
def test_extreme_numbers_in_faces_json_are_bad_input(tmp_path, tiny_model, text, entry):
    from test_hostile import frames_dir, render

    faces = tmp_path / "faces.json"
    faces.write_text(text)
    run = render(tmp_path, tiny_model, "--faces", faces, frames=frames_dir(tmp_path / "in", 3))
    assert run.code == 2, run.stderr
    line = run.error_line()
    assert str(faces) in line and entry in line and len(line) < 300, line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# 4. a model that passes the load checks but outputs another shape at run time is a bad model (exit 3)
def _reshaping_model(tiny_model: Path, path: Path) -> Path:
    """The tiny model with its 'output' doubled in height by a Concat on a shape only known at run time: its
    signature still says [N,3,64,64], so it loads."""
    onnx = pytest.importorskip("onnx", reason="building a damaged model needs onnx")
    from onnx import helper

    proto = onnx.load(str(tiny_model))
    graph = proto.graph
    for node in graph.node:
        node.output[:] = ["output_raw" if o == "output" else o for o in node.output]
    graph.node.append(helper.make_node("Concat", ["output_raw", "output_raw"], ["output"], axis=2))
    onnx.save(proto, str(path))
    return path


def test_a_model_with_another_output_shape_at_run_time_is_a_bad_model(tmp_path, tiny_model):
    from test_hostile import REGION, render

    model = _reshaping_model(tiny_model, tmp_path / "reshaping.onnx")
    run = render(tmp_path, model, "--region", REGION)
    assert run.code == 3, run.stderr
    assert "reshaping.onnx" in run.error_line() and "shape" in run.error_line()
    assert not [p for p in (tmp_path / "out").iterdir()] if (tmp_path / "out").exists() else True


# 5. every command's --out that cannot be written, and junk model inputs: one line, the documented code
def _out_in_the_way(tmp_path: Path, where: str, name: str) -> Path:
    """An --out that cannot be written: a file where a folder must be (a folder where a file must be), a path under
    a file, a path in /proc."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    if where == "file" and name.endswith(".onnx"):
        (tmp_path / "a_folder").mkdir()
        return tmp_path / "a_folder"
    return {"file": blocker, "under-file": blocker / name, "proc": Path("/proc/reggan-test") / name}[where]


def _commands(tmp_path: Path, tiny_model: Path, out: Path) -> dict[str, list[object]]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return {
        "train": ["train", "--data", data, "--out", out, "--config", "tiny", "--iterations", "0", "--no-progress"],
        "train-export": ["train", "--data", data, "--out", tmp_path / "run", "--export", out, "--config", "tiny"],
        "bench": ["bench", "--quick", "--out", out],
        "export-onnx": ["export", "onnx", "--checkpoint", tmp_path / "7-G", "--out", out],
        "export-regression-stage": ["export", "regression-stage", "--model", tiny_model, "--out", out],
        "export-region-graphs": ["export", "region-graphs", "--out", out],
        "export-tensorrt": ["export", "tensorrt", "--onnx", tiny_model, "--out", out],
        "evaluate": ["evaluate", "--model", tiny_model, "--data", data, "--out", out],
        "evaluate-perturb": ["evaluate", "--perturb", "--model", tiny_model, "--data", data, "--out", out],
        "dataset-render": ["dataset", "render", "--out", out, "--identities", "1", "--face-model", tmp_path / "f.npz"],
    }


@pytest.mark.parametrize("where", ["file", "under-file", "proc"])
@pytest.mark.parametrize("command", ["train", "train-export", "bench", "export-onnx", "export-regression-stage",
                                     "export-region-graphs", "export-tensorrt", "evaluate", "evaluate-perturb",
                                     "dataset-render"])
def test_every_command_refuses_an_out_it_cannot_write(tmp_path, tiny_model, command, where):
    pytest.importorskip("torch")
    if command == "export-tensorrt" and where == "file":
        pytest.skip("export tensorrt --out is a folder: click refuses a file itself")
    if command == "export-onnx":
        from training.checkpoint import save_generator
        from training.config import TINY
        from training.models import RegGAN

        save_generator(tmp_path / "7-G", RegGAN(TINY))
    out = _out_in_the_way(tmp_path, where, "model.onnx" if "export-o" in command or "-export" in command or
                          "regression" in command else "out")
    run = no_traceback(Run(_commands(tmp_path, tiny_model, out)[command]))
    assert run.code == 2, run.stderr
    assert str(out) in run.error_line() or str(out.parent) in run.error_line(), run.stderr
    assert (tmp_path / "a_file").read_text() == "x" and not list(tmp_path.glob("a_folder/*"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("junk", ["text", "truncated", "empty"])
@pytest.mark.parametrize("command", ["export-onnx", "train-init-refiner", "bench"])
def test_junk_model_inputs_are_bad_models(tmp_path, tiny_model, command, junk):
    pytest.importorskip("torch")
    from training.checkpoint import save_generator
    from training.config import TINY
    from training.models import RegGAN

    weights = save_generator(tmp_path / "7-G", RegGAN(TINY))
    bad = {"export-onnx": weights, "train-init-refiner": tmp_path / "m.onnx", "bench": tmp_path / "m.onnx"}[command]
    source = weights.read_bytes() if command == "export-onnx" else tiny_model.read_bytes()
    bad.write_bytes({"text": b"not a model at all", "truncated": source[: len(source) // 3], "empty": b""}[junk])
    data = tmp_path / "data"
    data.mkdir()
    args = {"export-onnx": ["export", "onnx", "--checkpoint", tmp_path / "7-G", "--out", tmp_path / "o.onnx"],
            "train-init-refiner": ["train", "--data", data, "--out", tmp_path / "run", "--init-refiner", bad,
                                   "--config", "tiny", "--no-progress"],
            "bench": ["bench", "--quick", "--model", bad, "--out", tmp_path / "bench"]}[command]
    run = no_traceback(Run(args))
    assert run.code == 3, run.stderr
    assert bad.name in run.error_line()
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "run").exists()


# 6. a frames folder that can be listed but not searched
@pytest.mark.skipif(os.geteuid() == 0, reason="root searches any folder: run as a user to test this")
def test_a_folder_that_cannot_be_searched_is_bad_input(tmp_path, tiny_model):
    from test_hostile import REGION, frames_dir, render

    frames = frames_dir(tmp_path / "in", 2)
    frames.chmod(0o444)
    try:
        run = render(tmp_path, tiny_model, "--region", REGION, frames=frames)
        assert run.code == 2 and "cannot search" in run.error_line() and str(frames) in run.error_line()
    finally:
        frames.chmod(0o755)


def test_listing_a_folder_that_cannot_be_searched_names_it(tmp_path, monkeypatch):
    """The same path as root sees it: the listing works, looking at an entry does not."""
    from test_hostile import frames_dir

    from reggan_plugin.errors import InputError
    from reggan_plugin.imageio import list_frames

    frames = frames_dir(tmp_path / "in", 2)

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", lambda self: denied(self) if self.parent == frames else os.path.isdir(self))
    with pytest.raises(InputError, match="cannot search the folder"):
        list_frames(frames)


# 7. file names with a newline or a terminal escape; names near the 255-byte limit
def test_hostile_file_names_are_printed_escaped_and_long_names_render(tmp_path, tiny_model):
    from test_hostile import REGION, frames_dir, only_outputs, render

    frames = frames_dir(tmp_path / "in", 2)
    forged = "x.png: ok\nfailed: f000.png: forged\n\x1b[2Jz.png"
    (frames / forged).write_bytes(b"not a png")
    long_name = "f" * 251 + ".png"  # 255 bytes: the longest name the file system holds
    (frames / long_name).write_bytes((frames / "f001.png").read_bytes())
    run = render(tmp_path, tiny_model, "--region", REGION, frames=frames)
    assert run.code == 1, run.stderr
    assert "\x1b" not in run.stderr
    failed = [line for line in run.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "\\n" in failed[0] and "\\x1b" in failed[0], run.stderr
    assert "3 done" in run.stderr and "1 failed" in run.stderr
    assert only_outputs(tmp_path / "out") == {"f000.png", "f001.png", long_name}


# 9. two runs writing one --out at once both finish
def test_two_runs_into_one_out_both_finish(tmp_path, tiny_model):
    import subprocess
    import sys

    from test_hostile import REGION, frames_dir

    from reggan_plugin.imageio import read_image

    frames = frames_dir(tmp_path / "in", 6)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "reggan_plugin.cli", "render", "--frames", str(frames), "--out", str(out),
               "--model", str(tiny_model), "--backend", "cpu", "--region", REGION, "--batch", "1"]
    procs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for code, stderr in results:
        assert code == 0 and "Traceback" not in stderr and "No such file" not in stderr, stderr
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:03d}.png" for i in range(6)]
    for path in out.iterdir():
        assert read_image(path).pixels.shape == (120, 160, 4)


def test_a_live_runs_temp_files_are_not_stale(tmp_path):
    from reggan_plugin.atomic import is_temp_of, stale_temp_files, temp_path

    target = tmp_path / ("g" * 251 + ".png")
    mine = temp_path(target)
    assert len(os.fsencode(mine.name)) < 255 and is_temp_of(mine, target)
    other = tmp_path / f".{target.name[:10]}.0123abcd-1.tmp.png"  # pid 1 runs: another run's file in the making
    other.write_bytes(b"")
    dead = tmp_path / ".a.png.0123abcd.tmp.png"  # the old shape, or a pid that is gone: a killed run's
    dead.write_bytes(b"")
    assert stale_temp_files(tmp_path) == sorted([mine, dead])


# 8. interrupts: in the first moments, and twice in a row
def _render_proc(tmp_path: Path, tiny_model: Path, n: int):
    import subprocess
    import sys

    from test_hostile import REGION, frames_dir

    frames = frames_dir(tmp_path / "in", n)
    return subprocess.Popen([sys.executable, "-m", "reggan_plugin.cli", "render", "--frames", str(frames), "--out",
                             str(tmp_path / "out"), "--model", str(tiny_model), "--backend", "cpu", "--region", REGION,
                             "--batch", "1"], stderr=subprocess.PIPE, text=True)


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (bit 15 of /proc's SigCgt): the interpreter is running the
    package's first lines. Before that no code of ours runs, and Python's defaults apply."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> 14 & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc to see when the command starts")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("after", [0.0, 0.2, 0.6])
def test_an_interrupt_in_the_first_moments_is_quiet(tmp_path, tiny_model, sig, after):
    import signal
    import time

    proc = _render_proc(tmp_path, tiny_model, 2)
    for _ in range(60000):  # until the command's handler is in (a hang guard, not a speed check: a loaded machine
        # takes seconds to import the package)
        if proc.poll() is not None or _catches_sigterm(proc.pid):
            break
        time.sleep(0.001)
    assert proc.poll() is not None or _catches_sigterm(proc.pid), "the command never installed its signal handler"
    time.sleep(after)
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the render finished before the signal")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.iterdir() if p.name.startswith(".")]


def test_two_ctrl_c_in_a_row_leave_no_temp_files(tmp_path, tiny_model):
    import signal
    import time

    proc = _render_proc(tmp_path, tiny_model, 40)
    out = tmp_path / "out"
    for _ in range(2400):  # a hang guard, not a speed check
        if out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
            break
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


# 10. mixes and intensities, through the CLI and the API: refused as bad input, naming the rule broken
@pytest.mark.parametrize("expression, rule", [
    ("happy=0.5,happy=0.5", "given twice"), ("happy=0,sad=0", "every weight is 0"),
    ("happy=2", "in [0, 1]"), ("happy=0.7,sad=0.7", "sum to at most 1"), ("happy=nan", "in [0, 1]"),
])
def test_bad_mixes_are_refused_naming_the_rule(tmp_path, tiny_model, expression, rule):
    from test_hostile import REGION, render

    run = render(tmp_path, tiny_model, "--region", REGION, "--expression", expression)
    assert run.code == 2 and rule in run.error_line(), run.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("kwargs", [{"intensity": 5.0}, {"intensity": -1}, {"intensity": float("nan")},
                                    {"expression": {"happy": 2.0}}, {"expression": "happy=0.5,happy=0.5"}])
def test_the_api_refuses_what_the_cli_refuses(tiny_model, kwargs):
    import numpy as np
    from imagegen import face_box, synthetic_frame

    from reggan_plugin import ExpressionRenderer, InferenceConfig
    from reggan_plugin.errors import UsageError
    from reggan_plugin.faces import Face

    renderer = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu"))
    pixels = synthetic_frame(120, 160, 3, np.uint8)
    with pytest.raises(UsageError):
        renderer.apply_array(pixels, faces=[Face(box=face_box(120, 160))], **{"expression": "happy", **kwargs})


# 13. options that would be silently ignored
def test_region_with_whole_image_is_refused(tmp_path, tiny_model):
    from test_hostile import REGION, render

    run = render(tmp_path, tiny_model, "--region", REGION, "--whole-image")
    assert run.code == 2 and "--region" in run.error_line() and "--whole-image" in run.error_line()


def test_fp16_on_the_cpu_is_refused_or_said(tmp_path, tiny_model):
    from test_hostile import REGION, render

    refused = render(tmp_path, tiny_model, "--region", REGION, "--precision", "fp16")
    assert refused.code == 2 and "fp16" in refused.error_line(), refused.stderr
    auto = Run(["render", "--frames", tmp_path / "in", "--out", tmp_path / "o2", "--model", tiny_model,
                "--region", REGION, "--precision", "fp16"])
    assert auto.code == 0 and "fp16 is not available on the CPU" in auto.stderr, auto.stderr


# 15. the API finds faces as the CLI does
def test_apply_array_without_faces_detects_them(tiny_model):
    import numpy as np

    from reggan_plugin import ExpressionRenderer, InferenceConfig
    from reggan_plugin.faces.locate import FaceLocator
    from reggan_plugin.imageio import ImageData

    sample = sorted((Path(__file__).resolve().parents[1] / "samples").rglob("*.png"))
    if not sample:
        pytest.skip("no sample frames in samples/")
    from reggan_plugin.imageio import read_image

    pixels = read_image(sample[0]).pixels
    found = FaceLocator().faces("x", ImageData(pixels))
    renderer = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu"))
    edited = renderer.apply_array(pixels, expression="happy")
    assert edited.shape == pixels.shape and edited.dtype == pixels.dtype
    assert np.array_equal(edited, renderer.apply_array(pixels, faces=found, expression="happy"))
    assert bool(found) == (not np.array_equal(edited, pixels))


# 14. a failed train leaves no empty run folder
def test_a_failed_train_leaves_no_empty_run_folder(tmp_path):
    pytest.importorskip("torch")
    data = tmp_path / "data"
    data.mkdir()
    run = no_traceback(Run(["train", "--data", data, "--out", tmp_path / "runs" / "r1", "--config", "tiny",
                            "--no-progress"]))
    assert run.code == 2 and "data" in run.error_line(), run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# 16. a frame faces.json marks `[]` is a frame without a face, as documented: written unchanged and counted (exit 1,
# as every frame without a face: README's table), without the hint to give --faces that it was given
def test_a_frame_marked_without_a_face_is_passed_through(tmp_path, tiny_model):
    import json

    import numpy as np
    from imagegen import face_box
    from test_hostile import H, W, frames_dir, only_outputs, render

    from reggan_plugin.imageio import read_image

    frames = frames_dir(tmp_path / "in")
    box = [float(v) for v in face_box(H, W)]
    faces = tmp_path / "faces.json"
    faces.write_text(json.dumps({"version": 1, "default": [{"box": box}], "frames": {"f001.png": []}}))
    run = no_traceback(render(tmp_path, tiny_model, "--faces", faces, "--trust-box", frames=frames))
    assert run.code == 1, run.stderr
    assert "3 done" not in run.stderr and "4 done" in run.stderr and "1 without a face" in run.stderr
    lines = [line for line in run.stderr.splitlines() if "f001.png" in line]
    assert lines == [f"no face: {frames / 'f001.png'} ({faces} marks it [], without a face; written unchanged)"]
    assert "give --faces" not in run.stderr and "failed:" not in run.stderr
    assert only_outputs(tmp_path / "out") == {"f000.png", "f001.png", "f002.png", "f003.png"}
    for name in ("f000.png", "f001.png", "f002.png", "f003.png"):
        same = np.array_equal(read_image(tmp_path / "out" / name).pixels, read_image(frames / name).pixels)
        assert same == (name == "f001.png"), name


# 16. NaN or inf pixels in a face (float EXR/TIFF frames): the frame is edited around them, they are written as
# they were (no NaN made, none turned into a colour), and the run says so once
@pytest.mark.parametrize("suffix", [".exr", ".tif"])
def test_nan_and_inf_pixels_in_a_face_are_kept_as_they_were_and_said_once(tmp_path, tiny_model, suffix):
    import numpy as np
    from imagegen import face_box, synthetic_frame
    from test_hostile import REGION, H, W, only_outputs, render

    from reggan_plugin.imageio import ImageData, read_image, write_image

    frames = tmp_path / "in"
    frames.mkdir()
    x, y, w, h = (int(v) for v in face_box(H, W))
    for i in range(3):
        pixels = synthetic_frame(H, W, 4, np.float32, seed=i)
        if i != 1:
            pixels[y + h // 2, x + w // 2, 0] = np.nan
            pixels[y + h // 3, x + w // 3 : x + w // 3 + 4, :3] = np.inf
            pixels[y + h // 2 + 5, x + w // 2, 2] = -np.inf
        write_image(frames / f"f{i:03d}{suffix}", ImageData(pixels, None, suffix.strip("."), True, {}))
    run = no_traceback(render(tmp_path, tiny_model, "--region", REGION, "--trust-box", frames=frames))
    assert run.code == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if "NaN" in line]
    assert said == [f"2 frames with NaN or inf pixels in a face (e.g. {frames / f'f000{suffix}'}): edited around "
                    "them, those pixels written as they were"], run.stderr
    assert only_outputs(tmp_path / "out") == {f"f00{i}{suffix}" for i in range(3)}
    for i in range(3):
        before = read_image(frames / f"f00{i}{suffix}").pixels
        after = read_image(tmp_path / "out" / f"f00{i}{suffix}").pixels
        bad = ~np.isfinite(before[..., :3]).all(axis=-1)  # such a pixel is kept whole
        assert bad.sum() == (6 if i != 1 else 0)
        assert np.array_equal(np.isnan(after), np.isnan(before))
        assert np.array_equal(after[bad], before[bad], equal_nan=True)
        assert not np.allclose(after[~bad], before[~bad])  # the face is edited
    texture = no_traceback(Run(["texture", frames / f"f000{suffix}", "--out", tmp_path / f"t{suffix}", "--model",
                                tiny_model, "--region", REGION, "--trust-box"]))
    assert texture.code == 0 and texture.stderr.count("NaN") == 1, texture.stderr
    assert "6 NaN or inf pixels in the face" in texture.stderr


# 14. a cached preview graph cut short or junk is cut again (atomically), not used, nor left to slow every preview
@pytest.mark.parametrize("damage", ["cut-short", "junk", "empty"])
def test_a_damaged_preview_cache_is_cut_again(tmp_path, tiny_model, monkeypatch, caplog, damage):
    from test_hostile import REGION, only_outputs, render

    from reggan_plugin.artifact import file_sha256
    from reggan_plugin.backends.preview_graph import preview_path

    monkeypatch.setenv("REGGAN_CACHE_DIR", str(tmp_path / "cache"))
    first = no_traceback(render(tmp_path, tiny_model, "--region", REGION, "--stage", "regression"))
    assert first.code == 0, first.stderr
    cached = preview_path(file_sha256(tiny_model))
    good = cached.read_bytes()
    cached.write_bytes({"cut-short": good[: len(good) * 2 // 3], "junk": b"\x08junk" * 50, "empty": b""}[damage])
    caplog.clear()
    again = no_traceback(render(tmp_path, tiny_model, "--region", REGION, "--stage", "regression",
                                out=tmp_path / "out2"))
    assert again.code == 0, again.stderr
    said = [r.getMessage() for r in caplog.records if "preview" in r.getMessage()]  # the CLI logs to stderr
    assert len(said) == 1 and str(cached) in said[0] and "cutting it again" in said[0], again.stderr
    assert cached.read_bytes() == good and only_outputs(cached.parent) == {cached.name}
    for name in only_outputs(tmp_path / "out"):
        assert digest(tmp_path / "out" / name) == digest(tmp_path / "out2" / name)
    caplog.clear()
    third = no_traceback(render(tmp_path, tiny_model, "--region", REGION, "--stage", "regression",
                                out=tmp_path / "out3"))
    assert third.code == 0 and not [r for r in caplog.records if "preview" in r.getMessage()], third.stderr


# 12. messages: each said once, only what would help, before the model loads, naming what the path is
def test_a_cut_short_exr_is_said_once_without_the_librarys_own_lines(tmp_path):
    import subprocess
    import sys

    import numpy as np
    from imagegen import synthetic_frame
    from test_hostile import REGION, H, W

    from reggan_plugin.imageio import ImageData, write_image

    frames = tmp_path / "in"
    frames.mkdir()
    for name in ("a.exr", "b.exr"):
        write_image(frames / name, ImageData(synthetic_frame(H, W, 4, np.float32), None, "exr", True, {}))
    whole = (frames / "b.exr").read_bytes()
    (frames / "b.exr").write_bytes(whole[: len(whole) * 2 // 3])
    proc = subprocess.run([sys.executable, "-m", "reggan_plugin.cli", "render", "--frames", frames, "--out",
                           tmp_path / "out", "--backend", "cpu", "--region", REGION, "--trust-box"],
                          capture_output=True, text=True, timeout=300)  # the library prints to the process's stderr
    assert proc.returncode == 1, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "b.exr" in line]
    assert len(said) == 1 and said[0].startswith(f"failed: {frames / 'b.exr'}: corrupt or truncated EXR: cut short: "
                                                 f"{len(whole) * 2 // 3} bytes, its image data runs"), proc.stderr
    assert "EXR_ERR" not in proc.stderr and "Exception" not in proc.stderr and "WARNING" not in proc.stderr
    assert (tmp_path / "out" / "a.exr").is_file()


def _nan_model(tiny_model: Path, path: Path) -> Path:
    """The tiny model with its 'output' divided by zero (0/0 and x/0: NaN and inf at any precision)."""
    onnx = pytest.importorskip("onnx", reason="building a damaged model needs onnx")
    from onnx import helper

    proto = onnx.load(str(tiny_model))
    for node in proto.graph.node:
        node.output[:] = ["output_raw" if o == "output" else o for o in node.output]
    proto.graph.node.append(helper.make_node("Sub", ["output_raw", "output_raw"], ["zero"]))
    proto.graph.node.append(helper.make_node("Div", ["output_raw", "zero"], ["output"]))
    onnx.save(proto, str(path))
    return path


def test_nan_output_at_fp32_does_not_suggest_fp32(tmp_path, tiny_model):
    from test_hostile import REGION, render

    run = no_traceback(render(tmp_path, _nan_model(tiny_model, tmp_path / "nan.onnx"), "--region", REGION,
                              "--precision", "fp32"))
    assert run.code == 5, run.stderr
    assert "--precision fp32" not in run.stderr
    assert "NaN/inf network output in 4 frames: at fp32, so the model file may be damaged: re-export it" in run.stderr


def test_texture_refuses_an_output_format_before_the_model_loads(tmp_path):
    import numpy as np
    from imagegen import synthetic_frame
    from PIL import Image

    junk_model = tmp_path / "junk.onnx"
    junk_model.write_bytes(b"not a model")  # loading it would fail with exit 3: the format must be said first
    picture = tmp_path / "face.png"
    Image.fromarray(synthetic_frame(120, 160, 3, np.uint8)).save(picture)
    bmp = no_traceback(Run(["texture", picture, "--out", tmp_path / "t.bmp", "--model", junk_model]))
    assert bmp.code == 2 and "unsupported output type '.bmp'" in bmp.error_line(), bmp.stderr
    deep = tmp_path / "deep.png"
    Image.fromarray(synthetic_frame(120, 160, 4, np.uint8)).save(deep)
    jpeg = no_traceback(Run(["texture", deep, "--out", tmp_path / "t.jpg", "--model", junk_model]))
    assert jpeg.code == 2 and "JPEG cannot store an alpha channel" in jpeg.error_line(), jpeg.stderr
    assert "backend:" not in bmp.stderr + jpeg.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.png", "face.png", "junk.onnx"]


@pytest.mark.parametrize("command", ["render", "texture", "info"])
def test_a_directory_given_as_model_is_called_a_directory(tmp_path, tiny_model, command):
    from test_hostile import REGION, frames_dir

    frames = frames_dir(tmp_path / "in")
    folder = tmp_path / "models"
    folder.mkdir()
    args = {"render": ["render", "--frames", frames, "--out", tmp_path / "out", "--region", REGION],
            "texture": ["texture", frames / "f000.png", "--out", tmp_path / "t.png"], "info": ["info"]}[command]
    run = no_traceback(Run([*args, "--model", folder]))
    assert run.code == 3 and run.error_line() == f"error: {folder}: is a directory, not a model file (give the .onnx " \
                                                "file)", run.stderr


# 11. decompression bombs: refused by what the header declares, before decoding; data past the declared size is
# never inflated
def _png16_bomb(path: Path, width: int, height: int, data_rows: int, row_bytes: int) -> Path:
    """A 16-bit grey+alpha PNG of zeros declaring width x height, its data ``data_rows`` rows of ``row_bytes``."""
    import struct
    import zlib

    deflate = zlib.compressobj(6)
    row = b"\0" * row_bytes
    data = b"".join(deflate.compress(row) for _ in range(data_rows)) + deflate.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 4, 0, 0, 0))
                     + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))
    return path


def test_decompression_bombs_are_refused_or_never_inflated(tmp_path, tiny_model):
    import tracemalloc

    import numpy as np
    from test_hostile import REGION, H, W, frames_dir, render

    from reggan_plugin.errors import InputError
    from reggan_plugin.imageio import read_image

    frames = frames_dir(tmp_path / "in", 2)
    declared = _png16_bomb(frames / "f002.png", 9000, 8000, 8000, 1 + 9000 * 4)  # 288 MB decoded from ~0.3 MB
    excess = _png16_bomb(frames / "f003.png", W, H, 50_000, 1 + W * 4)  # declares 160x120; its data inflates to 32 MB
    assert declared.stat().st_size < 400_000 and excess.stat().st_size < 400_000
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="decompression bomb"):
            read_image(declared)
        assert read_image(excess).pixels.shape == (H, W, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak  # neither is decoded past its first 160x120 rows
    run = no_traceback(render(tmp_path, tiny_model, "--region", REGION, frames=frames))
    assert run.code == 1, run.stderr
    assert run.failed() == {str(declared): f"failed: {declared}: declares 9000x8000 pixels, 288 MB decoded, from a "
                                           f"{declared.stat().st_size / 1e3:.0f} KB file "
                                           f"({288_000_000 // declared.stat().st_size}:1): refused as a decompression "
                                           "bomb (limit: 256 MiB decoded at over 256:1)"}, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f000.png", "f001.png", "f003.png"]
    assert np.array_equal(read_image(tmp_path / "out" / "f003.png").pixels[..., 1], np.zeros((H, W), np.uint16))


def test_an_interrupt_a_library_turned_into_its_own_error_is_still_an_interrupt(capsys):
    """An interrupt that lands in a library's import comes out as that library's ImportError, raised from the
    KeyboardInterrupt: still 130 and one word, never a traceback."""
    from reggan_plugin.cli_exits import EXIT_INTERRUPTED, exit_on_error

    with pytest.raises(SystemExit) as stopped, exit_on_error():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("DLL load failed") from exc
    assert stopped.value.code == EXIT_INTERRUPTED and capsys.readouterr().err.strip() == "interrupted"
    with pytest.raises(ImportError), exit_on_error():  # an ImportError of its own stays one
        raise ImportError("no module named x")


def test_a_file_that_ends_early_is_an_error_not_an_interrupt(capsys, tmp_path):
    """click reports an EOFError as an abort; an empty face model file must say what it is instead."""
    from reggan_plugin.cli_exits import exit_on_error
    from reggan_plugin.errors import ModelError
    from training.synth.face_model import load_face_model

    empty = tmp_path / "face.npz"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="cannot read face model"):
        load_face_model(empty)
    with pytest.raises(SystemExit) as stopped, exit_on_error():
        raise EOFError("No data left in file")
    assert stopped.value.code == 2 and "ended early" in capsys.readouterr().err
