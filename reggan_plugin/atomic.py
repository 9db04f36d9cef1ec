"""Atomic file writes: a hidden temp file beside the target, then one rename.

Readers (and an interrupted run) see either the old file or the whole new one, never half of it; a failed write
leaves nothing behind. Files come out as ordinary files (0666 less the umask), not the 0600 of ``mkstemp``.
Every temp name has one shape, ``.<name>.<8 hex>.tmp<suffix>`` (the suffix kept, since image writers pick
the format by it), so a run can recognise and remove what a killed run left (``stale_temp_files``).
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp(?P<suffix>\.[^.]*)?$")


def temp_path(path: str | Path) -> Path:
    """A new hidden name beside ``path``; created empty (O_EXCL) so that no two writers share it."""
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
            return tmp
        except FileExistsError:
            continue


def is_temp_of(candidate: Path, target: Path) -> bool:
    """True when ``candidate`` is a temp file this module made for ``target``."""
    match = _TEMP.match(candidate.name)
    return match is not None and match["name"] == target.name


def stale_temp_files(folder: Path) -> list[Path]:
    """Temp files of this module's shape in ``folder`` (left by a run that was killed)."""
    try:
        return sorted(p for p in folder.iterdir() if _TEMP.match(p.name) and p.is_file())
    except OSError:
        return []


@contextmanager
def atomic_path(path: str | Path, *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write; on leaving the block it replaces ``path``, on an error it goes."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_with(path: str | Path, writer: Callable[[str], object]) -> None:
    """Let ``writer(temp_name)`` write the file (a library that takes a file name), then rename it into place."""
    with atomic_path(path) as tmp:
        writer(str(tmp))


def write_bytes(path: str | Path, data: bytes) -> None:
    """``data`` into ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@contextmanager
def new_folder(path: str | Path) -> Iterator[Path]:
    """Make ``path`` (and its missing parents) for a command's output; when the command fails, the folders it made
    that are still empty go again, so a failed run leaves no empty run folder behind (what it wrote is kept)."""
    path = Path(path)
    made = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if made:
            for folder in sorted((p for p in made[0].rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                _remove_if_empty(folder)
            for folder in made:
                _remove_if_empty(folder)
        raise


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (a checkpoint, a cache), or gone
        folder.rmdir()
