"""Expression curves: a mix of expressions for each frame of a shot, read from a CSV (`render --curves`).

A curves CSV has a header row and one row per key. Its columns are the model's expression names (happy, sad,
surprised, angry, disgusted, fearful; any case), each a weight in [0, 1] with at most 1 in all: the rest is
neutral (`ModelArtifact.expression_weights`). With a ``frame`` column each row keys the frame whose file name
carries that number (shot_0001.png -> 1), the frames between two keys get the weights interpolated linearly, and
those before the first key or after the last hold its weights; without one, row i is the i-th frame of the folder
in sorted order. docs/CURVES.md has examples.

Face capture writes ARKit's 52 blendshapes (Live Link Face: a ``Timecode`` and a ``BlendShapeCount`` column, then
``EyeBlinkLeft`` ... ``TongueOut``, then the head's and eyes' rotations). `read_table` reads those channels too
(`ARKIT_BLENDSHAPES`, any case), but the bundled model edits the six expressions and has no model of those channels
yet: `read_curves` refuses them with one error naming them, rather than dropping them or mapping them by hand.

Every problem is an `InputError` naming the file and the reason (the line, the column), raised before any frame
is read.
"""
from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..arrays import Float64Array, IntArray
from ..errors import InputError
from ..expressions import ARKIT_BLENDSHAPES, EXPRESSIONS, is_channel_mix
from ..text_input import read_text_input

FRAME_COLUMN = "frame"
SUM_SLACK = 1e-6  # as `artifact.parse_expression`: weights may sum to 1 + this (decimal rounding)

_ARKIT = {name.lower(): name for name in ARKIT_BLENDSHAPES}
# Live Link Face's columns that are not blendshapes: when the file is one, they are read past
LIVE_LINK_MARKERS = ("timecode", "blendshapecount")
LIVE_LINK_ROTATIONS = ("headyaw", "headpitch", "headroll", "lefteyeyaw", "lefteyepitch", "lefteyeroll",
                       "righteyeyaw", "righteyepitch", "righteyeroll")

_NUMBER_IN_NAME = re.compile(r"(\d+)\D*$")


def frame_number(frame: Path) -> int | None:
    """The frame number a file name carries: its stem's last run of digits (shot_0001.png -> 1), or None."""
    match = _NUMBER_IN_NAME.search(frame.stem)
    return None if match is None else int(match.group(1))


@dataclass(frozen=True)
class CurveTable:
    """A curves CSV as written: its channels (expressions, or ARKit blendshapes by `ARKIT_BLENDSHAPES`'s spelling),
    one row per key. What `read_curves` turns into `ExpressionCurves`, and what a channel model would read."""

    path: Path
    names: tuple[str, ...]
    values: Float64Array  # float64 [K, C], each finite and in [0, 1]
    keys: IntArray | None  # int64 [K] increasing frame numbers; None: row i is the i-th frame
    lines: tuple[int, ...]  # each row's line in the file (for messages)
    arkit: tuple[str, ...]  # the ARKit blendshape columns, as the file spells them
    live_link: bool  # a Live Link Face export (its Timecode and BlendShapeCount columns)


