"""Expression curves (reggan_plugin.sequence.curves): the CSV, its errors, and each frame rendered with its own mix."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_cli import REGION, _error_line, _frames, cli

from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
from reggan_plugin.errors import InputError
from reggan_plugin.expressions import ARKIT_BLENDSHAPES, MODELLED_CHANNELS
from reggan_plugin.faces import Face
from reggan_plugin.faces.face import box_from_landmarks
from reggan_plugin.geometry.align import CANONICAL_5PT
from reggan_plugin.imageio import ImageData, read_image
from reggan_plugin.pipeline import render_sequence
from reggan_plugin.renderer import ExpressionRenderer
from reggan_plugin.sequence.curves import ExpressionCurves, frame_number, read_curves, read_table

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# Live Link Face's header: Timecode, BlendShapeCount, the 52 blendshapes capitalised, the head's and eyes' rotations
LIVE_LINK_HEADER = ["Timecode", "BlendShapeCount", *(n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES),
                    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]


def _csv(tmp_path: Path, text: str, name: str = "curves.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _live_link(tmp_path: Path) -> Path:
    rows = [",".join(LIVE_LINK_HEADER)]
    for i in range(3):
        rows.append(",".join([f"17:06:28:{i:02d}.000", "52", *(f"{0.01 * (k % 50):.2f}" for k in range(52)),
                              *("0.1" for _ in range(9))]))
    return _csv(tmp_path, "\n".join(rows) + "\n", "take.csv")


# -- the CSV ---------------------------------------------------------------------------------------------------------

def test_keys_are_interpolated_between_and_held_beyond():
    curves = ExpressionCurves(("happy", "surprised"), [[0, 0], [1, 0], [0, 1]], keys=[10, 20, 40])
    assert curves.mix_at(0) == curves.mix_at(10) == {"happy": 0.0, "surprised": 0.0}
    assert curves.mix_at(15) == {"happy": 0.5, "surprised": 0.0}
    assert curves.mix_at(25) == {"happy": 0.75, "surprised": 0.25}
    assert curves.mix_at(40) == curves.mix_at(99) == {"happy": 0.0, "surprised": 1.0}


def test_frames_are_matched_by_the_number_in_their_names_or_by_order(tmp_path):
    assert [frame_number(Path(n)) for n in ("shot_0001.png", "a12b_0040.exr", "take3.v2_17.tif", "face.png")] == [
        1, 40, 17, None]
    keyed = read_curves(_csv(tmp_path, "Frame,HAPPY\n1,0\n3,1\n"))
    assert keyed.names == ("happy",)
    frames = [Path("shot_0003.png"), Path("shot_0002.png"), Path("shot_0009.png")]
    assert [m["happy"] for m in keyed.mixes_for(frames)] == [1.0, 0.5, 1.0]
    with pytest.raises(InputError, match=r"face\.png has no number"):
        keyed.mixes_for([Path("face.png")])
    ordered = read_curves(_csv(tmp_path, "happy,sad\n0.1,0\n0.2,0.3\n0.3,0.7\n\n"))  # a blank line is no row
    assert ordered.mixes_for([Path("b.png"), Path("a.png")]) == [{"happy": 0.1, "sad": 0.0}, {"happy": 0.2, "sad": 0.3}]
    with pytest.raises(InputError, match="3 rows for 4 frames"):
        ordered.mixes_for([Path(f"f{i}.png") for i in range(4)])


@pytest.mark.parametrize(("text", "words"), [
    ("", "curves file is empty"),
    ("  \n\n", "curves file is empty"),
    ("frame,happy\n", "no rows"),
    ("frame,hapy\n1,0.5\n", "unknown column 'hapy'"),
    ("frame,happy,Happy\n1,0.5,0.5\n", "'Happy' is given twice"),
    ("frame,happy,neutral\n1,0.5,0.5\n", "neutral is implied"),
    ("frame,happy\n1,nan\n", "line 2: happy is nan"),
    ("frame,happy\n1,inf\n", "line 2: happy is inf"),
    ("frame,happy\n1,1.5\n", "line 2: happy 1.5 is outside [0, 1]"),
    ("frame,happy\n1,-0.1\n", "outside [0, 1]"),
    ("frame,happy,sad\n1,0.2,0.1\n2,0.7,0.6\n", "line 3: the weights sum to 1.3"),
    ("frame,happy\n1,0.5\n1,0.6\n", "line 3: frame 1 is keyed twice"),
    ("frame,happy\n5,0.5\n2,0.6\n", "frame 2 comes after frame 5"),
    ("frame,happy\n1,0.5\n2,0.6,0.1\n", "line 3 has 3 fields, the header 2"),
    ("frame,happy\n1,\n", "line 2: happy is empty"),
    ("frame,happy\n1,lots\n", "'lots' is not a number"),
    ("frame,happy\n1.5,0.2\n", "frame '1.5' is not a whole number"),
    ("frame\n1\n", "no expression columns"),
    ("frame,jawOpen,happy\n1,0.3,0.2\n", "ARKit blendshape columns (jawOpen)"),
])
def test_bad_curves_are_one_error_naming_the_file_and_the_reason(tmp_path, text, words):
    path = _csv(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_curves(path)
    message = str(err.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_a_live_link_capture_drives_the_channel_model_and_is_refused_by_the_face_model(tmp_path):
    path = _live_link(tmp_path)
    table = read_table(path)  # the 52 channels by ARKit's spelling, rotations left out
    assert table.live_link and table.names == ARKIT_BLENDSHAPES and table.keys is None
    assert table.values.shape == (3, 52) and table.values[0, 3] == pytest.approx(0.03)
    with pytest.raises(InputError) as err:
        read_curves(path)
    message = str(err.value)
    for words in ("Live Link Face", "EyeBlinkLeft", "and 48 more", "drive the channel model"):
        assert words in message
    channels = ("neutral", *MODELLED_CHANNELS)
    curves = read_curves(path, channels)  # tongueOut, which the channel model lacks, is read past
    assert curves.names == channels[1:] and curves.values.shape == (3, 51)
    assert curves.values[0, 3] == pytest.approx(0.03)
    with pytest.raises(InputError, match="'happy' is not an ARKit blendshape"):
        read_curves(_csv(tmp_path, "jawOpen,happy\n0.3,0.2\n"), channels)


def test_channel_curves_add_past_1():
    curves = ExpressionCurves.from_keys({1: {"jawOpen": 0.9, "mouthSmileLeft": 0.8}, 2: {}})
    assert curves.mix_at(1) == {"jawOpen": 0.9, "mouthSmileLeft": 0.8}


def test_curves_made_in_memory_are_checked_alike():
    curves = ExpressionCurves.from_keys({12: {"happy": 1.0}, 1: {}, 24: {"surprised": 1.0}})
    assert curves.names == ("happy", "surprised") and curves.keys is not None and curves.keys.tolist() == [1, 12, 24]
    assert curves.mix_at(18) == {"happy": 0.5, "surprised": 0.5}
    with pytest.raises(InputError, match=r"row 2: the weights sum to 1\.5"):
        ExpressionCurves.from_keys({1: {"happy": 0.5}, 2: {"happy": 0.5, "sad": 1.0}})


# -- rendering ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_renderer(tiny_model):
    return ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu", batch=3))


def _folder_render(renderer, frames: Path, out: Path, curves, **seq):
    from reggan_plugin.faces import parse_region

    return render_sequence(SequenceConfig(frames, out, region=parse_region(REGION), **seq), EditConfig("sad", 0.9),
                           renderer.inference, renderer=renderer, curves=curves)


def test_each_frame_gets_its_own_mix_in_one_edit_chain(tmp_path, tiny_renderer):
    from reggan_plugin.faces import parse_region

    frames = _frames(tmp_path / "in", 7)  # batch 3: batches of frames with different mixes
    curves = ExpressionCurves(("happy", "surprised"), [[0, 0], [1, 0], [0, 1]], keys=[1, 3, 6])
    summary = _folder_render(tiny_renderer, frames, tmp_path / "out", curves)
    assert summary.done == 7 and summary.ok
    region = [parse_region(REGION)]
    outputs = []
    for i, path in enumerate(sorted(frames.iterdir())):
        source, got = read_image(path), read_image(tmp_path / "out" / path.name).pixels
        mix = curves.mix_at(i)  # f000.png is frame 0: before the first key
        alone = tiny_renderer.apply_image(source, region, EditConfig(mix, 0.9)).pixels
        assert np.array_equal(got, alone), path.name  # one edit chain: the frame alone with its mix
        outputs.append(got)
        assert not np.array_equal(got, source.pixels), path.name  # (the tiny model's neutral changes faces too)
    assert not np.array_equal(outputs[3], tiny_renderer.apply_image(read_image(frames / "f003.png"), region,
                                                                    EditConfig("sad", 0.9)).pixels)  # not --expression


@pytest.mark.parametrize("keyed", [True, False])
def test_shards_and_a_resumed_run_write_the_bytes_of_one_run(tmp_path, tiny_renderer, keyed):
    """Float32 EXR frames keep every bit of the edit (8-bit frames round most differences of a batch away)."""
    from imagegen import face_box
    from test_streaming import H as SH
    from test_streaming import W as SW
    from test_streaming import _frames as stream_frames

    from reggan_plugin.faces import parse_region

    stream_frames(tmp_path / "in", 8, ".exr", np.float32)
    values = [[0, 0], [0.8, 0], [0.1, 0.6], [0, 0.3]]
    curves = (ExpressionCurves(("happy", "sad"), values, keys=[0, 2, 5, 7]) if keyed else
              ExpressionCurves(("happy", "sad"), np.repeat(values, 2, axis=0)))
    region = parse_region(",".join(str(int(v)) for v in face_box(SH, SW)))

    def run(out: str, **extra) -> None:
        seq = SequenceConfig(tmp_path / "in", tmp_path / out, region=region, **extra)
        assert render_sequence(seq, EditConfig("sad", 0.9), renderer=tiny_renderer, curves=curves).ok

    run("whole")  # batches of 3 frames
    for i in (1, 2, 3, 4):  # batches of 2
        run("shards", shard=_shard(i, 4))
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    (tmp_path / "resumed" / "f004.exr").unlink()  # a mixed frame, alone in its batch (onnxruntime's 1-row kernels)
    run("resumed", skip_existing=True)
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    assert len(whole) == 8 and len(set(whole.values())) == 8
    for other in ("shards", "resumed"):
        assert {p.name: p.read_bytes() for p in (tmp_path / other).iterdir()} == whole, other


def _shard(index: int, count: int):
    from reggan_plugin.sequence.shards import Shard

    return Shard(index, count)


def _large_face(side: int, crop_px: float) -> Face:
    """A face whose crop spans ``crop_px`` of a ``side`` px picture, centred: its lips split and its mouth drawn."""
    points = CANONICAL_5PT * crop_px + (side - crop_px) / 2
    return Face(box=box_from_landmarks(points), landmarks=points)


def _textured(side: int, seed: int) -> np.ndarray:
    """A smooth, textured picture: every pixel an edit changes shows."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (-(-side // 8), -(-side // 8), 3)).astype(np.float32)
    big = np.kron(small, np.ones((8, 8, 1)))[:side, :side]
    return np.clip(big * 0.6 + rng.normal(60, 20, (side, side, 3)), 0, 255).astype(np.uint8)


