"""Where a face crop shows the head, and the face above its jaw: the edit is kept there, so it never drags the
backdrop into a cheek, a cheek into the backdrop, or the neck along with a dropping chin.

On a head turned from the camera the aligned crop's far side is background. The expression model, which sees a
face crop and not where the head ends, paints and moves those pixels as cheek: a ghost of the old outline, a wavy
silhouette, a smear of the backdrop. A small U-Net (``models/coverage.onnx``, fitted by ``training/coverage.py`` on
renders of turned heads, whose alpha is the head's coverage) predicts the head's coverage of the crop; each face's
paste mask is scaled by it where a pixel lies and where the motion reads it from (`kept_on_the_head`).

An opening jaw passes in front of the neck. The model's motion is smooth across the jaw line (its mean flow lies on a
16 x 16 grid), so below the chin it stretches the neck, and on a turned head the backdrop between chin and shoulder,
down with the jaw. The same U-Net predicts the face layer, the head above its jaw line, and a pixel keeps the edit
only where its motion reads that layer: the chin moves over the neck, and the neck it leaves uncovered stays as it
was.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..arrays import Array
from ..backends.cpu import create_session, session_options
from ..errors import ModelError
from ..geometry.resample import sample
from ..tuning import CORE_RADII, CORE_TRUST, HOLE_LEVEL, JAW_MARGIN
from .blend import template_ellipse

COVERAGE_PATH = Path(__file__).parents[1] / "models" / "coverage.onnx"
INPUT, OUTPUT, FACE = "crop", "coverage", "face"


class FaceCoverage:
    """The coverage model in onnxruntime on the CPU (a few milliseconds a face): crops -> where the head is, and
    which of it is the face above the jaw."""

    def __init__(self, path: Path = COVERAGE_PATH) -> None:
        if not path.is_file():
            raise ModelError(path, "the face coverage model is missing: reinstall reggan-plugin")
        options = session_options()
        options.intra_op_num_threads = 1  # a small network: threads cost more than they give
        self.session = create_session(str(path), ["CPUExecutionProvider"], options)
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT] or [o.name for o in self.session.get_outputs()] != [OUTPUT, FACE]:
            raise ModelError(path, f"not a coverage model: needs input {INPUT!r} and outputs {OUTPUT!r}, {FACE!r}")
        self.size = int(inputs[0].shape[1])

    def __call__(self, crops: Array) -> tuple[Array, Array]:
        """[n, S, S, 3] float32 sRGB [0, 1] face crops (any S) -> the head's coverage and the face layer grown by
        `JAW_MARGIN`, each [n, S, S] float32 in [0, 1]. A crop whose head the model does not find is covered
        everywhere, and its face layer with it."""
        n, size = crops.shape[0], crops.shape[1]
        if n == 0:
            empty = np.zeros((0, size, size), np.float32)
            return empty, empty
        x = crops if size == self.size else np.stack([cv2.resize(c, (self.size, self.size), interpolation=cv2.INTER_AREA)
                                                       for c in crops])
        maps = self.session.run([OUTPUT, FACE], {INPUT: np.ascontiguousarray(x, np.float32)})
        if size != self.size:
            maps = [np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in out]) for out in maps]
        maps = [np.clip(out, 0.0, 1.0).astype(np.float32) for out in maps]
        core = _core(size)
        trusted = [bool(c[core].mean() >= CORE_TRUST) for c in maps[0]]
        heads = np.stack([without_holes(c) if t else np.ones_like(c) for c, t in zip(maps[0], trusted)])
        grow = max(1, round(JAW_MARGIN * size / 128))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        faces = np.stack([cv2.dilate(without_holes(f), kernel) if t else np.ones_like(f)
                          for f, t in zip(maps[1], trusted)])
        return heads, faces


def _core(size: int) -> Array:
    """S x S bool: the face's core, between the eyes and the mouth, on the head in any pose the landmarks fit."""
    return template_ellipse(size, None, (0, 1, 2, 3, 4), CORE_RADII, feather=0.01) > 0


def without_holes(coverage: Array) -> Array:
    """``coverage`` (S x S) with what it leaves uncovered inside the head covered: a head has no holes. Fitted on
    renders, the model leaves spots at a photograph's dark pupils or nostrils; only the part of the crop that the
    border reaches without crossing the head (the backdrop and the silhouette's soft edge) is left as predicted."""
    open_ = np.pad((coverage < HOLE_LEVEL).astype(np.uint8), 1, constant_values=1)  # a frame: the border
    _, labels = cv2.connectedComponents(open_, connectivity=4)
    enclosed = (open_ == 1) & (labels != labels[0, 0])
    return np.where(enclosed[1:-1, 1:-1], 1.0, coverage).astype(np.float32)


def kept_on_the_head(mask: Array, coverage: Array, motion: Array | None, face: Array | None = None) -> Array:
    """``mask`` (S x S) scaled by the head's ``coverage`` at each pixel and, with a ``motion`` (S x S x 2 crop px: the
    pixel draws on the crop at its place plus the motion), at the pixel it draws on: nothing of the backdrop is
    moved onto the head, nor the head onto the backdrop. With the ``face`` layer, scaled by it where the pixel draws
    too: the chin moves over the neck, and nothing below the jaw moves."""
    kept = mask * coverage
    if motion is None:
        return (kept if face is None else kept * face).astype(np.float32)
    s = mask.shape[0]
    gy, gx = np.mgrid[0:s, 0:s].astype(np.float32)
    for layer in (coverage,) if face is None else (coverage, face):
        kept *= sample(layer[..., None], gx + motion[..., 0], gy + motion[..., 1])[..., 0]
    return kept.astype(np.float32)
