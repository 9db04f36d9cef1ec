"""A mouth's inside at the frame's own pixels: teeth, gums and tongue from a rendered mouth.

Where the lips move whole (`reggan_plugin.edit.lips`) the gap opened between them shows the paint alone: the model's crop
magnified six to eight times on a large face, a soft dark band where the expression shows teeth, gums and the tongue
with sharp edges, which no paint at the crop's resolution holds (benchmarks/mouth_detail.py). The package ships, for
each expression that opens the mouth, the inside of one rendered mouth (``models/mouth_interior.npz``, made by
``recipes/interior.toml`` from renders of training identities): the picture between the inner lip contours, unrolled
into a strip from corner to corner and from the upper lip to the lower, white-balanced on the render's teeth. Each
column of the gap draws the strip's column at its place between the corners, stretched from the gap's top to its bottom,
lit by the paint: as bright on average and each channel of the paint's colour (the paint decides how the inside is lit,
the strip its edges), brightened at most 1.5 times on a render and not at all on a photograph (`max_gain_for`). It is
drawn as much as its column opens (`lips.split_at_lips`: faded in with the opening and from the corners; past the dark
rims the lips carry, `past_lip_rims`), between edges drawn at the frame's own pixels where the lips part whole (the gap
the paste leaves, read from the crop, ramps over a crop pixel: a soft rim six to eight frame pixels wide on a large
face), and as soft as the picture about the mouth (`mouth_softness`: a magnified or out-of-focus frame gets a soft
inside, not a render's sharp teeth in a soft mouth). On a render, only on faces whose crop the paste magnifies four
times or more (a face box from about 285 px), fully from eight (`amount_for`): on smaller faces the paint is near the
frame's scale. On a photograph at any size, as far as the face took the gains for photographs: they leave the paint out,
and the gap would show it alone, a soft blot; but not into a sliver (`sliver_share`: a disgusted photograph's gap),
where the strip's teeth would be a line of their colour along the lips. A smile, whose motion hardly parts the lips,
gets no drawn inside: it shows the model's own paint between the lips.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..arrays import Array
from ..artifact import parse_expression
from ..errors import ModelError
from ..geometry.align import Matrix, apply_affine, invert_affine, large_face_share, matrix_scale
from ..geometry.resample import crop_roi, sample
from ..imaging.filters import gaussian_blurred
from ..imaging.tone import luma, smoothstep
from ..tuning import (
    MAX_GAIN,
    MIN_WEIGHT,
    RIM_COLUMNS,
    RIM_CONTRAST,
    RIM_REACH,
    RIM_STEPS,
    SLIVER,
    SOFTNESS_PROBE,
    SOFTNESS_REACH,
    STRIP_SOFTNESS,
    UPPER_RIM_REACH,
)

STRIPS_FILE = Path(__file__).parents[1] / "models" / "mouth_interior.npz"
RECIPE_ENTRY = "recipe"  # the file's entry holding the recipe that built it (JSON), beside the strips


@dataclass(frozen=True)
class Opening:
    """Where one face's mouth shows its inside: in the crop of ``m`` (region px -> crop px), at crop ``columns``
    (increasing) the ``top`` and ``bottom`` edges (crop px) and how much each column opens (``opens``, [0, 1]);
    ``corners`` the mouth corners in that crop (2, 2); ``amount`` how much of the strip to draw; ``max_gain`` how
    much the paint may brighten it (`max_gain_for`)."""

    m: Matrix
    columns: Array
    top: Array
    bottom: Array
    opens: Array
    corners: Array
    amount: float
    max_gain: float = MAX_GAIN


def gap_opening(m: Matrix, gap: Array, corners: Array, amount: float, photo: float = 0.0) -> Opening:
    """The opening of the gap a paste left between the lips: ``gap`` SxS [0, 1] in the crop of ``m`` (`gap_rows`).
    On a photograph (``photo`` as in `amount_for`) the paint may not brighten the inside (`max_gain_for`), and a
    sliver gets none of it (`sliver_share`)."""
    columns, top, bottom, opens = gap_rows(gap)
    corners = np.asarray(corners, np.float64)
    photo = float(np.clip(photo, 0.0, 1.0))
    if photo > 0 and len(columns):
        tallest = float((bottom - top).max()) / float(corners[1, 0] - corners[0, 0])
        amount *= 1.0 - photo * (1.0 - sliver_share(tallest))
    return Opening(m, columns, top, bottom, opens, corners, amount, max_gain_for(photo))


def sliver_share(height: float) -> float:
    """How much of the inside a photograph's opening gets whose tallest column is ``height`` of the mouth's width:
    none below ``SLIVER[0]``, all from ``SLIVER[1]``. Squashed into a sliver, the strip's teeth and gums are a line of
    their colour along the lips; the gap keeps the person's lips and the paint there."""
    low, high = SLIVER
    return float(smoothstep((height - low) / (high - low)))


