"""The streaming machinery: order, bounded look-ahead, errors naming the frame, cancel, batching."""
from __future__ import annotations

import random
import threading
import time

import pytest

from reggan_plugin.sequence.streaming import WorkerError, batch_by, flatten, ordered_map


def _jitter(seed: int) -> float:
    return random.Random(seed).uniform(0.0, 0.004)


def test_order_is_preserved_although_workers_finish_out_of_order():
    finished: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        time.sleep(0.006 if i % 3 == 0 else _jitter(i))  # every third item is the slowest
        with lock:
            finished.append(i)
        return i * i

    results = list(ordered_map(work, range(40), workers=3, ahead=6))
    assert [r.index for r in results] == list(range(40))
    assert [r.value for r in results] == [i * i for i in range(40)]
    assert finished != sorted(finished)  # the workers really did overlap and finish out of order


def test_look_ahead_is_bounded():
    started = 0
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal started
        with lock:
            started += 1
        return i

    def source():
        yield from range(100)

    consumed = 0
    for _ in ordered_map(work, source(), workers=2, ahead=5):
        time.sleep(0.001)  # a slow consumer: workers could run far ahead if nothing bounded them
        with lock:
            assert started <= consumed + 5, (started, consumed)
        consumed += 1
    assert consumed == started == 100


def test_items_are_pulled_lazily_from_the_source():
    pulled = []

    def source():
        for i in range(1000):
            pulled.append(i)
            yield i

    stream = ordered_map(lambda i: i, source(), workers=2, ahead=3)
    first = [next(stream).value for _ in range(4)]
    assert first == [0, 1, 2, 3]
    assert len(pulled) <= 4 + 3
    stream.close()


def test_worker_exception_surfaces_with_the_frame_named():
    def work(name: str) -> str:
        if name == "frame_0007.png":
            raise ZeroDivisionError("boom")
        return name

    names = [f"frame_{i:04d}.png" for i in range(20)]
    got = []
    with pytest.raises(WorkerError) as info:
        for result in ordered_map(work, names, workers=2, ahead=4, name="read"):
            got.append(result.value)
    assert got == names[:7]  # everything before the bad frame was delivered, in order
    assert "frame_0007.png" in str(info.value) and "read" in str(info.value) and "boom" in str(info.value)
    assert isinstance(info.value.error, ZeroDivisionError) and info.value.key == "frame_0007.png"


def test_cancel_stops_promptly_and_starts_nothing_more():
    cancel = threading.Event()
    started = []

    def work(i: int) -> int:
        started.append(i)
        time.sleep(0.02)
        return i

    delivered = []
    for result in ordered_map(work, range(10_000), workers=2, ahead=4, cancel=cancel):
        delivered.append(result.value)
        if len(delivered) == 3:
            cancel.set()
    assert delivered == [0, 1, 2]
    assert len(started) <= 3 + 4  # only what was already in flight


def test_cancel_while_waiting_for_a_slow_item():
    cancel = threading.Event()
    release = threading.Event()

    def work(i: int) -> int:
        if i == 1:
            release.wait(5)  # stuck until the test lets it go
        return i

    stream = ordered_map(work, range(10), workers=2, ahead=2, cancel=cancel)
    assert next(stream).value == 0
    remaining = []
    waiter = threading.Thread(target=lambda: remaining.extend(r.value for r in stream))
    waiter.start()  # the consumer now waits for the stuck item 1
    cancel.set()
    release.set()  # item 1 and everything after it could now be delivered: cancel must stop them
    waiter.join(30)
    assert not waiter.is_alive() and remaining == []


