"""Exposure normalisation: every face goes through the maps at one brightness.

Stage 1 holds a bias per pixel, so maps fitted on faces at their rendered brightness paint the same levels
into a face one stop darker: not exposure-equivariant. A model with an ``exposure_reference`` scales each crop's
linear light so that the mean luminance of its centre (the skin, eyes, nose and mouth of the canonical crop)
is the reference, runs on that, and scales the change back; its maps are fitted on pairs scaled the same way
(each target by its neutral's gain), so a stop under and the clean face reach the maps as the same crop.

Linear light is sRGB to the power 2.2 here, as in the evaluation's exposure perturbation, so a gain is a
plain multiplication of sRGB levels. The normalised crop is clipped to the network's range: a highlight that
the gain pushes past white reaches the maps as white and its change is zero.

The cost: a face's brightness is mostly its skin, not its exposure, and scaled away it no longer tells the maps
how dark lips and mouth should be; such maps edit well-exposed faces worse (docs/experiments/MODEL_NOTES.md, Limitations).
"""
from __future__ import annotations

import torch
from torch import Tensor

from reggan_plugin.imaging.tone import REC709_LUMA  # Rec. 709 weights of linear light

GAMMA = 2.2
CENTRE = (0.3, 0.7)  # the crop's central 40% in each direction: the face itself, no background or hair
MAX_STOPS = 3.0  # a gain beyond +-3 stops is a black or burnt-out crop, not an exposure to undo


def exposure_level(image: Tensor) -> Tensor:
    """[N,3,S,S] sRGB in [-1,1] -> [N]: the mean linear luminance of the crop's centre."""
    size = image.shape[-1]
    lo, hi = int(CENTRE[0] * size), int(CENTRE[1] * size)
    linear = ((image[:, :, lo:hi, lo:hi] + 1.0) / 2.0).clamp(0.0, 1.0) ** GAMMA
    luma = torch.as_tensor(REC709_LUMA, dtype=image.dtype, device=image.device)[None, :, None, None]
    return (linear * luma).sum(1).mean((1, 2))


def exposure_gain(image: Tensor, reference: float) -> Tensor:
    """[N,1,1,1]: the factor on sRGB levels that brings each crop's `exposure_level` to ``reference``."""
    ratio = (reference / exposure_level(image).clamp_min(1e-6)).clamp(2.0**-MAX_STOPS, 2.0**MAX_STOPS)
    return (ratio ** (1.0 / GAMMA))[:, None, None, None]


def normalise(image: Tensor, gain: Tensor) -> Tensor:
    """sRGB in [-1,1] with its levels scaled by ``gain`` [N,1,1,1], clipped to [-1,1]."""
    return ((image + 1.0) * gain - 1.0).clamp(-1.0, 1.0)


def normalised_pair(neutral: Tensor, target: Tensor, reference: float) -> tuple[Tensor, Tensor]:
    """A pair as the maps of a model with ``exposure_reference`` see it: both scaled by the neutral's gain."""
    gain = exposure_gain(neutral, reference)
    return normalise(neutral, gain), normalise(target, gain)
