"""Per-expression gains that carry a render-trained edit over to photographs of people, read from the model file.

The regression stage is the least-squares edit of the training renders, and on renders (of every look measured) it is
the closest to the true expression. On a photograph it is not what a person's expression looks like: a rendered
smile moves the mouth corners further apart and up than real smiles do (that motion is most of what a smile costs a
person's likeness, with the squint of its eyes). A model file may therefore carry gains for photographs (``--subject
photo``), per expression (metadata key ``reggan.paste_gains``, JSON ``{"photo": {"happy": {"motion": [gx, gy],
"rest_paint": r, "upper": u}}}``, each optional):

- ``motion``: the motion's sideways and upward parts scaled, on the edited crop before paste-back (the paint stays
  where it was painted: the edit is the input moved by the new motion plus the old paint);
- ``rest_paint``: the paint outside an ellipse about the mouth scaled (the folds and shading a render's light casts);
- ``upper``: the whole edit (motion and paint) outside the lower face scaled (``LOWER_FACE``: the ellipse training can
  bound an expression to; a rendered smile's eye squint costs a person's likeness).

A ``teeth`` key, which older model files carry (a smile's drawn teeth, since removed), is read and ignored.

An expression mix takes each expression's gains in proportion to its weight. Renders (the default subject), and a
model without gains for the subject, are edited as fitted. The bundled model's gains and how they were chosen:
MODEL_CARD.md, docs/PHOTO_GAINS.md.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Array, FloatArray
from ..artifact import ModelArtifact
from ..errors import ModelError
from ..geometry.resample import WarpMode, moved_crop
from ..tuning import (
    ELLIPSE_SOFTNESS,
    LOWER_FACE,
    REST_PAINT_MOUTH_DROP,
    REST_PAINT_MOUTH_FEATHER,
    REST_PAINT_MOUTH_RADII,
)
from .blend import template_ellipse

METADATA_KEY = "reggan.paste_gains"

GainTable = dict[str, dict[str, "Gains"]]  # subject -> expression -> gains


@dataclass(frozen=True)
class Gains:
    motion: tuple[float, float] = (1.0, 1.0)
    rest_paint: float = 1.0
    upper: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self == Gains()

    def partly(self, weight: float) -> Gains:
        """Each gain's departure from 1 times ``weight`` (0: the edit as fitted; 1: these gains)."""
        def part(v: float) -> float:
            return 1.0 + weight * (v - 1.0)

        return Gains(motion=(part(self.motion[0]), part(self.motion[1])), rest_paint=part(self.rest_paint),
                     upper=part(self.upper))