def test_chained_stages_equal_the_sequential_result():
    def load(i: int) -> list[int]:
        time.sleep(_jitter(i))
        return [i] * (i % 3)  # 0, 1 or 2 "faces" per frame

    def infer(batches):
        for batch in batches:
            for item in batch:
                yield [v * 10 for v in item.value]

    def save(faces: list[int]) -> int:
        time.sleep(_jitter(len(faces)))
        return sum(faces)

    loaded = ordered_map(load, range(60), workers=2, ahead=4, name="read")
    batched = batch_by(loaded, 4, weight=lambda r: len(r.value))
    saved = [r.value for r in ordered_map(save, infer(batched), workers=2, ahead=4, name="write")]
    assert saved == [sum(v * 10 for v in load(i)) for i in range(60)]


def test_batch_by_counts_weights_across_items():
    batches = list(batch_by([2, 0, 1, 3, 0, 0, 1], 3, weight=lambda n: n))
    assert batches == [[2, 0, 1], [3], [0, 0, 1]]
    assert list(flatten(batches)) == [2, 0, 1, 3, 0, 0, 1]
    with pytest.raises(ValueError):
        list(batch_by([1], 0))


def test_bounds_given_as_callables_tighten_while_running():
    limit = {"n": 6}
    started, lock = 0, threading.Lock()

    def work(i: int) -> int:
        nonlocal started
        with lock:
            started += 1
        if i == 0:
            limit["n"] = 2  # what the first result tells: fewer in flight from now on
        return i

    for consumed, _ in enumerate(ordered_map(work, iter(range(30)), workers=2, ahead=lambda: limit["n"]), start=1):
        time.sleep(0.001)
        if consumed > 6:
            with lock:
                assert started <= consumed + 2, (started, consumed)
    sizes = {"n": 3}
    groups = []
    for group in batch_by(range(10), lambda: sizes["n"]):
        groups.append(group)
        sizes["n"] = 1
    assert groups == [[0, 1, 2], *[[i] for i in range(3, 10)]]


# -- the streaming render pipeline ----------------------------------------------------------------------------------

H, W = 96, 128


@pytest.fixture(scope="module")
def renderer(tiny_model):
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.renderer import ExpressionRenderer

    return ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu", batch=3))


def _frames(folder, n, suffix=".png", dtype=None, first=0):
    import numpy as np
    from imagegen import synthetic_frame

    from reggan_plugin.imageio import ImageData, write_image

    dtype = dtype or np.uint8
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + n):
        pixels = synthetic_frame(H, W, 4 if suffix != ".jpg" else 3, dtype, seed=i)
        write_image(folder / f"f{i:03d}{suffix}", ImageData(pixels, None, suffix[1:], dtype == np.float32, {}))


def _render(tmp_path, renderer, out, **kwargs):
    from imagegen import face_box

    from reggan_plugin.config import EditConfig, SequenceConfig
    from reggan_plugin.faces import parse_region
    from reggan_plugin.pipeline import render_sequence

    region = parse_region(",".join(str(int(v)) for v in face_box(H, W)))
    seq = SequenceConfig(frames=tmp_path / "in", out=tmp_path / out, region=region)
    return render_sequence(seq, EditConfig("happy", 0.8), renderer.inference, renderer=renderer, **kwargs)


def test_streamed_frames_equal_each_frame_rendered_alone(tmp_path, renderer):
    """Batches formed across frames, threads and look-ahead change nothing: every written frame equals
    `apply_image` on that frame alone, and a bad frame among good ones fails alone."""
    import numpy as np
    from imagegen import face_box

    from reggan_plugin.config import EditConfig
    from reggan_plugin.faces import parse_region
    from reggan_plugin.imageio import read_image

    _frames(tmp_path / "in", 7)  # 7 frames, batch 3: batches straddle frames and the last one is short
    _frames(tmp_path / "in", 2, ".tiff", np.uint16, first=7)  # 16-bit TIFFs among 8-bit PNGs
    (tmp_path / "in" / "f003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    progress = []
    summary = _render(tmp_path, renderer, "stream", progress=lambda done, total: progress.append(done))
    assert summary.done == 8 and [p.name for p, _ in summary.failed] == ["f003.png"]
    assert progress == sorted(progress) and progress[-1] == 9
    names = sorted(p.name for p in (tmp_path / "stream").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "in").iterdir() if p.name != "f003.png")
    region = [parse_region(",".join(str(int(v)) for v in face_box(H, W)))]
    for name in names:
        source, got = read_image(tmp_path / "in" / name), read_image(tmp_path / "stream" / name)
        alone = renderer.apply_image(source, region, EditConfig("happy", 0.8)).pixels
        assert got.pixels.dtype == alone.dtype and np.array_equal(got.pixels, alone), name
        assert not np.array_equal(got.pixels, source.pixels), name  # the model really edited every good frame


