"""Per-expression gains that carry a render-trained edit over to photographs of people, read from the model file.

The regression stage is the least-squares edit of the training renders, and on renders (of every look measured) it is
the closest to the true expression. On a photograph it is not what a person's expression looks like: its paint,
learnt on renders, shows as colour patches and a smeared mouth (docs/experiments/PAINT_FREE_PHOTOS.md), and a
rendered smile's squint costs a person's likeness. A model file may therefore carry gains for photographs
(``--subject photo``), per expression (metadata key ``reggan.paste_gains``, JSON ``{"photo": {"happy": {"motion":
[gx, gy], "paint": p, "upper": u, "flow": [[[dx, dy], ...], ...]}}}``, each optional):

- ``motion``: the motion's sideways and upward parts scaled, on the edited crop before paste-back (the paint stays
  where it was painted: the edit is the input moved by the new motion plus the old paint);
- ``paint``: the whole paint scaled (at 0 the edit is the input moved by the motion alone, the photograph's own skin
  and lips: a render-learnt paint on a photograph's mouth and cheeks is a smear and colour patches); what it leaves
  out comes back where the lips open, which no pixel of the photograph can fill (`reggan_plugin.edit.chain.lips_whole`);
- ``upper``: the whole edit (motion and paint) outside the lower face scaled (``LOWER_FACE``: the ellipse training can
  bound an expression to; a rendered smile's eye squint costs a person's likeness);
- ``flow``: a motion added to the model's on the lower face, at full intensity, crop px on a G x G control grid
  (bicubic to the crop, `flow_field`): what people's own expressions move beyond the rendered one, fitted on paired
  photographs (`training.photo_motion`: a rendered smile bends closed lips into a U, a person's widens them).

``teeth`` and ``rest_paint`` keys, which older model files carry (a smile's drawn teeth; the paint outside an ellipse
about the mouth scaled, which the whole paint's gain made unnecessary), are read and ignored.

An expression mix takes each expression's gains in proportion to its weight. Renders (the default subject), and a
model without gains for the subject, are edited as fitted. The bundled model's gains and how they were chosen:
MODEL_CARD.md, docs/PHOTO_GAINS.md.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..arrays import Array, FloatArray
from ..artifact import ModelArtifact
from ..errors import ModelError
from ..geometry.resample import WarpMode, moved_crop
from ..tuning import ELLIPSE_SOFTNESS, LOWER_FACE

METADATA_KEY = "reggan.paste_gains"
MAX_FLOW_PX = 64.0  # a flow's bound, crop px: beyond any expression's motion

GainTable = dict[str, dict[str, "Gains"]]  # subject -> expression -> gains


@dataclass(frozen=True)
class Gains:
    motion: tuple[float, float] = (1.0, 1.0)
    paint: float = 1.0
    upper: float = 1.0
    flow: tuple[float, ...] = ()  # a G x G x 2 control grid, row-major, crop px; () none

    @property
    def grid(self) -> FloatArray | None:
        """``flow`` as a G x G x 2 array, or None."""
        if not self.flow or not any(self.flow):
            return None
        side = int(round(math.sqrt(len(self.flow) / 2)))
        return np.asarray(self.flow, np.float32).reshape(side, side, 2)

    @property
    def is_identity(self) -> bool:
        return (self.motion, self.paint, self.upper) == (Gains.motion, Gains.paint, Gains.upper) and self.grid is None

    def partly(self, weight: float) -> Gains:
        """Each gain's departure from 1 times ``weight`` (0: the edit as fitted; 1: these gains)."""
        def part(v: float) -> float:
            return 1.0 + weight * (v - 1.0)

        return Gains(motion=(part(self.motion[0]), part(self.motion[1])), paint=part(self.paint),
                     upper=part(self.upper), flow=tuple(weight * v for v in self.flow))