@pytest.mark.slow  # large faces
def test_pictures_batched_together_keep_their_own_mixes(tiny_model):
    """Pictures with different mixes, through the network in one batch, come out as each would alone."""
    renderer = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu"))
    face = _large_face(700, 600)
    edits = [EditConfig({"happy": 0.6, "surprised": 0.0}), EditConfig({"surprised": 0.7}), EditConfig("sad", 0.5)]
    pictures = [_textured(700, seed) for seed in (5, 6, 7)]
    prepared = [renderer.prepare_image(ImageData(p), [face]) for p in pictures]
    batched = renderer.forward_images(prepared, edits)
    for picture, p, e, edit in zip(pictures, prepared, batched, edits):
        alone = renderer.apply_array(picture, faces=[face], expression=edit.expression, intensity=edit.intensity)
        got = renderer.finish_image(p, e).pixels.astype(int)
        assert np.abs(got - alone).max() <= 1  # a batch of three may round apart from one of one by a level


@pytest.mark.slow  # an end-to-end render; the fast tier keeps the unit checks of the same behaviour
def test_the_bundled_model_renders_a_ramp_on_the_sample_shot_alike_in_shards(tmp_path):
    """The shipped model on samples/frames: a neutral key gives the model's neutral face, its input again within a
    level (the refiner learns the identity, it is not drawn), a surprised one renders, and three shards write one
    run's bytes."""
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    curves = ExpressionCurves(("happy", "surprised"), [[0, 0], [1, 0], [0, 1]], keys=[1, 4, 8])
    seq = {"faces": SAMPLES / "faces.json"}
    frames = SAMPLES / "frames"

    def run(out: Path, **extra) -> None:
        summary = render_sequence(SequenceConfig(frames, out, **seq, **extra), EditConfig(), renderer.inference,
                                  renderer=renderer, curves=curves)
        assert summary.ok, summary.lines()

    run(tmp_path / "whole")
    for i in (1, 2, 3):
        run(tmp_path / "shards", shard=_shard(i, 3))
    names = sorted(p.name for p in frames.iterdir())
    for name in names:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "shards" / name).read_bytes(), name
    first = read_image(frames / names[0]).pixels
    assert np.abs(read_image(tmp_path / "whole" / names[0]).pixels.astype(int) - first).max() <= 1
    changes = [np.abs(read_image(tmp_path / "whole" / n).pixels.astype(int) - read_image(frames / n).pixels).mean()
               for n in names]
    assert changes[0] < 0.01 and all(c > 0.3 for c in changes[1:])