def test_region_processing_equals_whole_frame_processing(renderer):
    """prepare_image/finish_image touch only the faces' region; the result equals whole-frame processing."""
    import numpy as np
    from imagegen import synthetic_frame

    from reggan_plugin.config import EditConfig
    from reggan_plugin.faces import parse_region
    from reggan_plugin.geometry.resample import warp_to_crop
    from reggan_plugin.imageio import ImageData, compose_output
    from reggan_plugin.imageio.transparency import alpha_of, behind_the_subject
    from reggan_plugin.imaging.filters import degrained, grain_level
    from reggan_plugin.prepared_image import face_region, network_rgbs

    pixels = synthetic_frame(300, 400, 4, np.uint8, seed=3)
    image = ImageData(pixels, None, "png", False, {})
    for boxes in (["150,80,100,120"], ["0,0,90,90", "330,240,70,60"], ["20,10,380,290"], ["5,5,12,12"]):
        faces = [parse_region(b) for b in boxes]
        # the whole-frame way (boxes are hints in both: the same faces), the subject's colour behind its transparency
        whole = (slice(0, pixels.shape[0]), slice(0, pixels.shape[1]))
        # paste-back reads the antialiased edge as the subject's colour; the network sees it as it is
        rgb, seen = network_rgbs(image, *whole, (True, False))
        matrices = [renderer.crop_matrix(face, rgb.shape) for face in renderer.find_in_boxes(image, faces)]
        rows, cols = face_region(matrices, renderer.size, rgb.shape)  # the grain is measured on the faces' region
        structure = degrained(seen, grain_level(seen[rows, cols], blocks=False))
        crops = np.stack([warp_to_crop(structure, m, renderer.size) for m in matrices])
        edit = EditConfig()
        inside = renderer.interior.inside_for(edit.expression, edit.intensity)  # as forward_images
        new_rgb, mask = renderer.paste(rgb, matrices, crops, renderer.forward(crops, edit), interior=inside)
        mask = np.where(behind_the_subject(alpha_of(image)), 0.0, mask)  # where the subject's colour was read
        expected = compose_output(image, new_rgb, mask).pixels
        prepared = renderer.prepare_image(image, faces)
        assert prepared.rgb.shape[0] * prepared.rgb.shape[1] <= pixels.shape[0] * pixels.shape[1]
        np.testing.assert_array_equal(prepared.crops, crops)
        got = renderer.finish_image(prepared, renderer.forward_images([prepared], EditConfig())[0]).pixels
        np.testing.assert_array_equal(got, expected, err_msg=str(boxes))


