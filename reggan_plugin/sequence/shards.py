"""Which frames a worker renders: deterministic shards and resume (--skip-existing)."""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import temp_path
from ..errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """The index-th (1-based) of `count` contiguous, near-equal parts of a frame list (farm workers).

    Contiguous parts keep temporal smoothing meaningful inside each part; together they cover every
    frame once.
    """

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise UsageError(f"bad --shard {self}: need 1 <= I <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """ "I/N" (1 <= I <= N) -> Shard; UsageError with a one-line reason otherwise."""
        match = _SHARD.match(text or "")
        if not match:
            raise UsageError(f"bad --shard {text!r}: expected I/N, for example 2/8")
        return cls(int(match.group(1)), int(match.group(2)))

    def bounds(self, n_items: int) -> tuple[int, int]:
        """[start, stop) of this part of `n_items`."""
        return (self.index - 1) * n_items // self.count, self.index * n_items // self.count

    def select(self, items: Sequence[Path]) -> list[Path]:
        start, stop = self.bounds(len(items))
        return list(items[start:stop])


def output_path(frame: Path, frames_dir: Path, out_dir: Path) -> Path:
    return out_dir / frame.relative_to(frames_dir)


def check_out_dir(frames_dir: Path, out_dir: Path) -> None:
    """Refuse an output directory that is (or is inside) the input directory (inputs are never overwritten),
    or that cannot be made or written: one line naming it, before any frame is read."""
    frames, out = frames_dir.resolve(), out_dir.resolve()
    if out == frames or frames in out.parents:
        raise UsageError(f"--out {out_dir} is the same as (or inside) --frames {frames_dir}; choose another directory")
    check_writable_dir(out_dir, "--out")


def check_writable_dir(folder: Path, option: str) -> None:
    """Make `folder` if needed and prove a file can be created in it (UsageError otherwise)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder}: exists and is not a directory")
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first; removed again below
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp_path(folder / "write-test").unlink()
    except OSError as exc:
        raise UsageError(f"{option} {folder}: cannot write there ({exc.strerror or exc})") from None
    finally:
        for path in made:  # the run makes what it needs; a check leaves nothing behind
            with contextlib.suppress(OSError):
                path.rmdir()


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name one file: through links, `./` and `..`, or hard links (what an atomic rename over
    one of them would lose)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_out_file(out: Path, inputs: Sequence[Path] = (), option: str = "--out") -> None:
    """Refuse an output file that is one of the command's inputs (written over, the input would be lost), a
    directory, or in a folder that cannot be made or written: UsageError naming it, before anything is written."""
    out = Path(out)
    for given in inputs:
        if given is not None and same_file(out, Path(given)):
            raise UsageError(f"{option} {out} is the input file {given}; inputs are never overwritten: "
                             "choose another file name")
    if out.is_dir():
        raise UsageError(f"{option} {out}: is a directory; give a file name")
    check_writable_dir(out.parent, option)
