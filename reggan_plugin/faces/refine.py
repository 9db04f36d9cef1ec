"""A face box is a hint: find the face inside it, then align on its landmarks.

Boxes come in many conventions: a detector's brows-to-chin box, a game engine's head box, a head bone's
sphere, the bounds of an artist's vertex group, each shifted and scaled differently from the box the
model's crop template expects. Aligning by a box's centre and size puts the face where the model has
never seen one (an 8% shift and 15% scale took most expressions below doing nothing). So the detector
looks at a few square windows centred on the box, large enough that a face filling anything from a
tight box to a fifth of a head-sphere box is found, and the detected face whose centre lies inside
the (slightly grown) box gives the landmarks. Where no face is found (a texture map, a stylised face
the detector does not read) the box is used as given.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..arrays import Array, UInt8Array
from .detector import DetectorConfig, FaceDetector, Window
from .face import Face

HINT_WINDOWS: tuple[float, ...] = (1.0, 1.5, 2.3)
"""Window side / the box's longer side. 1.0 finds a face that fills about a head box (the model finds
faces of 0.15-0.9 of a window), 2.3 one that fills a tight brows-to-chin box."""
BOX_HINTS = DetectorConfig(register=True)
"""The detector that looks inside box hints: its points registered to the crop template (register.py). Under other
tools' boxes (five conventions, against the renders' own landmarks, `evaluate --perturb`) every expression stays
within 0.5 dB of the edit on true landmarks on six sets of held-out renders (docs/experiments/MODEL_NOTES.md). Whole pictures are not
registered (locate.TRACKING says why)."""
HINT_GROW = 0.25
"""A detected face counts as the hinted one when its centre lies inside the box grown by this fraction of
its size on each side (boxes from other tools are off-centre by up to about 10%)."""


def hint_windows(face: Face) -> list[Window]:
    """The detector windows (frame px) searched for the face that ``face.box`` hints at."""
    x, y, w, h = face.box
    cx, cy, side = x + w / 2.0, y + h / 2.0, max(w, h)
    return [(int(round(cx - s / 2.0)), int(round(cy - s / 2.0)), max(int(round(s)), 8))
            for s in (side * k for k in HINT_WINDOWS)]


def hint_region(faces: list[Face], height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the frame that ``refine_box_faces`` reads for these faces (clipped to the frame)."""
    windows = [win for face in faces for win in hint_windows(face)]
    if not windows:
        return slice(0, 0), slice(0, 0)
    x0 = max(min(wx for wx, _, _ in windows), 0)
    y0 = max(min(wy for _, wy, _ in windows), 0)
    x1 = min(max(wx + s for wx, _, s in windows), width)
    y1 = min(max(wy + s for _, wy, s in windows), height)
    return slice(y0, max(y1, y0)), slice(x0, max(x1, x0))


def needs_refining(face: Face) -> bool:
    """Faces located by a box alone (no landmarks), except the whole picture (a crop or a texture map)."""
    return face.landmarks is None and face.source != "whole"


def refine_box_face(rgb: Array, face: Face, detector: FaceDetector, origin: tuple[int, int] = (0, 0)) -> Face:
    """``face`` with the landmarks of the face found inside its box, or ``face`` itself when none is.

    rgb: HxWx3 uint8 or float32 sRGB [0, 1], the part of the frame that starts at frame pixel
    ``origin`` = (x, y) (see ``hint_region``); the returned face is in frame pixels and keeps its source.
    """
    if not needs_refining(face):
        return face
    ox, oy = origin
    windows = [(wx - ox, wy - oy, side) for wx, wy, side in hint_windows(face)]
    # Every window is resampled to the detector's input: a large face is looked at in a copy of the region shrunk
    # once (each window still at least the input's size), not by resampling each big window from full resolution.
    factor = max(1, min(side for _, _, side in windows) // detector.spec.input_size)
    if factor > 1:
        array = np.asarray(rgb)
        if array.dtype == np.uint8 and array.shape[2] == 4:  # shrunk as stored; alpha as padding (RGBX), since
            # RGBA would be premultiplied and back, two more passes over the region
            rgbx = np.ascontiguousarray(array)
            shape = (rgbx.shape[1], rgbx.shape[0])
            image = _uint8(np.asarray(Image.frombuffer("RGBX", shape, rgbx, "raw", "RGBX", 0, 1).reduce(factor)))
        else:
            image = np.asarray(Image.fromarray(_uint8(array)).reduce(factor))
        windows = [(int(round(wx / factor)), int(round(wy / factor)), max(int(round(side / factor)), 8))
                   for wx, wy, side in windows]
    else:
        image = _uint8(rgb)
    found = detector.detect_windows(image, windows)
    if not len(found):
        return face
    x, y, w, h = face.box
    gx, gy = HINT_GROW * w, HINT_GROW * h
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2.0 * factor + np.array([ox, oy])
    inside = ((centres[:, 0] >= x - gx) & (centres[:, 0] <= x + w + gx)
              & (centres[:, 1] >= y - gy) & (centres[:, 1] <= y + h + gy))
    if not inside.any():
        return face
    best = int(np.argmax(np.where(inside, found.scores, -1.0)))
    chosen = found.take([best])
    if detector.config.refine_fractions:
        chosen = detector.refine(image, chosen)
    if not len(chosen) or chosen.scores[0] < detector.config.accept_score:
        return face
    local = detector.face(image, chosen, 0)
    assert local.landmarks is not None
    bx, by, bw, bh = (v * factor for v in local.box)  # box edges scale; points are pixel centres
    landmarks = (local.landmarks + 0.5) * factor - 0.5 + np.array([ox, oy])
    return Face(box=(bx + ox, by + oy, bw, bh), landmarks=landmarks, score=local.score, source=face.source)


def _uint8(rgb: Array) -> UInt8Array:
    array = np.asarray(rgb)[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