@dataclass(frozen=True)
class ExpressionCurves:
    """Expression weights over frames: `mix_at` a frame, `mixes_for` a folder's frames.

    names: expressions (never neutral: it is the rest of each row); values: float64 [K, E] in [0, 1], each row summing
    to at most 1 unless the names are ARKit channels, which add; keys: int64 [K] strictly increasing frame numbers, or None (row i is the i-th frame, in sorted order).
    Constructing one checks all of it (`InputError` naming ``path``, or the curves when made in memory).
    """

    names: tuple[str, ...]
    values: Float64Array
    keys: IntArray | None = None
    path: Path | None = None
    lines: tuple[int, ...] | None = None  # each row's line in `path`, for messages

    def __post_init__(self) -> None:
        values = np.asarray(self.values, np.float64)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", tuple(self.names))
        if self.keys is not None:
            object.__setattr__(self, "keys", np.asarray(self.keys, np.int64))
        if values.ndim != 2 or values.shape[1] != len(self.names) or not len(values):
            self._fail(f"curves need at least one row of {len(self.names)} weights, got shape {values.shape}")
        if not self.names:
            self._fail("no expression columns")
        names = [n.lower() for n in self.names]
        for name in names:
            if name == "neutral":
                self._fail("a neutral column: neutral is implied, the rest of each row up to 1 (leave it out)")
            if names.count(name) > 1:
                self._fail(f"column {name!r} is given twice")
        for row in range(len(values)):
            where = self._where(row)
            for name, value in zip(self.names, values[row]):
                if not math.isfinite(value):
                    self._fail(f"{where}: {name} is {value} (weights are numbers in [0, 1])")
                if not 0.0 <= value <= 1.0:
                    self._fail(f"{where}: {name} {value:g} is outside [0, 1]")
            total = float(values[row].sum())
            if total > 1.0 + SUM_SLACK and not is_channel_mix(self.names):
                self._fail(f"{where}: the weights sum to {total:g}; at most 1 (the rest is neutral)")
        if self.keys is not None:
            keys = self.keys
            if keys.shape != (len(values),):
                self._fail(f"{len(keys)} frame numbers for {len(values)} rows")
            for row in range(1, len(keys)):
                if keys[row] == keys[row - 1]:
                    self._fail(f"{self._where(row)}: frame {keys[row]} is keyed twice")
                if keys[row] < keys[row - 1]:
                    self._fail(f"{self._where(row)}: frame {keys[row]} comes after frame {keys[row - 1]}; "
                               "frame numbers must increase")

    def _where(self, row: int) -> str:
        return f"line {self.lines[row]}" if self.lines is not None else f"row {row + 1}"

    def _fail(self, reason: str) -> NoReturn:
        raise InputError(self.path, reason) if self.path is not None else InputError(None, f"expression curves: {reason}")

    @classmethod
    def from_keys(cls, keys: Mapping[int, Mapping[str, float]]) -> ExpressionCurves:
        """Curves from {frame number: {expression: weight}} (the add-on's keyframes, a script's); an expression a key
        leaves out weighs 0 there."""
        frames = sorted(keys)
        names = tuple(dict.fromkeys(name for frame in frames for name in keys[frame]))
        values = [[float(keys[frame].get(name, 0.0)) for name in names] for frame in frames]
        return cls(names, np.array(values, np.float64).reshape(len(frames), len(names)), np.array(frames, np.int64))

    def mix_at(self, position: int) -> dict[str, float]:
        """The mix at a frame number (keyed curves: interpolated linearly between keys, held beyond them) or at a row
        index (curves without keys)."""
        if self.keys is None:
            row = self.values[position]
        else:
            row = np.array([np.interp(position, self.keys, self.values[:, c]) for c in range(len(self.names))])
        return {name: float(weight) for name, weight in zip(self.names, row)}

    def mixes_for(self, frames: Sequence[Path]) -> list[dict[str, float]]:
        """Each frame's mix: by the number in its file name (keyed curves) or by its place in ``frames`` (the whole
        folder's frames in sorted order, whichever shard renders them). InputError when a frame has no number or the
        rows are fewer than the frames."""
        if self.keys is None:
            if len(self.values) < len(frames):
                self._fail(f"{len(self.values)} rows for {len(frames)} frames: without a {FRAME_COLUMN!r} column each "
                           "row is one frame, in order (add a frame column to key some frames and interpolate)")
            return [self.mix_at(i) for i in range(len(frames))]
        mixes = []
        for frame in frames:
            number = frame_number(frame)
            if number is None:
                self._fail(f"frame {frame.name} has no number in its name; the {FRAME_COLUMN!r} column keys frames by "
                           "the number in their file names (shot_0001.png is frame 1)")
            mixes.append(self.mix_at(number))
        return mixes


