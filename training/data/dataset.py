"""`PairedFaces`: aligned (neutral, target, expression index) pairs in the network range, in memory.

Built from the cached crops of one or more data folders (``cache.py``), restricted to one split by
identity (``split.py``). Items are ``(neutral [3,S,S], target [3,S,S], expression index)`` float32
sRGB in [-1, 1]; the index is into the model's expression list. ``batch`` draws a whole augmented
batch at once from a caller's generator (what the solver uses); ``__getitem__`` serves the torch
``Dataset`` protocol with a per-item seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from reggan_plugin.errors import InputError
from reggan_plugin.faces.face import landmarks68_to_5
from reggan_plugin.faces.turn import pose_of

from ..train_config import AugmentConfig
from .augment import augment_pairs, center_crop
from .cache import PairSet, cached_pairs
from .crop import CropGeometry
from .landmarks import Detector
from .layouts import scan_dataset
from .split import Split, split_of


@dataclass(frozen=True)
class DataSummary:
    name: str
    layout: str
    root: str
    identities: int
    pairs: int
    skipped: int


class PairedFaces(torch.utils.data.Dataset):
    def __init__(
        self,
        sets: Sequence[PairSet],
        expressions: Sequence[str],
        split: Split | None = "train",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        augment: AugmentConfig | None = None,
        dataset_balance: float = 0.5,
        seed: int = 0,
    ) -> None:
        if not sets:
            raise ValueError("PairedFaces needs at least one PairSet")
        self.expressions = tuple(expressions)
        self.size = sets[0].geometry.size
        self.margin = sets[0].geometry.margin
        if any(s.geometry != sets[0].geometry for s in sets):
            raise ValueError("all data sets must be cropped with the same geometry")
        self.augment = augment or AugmentConfig.off()
        self.seed = seed
        self.split = split
        neutrals, targets, pair_neutral, pair_expr, pair_set, names = [], [], [], [], [], []
        neutral_points, target_points = [], []
        offset = 0
        self.summaries: list[DataSummary] = []
        for k, s in enumerate(sets):
            keep_id = np.array([split is None or split_of(i, val_fraction, test_fraction) == split for i in s.identities], bool)
            keep = keep_id[s.pair_identity] & np.isin(s.pair_expression, self.expressions)
            ids = np.flatnonzero(keep_id)
            remap = np.full(len(s.identities), -1, np.int64)
            remap[ids] = np.arange(len(ids)) + offset
            neutrals.append(s.neutral[ids])
            neutral_points.append(s.neutral_points[ids])
            target_points.append(s.target_points[keep])
            names += [str(i) for i in s.identities[ids]]
            targets.append(s.target[keep])
            pair_neutral.append(remap[s.pair_identity[keep]])
            pair_expr.append([self.expressions.index(e) for e in s.pair_expression[keep]])
            pair_set.append(np.full(int(keep.sum()), k))
            offset += len(ids)
            self.summaries.append(DataSummary(s.name, s.layout, s.root, len(set(s.pair_identity[keep].tolist())),
                                              int(keep.sum()), len(s.skipped)))
        # NCHW uint8, shared by every item (a few hundred MB for 500 identities x 7 at 160 px)
        self.neutral = torch.from_numpy(np.concatenate(neutrals)).permute(0, 3, 1, 2).contiguous()
        self.target = torch.from_numpy(np.concatenate(targets)).permute(0, 3, 1, 2).contiguous()
        self.pair_neutral = torch.from_numpy(np.concatenate(pair_neutral).astype(np.int64))
        self.pair_expression = torch.from_numpy(np.concatenate(pair_expr).astype(np.int64))
        self.pair_set = torch.from_numpy(np.concatenate(pair_set).astype(np.int64))
        self.neutral_points = torch.from_numpy(np.concatenate(neutral_points))  # [I,68,2] cache px, NaN: unknown
        # [I] each neutral's tilt (`reggan_plugin.faces.turn`), NaN where its landmarks are unknown; kept apart from the
        # points because a mirror image tilts as far while its points are not given (`turn_keys.turn_keyed`)
        self.neutral_tilt = torch.tensor([pose_of(landmarks68_to_5(p)).tilt if np.isfinite(p).all() else float("nan")
                                          for p in self.neutral_points.numpy().astype(np.float64)], dtype=torch.float64)
        self.target_points = torch.from_numpy(np.concatenate(target_points))  # [P,68,2]
        self.identities = tuple(names)
        counts = torch.bincount(self.pair_set, minlength=len(sets)).double()
        weight_per_set = torch.where(counts > 0, counts.clamp(min=1) ** dataset_balance, torch.zeros_like(counts))
        self.sample_weights = (weight_per_set / counts.clamp(min=1))[self.pair_set]
        # how much each pair counts in stage 1's fits: all alike, but for turn keys (`turn_keys.turn_keyed`)
        self.pair_weight = torch.ones(len(self.target))

    def __len__(self) -> int:
        return len(self.target)

    def to(self, device: torch.device | str) -> PairedFaces:
        """Keep the uint8 crops on ``device`` (a GPU holds a few hundred MB easily)."""
        self.neutral, self.target = self.neutral.to(device), self.target.to(device)
        return self

    def sample_indices(self, n: int, gen: torch.Generator) -> Tensor:
        """n pair indices drawn with replacement, data sets weighted by ``dataset_balance``."""
        if len(self) == 0:
            raise ValueError(f"the {self.split} split is empty")
        return torch.multinomial(self.sample_weights, n, replacement=True, generator=gen)

    def batch(self, indices: Tensor, gen: torch.Generator | None = None,
              augment: AugmentConfig | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(neutral, target) [B,3,S,S] in [-1,1] on the data's device, expression [B] long (CPU indices).

        Augmented with draws from ``gen`` when given and augmentation (``augment``, else the data's own) is
        on; else the central crop."""
        idx = indices.to(self.target.device)
        x = self.neutral[self.pair_neutral.to(idx.device)[idx]].float() / 255.0
        t = self.target[idx].float() / 255.0
        augment = augment or self.augment
        if gen is not None and augment.enabled:
            x, t = augment_pairs(x, t, augment, self.size, gen)
        else:
            x, t = center_crop(x, self.size), center_crop(t, self.size)
        return x * 2 - 1, t * 2 - 1, self.pair_expression[indices].to(x.device)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        x, t, c = self.batch(torch.tensor([int(index)]), gen)
        return x[0], t[0], int(c[0])

    def points(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """(neutral, target) 68 landmarks [B,68,2] of these pairs in the central crop's grid units (-1 .. 1 edge to
        edge, `models.warp.identity_grid`), NaN where the data gives none."""
        def units(px: Tensor) -> Tensor:
            return (2.0 * (px - self.margin) + 1.0) / self.size - 1.0

        idx = indices.cpu()
        return units(self.neutral_points[self.pair_neutral[idx]]), units(self.target_points[idx])

    def all_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        """Every pair, central crops, no augmentation: what stage 1 is fitted on."""
        return self.batch(torch.arange(len(self)))


def load_datasets(
    roots: Sequence[str | Path],
    image_size: int,
    expressions: Sequence[str],
    cache_dir: str | Path | None,
    margin_fraction: float = 0.125,
    detector: Detector | None = None,
    progress: bool = False,
) -> list[PairSet]:
    """Scan, crop (or load the cache of) each data folder. Two folders with one name are an error."""
    geometry = CropGeometry(image_size, margin_fraction)
    sets, seen = [], set()
    for root in roots:
        scan = scan_dataset(root, tuple(expressions))
        if scan.name in seen:
            raise InputError(root, f"two data folders are named {scan.name!r}; identities would collide")
        seen.add(scan.name)
        sets.append(cached_pairs(scan, geometry, cache_dir, detector, progress))
    return sets
