"""The render pipeline through its Python API, on a tiny exported model and pictures made on the fly."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from imagegen import face_box, synthetic_frame

from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
from reggan_plugin.errors import UsageError
from reggan_plugin.faces import Face, parse_region
from reggan_plugin.imageio import ImageData, read_image, write_image
from reggan_plugin.pipeline import render_sequence
from reggan_plugin.renderer import ExpressionRenderer
from reggan_plugin.sequence.shards import Shard

H, W = 120, 160
REGION = parse_region(",".join(str(int(v)) for v in face_box(H, W)))


@pytest.fixture(scope="module")
def renderer(tiny_model) -> ExpressionRenderer:
    return ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu"))


def _write_frames(folder: Path, n: int, suffix: str = ".png", channels: int = 4, dtype=np.uint8) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"frame{i + 1}{suffix}"
        linear = dtype == np.float32
        write_image(path, ImageData(synthetic_frame(H, W, channels, dtype, seed=i), None, suffix[1:], linear, {}))
        paths.append(path)
    return paths


def _crop_extent(box, grow: float = 1.0) -> np.ndarray:
    """Boolean HxW: the face box grown by `grow` box sizes on every side (where changes may appear)."""
    x, y, w, h = box
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx >= x - grow * w) & (xx <= x + w + grow * w) & (yy >= y - grow * h) & (yy <= y + h + grow * h)


def _run(tmp_path, renderer, **seq_kwargs):
    seq = SequenceConfig(frames=tmp_path / "in", out=tmp_path / "out", region=REGION, **seq_kwargs)
    return render_sequence(seq, EditConfig("happy", 1.0), renderer.inference, renderer=renderer)


@pytest.mark.parametrize(
    "suffix, channels, dtype",
    [
        (".png", 4, np.uint8), (".png", 3, np.uint16), (".png", 1, np.uint8), (".png", 2, np.uint16),
        (".tif", 4, np.uint16), (".tif", 3, np.uint8), (".exr", 4, np.float32), (".exr", 3, np.float32),
    ],
)
def test_formats_keep_depth_alpha_and_outside_pixels(tmp_path, renderer, suffix, channels, dtype):
    (src,) = _write_frames(tmp_path / "in", 1, suffix, channels, dtype)
    summary = _run(tmp_path, renderer)
    assert summary.ok and summary.done == 1, summary.lines()
    before, after = read_image(src).pixels, read_image(tmp_path / "out" / src.name).pixels
    assert after.dtype == before.dtype and after.shape == before.shape
    changed = np.any(after != before, axis=-1)
    assert changed[_crop_extent(face_box(H, W), 0.0)].mean() > 0.2, "the face did not change"
    assert not changed[~_crop_extent(face_box(H, W), 0.6)].any(), "pixels far outside the face changed"
    if channels in (2, 4):
        np.testing.assert_array_equal(after[..., -1], before[..., -1])


def test_a_faces_file_for_other_frame_names_is_reported(tmp_path, renderer):
    _write_frames(tmp_path / "in", 2)
    faces = tmp_path / "faces.json"
    faces.write_text('{"version": 1, "frames": {"shot_0001.png": [], "shot_0002.png": []}}')
    seq = SequenceConfig(frames=tmp_path / "in", out=tmp_path / "out", faces=faces, region=REGION)
    summary = render_sequence(seq, EditConfig("happy", 1.0), renderer.inference, renderer=renderer)
    assert summary.done == 2 and summary.unlisted == ["frame1.png", "frame2.png"]
    lines = summary.lines()
    assert f"{faces}: no entry for 2 frames (e.g. frame1.png): located as without a faces file" in lines
    assert any(line.startswith(f"{faces}: no key names a frame of the folder: 'shot_0001.png' and 1 more")
               for line in lines)


def test_images_in_formats_not_read_are_named_not_silently_dropped(tmp_path, renderer):
    _write_frames(tmp_path / "in", 2)
    (tmp_path / "in" / "frame3.tga").write_bytes(b"x")  # a frame exported in another format
    (tmp_path / "in" / "notes.txt").write_text("take 2")
    summary = _run(tmp_path, renderer)
    assert summary.ok and summary.done == 2 and summary.total == 2
    assert [p.name for p in summary.unread] == ["frame3.tga"]
    assert any(line.startswith("left out: 1 file in formats not read (.tga; e.g. frame3.tga)") for line in summary.lines())


def test_jpeg_is_reencoded_but_only_the_face_changes_visibly(tmp_path, renderer):
    (src,) = _write_frames(tmp_path / "in", 1, ".jpg", 3, np.uint8)
    assert _run(tmp_path, renderer).ok
    before = read_image(src).pixels.astype(int)
    after = read_image(tmp_path / "out" / src.name)
    assert after.format == "jpeg"
    diff = np.abs(after.pixels.astype(int) - before).max(-1)
    face = _crop_extent(face_box(H, W), 0.0)
    assert diff[face].mean() > 4 * max(diff[~_crop_extent(face_box(H, W), 0.6)].mean(), 0.25)


@pytest.mark.parametrize("suffix, channels, dtype", [(".png", 4, np.uint8), (".png", 3, np.uint16), (".exr", 4, np.float32)])
def test_intensity_zero_returns_every_pixel_unchanged(tmp_path, renderer, suffix, channels, dtype):
    (src,) = _write_frames(tmp_path / "in", 1, suffix, channels, dtype)
    seq = SequenceConfig(frames=tmp_path / "in", out=tmp_path / "out", region=REGION)
    assert render_sequence(seq, EditConfig("happy", 0.0), renderer.inference, renderer=renderer).ok
    np.testing.assert_array_equal(read_image(tmp_path / "out" / src.name).pixels, read_image(src).pixels)


def test_apply_array_with_several_faces_and_mixed_expression(renderer):
    pixels = synthetic_frame(H, W, 4, np.float32)
    faces = [Face(box=face_box(H, W), source="region"), Face(box=(5, 5, 30, 40), source="region")]
    out = renderer.apply_array(pixels, faces=faces, expression="happy=0.5,surprised=0.5", linear=True)
    assert out.dtype == np.float32 and out.shape == pixels.shape
    assert np.any(out[10:40, 8:30] != pixels[10:40, 8:30]) and np.any(out[50:70, 70:90] != pixels[50:70, 70:90])
    with pytest.raises(UsageError, match="unknown expression"):
        renderer.apply_array(pixels, faces=faces, expression="smug")


def test_bad_frame_does_not_stop_the_batch(tmp_path, renderer):
    _write_frames(tmp_path / "in", 3)
    (tmp_path / "in" / "frame2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    summary = _run(tmp_path, renderer)
    assert summary.done == 2 and [p.name for p, _ in summary.failed] == ["frame2.png"]
    assert not summary.ok
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["frame1.png", "frame3.png"]


def test_interrupted_batch_leaves_no_partial_files_and_resumes(tmp_path, renderer):
    _write_frames(tmp_path / "in", 5)
    cancel = threading.Event()
    seq = SequenceConfig(frames=tmp_path / "in", out=tmp_path / "out", region=REGION)

    def progress(done, total):
        if done >= 2:
            cancel.set()

    first = render_sequence(seq, EditConfig(), renderer.inference, renderer=renderer, progress=progress, cancel=cancel)
    assert first.cancelled and first.done == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["frame1.png", "frame2.png"]  # no temp files
    resumed = SequenceConfig(frames=tmp_path / "in", out=tmp_path / "out", region=REGION, skip_existing=True)
    second = render_sequence(resumed, EditConfig(), renderer.inference, renderer=renderer)
    assert second.ok and (second.skipped, second.done) == (2, 3)
    fresh = SequenceConfig(frames=tmp_path / "in", out=tmp_path / "fresh", region=REGION)
    render_sequence(fresh, EditConfig(), renderer.inference, renderer=renderer)
    for name in ("frame1.png", "frame5.png"):
        np.testing.assert_array_equal(read_image(tmp_path / "out" / name).pixels, read_image(tmp_path / "fresh" / name).pixels)


@pytest.mark.parametrize("n_frames", [0, 1, 5, 17, 100])
@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_shards_cover_every_frame_exactly_once(n_frames, workers):
    frames = [Path(f"f{i}.png") for i in range(n_frames)]
    parts = [Shard.parse(f"{i}/{workers}").select(frames) for i in range(1, workers + 1)]
    assert [f for part in parts for f in part] == frames  # contiguous, in order, no overlap
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert Shard(workers, workers).bounds(n_frames)[1] == n_frames


@pytest.mark.parametrize("bad", ["0/4", "5/4", "1/0", "a/b", "3", "", "-1/2"])
def test_bad_shard_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="--shard"):
        Shard.parse(bad)


def test_output_inside_input_is_refused(tmp_path, renderer):
    _write_frames(tmp_path / "in", 1)
    for out in (tmp_path / "in", tmp_path / "in" / "sub"):
        with pytest.raises(UsageError, match=r"never overwritten|same as"):
            render_sequence(SequenceConfig(frames=tmp_path / "in", out=out, region=REGION), renderer=renderer)


def test_regression_stage_preview_differs_from_full(tmp_path, tiny_model):
    pixels = synthetic_frame(H, W, 3, np.uint8)
    face = [Face(box=face_box(H, W), source="region")]
    full = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu"))
    preview = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu", stage="regression"))
    a = full.apply_array(pixels, faces=face, expression="happy")
    b = preview.apply_array(pixels, faces=face, expression="happy")
    assert np.any(a != pixels) and np.any(b != pixels) and np.any(a != b)


def test_the_bundled_model_previews_with_stage_1_alone():
    """--stage regression (the CLI's and the add-on's fast preview) on the default model runs stage 1 cut out of
    this very model, not the full graph."""
    from reggan_plugin.backends.preview_graph import PREVIEW_OF_KEY

    preview = ExpressionRenderer(InferenceConfig(backend="cpu", stage="regression"))
    assert preview.backend.artifact.path.name.endswith(".preview.onnx")
    assert preview.backend.artifact.metadata[PREVIEW_OF_KEY] == preview.artifact.sha256


def test_1080p_rgba_frame_with_a_detected_face(tmp_path, renderer, london_faces):
    from PIL import Image

    photo = np.asarray(Image.open(london_faces / "neutral" / "001.jpg").convert("RGB").resize((384, 384)))
    canvas = np.zeros((1080, 1920, 4), np.uint8)
    canvas[..., :3] = 40
    canvas[..., 3] = 255
    canvas[300:684, 900:1284, :3] = photo
    canvas[:, :200, 3] = 0  # transparent strip
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "0001.png", ImageData(canvas, None, "png", False, {}))
    seq = SequenceConfig(frames=tmp_path / "in", out=tmp_path / "out")
    summary = render_sequence(seq, EditConfig("happy"), renderer.inference, renderer=renderer)
    assert summary.ok, summary.lines()
    out = read_image(tmp_path / "out" / "0001.png").pixels
    changed = np.any(out != canvas, axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 2000
    assert ys.min() >= 300 and ys.max() < 684 and xs.min() >= 900 and xs.max() < 1284  # only inside the photo
    np.testing.assert_array_equal(out[..., 3], canvas[..., 3])


def test_half_intensity_is_half_the_expression_as_curves_give_it() -> None:
    """`--intensity 0.5` is the expression at half weight, the rest neutral, the same edit a curve at 0.5 gives; its
    change is about half the full one (the model's own intensity input would scale the paint twice: a quarter)."""
    from benchmarks.curves import sample_face
    from reggan_plugin.faces.faces_json import load_faces_json

    pixels = sample_face(1.0)[0]  # the demo shot's first frame on white
    faces = load_faces_json(Path(__file__).resolve().parents[1] / "samples" / "faces.json").faces_for("shot_0001.png")
    bundled = ExpressionRenderer(InferenceConfig(backend="cpu"))
    half = bundled.apply_array(pixels, faces=faces, expression="happy", intensity=0.5)
    np.testing.assert_array_equal(half, bundled.apply_array(pixels, faces=faces, expression={"happy": 0.5}))
    full = bundled.apply_array(pixels, faces=faces, expression="happy")
    change = [np.abs(out.astype(float) - pixels).mean() for out in (half, full)]
    assert 0.4 < change[0] / change[1] < 0.7