# -- the command ---------------------------------------------------------------------------------------------------

def test_render_curves_end_to_end(tmp_path, tiny_model):
    """A row of weight 0 renders as --expression neutral, a row of 1 as --expression happy, byte for byte."""
    frames = _frames(tmp_path / "in", 3)
    curves = _csv(tmp_path, "happy\n0\n0.5\n1\n")

    def render(out: str, *how: object) -> None:
        proc = cli("render", "--frames", frames, "--out", tmp_path / out, "--model", tiny_model, "--backend", "cpu",
                   "--region", REGION, "--intensity", "0.8", *how)
        assert proc.returncode == 0 and "3 done" in proc.stderr, proc.stderr

    render("curves", "--curves", curves)
    render("neutral", "--expression", "neutral")
    render("happy", "--expression", "happy")
    got = {name: (tmp_path / "curves" / name).read_bytes() for name in ("f000.png", "f001.png", "f002.png")}
    assert got["f000.png"] == (tmp_path / "neutral" / "f000.png").read_bytes()
    assert got["f002.png"] == (tmp_path / "happy" / "f002.png").read_bytes()
    assert got["f001.png"] not in {(tmp_path / f / "f001.png").read_bytes() for f in ("neutral", "happy")}


def test_a_live_link_capture_drives_a_shot_on_the_channel_model(tmp_path):
    """A Live Link Face file and no --model: the bundled channel model edits each frame by its row, and a row that
    keys the same channels as --expression renders the same bytes."""
    frames = _frames(tmp_path / "in", 3)
    capture = _live_link(tmp_path)

    def render(out: str, *how: object) -> None:
        proc = cli("render", "--frames", frames, "--out", tmp_path / out, "--backend", "cpu", "--region", REGION, *how)
        assert proc.returncode == 0 and "3 done" in proc.stderr, proc.stderr

    render("take", "--curves", capture)
    row = read_curves(capture, ("neutral", *MODELLED_CHANNELS)).mix_at(1)
    render("one", "--expression", ",".join(f"{name}={weight:g}" for name, weight in row.items() if weight > 0))
    assert (tmp_path / "take" / "f000.png").read_bytes() == (tmp_path / "one" / "f000.png").read_bytes()
    assert (tmp_path / "take" / "f000.png").read_bytes() != (frames / "f000.png").read_bytes()


@pytest.mark.parametrize(("text", "words"), [
    ("happy\n0\n0.5\n", "2 rows for 3 frames"),
    ("frame,happy\n1,0.2\n0,1\n", "comes after frame 1"),
    ("frame,jawOpen\n1,0.2\n", "ARKit blendshape columns (jawOpen)"),
    (None, "Live Link Face capture"),  # with a face model given
])
def test_bad_curves_stop_the_render_before_any_frame(tmp_path, tiny_model, text, words):
    frames = _frames(tmp_path / "in", 3)
    curves = _live_link(tmp_path) if text is None else _csv(tmp_path, text)
    proc = cli("render", "--frames", frames, "--out", tmp_path / "out", "--model", tiny_model, "--backend", "cpu",
               "--region", REGION, "--curves", curves)
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc)
    assert str(curves) in line and words in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
