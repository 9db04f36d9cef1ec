"""Face tracks in detector mode: a frame's result depends on its neighbours only, never on how a shot is
split into shards or resumed, and never across a cut."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
from reggan_plugin.imageio import ImageData, read_image
from reggan_plugin.pipeline import render_sequence
from reggan_plugin.renderer import ExpressionRenderer
from reggan_plugin.sequence.shards import Shard
from reggan_plugin.sequence.shots import is_cut, thumbnail

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "frames"  # 8 frames of a moving rendered head


@pytest.fixture(scope="module")
def renderer(tiny_model) -> ExpressionRenderer:
    return ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu", batch=3))


def _run(frames: Path, out: Path, renderer: ExpressionRenderer, **seq) -> None:
    summary = render_sequence(SequenceConfig(frames, out, **seq), EditConfig("happy"), renderer=renderer)
    assert not summary.failed and not summary.no_face, summary.lines()


def _same(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow  # several CLI runs with the detector
def test_shards_and_resumes_give_the_frames_of_one_run(tmp_path, renderer):
    _run(SAMPLES, tmp_path / "one", renderer)
    for i in (1, 2, 3):  # shard boundaries fall inside every frame's smoothing window
        _run(SAMPLES, tmp_path / "shards", renderer, shard=Shard(i, 3))
    _same(tmp_path / "one", tmp_path / "shards")
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for name in ("shot_0001.png", "shot_0002.png", "shot_0003.png", "shot_0006.png"):  # an interrupted run's frames
        shutil.copyfile(tmp_path / "one" / name, resumed / name)
    _run(SAMPLES, resumed, renderer, skip_existing=True)
    _same(tmp_path / "one", resumed)


@pytest.mark.slow  # a shot rendered with the bundled model twice: the fast tier stays under 2 minutes
def test_smoothing_does_move_faces_within_a_shot(tmp_path, renderer):
    _run(SAMPLES, tmp_path / "smooth", renderer)
    _run(SAMPLES, tmp_path / "raw", renderer, smooth=0.0)
    differ = [(tmp_path / "smooth" / n).read_bytes() != (tmp_path / "raw" / n).read_bytes()
              for n in sorted(p.name for p in SAMPLES.iterdir())]
    assert sum(differ) >= 4  # the test above is not passing because nothing is smoothed


def test_cuts_are_found_between_shots_not_within_them():
    frames = [read_image(p) for p in sorted(SAMPLES.iterdir())]
    thumbs = [thumbnail(f) for f in frames]
    assert not any(is_cut(a, b) for a, b in itertools.pairwise(thumbs))  # one moving shot
    rng = np.random.default_rng(0)
    noisy = [thumbnail(ImageData(np.clip(f.pixels.astype(int) + rng.normal(0, 10, f.pixels.shape), 0, 255)
                                 .astype(np.uint8))) for f in frames[:2]]
    assert not is_cut(noisy[0], noisy[1])  # render noise is not a cut
    other = np.ascontiguousarray(frames[0].pixels[:, ::-1][..., [2, 1, 0, 3]])  # another shot of another face
    assert is_cut(thumbs[0], thumbnail(ImageData(other)))
    assert is_cut(thumbs[0], thumbnail(ImageData(frames[0].pixels[:200])))  # another frame size
    assert is_cut(thumbs[0], None)  # an unreadable frame


@pytest.mark.slow  # portraits rendered with the bundled model: the fast tier stays under 2 minutes
def test_unrelated_portraits_are_not_smoothed_together(tmp_path, renderer, london_faces):
    folder = tmp_path / "portraits"
    folder.mkdir()
    for i, path in enumerate(sorted((london_faces / "neutral").glob("*.jpg"))[:6]):
        Image.open(path).convert("RGB").resize((450, 450)).save(folder / f"p{i}.png")
    _run(folder, tmp_path / "default", renderer)
    _run(folder, tmp_path / "off", renderer, smooth=0.0)
    _same(tmp_path / "default", tmp_path / "off")
