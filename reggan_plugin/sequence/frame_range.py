"""Frames a farm task names by number (`render --frame-range`): Deadline, OpenCue and Flamenco hand a task a
frame list such as ``1-10`` or ``1-3,5,7-20:2``, not a shard index (docs/STUDIO.md).

A frame's number is the last run of digits in its file name's stem: ``shot_0001.png`` is 1,
``shot010_v2.0012.exr`` is 12. Selection keeps the directory's order and reads the smoothing neighbours
from the whole directory, as shards do, so a task renders the same bytes as one run.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

MAX_FRAMES = 10_000_000
"""A range naming more frames than this is refused (a typo such as 1-10000000000, not a shot)."""

_ITEM = re.compile(r"^(\d+)(?:\s*-\s*(\d+)(?:\s*[:x]\s*(\d+))?)?$")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_number(path: Path) -> int | None:
    """The number a frame's name ends with (its stem's last run of digits); None when it has none."""
    match = _LAST_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


def describe_numbers(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 5, 9, 10] -> '1-3, 5, 9-10'."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


@dataclass(frozen=True)
class Selection:
    """The frames a range picks, in the directory's order, and the numbers it names that no frame has."""

    frames: list[Path]
    missing: list[int]


@dataclass(frozen=True)
class FrameRange:
    """A frame list: comma-separated items, each ``N``, ``A-B`` or ``A-B:S`` (every S-th from A; ``A-BxS``, Deadline's
    and OpenCue's spelling, is the same). Inclusive, non-negative, in any order; overlaps count once."""

    text: str
    items: tuple[tuple[int, int, int], ...]  # (first, last, step), inclusive

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> FrameRange:
        """'1-3,5,7-20:2' -> FrameRange; UsageError with a one-line reason otherwise."""
        items = []
        for raw in (text or "").split(","):
            item = raw.strip()
            match = _ITEM.match(item)
            if not match:
                what = "an empty item" if not item else f"{item!r}"
                raise UsageError(f"bad --frame-range {text!r}: {what} is not N, A-B or A-B:S (e.g. 1-3,5,7-20:2)")
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) is not None else first
            step = int(match.group(3)) if match.group(3) is not None else 1
            if last < first:
                raise UsageError(f"bad --frame-range {text!r}: {item!r} runs backwards (write {last}-{first})")
            if step < 1:
                raise UsageError(f"bad --frame-range {text!r}: {item!r} has step 0 (the step is at least 1)")
            items.append((first, last, step))
        made = cls(text.strip(), tuple(items))
        if sum((last - first) // step + 1 for first, last, step in items) > MAX_FRAMES:
            raise UsageError(f"bad --frame-range {text!r}: names more than {MAX_FRAMES:,} frames")
        return made

    def numbers(self) -> Iterator[int]:
        for first, last, step in self.items:
            yield from range(first, last + 1, step)

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and any(
            first <= number <= last and (number - first) % step == 0 for first, last, step in self.items
        )

    def select(self, frames: Sequence[Path], folder: Path) -> Selection:
        """The frames of `frames` (a directory's, in order) this range names. UsageError when a frame's name has no
        number (it could never be rendered by any task) or when the range names none of the frames."""
        unnumbered = [frame for frame in frames if frame_number(frame) is None]
        if unnumbered:
            noun = "frame has" if len(unnumbered) == 1 else "frames have"
            raise UsageError(
                f"--frame-range: {len(unnumbered)} {noun} no number in the name (e.g. {unnumbered[0].name}) in "
                f"{folder}; a range picks frames by the number their names end with: rename them or use --shard")
        numbered = {frame: frame_number(frame) for frame in frames}
        chosen = [frame for frame in frames if numbered[frame] in self]
        present = set(numbered.values())
        if not chosen:
            have = describe_numbers([n for n in present if n is not None])
            raise UsageError(f"--frame-range {self}: names no frame of {folder} (its frames are numbered {have})")
        missing = sorted({n for n in self.numbers() if n not in present})
        return Selection(chosen, missing)
