"""Evaluation cases: paired data folders -> (person, expression, neutral photo, target photo, 5 points),
and the one crop every row of the evaluation is judged through.

Data layouts and landmark files are read by the training loaders (``training.data``):
the synthetic renderer's ``DIR/<identity>/<expression>.png`` + ``.landmarks.json`` + ``manifest.json``
and the plain ``neutral/`` + ``<expression>/`` layout with matching file names (London). A neutral photo
without a landmark file is located by the runtime's face detector (BlazeFace, ``reggan_plugin.faces``).

Crops: every image of a case (the neutral input, stage 1's and RegGAN's whole-picture outputs) is cut
with ONE transform, the neutral's 5 points fitted to the runtime's canonical template
(``reggan_plugin.geometry.align``), so the rows differ only by what the model did. The real target is cut with
the same transform: exactly so for pixel-aligned renders; for photos (the head moves between shots)
followed by the training loader's registration onto the neutral's upper face
(``training/data/crop.crop_pair``). Where that registration fails, the target is cut with its own
points (landmark file, else the runtime detector) and the case says so (``target_alignment``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from reggan_plugin.errors import InputError, UsageError
from reggan_plugin.faces import Face, box_from_landmarks
from reggan_plugin.geometry.align import crop_matrix_from_landmarks
from reggan_plugin.geometry.resample import warp_to_crop
from training.data.crop import CropGeometry, crop_pair, load_rgb
from training.data.landmarks import find_five_points
from training.data.layouts import DatasetScan, scan_dataset
from training.data.split import split_of

SplitChoice = Literal["all", "train", "val", "test", "held-out"]  # held-out: val + test, never trained on
SPLIT_CHOICES: tuple[str, ...] = get_args(SplitChoice)
Locate = Literal["landmarks", "detector"]
LOCATE_CHOICES: tuple[str, ...] = get_args(Locate)
TargetAlignment = Literal["pixel-aligned", "registered", "own landmarks", "own detection"]
MARGIN_FRACTION = 0.125  # the training loader's crop margin: room for the registration

Detector = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class EvalCase:
    identity: str  # "<dataset>/<person>"
    expression: str
    neutral: Path
    target: Path


def runtime_detector() -> Detector:
    """The runtime's BlazeFace detector as a ``rgb -> (5, 2) points | None`` function (best face)."""
    from reggan_plugin.faces import FaceDetector

    detector = FaceDetector()

    def detect(rgb: np.ndarray) -> np.ndarray | None:
        faces = detector.detect(rgb)
        return None if not faces else faces[0].landmarks5()

    return detect


def scan_cases(data: Path, expressions: Sequence[str], split: SplitChoice = "all",
               val_fraction: float = 0.1, test_fraction: float = 0.1, intensity: float = 1.0
               ) -> tuple[DatasetScan, list[EvalCase]]:
    """The pairs of ``data`` for ``expressions``, restricted to one split by identity (``all``: every pair;
    ``held-out``: val and test, the people training never saw); the targets at ``intensity`` (`scan_dataset`)."""
    scan = scan_dataset(Path(data), tuple(expressions), intensity=intensity)

    def chosen(identity: str) -> bool:
        side = split_of(identity, val_fraction, test_fraction)
        return split == "all" or side == split or (split == "held-out" and side != "train")

    cases = [EvalCase(p.identity, p.expression, p.neutral, p.target) for p in scan.pairs if chosen(p.identity)]
    if not cases:
        raise InputError(data, f"no pairs in the {split!r} split for expressions {', '.join(expressions)}")
    return scan, cases


def limit_cases(cases: Sequence[EvalCase], per_expression: int | None) -> list[EvalCase]:
    """The first ``per_expression`` cases of each expression (sorted by identity), all when None."""
    if per_expression is None:
        return list(cases)
    if per_expression < 1:
        raise UsageError(f"--limit must be at least 1, got {per_expression}")
    kept: list[EvalCase] = []
    count: dict[str, int] = {}
    for case in sorted(cases, key=lambda c: (c.identity, c.expression)):
        if count.get(case.expression, 0) < per_expression:
            kept.append(case)
            count[case.expression] = count.get(case.expression, 0) + 1
    return kept


class Cropper:
    """Cuts the evaluation crops (S x S uint8 RGB) of one data set."""

    def __init__(self, size: int, pixel_aligned: bool, locate: Locate = "landmarks") -> None:
        self.geometry = CropGeometry(size, MARGIN_FRACTION)
        self.pixel_aligned = pixel_aligned
        self.locate = locate
        self._detector: Detector | None = None

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = runtime_detector()
        return self._detector

    def neutral_points(self, path: Path, rgb: np.ndarray) -> np.ndarray:
        """The neutral's 5 points: its landmark file (``locate='landmarks'``), else the runtime detector."""
        points = find_five_points(path) if self.locate == "landmarks" else None
        if points is None:
            points = self.detector(rgb)
        if points is None:
            raise InputError(path, "no landmark file and the runtime detector found no face")
        return np.asarray(points, np.float64)

    def _center(self, crop: np.ndarray) -> np.ndarray:
        m, s = self.geometry.margin, self.geometry.size
        return crop[m : m + s, m : m + s]

    def crop(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Any picture in the neutral's frame -> its S x S crop with the neutral's transform (uint8).

        Cut exactly as ``crop_pair`` cuts the neutral (margin included, then the centre), so the input
        row equals the neutral crop of the loaders bit for bit."""
        m = self.geometry.matrix(points)
        out = warp_to_crop(np.asarray(rgb, np.float32), m[:2], self.geometry.total)
        return self._center(np.clip(out + 0.5, 0, 255).astype(np.uint8))

    def target_crop(self, neutral_rgb: np.ndarray, target_rgb: np.ndarray, points: np.ndarray,
                    target_path: Path) -> tuple[np.ndarray, TargetAlignment]:
        """The real target in the neutral's crop (see the module docstring) and how it was aligned."""
        target_pts = None if self.pixel_aligned else find_five_points(target_path)
        try:
            _, crop, _ = crop_pair(neutral_rgb, target_rgb, points, self.geometry, self.pixel_aligned, target_pts)
            return self._center(crop), ("pixel-aligned" if self.pixel_aligned else "registered")
        except ValueError:
            pass
        how: TargetAlignment = "own landmarks"
        if target_pts is None:
            target_pts, how = self.detector(target_rgb), "own detection"
        if target_pts is None:
            raise InputError(target_path, "cannot align the target: registration failed and no face was detected")
        m = crop_matrix_from_landmarks(np.asarray(target_pts, np.float64), self.geometry.size)
        out = warp_to_crop(target_rgb.astype(np.float32), m, self.geometry.size)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8), how


def read_rgb(path: Path) -> np.ndarray:
    """An image -> HxWx3 uint8 RGB (the training loaders' reader)."""
    return load_rgb(path)


def given_face(points: np.ndarray) -> Face:
    """The face at ``points`` (5 or 68) as a caller gives it: its landmarks and the box they make."""
    return Face(box=box_from_landmarks(points), landmarks=points, source="given")
