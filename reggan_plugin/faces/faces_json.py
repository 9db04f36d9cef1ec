"""``faces.json``: face boxes and landmarks given by the caller, per frame (schema: docs/FACES_JSON.md).

Example::

    {
      "version": 1,
      "default": [{"box": [700, 200, 420, 420]}],
      "frames": {
        "shot010_0001.png": [{"box": [812.5, 240, 300, 300],
                              "landmarks": [[900, 350], [1010, 348], [955, 410], [910, 470], [1000, 468]]}],
        "shot010_0002.png": []
      }
    }

A frame's faces are looked up by the key equal to the frame's name as given, then its file name,
then its stem; a frame with no key gets ``default`` (or None when there is none, meaning "locate it
some other way"). An empty list means "no face in this frame": the frame is passed through.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from reggan_plugin.errors import InputError
from reggan_plugin.faces.face import LANDMARK_COUNTS, Face, box_from_landmarks
from reggan_plugin.text_input import read_text_input

from ..arrays import Array

SCHEMA_VERSION = 1
MIN_BOX_SIDE = 1.0
"""A box under a pixel holds no face (as --region's rule): refused with the file and the entry."""
COORDINATE_LIMIT = 1 << 20
"""Points and box corners further than this (pixels) from the frame's origin, and boxes larger, are not a frame's:
frames are at most MAX_SIDE (16384) px a side, and a box wholly off the picture is no face; beyond this a number is
a broken export (1e308, a 400-digit integer), refused before it overflows the geometry."""
TOP_LEVEL_KEYS = ("version", "default", "frames", "comment")
FACE_KEYS = ("box", "landmarks")


@dataclass(frozen=True)
class FacesFile:
    """A parsed faces.json. ``frames`` maps keys (file names or stems) to faces; ``default`` applies elsewhere."""

    path: Path
    frames: dict[str, tuple[Face, ...]] = field(default_factory=dict)
    default: tuple[Face, ...] | None = None

    def key_for(self, frame_name: str | PurePath) -> str | None:
        """The key that names a frame: its exact name, then its file name, then its stem; None when none does."""
        pure = PurePath(str(frame_name))
        return next((key for key in (str(frame_name), pure.name, pure.stem) if key in self.frames), None)

    def faces_for(self, frame_name: str | PurePath) -> list[Face] | None:
        """Faces for a frame: by its key (``key_for``); else ``default``; else None."""
        key = self.key_for(frame_name)
        if key is not None:
            return list(self.frames[key])
        return None if self.default is None else list(self.default)

    def unmatched(self, every: Sequence[str], these: Sequence[str]) -> tuple[list[str], list[str]]:
        """(the frames of ``these`` this file says nothing of: no key, no default; its keys when none of them
        names a frame of ``every``): a file written for other frame names is reported, not silently bypassed. A
        file that covers more frames than the folder holds (a whole shot, a folder of part of it) is not."""
        unlisted = [] if self.default is not None else [f for f in these if self.key_for(f) is None]
        matched = any(self.key_for(f) is not None for f in every)
        return unlisted, [] if matched else list(self.frames)


def load_faces_json(path: str | Path) -> FacesFile:
    """Read and validate a faces.json file. Any problem raises InputError(path, reason naming the key/field)."""
    path = Path(path)
    text = read_text_input(path, "faces file", "a JSON object")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(path, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise InputError(path, "JSON nested too deeply (a faces file is an object of lists of faces)") from None
    except ValueError as err:  # an integer past Python's digit limit
        raise InputError(path, f"not JSON a faces file can hold: {str(err).splitlines()[0][:120]}") from None
    return parse_faces_doc(doc, path)


def parse_faces_doc(doc: Any, path: str | Path) -> FacesFile:
    """Validate an already-decoded faces.json document (``path`` is only used in error messages)."""
    path = Path(path)
    if not isinstance(doc, dict):
        raise InputError(path, f"top level must be a JSON object, got {_json_type(doc)}")
    unknown = sorted(set(doc) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise InputError(path, f"unknown top-level key {unknown[0]!r} (allowed: {', '.join(TOP_LEVEL_KEYS)})")
    version = doc.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise InputError(path, f"'version' is {version!r}; this reader understands version {SCHEMA_VERSION}")
    if "frames" not in doc and "default" not in doc:
        raise InputError(path, "needs a 'frames' object and/or a 'default' entry")
    default = None
    if "default" in doc:
        default = _parse_face_list(doc["default"], "default", path)
    frames: dict[str, tuple[Face, ...]] = {}
    raw_frames = doc.get("frames", {})
    if not isinstance(raw_frames, dict):
        raise InputError(path, f"'frames' must be an object mapping frame file names to faces, got {_json_type(raw_frames)}")
    for key, value in raw_frames.items():
        if not key.strip():
            raise InputError(path, "frames: empty frame name as a key")
        frames[key] = _parse_face_list(value, f"frames[{key!r}]", path)
    return FacesFile(path=path, frames=frames, default=default)


def _parse_face_list(value: Any, where: str, path: Path) -> tuple[Face, ...]:
    if isinstance(value, dict):  # one face may be given without the list
        return (_parse_face(value, where, path),)
    if not isinstance(value, list):
        raise InputError(path, f"{where}: expected a list of faces (objects with 'box' and/or 'landmarks'), got {_json_type(value)}")
    return tuple(_parse_face(item, f"{where}[{i}]", path) for i, item in enumerate(value))


def _parse_face(value: Any, where: str, path: Path) -> Face:
    if not isinstance(value, dict):
        raise InputError(path, f"{where}: a face must be an object with 'box' and/or 'landmarks', got {_json_type(value)}")
    unknown = sorted(set(value) - set(FACE_KEYS))
    if unknown:
        raise InputError(path, f"{where}: unknown key {unknown[0]!r} (allowed: box, landmarks)")
    if "box" not in value and "landmarks" not in value:
        raise InputError(path, f"{where}: a face needs 'box' [x, y, w, h] and/or 'landmarks' (5 or 68 [x, y] points)")
    landmarks = None
    if "landmarks" in value:
        landmarks = _parse_landmarks(value["landmarks"], f"{where}.landmarks", path)
    if "box" in value:
        box = _parse_box(value["box"], f"{where}.box", path)
    else:
        assert landmarks is not None
        box = box_from_landmarks(landmarks)
    return Face(box=box, landmarks=landmarks, score=1.0, source="given")


def _parse_box(value: Any, where: str, path: Path) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        got = f"{len(value)} items" if isinstance(value, list) else _json_type(value)
        raise InputError(path, f"{where}: expected 4 numbers [x, y, w, h], got {got}")
    nums = [_number(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
    if nums[2] < MIN_BOX_SIDE or nums[3] < MIN_BOX_SIDE:
        raise InputError(path, f"{where}: width and height must be at least {MIN_BOX_SIDE:g} pixel, "
                               f"got w={nums[2]:g} h={nums[3]:g}")
    return (nums[0], nums[1], nums[2], nums[3])


def _parse_landmarks(value: Any, where: str, path: Path) -> Array:
    counts = " or ".join(str(c) for c in LANDMARK_COUNTS)
    if not isinstance(value, list) or len(value) not in LANDMARK_COUNTS:
        got = f"{len(value)} points" if isinstance(value, list) else _json_type(value)
        raise InputError(path, f"{where}: expected {counts} [x, y] points, got {got}")
    pts = np.empty((len(value), 2), dtype=np.float64)
    for i, point in enumerate(value):
        if not isinstance(point, list) or len(point) != 2:
            raise InputError(path, f"{where}[{i}]: expected a point [x, y], got {point!r}"[:200])
        pts[i] = [_number(point[0], f"{where}[{i}][0]", path), _number(point[1], f"{where}[{i}][1]", path)]
    return pts


def _number(value: Any, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(path, f"{where}: expected a number, got {_json_type(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        shown = value if isinstance(value, float) else f"an integer of {len(str(abs(value)))} digits"
        raise InputError(path, f"{where}: expected a finite number of pixels, got {shown}")
    if abs(number) > COORDINATE_LIMIT:
        raise InputError(path, f"{where}: {number:g} px is beyond any frame (limit +-{COORDINATE_LIMIT} px)")
    return number


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name if kind is not str else f"a string {value!r}"[:80]
    return "a number" if isinstance(value, (int, float)) else type(value).__name__
