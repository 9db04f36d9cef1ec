"""Pairs cropped the way the runtime crops a face it located itself.

A face given as a box alone (another tool's box, a head bone, a mesh's bounds) is aligned on the landmarks the
runtime's detector finds inside it (``reggan_plugin.faces.refine``). Those differ from the renders' own landmarks
by a few percent of the crop, and not at random: on renders the detector's mouth sits about 1% of the crop higher
than the mouth corners' midpoint. A map fitted on crops aligned on the true landmarks alone meets such a crop as a
face it never saw; fitted on these copies too, it has seen both alignments. The solver crops them on the
detector's own points, before the runtime's registration (``reggan_plugin.faces.register``) takes part of the
offset back.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from reggan_plugin.geometry.align import crop_matrix_from_landmarks
from reggan_plugin.geometry.resample import warp_to_crop

from .dataset import PairedFaces
from .landmarks import Detector


def detector_aligned(data: PairedFaces, indices: Tensor, detect: Detector) -> tuple[Tensor, Tensor]:
    """(neutral, target) [B, 3, S, S] in [-1, 1] of the pairs ``indices``, each cropped from its cached crop on the
    5 points ``detect`` finds in the neutral (one transform for the pair, as the runtime uses one for the frame);
    the central crop where it finds no face."""
    size = data.size
    matrices: dict[int, np.ndarray | None] = {}
    xs, ts = [], []
    central = data.batch(indices)
    for k, i in enumerate(indices.tolist()):
        n = int(data.pair_neutral[i])
        neutral = data.neutral[n].permute(1, 2, 0).cpu().numpy()
        if n not in matrices:
            points = detect(neutral)
            matrices[n] = None if points is None else crop_matrix_from_landmarks(points, size)
        m = matrices[n]
        if m is None:
            xs.append(central[0][k])
            ts.append(central[1][k])
            continue
        target = data.target[i].permute(1, 2, 0).cpu().numpy()
        for image, out in ((neutral, xs), (target, ts)):
            crop = warp_to_crop(image, m, size) / 127.5 - 1.0
            out.append(torch.from_numpy(crop).permute(2, 0, 1).to(central[0].device))
    return torch.stack(xs).float(), torch.stack(ts).float()