def read_table(path: Path) -> CurveTable:
    """Read a curves CSV (or a Live Link Face export) into its channels, checking its shape and every value."""
    path = Path(path)
    text = read_text_input(path, "curves file", "a header of expression names and a row per key", "utf-8-sig")
    reader = csv.reader(text.splitlines())
    header = [cell.strip() for cell in next(reader)]
    folded = [cell.lower() for cell in header]
    live_link = all(marker in folded for marker in LIVE_LINK_MARKERS)
    skipped = set(LIVE_LINK_MARKERS + LIVE_LINK_ROTATIONS) if live_link else set()
    for column, name in enumerate(folded):
        if not name:
            raise InputError(path, f"column {column + 1} of the header has no name")
        if name in folded[:column]:
            first = header[folded.index(name)]
            raise InputError(path, f"column {header[column]!r} is given twice"
                                   + (f" (as {first!r} too)" if first != header[column] else ""))
    frame_at = folded.index(FRAME_COLUMN) if FRAME_COLUMN in folded else None
    channels = [c for c, name in enumerate(folded) if c != frame_at and name not in skipped]
    rows: list[list[float]] = []
    keys: list[int] = []
    lines: list[int] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        line = reader.line_num
        if len(cells) != len(header):
            raise InputError(path, f"line {line} has {len(cells)} fields, the header {len(header)}")
        if frame_at is not None:
            keys.append(_integer(path, line, cells[frame_at]))
        rows.append([_number(path, line, header[c], cells[c]) for c in channels])
        lines.append(line)
    if not rows:
        raise InputError(path, "no rows under the header; a curves CSV has a row per key")
    names = tuple(_ARKIT.get(folded[c], header[c]) for c in channels)
    arkit = tuple(header[c] for c in channels if folded[c] in _ARKIT)
    values = np.array(rows, np.float64).reshape(len(rows), len(channels))
    table = CurveTable(path, names, values, np.array(keys, np.int64) if frame_at is not None else None,
                       tuple(lines), arkit, live_link)
    if not arkit:  # expression channels are checked as curves; blendshape channels in [0, 1] here
        return table
    for row, line in enumerate(lines):
        for name, value in zip(names, values[row]):
            if not 0.0 <= value <= 1.0:
                raise InputError(path, f"line {line}: {name} {value:g} is outside [0, 1]")
    return table


def read_curves(path: Path, expressions: Sequence[str] = EXPRESSIONS) -> ExpressionCurves:
    """A curves CSV as `ExpressionCurves` over ``expressions`` (the model's; neutral is implied). ARKit blendshape
    columns need a channel model (``expressions`` its channels; tongueOut, which it lacks, is read past); InputError
    for them with the face model, for unknown columns and for every bad value."""
    table = read_table(path)
    channel_model = is_channel_mix(expressions)
    if table.arkit and not channel_model:
        what = "a Live Link Face capture" if table.live_link else "ARKit blendshape columns"
        shown = ", ".join(table.arkit[:4]) + (f" and {len(table.arkit) - 4} more" if len(table.arkit) > 4 else "")
        raise InputError(path, f"{what} ({shown}) drive the channel model, not this one: leave --model out, or give "
                               "only expression columns (docs/CURVES.md)")
    if channel_model:
        if len(table.arkit) != len(table.names):
            other = next(n for n in table.names if n not in ARKIT_BLENDSHAPES)
            raise InputError(path, f"column {other!r} is not an ARKit blendshape; channel curves are ARKit columns alone")
        kept = [i for i, n in enumerate(table.names) if n in expressions]  # tongueOut: no such shape to move
        return ExpressionCurves(tuple(table.names[i] for i in kept), table.values[:, kept], table.keys, table.path,
                                table.lines)
    vocabulary = {e.lower(): e for e in expressions if e != "neutral"}
    names = []
    for name in table.names:
        if name.lower() == "neutral":
            names.append("neutral")  # refused by ExpressionCurves with the reason
        elif name.lower() in vocabulary:
            names.append(vocabulary[name.lower()])
        else:
            raise InputError(path, f"unknown column {name!r}; columns are {FRAME_COLUMN!r} and the expressions "
                                   f"{', '.join(vocabulary.values())}")
    return ExpressionCurves(tuple(names), table.values, table.keys, table.path, table.lines)


def _number(path: Path, line: int, column: str, cell: str) -> float:
    text = cell.strip()
    if not text:
        raise InputError(path, f"line {line}: {column} is empty")
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(path, f"line {line}: {column} is {text} (weights are numbers in [0, 1])")
    return value


def _integer(path: Path, line: int, cell: str) -> int:
    value = _number(path, line, FRAME_COLUMN, cell)
    if value != int(value):
        raise InputError(path, f"line {line}: frame {cell.strip()!r} is not a whole number")
    return int(value)
