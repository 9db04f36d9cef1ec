"""Crops through a model in batches (`edit_crops`), and one picture's edited crops (`EditedCrops`): the change the
network makes, applied to the crops, with a dark face lifted into the model's range for the pass."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..arrays import Array
from ..backends import Backend
from .face_level import lift_gains, lifted, scaled_back
from .interior import Inside


class EditedCrops(NamedTuple):
    """One picture's edited crops ([n,S,S,3 or 5], as `ExpressionRenderer.forward`) and what the edit draws into its
    mouths (`reggan_plugin.edit.interior`)."""

    faces: Array
    interior: Inside | None = None
    photo: float = 0.0  # the share of the model's gains for photographs its faces took (reggan_plugin.edit.subject)
    withheld: Array | None = None  # [n,S,S,3]: the paint those gains left out, shown where the lips open (.calibration)


def edit_crops(backend: Backend, weights: Array, crops: Array, intensity: float | Array, batch: int,
               outputs: tuple[str, ...], lift: Array | None = None) -> Array:
    """crops [n,S,S,3] float32 sRGB [0,1] through a model in batches -> [n,S,S,3], or [n,S,S,5] with the motion
    (``outputs``: the edited image's name, then the motion's when there is one). ``weights``: [E] for every crop or
    [n,E], a mix per crop; ``intensity``: one for every crop or [n]. A face darker than the model's range is edited
    brought up into it (``lift``: each crop's linear gain, by default `face_level.lift_gains` of its own)."""
    lift = lift_gains(crops) if lift is None else lift
    source = lifted(crops, lift)
    weights = np.asarray(weights, np.float32)
    per_crop = np.broadcast_to(weights, (len(crops), weights.shape[-1]))
    alphas = np.broadcast_to(np.asarray(intensity, np.float32), (len(crops),))
    out = np.empty((*crops.shape[:3], 3 + 2 * (len(outputs) - 1)), np.float32)
    step = max(1, batch)
    for start in range(0, len(crops), step):
        chunk = source[start : start + step]
        n = len(chunk)
        image = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), np.float32) * 2 - 1
        result = backend.run(image, np.ascontiguousarray(per_crop[start : start + n]),
                             np.ascontiguousarray(alphas[start : start + n]), outputs=outputs)
        # The change, not the output, goes back: where the model changes nothing (intensity 0)
        # the crop comes back bit-identical.
        out[start : start + n, ..., :3] = chunk + (np.clip(result[outputs[0]], -1, 1) - image).transpose(0, 2, 3, 1) / 2
        if len(outputs) > 1:
            out[start : start + n, ..., 3:] = result[outputs[1]].transpose(0, 2, 3, 1)
    out[..., :3] = scaled_back(crops, source, out[..., :3], lift)
    return out
