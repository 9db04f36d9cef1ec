"""Pairs for a stage 1 with turn keys (`ModelConfig.turn_keys`): every pair and its mirror image, each given to the
keys about its turn with the weight linear interpolation gives it there; with tilt keys (`ModelConfig.tilt_keys`) each
pair's weights over them too, for the flows.

A pair's turn is its neutral's (`reggan_plugin.faces.turn.turn_of`, from the data's 68 landmarks; 0 where it has
none). A mirrored pair turns the other way by as much, so every key sees heads turned both ways and the two sides'
keys are fitted on the same people. Each key's fit is then a weighted fit (`PairedFaces.pair_weight`): pairs at the
key count fully, pairs halfway to the next key half. A mirror image tilts as far as its pair; a pair whose tilt is
unknown (no landmarks: the photographs) shares its weight evenly between the tilt keys, as the runtime gives a face
known by its box alone.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from reggan_plugin.faces.face import landmarks68_to_5
from reggan_plugin.faces.turn import Pose, pose_weights, tilt_weights, turn_of, turn_weights

from ..config import turn_key_name
from .dataset import PairedFaces

MIRRORED = "~mirrored"  # appended to a mirrored pair's identity


def neutral_turns(data: PairedFaces) -> np.ndarray:
    """[I] each identity's turn, from its neutral's landmarks (0 where the data gives none)."""
    points = data.neutral_points.numpy().astype(np.float64)
    return np.array([turn_of(landmarks68_to_5(p)) if np.isfinite(p).all() else 0.0 for p in points])


def pair_turn_weights(data: PairedFaces, keys: Sequence[float], tilt_keys: Sequence[float] = ()) -> torch.Tensor:
    """[P, K] each pair's weights over the turn keys, from its neutral's turn: what the runtime gives a face; with
    ``tilt_keys`` [P, K * T] over the pose keys, turn-major (`pose_weights`)."""
    turns = neutral_turns(data)[data.pair_neutral.numpy()]
    width = len(keys) * max(len(tilt_keys), 1)
    rows = [pose_weights(Pose(float(t), v), keys, tilt_keys) for t, v in zip(turns, _pair_tilts(data))]
    return torch.from_numpy(np.stack(rows).reshape(len(turns), width) if rows else np.zeros((0, width), np.float32))


def pair_tilt_weights(data: PairedFaces, tilt_keys: Sequence[float]) -> torch.Tensor:
    """[P, T] each pair's weights over the tilt keys, from its neutral's tilt (`tilt_weights`)."""
    rows = [tilt_weights(v, tilt_keys) for v in _pair_tilts(data)]
    return torch.from_numpy(np.stack(rows) if rows else np.zeros((0, len(tilt_keys)), np.float32))


def _pair_tilts(data: PairedFaces) -> list[float | None]:
    """Each pair's tilt, its neutral's; None where it is unknown."""
    return [None if np.isnan(v) else float(v) for v in data.neutral_tilt.numpy()[data.pair_neutral.numpy()]]


def turn_keyed(data: PairedFaces, keys: Sequence[float], only: int | None = None) -> PairedFaces:
    """``data`` with its mirror images, every pair given to each turn key about it (its expression named
    `turn_key_name`), weighted by the key's share of its turn; ``only``: the pairs of that key alone. The mirrored
    pairs' landmarks are unknown (NaN)."""
    turns = neutral_turns(data)[data.pair_neutral.numpy()]
    shares = np.stack([turn_weights(t, keys) for t in np.concatenate([turns, -turns])])  # [2P, K]: pairs, mirrors
    if only is not None:
        shares[:, np.arange(len(keys)) != only] = 0.0
    row, key = np.nonzero(shares)
    pair = torch.from_numpy(row % len(data))  # the pair each keyed row is, or is the mirror image of
    mirrored = torch.from_numpy(row >= len(data))
    out = copy.copy(data)
    out.expressions = tuple(turn_key_name(e, k) for e in data.expressions for k in range(len(keys)))
    out.neutral = torch.cat([data.neutral, data.neutral.flip(-1)])
    out.neutral_points = torch.cat([data.neutral_points, torch.full_like(data.neutral_points, float("nan"))])
    out.neutral_tilt = torch.cat([data.neutral_tilt, data.neutral_tilt])
    out.identities = data.identities + tuple(name + MIRRORED for name in data.identities)
    out.pair_neutral = data.pair_neutral[pair] + mirrored * len(data.neutral)
    out.target = data.target[pair.to(data.target.device)]
    flip = mirrored.to(out.target.device)
    out.target[flip] = out.target[flip].flip(-1)
    out.target_points = data.target_points[pair].masked_fill(mirrored[:, None, None], float("nan"))
    out.pair_expression = data.pair_expression[pair] * len(keys) + torch.from_numpy(key)
    out.pair_set = data.pair_set[pair]
    out.pair_weight = torch.from_numpy(shares[row, key].astype(np.float32))
    out.sample_weights = data.sample_weights[pair] * out.pair_weight
    return out