def parse_gains(path: Path, text: str) -> GainTable:
    """The metadata value -> gains per subject and expression; a ModelError naming the file and the key when it is
    malformed or out of bounds. An old file's ``teeth`` and ``rest_paint`` keys are ignored, as is any other unknown
    key."""
    def gains(g: Mapping[str, Any]) -> Gains:
        gx, gy = g.get("motion", (1.0, 1.0))
        flow = np.asarray(g.get("flow", []), np.float64)
        if flow.size and (flow.ndim != 3 or flow.shape[0] != flow.shape[1] or flow.shape[2] != 2):
            raise ValueError(f"flow of shape {flow.shape}")
        return Gains(motion=(float(gx), float(gy)), paint=float(g.get("paint", 1.0)), upper=float(g.get("upper", 1.0)),
                     flow=tuple(float(v) for v in flow.ravel()))

    try:
        table = {str(subject): {str(name): gains(g) for name, g in by_expression.items()}
                 for subject, by_expression in json.loads(text).items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise ModelError(path, f"bad metadata {METADATA_KEY}={text[:200]!r}: not JSON of the form "
                               '{"photo": {"happy": {"motion": [gx, gy], "paint": p, "upper": u, '
                               '"flow": [[[dx, dy], ...], ...]}}}') from None
    for subject, by_expression in table.items():
        for name, g in by_expression.items():
            values = (*g.motion, g.paint, g.upper)
            if not all(np.isfinite(v) and 0.0 <= v <= 10.0 for v in values):
                raise ModelError(path, f"bad metadata {METADATA_KEY}: {subject} {name}'s gains must lie in [0, 10], "
                                       f"got {values}")
            if not all(np.isfinite(v) and abs(v) <= MAX_FLOW_PX for v in g.flow):
                raise ModelError(path, f"bad metadata {METADATA_KEY}: {subject} {name}'s flow must be finite and "
                                       f"within {MAX_FLOW_PX} px")
    return table


def model_gains(artifact: ModelArtifact, subject: str) -> dict[str, Gains]:
    """The gains a model file carries for ``subject`` (none: an empty mapping)."""
    text = artifact.metadata.get(METADATA_KEY)
    return {} if text is None else parse_gains(artifact.path, text).get(subject, {})


def dump_gains(table: Mapping[str, Mapping[str, Gains]]) -> str:
    """The metadata value for ``table`` (the inverse of `parse_gains`)."""
    def entry(g: Gains) -> dict[str, Any]:
        grid = g.grid
        return {"motion": list(g.motion), "paint": g.paint, "upper": g.upper,
                **({} if grid is None else {"flow": np.round(grid.astype(np.float64), 4).tolist()})}

    return json.dumps({subject: {name: entry(g) for name, g in sorted(by_expression.items())}
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

    flows = [(float(w), grid) for name, w in zip(expressions, weights)
             if name in gains and w and (grid := gains[name].grid) is not None]
    flow: tuple[float, ...] = ()
    if flows:
        if len({grid.shape for _, grid in flows}) > 1:
            raise ValueError("the expressions' flows lie on control grids of different sizes")
        total = np.zeros_like(flows[0][1])
        for w, grid in flows:
            total += w * grid
        flow = tuple(float(v) for v in total.ravel())
    return Gains(motion=(blend("motion", 0), blend("motion", 1)), paint=blend("paint"), upper=blend("upper"),
                 flow=flow)


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


def flow_field(grid: Array, lower: Array) -> FloatArray:
    """SxSx2 crop px: a G x G x 2 control grid bicubic to the crop (OpenCV's resize: pixel centres at half steps, edges
    replicated), on the lower face (``lower``: `lower_face`) alone."""
    size = lower.shape[0]
    field: FloatArray = (cv2.resize(np.asarray(grid, np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
                         * lower[..., None]).astype(np.float32)
    return field


def calibrated(crops_in: Array, edited: Array, gains: Gains, lower: Array, warp: WarpMode = "bilinear",
               intensity: float = 1.0) -> tuple[Array, Array | None]:
    """``edited`` [n,S,S,5] (the edit's RGB, then its motion, as `crop_inference.edit_crops` gives them) of ``crops_in``
    [n,S,S,3] with ``gains``' motion, paint, upper face and flow (``lower``: `lower_face`; the flow times
    ``intensity``, as the model's own motion), the crops moved by ``warp`` (the model's kernel): a new array, or
    ``edited`` itself where they change nothing; and [n,S,S,3] the paint ``gains.paint`` left out (None where it
    leaves out none): where the lips open a gap the photograph has no pixels to move into, the paste shows it
    (`reggan_plugin.edit.chain.lips_whole`)."""
    if gains.is_identity or not len(edited):
        return edited, None
    out = edited.copy()
    withheld = np.empty_like(out[..., :3]) if gains.paint != 1.0 else None
    region = (lower + gains.upper * (1.0 - lower))[..., None]
    grid = gains.grid
    added = 0.0 if grid is None else intensity * flow_field(grid, lower)
    for i, (crop_in, new) in enumerate(zip(crops_in, out)):
        motion = new[..., 3:]
        paint = new[..., :3] - moved_crop(crop_in, motion, warp)
        motion *= np.asarray(gains.motion, np.float32) * region
        motion += added
        new[..., :3] = moved_crop(crop_in, motion, warp) + gains.paint * region * paint
        if withheld is not None:
            withheld[i] = (1.0 - gains.paint) * paint
    return out, withheld