def amount_for(m: Matrix, photo: float = 0.0) -> float:
    """How much of the inside a face aligned by ``m`` gets: on a render, as large a face as it is
    (`align.large_face_share`: none where the paste magnifies the crop less than four times, all of it from eight);
    on a photograph (``photo``: the share of the gains for photographs the face took, whose paint they left out) all
    of it at any size. A photograph's gap otherwise shows the withheld paint, a render-learnt mouth at the crop's
    scale: between a person's own lips a soft pink or purple blot with the lower lip's outline doubled in it."""
    return max(large_face_share(m), float(photo))


def max_gain_for(photo: float = 0.0) -> float:
    """How much the paint may brighten the drawn inside: ``MAX_GAIN`` on a render, not at all on a photograph
    (``photo`` as in `amount_for`; in between as far as the face took the gains for photographs). A photograph's
    paint is a render-learnt mouth, lit brighter than its own lips' shade: brightened to it, the rendered tongue and
    teeth glow orange and white between a person's lips."""
    return MAX_GAIN + (1.0 - MAX_GAIN) * float(np.clip(photo, 0.0, 1.0))


@dataclass(frozen=True)
class Inside:
    """What an edit draws into the gaps its lips open: the expression's ``strip`` and the expression's share of the
    edit, times its intensity (``weight``)."""

    strip: Array
    weight: float


class MouthInterior:
    """The shipped strips, one per expression that opens the mouth."""

    def __init__(self, strips: Mapping[str, Array]) -> None:
        self.strips = {name: np.asarray(strip, np.float32) for name, strip in strips.items()}

    @classmethod
    def load(cls, path: Path = STRIPS_FILE) -> MouthInterior:
        try:
            with np.load(path) as data:
                strips = {name: data[name].astype(np.float32) / 255 for name in data.files if name != RECIPE_ENTRY}
        except (OSError, ValueError) as exc:
            raise ModelError(path, f"cannot read the mouth interiors: {exc}") from None
        bad = [name for name, s in strips.items() if s.ndim != 3 or s.shape[2] != 3 or min(s.shape[:2]) < 2]
        if not strips or bad:
            raise ModelError(path, f"mouth interiors must be HxWx3 strips, one per expression (bad: {bad or 'none'})")
        return cls(strips)

    def inside_for(self, expression: str | Mapping[str, float], intensity: float = 1.0) -> Inside | None:
        """What an edit draws: the expression's; for a mix the one weighted most among those that open the mouth;
        None where no expression of the edit opens it."""
        mix = parse_expression(expression) if isinstance(expression, str) else dict(expression)
        known = [(weight, name) for name, weight in mix.items() if weight > 0 and name in self.strips]
        if not known:
            return None
        weight, name = max(known)
        return Inside(self.strips[name], weight * intensity)


def _past_rim(region: Array, opening: Opening, edge: Array, direction: float, reach: float) -> Array:
    """Per column of ``opening``, how far from ``edge`` (crop px, away from the inside: ``direction`` +1 down, -1 up) the
    lip beyond a dark rim starts: the first point lighter than halfway between the darkest and the lightest within
    ``reach``, where they differ by ``RIM_CONTRAST`` at least; 0 where there is no such rim."""
    offsets = np.linspace(0.0, reach, int(np.ceil(reach * RIM_STEPS)) + 1)
    ys = edge[:, None] + direction * offsets[None, :]
    xs = np.broadcast_to(np.asarray(opening.columns, np.float64)[:, None], ys.shape)
    at = apply_affine(invert_affine(np.asarray(opening.m, np.float64)), np.stack([xs, ys], axis=-1))
    grey = luma(sample(region, at[..., 0].astype(np.float32), at[..., 1].astype(np.float32)))
    darkest, lightest = grey.min(axis=1), grey.max(axis=1)
    light = grey >= ((darkest + lightest) / 2)[:, None]
    rim = light.any(axis=1) & (lightest > darkest + RIM_CONTRAST)
    return np.where(rim, offsets[np.argmax(light, axis=1)], 0.0)


