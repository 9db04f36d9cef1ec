"""Which frames a worker renders: deterministic shards and resume (--skip-existing)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from .errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """ "I/N" (1 <= I <= N) -> (I, N)."""
    match = _SHARD.match(text or "")
    if not match:
        raise UsageError(f"bad --shard {text!r}: expected I/N, for example 2/8")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"bad --shard {text!r}: need 1 <= I <= N")
    return index, count


def shard_bounds(n_items: int, index: int, count: int) -> tuple[int, int]:
    """[start, stop) of the index-th of `count` contiguous, near-equal parts (contiguous keeps
    temporal smoothing meaningful inside each part)."""
    return (index - 1) * n_items // count, index * n_items // count


def select_shard(items: Sequence[Path], shard: str) -> list[Path]:
    start, stop = shard_bounds(len(items), *parse_shard(shard))
    return list(items[start:stop])


def output_path(frame: Path, frames_dir: Path, out_dir: Path) -> Path:
    return out_dir / frame.relative_to(frames_dir)


def check_out_dir(frames_dir: Path, out_dir: Path) -> None:
    """Refuse an output directory that is (or is inside) the input directory: inputs are never overwritten."""
    frames, out = frames_dir.resolve(), out_dir.resolve()
    if out == frames or frames in out.parents:
        raise UsageError(f"--out {out_dir} is the same as (or inside) --frames {frames_dir}; choose another directory")