def parse_gains(path: Path, text: str) -> GainTable:
    """The metadata value -> gains per subject and expression; a ModelError naming the file and the key when it is
    malformed or out of bounds. An old file's ``teeth`` key is ignored, as is any other unknown key."""
    def gains(g: Mapping[str, Any]) -> Gains:
        gx, gy = g.get("motion", (1.0, 1.0))
        return Gains(motion=(float(gx), float(gy)), rest_paint=float(g.get("rest_paint", 1.0)),
                     upper=float(g.get("upper", 1.0)))

    try:
        table = {str(subject): {str(name): gains(g) for name, g in by_expression.items()}
                 for subject, by_expression in json.loads(text).items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise ModelError(path, f"bad metadata {METADATA_KEY}={text!r}: not JSON of the form "
                               '{"photo": {"happy": {"motion": [gx, gy], "rest_paint": r, "upper": u}}}') from None
    for subject, by_expression in table.items():
        for name, g in by_expression.items():
            values = (*g.motion, g.rest_paint, g.upper)
            if not all(np.isfinite(v) and 0.0 <= v <= 10.0 for v in values):
                raise ModelError(path, f"bad metadata {METADATA_KEY}: {subject} {name}'s gains must lie in [0, 10], "
                                       f"got {values}")
    return table


def model_gains(artifact: ModelArtifact, subject: str) -> dict[str, Gains]:
    """The gains a model file carries for ``subject`` (none: an empty mapping)."""
    text = artifact.metadata.get(METADATA_KEY)
    return {} if text is None else parse_gains(artifact.path, text).get(subject, {})


def dump_gains(table: Mapping[str, Mapping[str, Gains]]) -> str:
    """The metadata value for ``table`` (the inverse of `parse_gains`)."""
    return json.dumps({subject: {name: {"motion": list(g.motion), "rest_paint": g.rest_paint, "upper": g.upper}
                                 for name, g in sorted(by_expression.items())}
                       for subject, by_expression in sorted(table.items())})


def mixed(gains: Mapping[str, Gains], expressions: Sequence[str], weights: Array) -> Gains:
    """The gains of an expression mix (``weights`` over ``expressions``): each gain's departure from 1 in proportion
    to the weight of the expression that has it."""
    def blend(value: str, axis: int | None = None) -> float:
        total = 1.0
        for name, w in zip(expressions, weights):
            if name in gains and w:
                v = getattr(gains[name], value)
                total += float(w) * ((v if axis is None else v[axis]) - 1.0)
        return total

    return Gains(motion=(blend("motion", 0), blend("motion", 1)), rest_paint=blend("rest_paint"),
                 upper=blend("upper"))


def mouth_ellipse(size: int, template: Array | None) -> Array:
    """SxS [0, 1]: the ellipse about the mouth of a face crop of side ``size`` whose 5 points are ``template`` (crop
    units; None: ``align.CANONICAL_5PT``), outside which ``rest_paint`` scales the paint."""
    return template_ellipse(size, template, (3, 4), REST_PAINT_MOUTH_RADII, REST_PAINT_MOUTH_DROP,
                            feather=REST_PAINT_MOUTH_FEATHER)


def ellipse_region(size: int, ellipse: Sequence[float], softness: float = ELLIPSE_SOFTNESS) -> FloatArray:
    """SxS float32 soft ellipse mask: centre (cx, cy) and radii (rx, ry) as fractions of the crop, its edge
    ``softness`` wide in units of the normalised radius. Training's stage-1 region is this mask too."""
    cx, cy, rx, ry = (np.float32(v) for v in ellipse)
    u = (np.arange(size, dtype=np.float32) + np.float32(0.5)) / np.float32(size)
    distance = np.sqrt(((u[None, :] - cx) / rx) ** 2 + ((u[:, None] - cy) / ry) ** 2)
    region: FloatArray = (1.0 / (1.0 + np.exp(-(1.0 - distance) / np.float32(softness)))).astype(np.float32)
    return region


def lower_face(size: int) -> Array:
    """SxS [0, 1]: the lower face of a face crop of side ``size`` (``LOWER_FACE``), outside which ``upper`` scales the
    edit."""
    return ellipse_region(size, LOWER_FACE)


def calibrated(crops_in: Array, edited: Array, gains: Gains, mouth: Array, lower: Array, warp: WarpMode = "bilinear"
               ) -> Array:
    """``edited`` [n,S,S,5] (the edit's RGB, then its motion, as `crop_inference.edit_crops` gives them) of ``crops_in``
    [n,S,S,3] with ``gains``' motion, rest of the paint (``mouth``: `mouth_ellipse`) and upper face (``lower``:
    `lower_face`), the crops moved by ``warp`` (the model's kernel): a new array, or ``edited`` itself where they
    change nothing."""
    if gains.is_identity or not len(edited):
        return edited
    out = edited.copy()
    region = (lower + gains.upper * (1.0 - lower))[..., None]
    rest = (mouth + gains.rest_paint * (1.0 - mouth))[..., None] * region
    for crop_in, new in zip(crops_in, out):
        motion = new[..., 3:]
        paint = new[..., :3] - moved_crop(crop_in, motion, warp)
        motion *= np.asarray(gains.motion, np.float32) * region
        new[..., :3] = moved_crop(crop_in, motion, warp) + rest * paint
    return out