def _along_the_lip(move: Array) -> Array:
    """Per-column moves of an edge averaged over ``RIM_COLUMNS`` columns (fewer on a narrower opening), so that the
    edge stays one curve where the paint's soft dark band gives each column a rim of its own."""
    width = min(RIM_COLUMNS, len(move) if len(move) % 2 else len(move) - 1)  # odd: centred
    if width <= 1:
        return move
    return np.convolve(np.pad(move, width // 2, mode="edge"), np.full(width, 1.0 / width), mode="valid")


def past_lip_rims(region: Array, opening: Opening, reach: float = RIM_REACH,
                  upper_reach: float = UPPER_RIM_REACH) -> Opening:
    """``opening`` with its edges moved past the dark rims the lips carry: the lips move whole with the dark line that
    lay between them in the neutral, so where they part each lip's edge is that line, a thin dark curve about the drawn
    inside. Read in HxWx3 ``region`` as pasted: the bottom edge goes down to the lower lip below its rim (at most
    ``reach`` crop px, `_past_rim`), the top edge up to the upper lip above its rim (at most ``upper_reach``), each
    edge's move averaged along the lip (`_along_the_lip`): moved column by column, a narrow opening's edges zigzag,
    and the strip's teeth with them."""
    if not len(opening.columns):
        return opening
    bottom, top = opening.bottom, opening.top
    if reach > 0:
        bottom = bottom + _along_the_lip(_past_rim(region, opening, bottom, 1.0, reach))
    if upper_reach > 0:
        top = top - _along_the_lip(_past_rim(region, opening, top, -1.0, upper_reach))
    return replace(opening, top=top, bottom=bottom)


def gap_rows(gap: Array) -> tuple[Array, Array, Array, Array]:
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


def draw(region: Array, opening: Opening, strip: Array, blur: float = 0.0) -> None:
    """Draw ``strip`` into ``opening`` in the HxWx3 float32 ``region`` (in place), lit by the paint there: as bright
    and of its colour (brightened at most ``opening.max_gain`` times); as soft as edges blurred by ``blur`` px
    (`mouth_softness`), at least as the strip's own."""
    m, columns, top, bottom, opens = (np.asarray(a, np.float64) for a in (opening.m, opening.columns, opening.top,
                                                                         opening.bottom, opening.opens))
    if not len(columns) or opening.amount <= 0:
        return
    # as soft as the picture about the mouth: a magnified or out-of-focus frame's mouth gets a soft inside
    extra = float(np.sqrt(max(blur ** 2 - STRIP_SOFTNESS ** 2, 0.0)))
    # the opening and, around it, where the drawn inside spreads when blurred (three of the blur's std)
    margin = 1 + int(np.ceil(3 * extra * matrix_scale(m)))
    box = (int(np.floor(columns[0])) - 1 - margin, int(np.floor(top.min())) - margin,
           int(np.ceil(columns[-1])) + 2 + margin, int(np.ceil(bottom.max())) + 1 + margin)
    rows, cols = crop_roi(m, 0, (region.shape[0], region.shape[1]), box)
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
    # how much of each pixel (a unit of ``sharp``) the opening covers: an opening thinner than a pixel covers it in
    # proportion, one of no height not at all
    inside = np.clip(np.minimum((yc - t) * sharp, 0.5) + np.minimum((b - yc) * sharp, 0.5), 0.0, 1.0)
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
    # lit as the paint: its mean over the gap as bright as the paint's (a dark opening keeps white teeth grey, as a
    # shadow would) and each channel scaled to the paint's (an opening's inside red), brightened at most
    # ``opening.max_gain`` times
    paint, own = (np.maximum((x * w).sum(axis=(0, 1)), 1e-6) for x in (part, drawn))
    lit, seen = float(luma(paint)), float(luma(own))
    gain = np.minimum(lit / seen * ((paint / lit) / (own / seen)), opening.max_gain)
    change = w * (drawn * gain - part)
    part += gaussian_blurred(change, extra) if extra > 1e-3 else change  # continuous: no step in a shot


def softness(grey: Array, probe: float = SOFTNESS_PROBE) -> float:
    """The blur (a Gaussian's std, px) of the edges of HxW ``grey``: blurred by ``probe`` more, a step edge of blur s
    keeps s / sqrt(s^2 + probe^2) of its gradient energy. 0 where there is no edge to read."""
    def energy(g: Array) -> float:
        return float((np.diff(g, axis=1) ** 2).sum() + (np.diff(g, axis=0) ** 2).sum())

    sharp = energy(grey)
    if grey.size < 4 or sharp <= 1e-8:
        return 0.0
    kept = min(energy(gaussian_blurred(grey[..., None], probe)[..., 0]) / sharp, 0.999)
    return probe * kept / float(np.sqrt(1.0 - kept * kept))


def mouth_softness(picture: Array, m: Matrix, corners: Array) -> float:
    """`softness` of HxWx3 ``picture`` about a face's mouth (``corners``: its corners in the crop of ``m``, region px
    -> crop px), read before anything is pasted there: how soft the inside drawn into it should be."""
    (xa, ya), (xb, yb) = np.asarray(corners, np.float64)
    reach = SOFTNESS_REACH * (xb - xa)
    box = (int(xa - reach / 2), int(min(ya, yb) - reach), int(np.ceil(xb + reach / 2)), int(np.ceil(max(ya, yb) + reach)))
    rows, cols = crop_roi(m, 0, (picture.shape[0], picture.shape[1]), box)
    return softness(luma(picture[rows, cols]))
