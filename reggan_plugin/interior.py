"""An opened mouth's inside at the frame's own pixels: teeth, gums and tongue from a rendered mouth.

Where the lips move whole (`reggan_plugin.lips`) the gap opened between them shows the paint alone: the model's crop
magnified six to eight times on a large face, a soft dark band where the expression shows teeth, gums and the tongue
with sharp edges, which no paint at the crop's resolution holds (benchmarks/mouth_detail.py). The package ships,
for each expression that opens the mouth, the inside of one rendered mouth (``models/mouth_interior.npz``, made by
``training/interior.py`` from renders of training identities): the picture between the inner lip contours, unrolled
into a strip from corner to corner and from the upper lip to the lower. Each gap column draws the strip's column at
its place between the corners, stretched from the gap's top to its bottom, each channel scaled so that its mean over
the gap is the paint's, brightened at most 1.5 times (the paint decides how the inside is lit, the strip its edges),
as much as its column opens (`lips.split_at_lips`: faded in with the opening and from the corners), between edges
drawn at the frame's own pixels where the lips part whole (the gap the paste leaves, read from the crop, ramps over a
crop pixel: a soft rim six to eight frame pixels wide on a large face). Only on faces whose crop the paste magnifies
four times or more (a face box from about 285 px, as the mouth pass), fully from eight: on smaller faces the paint is
near the frame's scale.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .align import Matrix, apply_affine, crop_roi, matrix_scale, sample
from .artifact import parse_expression
from .blend import mask_box
from .errors import ModelError

STRIPS_FILE = Path(__file__).with_name("models") / "mouth_interior.npz"
FADE_SCALES = (0.25, 0.125)  # crop px per frame px: no interior at the first and above, all of it at the second
MIN_WEIGHT = 1e-3  # gap weights below this are no gap (the strip is not drawn)
MAX_GAIN = 1.5  # a narrow opening's paint is mostly lip, which would light the inside up as glare: unlimited, surprised
# kept 1.14 of the neutral's mouth detail on the validation renders (0.91 limited), with glare at part intensities


@dataclass(frozen=True)
class Opening:
    """The gap opened between one face's lips, as a paste left it: ``gap`` SxS [0, 1] in the crop of ``m`` (region px
    -> crop px), ``corners`` the mouth corners in that crop (2, 2), ``amount`` how much of the strip to draw."""

    m: Matrix
    gap: np.ndarray
    corners: np.ndarray
    amount: float


def amount_for(m: Matrix) -> float:
    """How much of the inside a face aligned by ``m`` gets (`FADE_SCALES`)."""
    start, full = FADE_SCALES
    return float(np.clip((start - matrix_scale(m)) / (start - full), 0.0, 1.0))


class MouthInterior:
    """The shipped strips, one per expression that opens the mouth."""

    def __init__(self, strips: Mapping[str, np.ndarray]) -> None:
        self.strips = {name: np.asarray(strip, np.float32) for name, strip in strips.items()}

    @classmethod
    def load(cls, path: Path = STRIPS_FILE) -> MouthInterior:
        try:
            with np.load(path) as data:
                strips = {name: data[name].astype(np.float32) / 255 for name in data.files}
        except (OSError, ValueError) as exc:
            raise ModelError(path, f"cannot read the mouth interiors: {exc}") from None
        bad = [name for name, s in strips.items() if s.ndim != 3 or s.shape[2] != 3 or min(s.shape[:2]) < 2]
        if not strips or bad:
            raise ModelError(path, f"mouth interiors must be HxWx3 strips, one per expression (bad: {bad or 'none'})")
        return cls(strips)

    def strip_for(self, expression: str | Mapping[str, float]) -> np.ndarray | None:
        """The strip of the edit's expression, for a mix the one weighted most among those with a strip; None where
        no expression of the edit opens the mouth."""
        mix = parse_expression(expression) if isinstance(expression, str) else dict(expression)
        known = [(weight, name) for name, weight in mix.items() if weight > 0 and name in self.strips]
        return self.strips[max(known)[1]] if known else None


def gap_rows(gap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(columns, top, bottom, weight): the crop columns with a gap, its upper and lower edges there, crop px to a
    fraction of a pixel, and how much each column opens (its largest gap weight): each edge row is as much gap as the
    edge lies inside it (`lips.split_at_lips`), so on a face magnified eight times the edges do not step from one crop
    row to the next."""
    peak = gap.max(axis=0)
    columns = np.flatnonzero(peak > MIN_WEIGHT)
    share = gap[:, columns] / peak[columns]
    inside = share > MIN_WEIGHT
    first = np.argmax(inside, axis=0)
    last = gap.shape[0] - 1 - np.argmax(inside[::-1], axis=0)
    index = np.arange(len(columns))
    return columns, first + 0.5 - share[first, index], last - 0.5 + share[last, index], peak[columns]


def draw(region: np.ndarray, opening: Opening, strip: np.ndarray) -> None:
    """Draw ``strip`` into the gap of ``opening`` in the HxWx3 float32 ``region`` (in place)."""
    gap, m = opening.gap, np.asarray(opening.m, np.float64)
    columns, top, bottom, opens = gap_rows(gap)
    if not len(columns) or opening.amount <= 0:
        return
    rows, cols = crop_roi(m, gap.shape[0], (region.shape[0], region.shape[1]), mask_box(gap > MIN_WEIGHT))
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return
    ys, xs = np.mgrid[rows, cols].astype(np.float64)
    in_crop = apply_affine(m, np.stack([xs, ys], axis=-1))
    xc, yc = in_crop[..., 0], in_crop[..., 1]
    t, b = np.interp(xc, columns, top), np.interp(xc, columns, bottom)
    # each column as much as it opens, none a crop px past the gap's ends (as the paste's own gap)
    column = np.interp(xc, np.r_[columns[0] - 1, columns, columns[-1] + 1], np.r_[0.0, opens, 0.0])
    # the edges at the frame's pixels where the column opens whole (the paste's gap, sampled from the crop, ramps over
    # a crop px: six to eight frame px of soft rim on a large face); where it barely opens, over a crop px as that
    # gap's, since a sharp edge against the paint's soft dark there would stand out as a line
    sharp = 1.0 + (1.0 / matrix_scale(m) - 1.0) * column
    inside = np.clip((yc - t) * sharp + 0.5, 0.0, 1.0) * np.clip((b - yc) * sharp + 0.5, 0.0, 1.0)
    weight = inside * column * opening.amount
    total = float(weight.sum())
    if total < 1.0:
        return
    (xa, _), (xb, _) = np.asarray(opening.corners, np.float64)
    u = (xc - xa) / (xb - xa)
    v = (yc - t) / np.maximum(b - t, 1e-3)
    height, width = strip.shape[:2]
    drawn = sample(strip, (u * width - 0.5).astype(np.float32), (v * height - 0.5).astype(np.float32))
    part = region[rows, cols]
    w = weight[..., None].astype(np.float32)
    # lit as the paint: each channel scaled so that its mean over the gap is the paint's (a dark opening keeps white
    # teeth grey and its inside red, as a shadow would), brightened at most MAX_GAIN times
    gain = np.minimum((part * w).sum(axis=(0, 1)) / np.maximum((drawn * w).sum(axis=(0, 1)), 1e-6), MAX_GAIN)
    part += w * (drawn * gain - part)
