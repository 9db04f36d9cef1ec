"""`render --frame-range`: the frame lists Deadline, OpenCue and Flamenco hand a task, picked by the number in a
frame's name, rendering the same bytes as `--shard` and as one run."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reggan_plugin.errors import UsageError
from reggan_plugin.sequence.frame_range import FrameRange, describe_numbers, frame_number

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "frames"  # shot_0001.png .. shot_0008.png, a moving rendered head


@pytest.mark.parametrize(
    "spec, numbers",
    [
        ("1-10", list(range(1, 11))),
        ("7", [7]),
        ("1-3,5,7-20:2", [1, 2, 3, 5, 7, 9, 11, 13, 15, 17, 19]),
        (" 1 - 4 x 2 , 8 ", [1, 3, 8]),  # Deadline's / OpenCue's step spelling, spaces allowed
        ("3-5,4-6", [3, 4, 5, 6]),  # overlaps count once
        ("0-0", [0]),
    ],
)
def test_specs_name_these_frames(spec, numbers):
    frame_range = FrameRange.parse(spec)
    assert sorted(set(frame_range.numbers())) == numbers
    assert [n for n in range(0, 30) if n in frame_range] == numbers


@pytest.mark.parametrize(
    "spec, words",
    [
        ("", "an empty item"),
        ("1-", "'1-'"),
        ("1,,3", "an empty item"),
        ("10-1", "runs backwards"),
        ("1-10:0", "step 0"),
        ("-3", "'-3'"),
        ("a-b", "'a-b'"),
        ("1.5", "'1.5'"),
        ("1-99999999999", "more than"),
    ],
)
def test_bad_specs_are_usage_errors(spec, words):
    with pytest.raises(UsageError, match="--frame-range") as err:
        FrameRange.parse(spec)
    assert words in str(err.value)


def test_frame_numbers_come_from_the_last_digits_of_the_name():
    assert frame_number(Path("shot_0001.png")) == 1
    assert frame_number(Path("shot010_v2.0012.exr")) == 12
    assert frame_number(Path("0042.tif")) == 42
    assert frame_number(Path("cover.png")) is None
    assert describe_numbers([9, 1, 2, 3, 5, 10]) == "1-3, 5, 9-10"


def test_selection_keeps_order_and_reports_what_is_missing(tmp_path):
    frames = [Path(f"shot_{i:04d}.png") for i in (1, 2, 3, 5, 8)]
    picked = FrameRange.parse("2-6").select(frames, tmp_path)
    assert [f.name for f in picked.frames] == ["shot_0002.png", "shot_0003.png", "shot_0005.png"]
    assert picked.missing == [4, 6]
    with pytest.raises(UsageError, match=r"names no frame of .* numbered 1-3, 5, 8"):
        FrameRange.parse("20-30").select(frames, tmp_path)
    with pytest.raises(UsageError, match=r"no number in the name .*cover\.png"):
        FrameRange.parse("1-8").select([*frames, Path("cover.png")], tmp_path)


def cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reggan_plugin.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def _render(out: Path, *extra: object, frames: Path = SAMPLES) -> subprocess.CompletedProcess:
    proc = cli("render", "--frames", frames, "--out", out, "--backend", "cpu", "--batch", "3", *extra)
    assert proc.returncode == 0, proc.stderr
    return proc


def _same(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 8
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow  # five CLI runs of the sample shot with the detector
def test_frame_range_halves_give_the_bytes_of_one_run_and_of_shards(tmp_path):
    """samples/frames with the detector (faces smoothed over neighbours that the other half renders): two
    frame-range tasks, two shards and one run write the same bytes."""
    _render(tmp_path / "one")
    for spec in ("1-3,5", "4,6-8"):  # halves that interleave: neighbours on both sides belong to the other task
        proc = _render(tmp_path / "ranges", "--frame-range", spec)
        assert "4 done" in proc.stderr and "no frame numbered" not in proc.stderr
    for shard in ("1/2", "2/2"):
        _render(tmp_path / "shards", "--shard", shard)
    _same(tmp_path / "one", tmp_path / "ranges")
    _same(tmp_path / "one", tmp_path / "shards")


def test_a_range_past_the_frames_renders_those_that_are_and_says_which_are_not(tmp_path):
    frames = tmp_path / "in"
    frames.mkdir()
    for name in ("shot_0001.png", "shot_0002.png"):
        shutil.copyfile(SAMPLES / name, frames / name)
    proc = _render(tmp_path / "out", "--frame-range", "2-4", "--region", "60,60,140,150", frames=frames)
    assert "1 done" in proc.stderr and "--frame-range 2-4: no frame numbered 3-4 in the folder" in proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["shot_0002.png"]


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_ranges_stop_the_task_before_the_model_loads(tmp_path):
    frames = tmp_path / "in"
    frames.mkdir()
    shutil.copyfile(SAMPLES / "shot_0001.png", frames / "shot_0001.png")
    for spec, words in (("1-x", "bad --frame-range '1-x'"), ("9-12", "names no frame of"), ("5-1", "runs backwards")):
        proc = cli("render", "--frames", frames, "--out", tmp_path / "out", "--frame-range", spec)
        assert proc.returncode == 2 and words in _error_line(proc) and "backend:" not in proc.stderr
    shutil.copyfile(SAMPLES / "shot_0002.png", frames / "cover.png")
    proc = cli("render", "--frames", frames, "--out", tmp_path / "out", "--frame-range", "1")
    assert proc.returncode == 2 and "cover.png" in _error_line(proc)
