"""Atomic file writes: a hidden temp file beside the target, then one rename.

Readers (and an interrupted run) see either the old file or the whole new one, never half of it; a failed write
leaves nothing behind. Files come out as ordinary files (0666 less the umask), not the 0600 of ``mkstemp``.
Every temp name has one shape, ``.<name>.<8 hex>-<pid>.tmp<suffix>`` (the suffix kept, since image writers pick
the format by it; a long name shortened, so the temp name fits wherever the name does), so a run can recognise and
remove what a killed run left (``stale_temp_files``) and leave alone what a run still going is writing.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}(?:-(?P<pid>[0-9]+))?\.tmp(?P<suffix>\.[^.]*)?$")
_NAME_BYTES = 160  # a target name longer than this is shortened in its temp name: the temp stays under the file
# system's 255 bytes whenever the target's own name fits


def _temp_key(name: str) -> str:
    """The part of a temp name that says which target it is for: the target's name, or for a long one (near the
    255-byte limit) a short prefix of it and a digest of the whole."""
    raw = os.fsencode(name)
    if len(raw) <= _NAME_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return os.fsdecode(raw[:64]).rstrip() + "~" + digest


def temp_path(path: str | Path) -> Path:
    """A new hidden name beside ``path``, ``.<name>.<8 hex>-<pid>.tmp<suffix>``; created empty (O_EXCL) so that no
    two writers share it. The folder is made again if another run's check removed it in between."""
    path = Path(path)
    attempts = 0
    while True:
        tmp = path.with_name(f".{_temp_key(path.name)}.{secrets.token_hex(4)}-{os.getpid()}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
            return tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            attempts += 1
            if attempts > 3:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)


def is_temp_of(candidate: Path, target: Path) -> bool:
    """True when ``candidate`` is a temp file this module made for ``target``."""
    match = _TEMP.match(candidate.name)
    return match is not None and match["name"] == _temp_key(target.name)


def _owner_alive(match: re.Match[str]) -> bool:
    """Whether the process that made a temp file (its pid in the name) still runs on this machine: then it is
    another run's file in the making, not one a killed run left."""
    if match["pid"] is None:
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def stale_temp_files(folder: Path) -> list[Path]:
    """Temp files of this module's shape in ``folder`` left by a run that was killed (those of a run still going,
    on this machine, are not)."""
    try:
        found = [(p, _TEMP.match(p.name)) for p in folder.iterdir()]
        return sorted(p for p, m in found if m is not None and p.is_file() and not _owner_alive(m))
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