def test_a_grainy_face_twice_the_crop_reaches_the_network_without_its_grain(renderer):
    """Downsampled into the crop, render noise measures below what counts as grainy, yet the model would still see
    it: the crop is taken from the region's structure, split at the region's own scale."""
    import numpy as np

    from reggan_plugin.faces.region import whole_image_face
    from reggan_plugin.geometry.resample import warp_to_crop
    from reggan_plugin.imageio import ImageData, to_network_rgb
    from reggan_plugin.imaging.filters import grain_level
    from reggan_plugin.tuning import NOISE_FLOOR

    side = 2 * renderer.size
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    face = np.stack([0.6 + 0.2 * x, 0.45 + 0.1 * y, 0.4 + 0.1 * np.sin(6 * x)], -1)
    face[(x - 0.5) ** 2 + (y - 0.7) ** 2 < 0.01] = [0.6, 0.2, 0.2]  # a mouth: an edge the split must keep
    noise = np.random.default_rng(0).normal(0, 6 / 255, face.shape)
    images = [ImageData(np.round(np.clip(p, 0, 1) * 255).astype(np.uint8), None, "png", False, {})
              for p in (face, face + noise)]
    faces = [whole_image_face(side, side)]
    (clean,), (grainy,) = (renderer.prepare_image(image, faces).crops for image in images)
    m = renderer.crop_matrix(faces[0], (side, side))
    raw = warp_to_crop(to_network_rgb(images[1]), m, renderer.size)
    assert grain_level(raw, blocks=False) < NOISE_FLOOR  # the crop alone does not look grainy
    rms = [float(np.sqrt(((crop - clean) ** 2).mean())) * 255 for crop in (grainy, raw)]
    assert rms[0] < 0.6 * rms[1]  # (about 1.0 against 1.9 levels)


def test_a_crash_in_a_reader_names_the_frame(tmp_path, renderer, monkeypatch):
    import reggan_plugin.sequence.streaming_render as streaming_render

    _frames(tmp_path / "in", 5)
    real = streaming_render.read_image

    def flaky(path):
        if path.name == "f002.png":
            raise MemoryError("out of memory decoding")
        return real(path)

    monkeypatch.setattr(streaming_render, "read_image", flaky)  # a failure the pipeline does not expect (not an InputError)
    with pytest.raises(WorkerError, match=r"f002\.png: read failed: MemoryError"):
        _render(tmp_path, renderer, "out")
    left = {p.name for p in (tmp_path / "out").iterdir()} if (tmp_path / "out").exists() else set()
    assert left <= {"f000.png", "f001.png"}  # a fatal error stops the run; nothing half-written or staged remains


def test_cancel_keeps_only_the_frames_reported(tmp_path, renderer):
    _frames(tmp_path / "in", 12)
    cancel = threading.Event()

    def progress(done, total):
        if done >= 3:
            cancel.set()

    summary = _render(tmp_path, renderer, "out", progress=progress, cancel=cancel)
    assert summary.cancelled and summary.done == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f000.png", "f001.png", "f002.png"]


def test_passthrough_errors_are_raised_unchanged():
    from reggan_plugin.errors import ModelError

    def work(i: int) -> int:
        if i == 2:
            raise ModelError("model.onnx", "cannot load")
        return i

    with pytest.raises(ModelError, match=r"model\.onnx"):
        list(ordered_map(work, range(5), passthrough=(ModelError,)))
    with pytest.raises(WorkerError):
        list(ordered_map(work, range(5)))


def test_big_frames_are_batched_fewer_at_a_time_with_the_same_result(tmp_path, renderer, monkeypatch):
    """Frames in flight are bounded in bytes: when a frame is large for the budget, batches shrink to one frame
    (and the read-ahead with them); what is written does not change."""
    import numpy as np

    import reggan_plugin.sequence.streaming_render as streaming_render
    from reggan_plugin.imageio import read_image

    _frames(tmp_path / "in", 5)
    _render(tmp_path, renderer, "plain")
    seen = []
    real = renderer.forward

    def forward(crops, edit, lift=None, poses=None):
        seen.append(len(crops))
        return real(crops, edit, lift, poses)

    monkeypatch.setattr(streaming_render, "FRAMES_BYTES", H * W * 4 * 6)  # room for 6 frames: one per batch
    monkeypatch.setattr(renderer, "forward", forward)
    summary = _render(tmp_path, renderer, "small")
    assert summary.done == 5 and max(seen) == 1
    for i in range(5):
        a = read_image(tmp_path / "plain" / f"f{i:03d}.png").pixels
        b = read_image(tmp_path / "small" / f"f{i:03d}.png").pixels
        np.testing.assert_array_equal(a, b)
