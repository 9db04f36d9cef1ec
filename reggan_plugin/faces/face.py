"""The `Face` record shared by every way of locating a face, and small helpers on it.

Conventions: points are (x, y) pixels with pixel CENTRES at integer coordinates
(the centre of pixel (0, 0) is x=0, y=0). Boxes are (x, y, w, h) float pixels in pixel-INDEX terms: the
integer box (x, y, w, h) covers columns x..x+w-1 and rows y..y+h-1, so its edges lie at x-0.5 and
x+w-0.5 in point coordinates, and the whole W x H image is (0, 0, W, H). Half a pixel rarely matters
for a box, but it keeps boxes and points from drifting apart when one is derived from the other.

Landmarks come in two layouts:
- 5 points, in the order of ``reggan_plugin.geometry.align.CANONICAL_5PT``: left eye, right eye, nose tip,
  left mouth corner, right mouth corner. "Left" is the IMAGE left (the subject's right eye), as in the
  iBUG 68-point and ArcFace 5-point conventions.
- 68 points, iBUG 300-W order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

import numpy as np

from ..arrays import Array, Float64Array

FaceSource = Literal["given", "detector", "region", "whole"]
FACE_SOURCES: tuple[str, ...] = get_args(FaceSource)

Box = tuple[float, float, float, float]
"""(x, y, w, h) in pixels, float; (x, y) is the top-left corner."""

Landmarks: TypeAlias = Float64Array
"""float64 (K, 2) array of (x, y) pixel positions, K = 5 or 68, read-only."""

LANDMARK_COUNTS = (5, 68)


@dataclass(frozen=True)
class Face:
    """One located face.

    box: (x, y, w, h) pixels. landmarks: (5, 2) or (68, 2) float64 pixels, or None when only a box is
    known. score: detector confidence in [0, 1] (1.0 for given faces, regions and the whole image).
    source: how the face was found, in order of trust: 'given' (faces.json / the caller),
    'detector', 'region' (--region), 'whole' (the whole image).
    """

    box: Box
    landmarks: Landmarks | None = None
    score: float = 1.0
    source: FaceSource = "given"

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box)
        if len(box) != 4 or not all(np.isfinite(box)):
            raise ValueError(f"Face.box must be 4 finite numbers (x, y, w, h), got {self.box!r}")
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"Face.box must have positive width and height, got {box!r}")
        object.__setattr__(self, "box", box)
        if self.landmarks is not None:
            pts = np.array(self.landmarks, dtype=np.float64)  # copy: the caller keeps theirs
            if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] not in LANDMARK_COUNTS:
                raise ValueError(f"Face.landmarks must have shape (5, 2) or (68, 2), got {pts.shape}")
            if not np.isfinite(pts).all():
                raise ValueError("Face.landmarks must be finite")
            pts.setflags(write=False)
            object.__setattr__(self, "landmarks", pts)
        if self.source not in FACE_SOURCES:
            raise ValueError(f"Face.source must be one of {FACE_SOURCES}, got {self.source!r}")
        object.__setattr__(self, "score", float(self.score))

    # Arrays make the generated __eq__/__hash__ useless; compare values instead.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Face):
            return NotImplemented
        if (self.box, self.score, self.source) != (other.box, other.score, other.source):
            return False
        if self.landmarks is None or other.landmarks is None:
            return self.landmarks is None and other.landmarks is None
        return bool(np.array_equal(self.landmarks, other.landmarks))

    def __hash__(self) -> int:
        pts = None if self.landmarks is None else self.landmarks.tobytes()
        return hash((self.box, pts, self.score, self.source))

    @property
    def center(self) -> tuple[float, float]:
        """The box centre as a point (pixel-centre coordinates)."""
        x, y, w, h = self.box
        return (x + w / 2.0 - 0.5, y + h / 2.0 - 0.5)

    def landmarks5(self) -> Landmarks | None:
        """The 5-point layout (see module docstring), converting 68 points if needed; None without landmarks."""
        if self.landmarks is None:
            return None
        if self.landmarks.shape[0] == 5:
            return self.landmarks
        return landmarks68_to_5(self.landmarks)


def landmarks68_to_5(pts68: Array) -> Float64Array:
    """iBUG 68 points -> 5 points: eye centres (mean of each eye's 6 points), nose tip (30), mouth corners (48, 54)."""
    pts68 = np.asarray(pts68, dtype=np.float64)
    if pts68.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {pts68.shape}")
    out: Float64Array = np.stack(
        [pts68[36:42].mean(axis=0), pts68[42:48].mean(axis=0), pts68[30], pts68[48], pts68[54]]
    )
    out.setflags(write=False)
    return out


def box_from_landmarks(pts: Array) -> Box:
    """A face box that contains the face for the given landmarks.

    68 points: the points' bounding box, raised by 25% of its height to take in the forehead
    (iBUG points stop at the brows). 5 points: a square centred between eyes and mouth, 2.2x the
    eye-to-mouth distance wide (a BlazeFace-like box: brows to chin, cheek to cheek).
    """
    pts = np.asarray(pts, dtype=np.float64)
    if pts.shape[0] == 68:
        x0, y0 = pts.min(axis=0)  # the box covers the pixels under the extreme points
        x1, y1 = pts.max(axis=0) + 1.0
        grow = 0.25 * (y1 - y0)
        return (float(x0), float(y0 - grow), float(x1 - x0), float(y1 - y0 + grow))
    eyes = (pts[0] + pts[1]) / 2.0
    mouth = (pts[3] + pts[4]) / 2.0
    scale = max(float(np.linalg.norm(mouth - eyes)), float(np.linalg.norm(pts[1] - pts[0])) * 0.8, 1.0)
    side = 2.2 * scale
    cx, cy = (eyes + mouth) / 2.0 + 0.5
    return (float(cx - side / 2), float(cy - side / 2), float(side), float(side))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    iw = min(ax0 + aw, bx0 + bw) - max(ax0, bx0)
    ih = min(ay0 + ah, by0 + bh) - max(ay0, by0)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / (aw * ah + bw * bh - inter))
