"""Aligned crops of one data folder, cut once and cached as one compact ``.npz`` (uint8, no pickle).

Epochs then read memory instead of decoding 512 px photos again. The cache file name carries a hash
of everything the crops depend on (layout, crop size and margin, the code version, and every input
file's name, size and modification time), so a changed folder or setting builds a new cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reggan_plugin.atomic import atomic_path
from reggan_plugin.errors import InputError
from reggan_plugin.geometry.align import apply_affine, similarity_from_points

from .crop import CropGeometry, crop_pair, load_rgb
from .landmarks import Detector, find_68_points, find_five_points, sidecar_for
from .layouts import DatasetScan

CACHE_VERSION = 2
NO_POINTS = np.full((68, 2), np.nan, np.float32)  # a crop whose 68 landmarks are not known
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairSet:
    """The cached crops of one data folder. Crops are ``total x total x 3`` uint8 sRGB (see CropGeometry)."""

    name: str
    layout: str
    root: str
    geometry: CropGeometry
    identities: np.ndarray  # [I] str, "<dataset>/<person>"
    neutral: np.ndarray  # [I, T, T, 3] uint8, one neutral crop per identity
    target: np.ndarray  # [P, T, T, 3] uint8
    pair_identity: np.ndarray  # [P] int32 index into identities / neutral
    pair_expression: np.ndarray  # [P] str expression name
    skipped: tuple[str, ...]
    # the 68 landmarks in cache px where the renders give them for pixel-aligned pairs (the exact motion of 68 points
    # of the face), else NaN
    neutral_points: np.ndarray  # [I, 68, 2] float32
    target_points: np.ndarray  # [P, 68, 2] float32

    def __len__(self) -> int:
        return len(self.target)


def _signature(scan: DatasetScan, geometry: CropGeometry) -> str:
    files = sorted({p for pair in scan.pairs for p in (pair.neutral, pair.target)})
    files += [s for s in (sidecar_for(p) for p in files) if s is not None]
    stat = [(str(p.relative_to(scan.root)), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(files)]
    blob = json.dumps({"v": CACHE_VERSION, "layout": scan.layout, "root": str(scan.root.resolve()),
                       "size": geometry.size, "margin": geometry.margin_fraction, "files": stat}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(scan: DatasetScan, geometry: CropGeometry, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"{scan.name}-{scan.layout}-{geometry.size}-{_signature(scan, geometry)}.npz"


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_cache(path: Path) -> PairSet:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return PairSet(
            name=meta["name"], layout=meta["layout"], root=meta["root"],
            geometry=CropGeometry(meta["size"], meta["margin_fraction"]),
            identities=z["identities"], neutral=z["neutral"], target=z["target"],
            pair_identity=z["pair_identity"], pair_expression=z["pair_expression"],
            skipped=tuple(meta["skipped"]), neutral_points=z["neutral_points"], target_points=z["target_points"],
        )


def _target_points(pair, neutral_pts: np.ndarray, neutral_rgb: np.ndarray, target_rgb: np.ndarray,
                   detector: Detector | None, neutral_det: list) -> np.ndarray | None:
    """The target's 5 points, only to start the registration: its own landmark file; else the detector
    run on BOTH photos (one source, so no bias between two landmark conventions) moves the neutral's
    points by the similarity between the two detections; else None (start from no motion)."""
    own = find_five_points(pair.target)
    if own is not None or detector is None:
        return own
    if not neutral_det:
        neutral_det.append(detector(neutral_rgb))
    target_det = detector(target_rgb)
    if neutral_det[0] is None or target_det is None:
        return None
    motion = similarity_from_points(neutral_det[0][:3], target_det[:3])  # eyes and nose tip
    return apply_affine(motion, neutral_pts)


def build_pairs(scan: DatasetScan, geometry: CropGeometry, detector: Detector | None = None,
                progress: bool = False) -> PairSet:
    """Decode, align and crop every pair of ``scan`` (no caching)."""
    from tqdm import tqdm

    by_identity: dict[str, list] = {}
    for pair in scan.pairs:
        by_identity.setdefault(pair.identity, []).append(pair)
    identities: list[str] = []
    neutrals: list = []
    targets: list = []
    pair_id: list[int] = []
    pair_expr: list[int] = []
    neutral_points: list[np.ndarray] = []
    target_points: list[np.ndarray] = []
    skipped = list(scan.skipped)
    for ident, pairs in tqdm(sorted(by_identity.items()), desc=f"cropping {scan.name}", disable=None if progress else True, unit="id"):
        neutral_rgb = load_rgb(pairs[0].neutral)
        points = find_five_points(pairs[0].neutral, neutral_rgb, detector)
        if points is None:
            skipped.append(f"{pairs[0].neutral}: no landmark file and no detection")
            continue
        crops = []
        neutral_det: list = []
        to_crop = geometry.matrix(points)[:2]  # the one transform of the identity's pairs (crop_pair's)
        for pair in pairs:
            target_rgb = load_rgb(pair.target)
            target_pts = None if scan.pixel_aligned else _target_points(pair, points, neutral_rgb, target_rgb, detector, neutral_det)
            try:
                n_crop, t_crop, _ = crop_pair(neutral_rgb, target_rgb, points, geometry, scan.pixel_aligned, target_pts)
            except ValueError as exc:
                skipped.append(f"{pair.target}: {exc}")
                continue
            crops.append((t_crop, pair.expression, _crop_points(pair.target, to_crop, scan.pixel_aligned)))
        if not crops:
            continue
        index = len(identities)
        identities.append(ident)
        neutrals.append(n_crop)
        neutral_points.append(_crop_points(pairs[0].neutral, to_crop, scan.pixel_aligned))
        for t_crop, expr, t_points in crops:
            targets.append(t_crop)
            pair_id.append(index)
            pair_expr.append(expr)
            target_points.append(t_points)
    if not targets:
        raise InputError(scan.root, f"no pair could be cropped ({skipped[0] if skipped else 'empty'})")
    t = geometry.total
    return PairSet(
        name=scan.name, layout=scan.layout, root=str(scan.root.resolve()), geometry=geometry,
        identities=np.array(identities, dtype=str), neutral=np.stack(neutrals).reshape(-1, t, t, 3),
        target=np.stack(targets), pair_identity=np.array(pair_id, dtype=np.int32),
        pair_expression=np.array(pair_expr, dtype=str), skipped=tuple(skipped),
        neutral_points=np.stack(neutral_points), target_points=np.stack(target_points),
    )


def _crop_points(image: Path, to_crop: np.ndarray, pixel_aligned: bool) -> np.ndarray:
    """``image``'s 68 landmarks in the cache crop (``to_crop``: the neutral's crop matrix, 2x3), or `NO_POINTS` (a
    photographed pair is registered after the crop: its own points are not where its crop shows them)."""
    found = find_68_points(image) if pixel_aligned else None
    if found is None:
        return NO_POINTS
    return apply_affine(to_crop, found).astype(np.float32)


def cached_pairs(scan: DatasetScan, geometry: CropGeometry, cache_dir: str | Path | None,
                 detector: Detector | None = None, progress: bool = False) -> PairSet:
    """The crops of ``scan``: loaded from ``cache_dir`` when built before, else built and saved there."""
    if cache_dir is None:
        return build_pairs(scan, geometry, detector, progress)
    path = cache_path(scan, geometry, Path(cache_dir))
    if path.is_file():
        return load_cache(path)
    pairs = build_pairs(scan, geometry, detector, progress)
    if pairs.skipped:
        log.warning("%s: %d file(s) skipped, first: %s", scan.root, len(pairs.skipped), pairs.skipped[0])
    meta = {"name": pairs.name, "layout": pairs.layout, "root": pairs.root, "size": geometry.size,
            "margin_fraction": geometry.margin_fraction, "skipped": list(pairs.skipped), "version": CACHE_VERSION}
    _save(path, {"meta": np.array(json.dumps(meta)), "identities": pairs.identities, "neutral": pairs.neutral,
                 "target": pairs.target, "pair_identity": pairs.pair_identity, "pair_expression": pairs.pair_expression,
                 "neutral_points": pairs.neutral_points, "target_points": pairs.target_points})
    return pairs
