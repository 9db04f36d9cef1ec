"""Landmark files beside face images, reduced to the 5 points of ``reggan_plugin.geometry.align.CANONICAL_5PT``.

Accepted sidecar files for an image ``DIR/NAME.EXT`` (first found wins):

- ``NAME.landmarks.json``: the synthetic renderer's format, ``{"points": [[x, y], ...]}`` with 68 (iBUG)
  or 5 points; a bare JSON list of points is accepted too.
- ``NAME.landmarks189.txt``: the WebMorph / Face Research Lab 189-point template (one ``x y`` per line),
  as shipped with the London set. Points used: 0 and 1 the pupils (image left, image right), the nose
  tip as the mean of 54 and 60 (the two sides of the tip, above the nostrils; 55 is the subnasale),
  87 and 93 the mouth corners. Found by plotting the indices on a London photo.
- ``NAME.landmarks.txt`` / ``NAME.pts``: 68 or 5 lines of ``x y`` (iBUG ``.pts`` header lines skipped).

All points are (x, y) pixels with pixel centres at integer coordinates (team convention).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from reggan_plugin.errors import InputError
from reggan_plugin.faces import DetectorConfig, landmarks68_to_5
from reggan_plugin.faces.locate import SharedDetector

WEBMORPH189_PUPILS = (0, 1)
WEBMORPH189_NOSE_TIP = (54, 60)
WEBMORPH189_MOUTH_CORNERS = (87, 93)

SIDECARS = (".landmarks.json", ".landmarks189.txt", ".landmarks.txt", ".pts")

Detector = Callable[[np.ndarray], "np.ndarray | None"]
"""rgb HxWx3 uint8 -> (5, 2) points or None: a fallback for images without a landmark file."""


def five_from_webmorph189(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (189, 2):
        raise ValueError(f"expected (189, 2) WebMorph points, got {pts.shape}")
    return np.stack([
        pts[WEBMORPH189_PUPILS[0]], pts[WEBMORPH189_PUPILS[1]],
        pts[list(WEBMORPH189_NOSE_TIP)].mean(0),
        pts[WEBMORPH189_MOUTH_CORNERS[0]], pts[WEBMORPH189_MOUTH_CORNERS[1]],
    ])


def to_five(points: np.ndarray, path: Path) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(path, f"landmarks must be a list of (x, y) pairs, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise InputError(path, "landmarks contain NaN or inf")
    if pts.shape[0] == 68:
        return landmarks68_to_5(pts)
    if pts.shape[0] == 189:
        return five_from_webmorph189(pts)
    if pts.shape[0] == 5:
        return pts
    raise InputError(path, f"expected 5, 68 or 189 landmarks, got {pts.shape[0]}")


def _read_text_points(path: Path) -> np.ndarray:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            continue  # .pts headers: "version: 1", "n_points: 68", "{", "}"
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            continue
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def read_landmark_file(path: Path) -> np.ndarray:
    """Any accepted sidecar -> (5, 2) float64 points. Raises InputError on a malformed file."""
    return to_five(_read_points(path), path)


def _read_points(path: Path) -> np.ndarray:
    """A sidecar's points as it lists them, (N, 2) float64."""
    try:
        if path.name.endswith(".json"):
            data = json.loads(path.read_text())
            points = data["points"] if isinstance(data, dict) else data
        else:
            points = _read_text_points(path)
        return np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"unreadable landmark file: {exc}") from None


def find_68_points(image: Path) -> np.ndarray | None:
    """The 68 points of ``image``'s sidecar (the renders write them: the face model's own vertices, projected),
    else None."""
    sidecar = sidecar_for(image)
    if sidecar is None:
        return None
    points = _read_points(sidecar)
    return points if points.shape == (68, 2) else None


def sidecar_for(image: Path) -> Path | None:
    stem = image.with_suffix("")
    for suffix in SIDECARS:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def find_five_points(image: Path, rgb: np.ndarray | None = None, detector: Detector | None = None) -> np.ndarray | None:
    """The 5 points of ``image``: from its sidecar file, else from ``detector`` (on ``rgb``), else None."""
    sidecar = sidecar_for(image)
    if sidecar is not None:
        return read_landmark_file(sidecar)
    if detector is not None and rgb is not None:
        found = detector(rgb)
        return None if found is None else to_five(found, image)
    return None


class LazyDetector:
    """``Detector`` backed by the runtime's BlazeFace (``reggan_plugin.faces.FaceDetector``, with ``config``),
    opened on first use: the best face's 5 points, or None. Used for images without a landmark file and for
    stage 1's detector-cropped copies."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self._detector = SharedDetector(config)
        self.calls = 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        self.calls += 1
        faces = self._detector.detect(rgb)
        return None if not faces or faces[0].landmarks is None else np.asarray(faces[0].landmarks, dtype=np.float64)
