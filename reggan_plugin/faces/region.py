"""User boxes (``--region X,Y,W,H``) and the whole image as a face."""
from __future__ import annotations

import math

from reggan_plugin.errors import UsageError
from reggan_plugin.faces.face import Face


def parse_region(text: str) -> Face:
    """Parse ``"X,Y,W,H"`` (pixels, numbers, W and H > 0, X and Y >= 0) into a Face with source 'region'.

    The box covers columns X..X+W-1 and rows Y..Y+H-1. Whether it fits a frame is checked where the
    frame is known (see ``region_fits``). Raises UsageError with a one-line reason.
    """
    if not isinstance(text, str):
        raise UsageError(f"--region: expected a string 'X,Y,W,H', got {type(text).__name__}")
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or any(p == "" for p in parts):
        raise UsageError(f"--region {text!r}: expected four comma-separated numbers X,Y,W,H (pixels)")
    values: list[float] = []
    for name, part in zip("XYWH", parts):
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"--region {text!r}: {name}={part!r} is not a number") from None
        if not math.isfinite(value):
            raise UsageError(f"--region {text!r}: {name}={part!r} is not a finite number")
        values.append(value)
    x, y, w, h = values
    if x < 0 or y < 0:
        raise UsageError(f"--region {text!r}: X and Y must be >= 0 (top-left corner of the face box)")
    if w < 1 or h < 1:
        raise UsageError(f"--region {text!r}: W and H must be at least 1 pixel")
    return Face(box=(x, y, w, h), landmarks=None, score=1.0, source="region")


def region_fits(face: Face, height: int, width: int) -> bool:
    """True when the face box lies inside a height x width frame (at most half a pixel over)."""
    x, y, w, h = face.box
    return x >= -0.5 and y >= -0.5 and x + w <= width + 0.5 and y + h <= height + 0.5


def whole_image_face(height: int, width: int) -> Face:
    """The whole height x width image as one face (already-cropped faces, texture tiles); source 'whole'."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    return Face(box=(0.0, 0.0, float(width), float(height)), landmarks=None, score=1.0, source="whole")
