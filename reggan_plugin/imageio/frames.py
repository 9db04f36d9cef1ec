"""The frames of a directory, in the order a sequence plays."""
from __future__ import annotations

import os
import re
from collections.abc import Container
from pathlib import Path
from typing import Any

from reggan_plugin.errors import InputError
from reggan_plugin.imageio.image import SUPPORTED_SUFFIXES, _sniff


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def looks_whole(path: str | os.PathLike[str]) -> bool:
    """A cheap check that a file is a whole image of its kind, without decoding it: the format's signature at
    the start and, for PNG and JPEG, its end marker at the end (what a cut-off or emptied file lacks)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as handle:
            head = handle.read(16)
            handle.seek(max(0, size - 16))
            tail = handle.read(16)
    except OSError:
        return False
    fmt = _sniff(head)
    if fmt is None or fmt != SUPPORTED_SUFFIXES.get(p.suffix.lower()):
        return False
    if fmt == "png":
        return b"IEND" in tail
    if fmt == "jpeg":
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    return size > len(head)


OTHER_IMAGE_SUFFIXES = frozenset(
    {".avif", ".bmp", ".dds", ".dpx", ".gif", ".hdr", ".heic", ".jp2", ".psd", ".tga", ".webp"}
)
"""Image formats a frames folder may hold that are not read: named when they are left out of a sequence."""


def _visible_files(d: Path, suffixes: Container[str]) -> list[Path]:
    """A folder's visible files of these suffixes; a folder that can be listed but not searched (no x permission:
    its entries cannot be looked at) is an InputError naming it."""
    try:
        return [p for p in d.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".") and not p.is_dir()]
    except OSError as err:
        raise InputError(d, f"cannot search the folder ({err.strerror or err}); it needs read and execute "
                            "permission (chmod u+rx)") from None


def subfolders(directory: str | os.PathLike[str]) -> list[Path]:
    """The visible folders inside a frames folder: frames in them are not part of the sequence (said once)."""
    try:
        return sorted((p for p in Path(directory).iterdir() if not p.name.startswith(".") and p.is_dir()),
                      key=_natural_key)
    except OSError:
        return []


def unread_images(directory: str | os.PathLike[str]) -> list[Path]:
    """Images of a directory in formats that are not read (``OTHER_IMAGE_SUFFIXES``), in natural order: a
    sequence exported partly as TGA or WebP would otherwise lose those frames without a word."""
    return sorted(_visible_files(Path(directory), OTHER_IMAGE_SUFFIXES), key=_natural_key)


def describe_unread(files: list[Path]) -> str:
    """``3 files in formats not read (.bmp, .webp; e.g. a.bmp): convert to PNG, TIFF or EXR``."""
    kinds = ", ".join(sorted({p.suffix.lower() for p in files}))
    noun = "file" if len(files) == 1 else "files"
    return f"{len(files)} {noun} in formats not read ({kinds}; e.g. {files[0].name}): convert to PNG, TIFF or EXR"


def list_frames(directory: str | os.PathLike[str]) -> list[Path]:
    """Image files of a directory (supported suffixes, no hidden files), in natural order (2 before 10).

    Anything named like an image that is not a folder is a frame, a dangling link included: reading it
    fails and the frame is reported, rather than silently left out of the sequence."""
    d = Path(directory)
    if not d.exists():
        raise InputError(d, "directory not found")
    if not d.is_dir():
        raise InputError(d, "not a directory")
    frames = _visible_files(d, SUPPORTED_SUFFIXES)
    if not frames:
        unread = unread_images(d)
        found = f"; {describe_unread(unread)}" if unread else ""
        raise InputError(d, f"no images found (looked for {', '.join(SUPPORTED_SUFFIXES)}{found})")
    return sorted(frames, key=_natural_key)


