"""The real `reggan-plugin` entry point in a subprocess: exit codes, one-line errors, output files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagegen import face_box, synthetic_frame
from PIL import Image

from reggan_plugin.imageio import read_image

H, W = 120, 160
REGION = ",".join(str(int(v)) for v in face_box(H, W))


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reggan_plugin.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def _frames(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(synthetic_frame(H, W, 4, np.uint8, seed=i)).save(folder / f"f{i:03d}.png")
    return folder


def _render(tmp_path, tiny_model, *extra, frames=None):
    frames = frames or _frames(tmp_path / "in")
    return cli("render", "--frames", frames, "--out", tmp_path / "out", "--model", tiny_model, "--backend", "cpu", *extra)


def _error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_help_explains_the_commands():
    proc = cli("--help")
    assert proc.returncode == 0
    for word in ("render", "texture", "info", "export", "--version"):
        assert word in proc.stdout
    render_help = cli("render", "--help").stdout
    for option in ("--frames", "--expression", "--intensity", "--backend", "--faces", "--region", "--shard", "--skip-existing", "--batch"):
        assert option in render_help


def test_render_end_to_end(tmp_path, tiny_model):
    proc = _render(tmp_path, tiny_model, "--region", REGION, "--expression", "sad", "--intensity", "0.8")
    assert proc.returncode == 0, proc.stderr
    assert "3 done, 0 skipped" in proc.stderr and "backend: " in proc.stderr
    for i in range(3):
        out = read_image(tmp_path / "out" / f"f{i:03d}.png").pixels
        assert out.shape == (H, W, 4) and np.any(out != synthetic_frame(H, W, 4, np.uint8, seed=i))


def test_skip_existing_and_shards(tmp_path, tiny_model):
    frames = _frames(tmp_path / "in", 5)
    for shard in ("1/2", "2/2"):
        assert _render(tmp_path, tiny_model, "--region", REGION, "--shard", shard, frames=frames).returncode == 0
    assert len(list((tmp_path / "out").iterdir())) == 5
    proc = _render(tmp_path, tiny_model, "--region", REGION, "--skip-existing", frames=frames)
    assert proc.returncode == 0 and "0 done, 5 skipped" in proc.stderr


def test_faces_json_gives_the_face(tmp_path, tiny_model):
    faces = tmp_path / "faces.json"
    faces.write_text(json.dumps({"version": 1, "default": [{"box": list(face_box(H, W))}]}))
    proc = _render(tmp_path, tiny_model, "--faces", faces)
    assert proc.returncode == 0, proc.stderr



def test_a_bad_faces_file_stops_the_render_before_the_model_loads(tmp_path, tiny_model):
    faces = tmp_path / "faces.json"
    faces.write_text('{"version": 1, "frames": {"f000.png": [{"box": [1, 2, 3]}]}}')
    proc = _render(tmp_path, tiny_model, "--faces", faces)
    assert proc.returncode == 2 and "faces.json: frames['f000.png'][0].box" in _error_line(proc)
    assert "backend: " not in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: (d / "bad.png").write_bytes(b""), "empty"),
        (lambda d: (d / "bad.png").write_bytes((d / "f000.png").read_bytes()[:300]), "truncated|corrupt|cannot"),
        (lambda d: (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), "corrupt|not a valid|cannot"),
        (lambda d: (d / "bad.png").write_bytes((d / "f000.png").read_bytes().replace(b"PNG", b"XYZ", 1)), "not a|unknown|unsupported|corrupt|cannot"),
        (lambda d: Image.new("RGB", (1, 1)).save(d / "bad.png"), "small"),
    ],
    ids=["zero-byte", "truncated", "corrupt", "wrong-content", "1x1"],
)
def test_bad_frame_is_reported_and_the_batch_goes_on(tmp_path, tiny_model, make, reason):
    frames = _frames(tmp_path / "in", 2)
    make(frames)
    proc = _render(tmp_path, tiny_model, "--region", REGION, frames=frames)
    assert proc.returncode == 1
    assert "2 done" in proc.stderr and "1 failed" in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert "bad.png" in line
    import re

    assert re.search(reason, line, re.I), line


def test_huge_image_is_refused_by_name(tmp_path, tiny_model):
    frames = _frames(tmp_path / "in", 1)
    Image.new("L", (20000, 16), 0).save(frames / "huge.png")
    proc = _render(tmp_path, tiny_model, "--region", REGION, frames=frames)
    assert proc.returncode == 1 and "huge.png" in proc.stderr and "large" in proc.stderr.lower()


def test_wrong_extension_is_read_by_content_or_named(tmp_path, tiny_model):
    frames = _frames(tmp_path / "in", 1)
    (frames / "f000.png").rename(frames / "f000.jpg")
    proc = _render(tmp_path, tiny_model, "--region", REGION, frames=frames)
    assert proc.returncode in (0, 1), proc.stderr
    if proc.returncode == 1:
        assert "f000.jpg" in proc.stderr


@pytest.mark.parametrize("mode", ["L", "P", "CMYK"])
def test_grey_palette_cmyk_frames(tmp_path, tiny_model, mode):
    frames = tmp_path / "in"
    frames.mkdir()
    rgb = Image.fromarray(synthetic_frame(H, W, 3, np.uint8))
    suffix = ".jpg" if mode == "CMYK" else ".png"
    rgb.convert(mode).save(frames / f"f{suffix}")
    proc = _render(tmp_path, tiny_model, "--region", REGION, frames=frames)
    assert proc.returncode == 0, proc.stderr
    out = read_image(tmp_path / "out" / f"f{suffix}")
    assert out.pixels.shape[:2] == (H, W)
    if mode == "L":
        assert out.pixels.shape[2] == 1


def test_no_face_is_reported_and_the_frame_kept(tmp_path, tiny_model):
    frames = tmp_path / "in"
    frames.mkdir()
    Image.new("RGB", (W, H), (128, 128, 128)).save(frames / "blank.png")
    proc = _render(tmp_path, tiny_model, frames=frames)
    assert proc.returncode == 1
    assert "no face found: " in proc.stderr and "blank.png" in proc.stderr
    assert (tmp_path / "out" / "blank.png").read_bytes() != b""


def test_a_conversion_is_reported_once(tmp_path, tiny_model):
    """The detector's pass and the render pass both read the frame; the palette's conversion is said once."""
    frames = tmp_path / "in"
    frames.mkdir()
    Image.new("RGB", (W, H), (128, 128, 128)).convert("P").save(frames / "blank.png")
    proc = _render(tmp_path, tiny_model, frames=frames)
    assert proc.stderr.count("palette image converted") == 1, proc.stderr


@pytest.mark.parametrize(
    "args, code, words",
    [
        (("--expression", "smug"), 2, "unknown expression 'smug'"),
        (("--shard", "3/2"), 2, "--shard"),
        (("--region", "1,2,3"), 2, "region"),
    ],
)
def test_bad_options(tmp_path, tiny_model, args, code, words):
    proc = _render(tmp_path, tiny_model, *args)
    assert proc.returncode == code, proc.stderr
    assert words in _error_line(proc)


def test_texture_names_an_unknown_expression_alone(tmp_path, tiny_model):
    src = tmp_path / "face.png"
    Image.fromarray(synthetic_frame(128, 128, 3, np.uint8)).save(src)
    proc = cli("texture", src, "--out", tmp_path / "x.png", "--model", tiny_model, "--expression", "smug")
    assert proc.returncode == 2 and "unknown expression 'smug'" in _error_line(proc)
    assert "backend: " not in proc.stderr and not (tmp_path / "x.png").exists()


def test_bad_directories(tmp_path, tiny_model):
    missing = cli("render", "--frames", tmp_path / "nope", "--out", tmp_path / "o", "--model", tiny_model)
    assert missing.returncode == 2 and "nope" in _error_line(missing)
    (tmp_path / "empty").mkdir()
    empty = cli("render", "--frames", tmp_path / "empty", "--out", tmp_path / "o", "--model", tiny_model)
    assert empty.returncode == 2 and "empty" in _error_line(empty)
    frames = _frames(tmp_path / "in", 1)
    same = cli("render", "--frames", frames, "--out", frames, "--model", tiny_model, "--region", REGION)
    assert same.returncode == 2 and "--out" in _error_line(same)
    assert sorted(p.name for p in frames.iterdir()) == ["f000.png"]


def test_bad_model_file(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_text("not onnx")
    proc = cli("render", "--frames", _frames(tmp_path / "in", 1), "--out", tmp_path / "o", "--model", model)
    assert proc.returncode == 3 and "m.onnx" in _error_line(proc)


def test_unavailable_gpu_backend_is_an_error_not_a_fallback(tmp_path, tiny_model):
    proc = _render(tmp_path, tiny_model, "--region", REGION, "--backend", "cuda")
    if proc.returncode == 0:
        pytest.skip("a CUDA backend is available here")
    assert proc.returncode == 4 and not (tmp_path / "out").exists()


def test_texture_map(tmp_path, tiny_model):
    src = tmp_path / "albedo.png"
    Image.fromarray(synthetic_frame(128, 128, 3, np.uint16 if False else np.uint8)).save(src)
    out = tmp_path / "albedo_happy.png"
    proc = cli("texture", src, "--out", out, "--model", tiny_model, "--expression", "happy")
    assert proc.returncode == 0, proc.stderr
    assert np.any(read_image(out).pixels != read_image(src).pixels)
    again = cli("texture", src, "--out", src, "--model", tiny_model)
    assert again.returncode != 0 and "albedo.png" in _error_line(again)
    nested = tmp_path / "new" / "folder" / "albedo_sad.png"  # made, as render makes --out
    made = cli("texture", src, "--out", nested, "--model", tiny_model, "--expression", "sad")
    assert made.returncode == 0, made.stderr
    assert read_image(nested).pixels.shape == read_image(src).pixels.shape


def test_info_lists_model_and_backends(tiny_model):
    proc = cli("info", "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    assert "tiny.onnx" in proc.stdout and "happy" in proc.stdout and "onnxruntime" in proc.stdout.lower()


def test_info_shows_the_gains_for_photographs_as_a_line_per_expression():
    from reggan_plugin.cli import _gain_lines
    from reggan_plugin.edit.calibration import Gains

    flow = Gains(flow=(0.0, 1.25, -2.5, 0.5) * 2)  # a 2 x 2 control grid
    lines = _gain_lines({"happy": Gains(paint=0.0, upper=0.5), "sad": Gains(motion=(1.0, 0.5)), "angry": flow})
    assert lines[0].startswith("gains for photographs") and "paint" in lines[0]
    assert lines[1:] == ["  happy: 1 x 1, 0, 0.5", "  sad: 1 x 0.5, 1, 1",
                         "  angry: 1 x 1, 1, 1, and a fitted flow on the lower face (up to 2.5 crop px)"]
    assert _gain_lines({}) == []  # a model without them says nothing


def test_info_shows_validation_psnr_as_a_line_per_expression():
    from reggan_plugin.cli import _metric_lines

    metrics = {"happy": {"copy_psnr": 30.0749, "stage1_psnr": 34.9673, "reggan_psnr": 35.2695, "pairs": 69}}
    lines = _metric_lines(metrics)
    assert lines[0].startswith("validation PSNR") and lines[1] == "  happy: 30.07 / 34.97 / 35.27, 69 pairs"
    assert _metric_lines({"happy": {"l1": 0.1}}) == ["metrics: {'happy': {'l1': 0.1}}"]  # a shape it does not know
    assert _metric_lines(None) == []


@pytest.mark.slow  # several renders with the bundled model: the fast tier stays under 2 minutes
def test_subject_photo_edits_by_the_models_gains_for_photographs(tmp_path):
    from benchmarks.face_sizes import face_frame

    pixels, (x, y, w, h) = face_frame(320, 320, 200)
    src = tmp_path / "portrait.png"
    Image.fromarray(pixels).save(src)
    region = f"{x:.0f},{y:.0f},{w:.0f},{h:.0f}"
    outs = {}
    for expression in ("happy", "sad"):
        for subject in ("render", "photo"):
            out = tmp_path / f"{expression}_{subject}.png"
            proc = cli("texture", src, "--out", out, "--region", region, "--expression", expression, "--subject", subject)
            assert proc.returncode == 0, proc.stderr
            outs[expression, subject] = read_image(out).pixels
    for expression in ("happy", "sad"):  # the bundled model has gains for photographs for every expression
        assert np.abs(outs[expression, "photo"].astype(int) - outs[expression, "render"].astype(int)).max() > 20
    bad = cli("texture", src, "--out", tmp_path / "x.png", "--subject", "painting")
    assert bad.returncode == 2 and "painting" in bad.stderr


@pytest.mark.slow  # several renders with the bundled model: the fast tier stays under 2 minutes
def test_auto_says_which_frames_read_as_photographs(tmp_path, london_faces):
    """The default reads each frame: London's portraits as photographs (said in the summary), the demo's renders not."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("001.jpg", "002.jpg"):
        (photos / name).write_bytes((london_faces / "neutral" / name).read_bytes())
    proc = cli("render", "--frames", photos, "--out", tmp_path / "out_photos", "--backend", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "2 frames read as photographs of people" in proc.stderr and "--subject render" in proc.stderr
    samples = Path(__file__).resolve().parents[1] / "samples"
    proc = cli("render", "--frames", samples / "frames", "--faces", samples / "faces.json", "--out",
               tmp_path / "out_renders", "--backend", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "photograph" not in proc.stderr
    proc = cli("render", "--frames", photos, "--out", tmp_path / "out_render", "--backend", "cpu", "--subject", "render")
    assert proc.returncode == 0 and "photograph" not in proc.stderr
