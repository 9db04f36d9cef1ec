"""Lips kept whole where the motion opens a mouth: the stretch moved into a gap at the line between them.

The model's motion is smooth (stage 1's mean flow lies on a 16 x 16 control grid). Where an expression opens the
mouth (surprised, disgusted, fearful) it goes from the upper lip's displacement to the lower lip's over some 16 crop
px, so paste-back, which moves the frame by it at the frame's resolution, stretches both lips and the dark line
between them about twofold: on a large face their edges come out as soft as the paint (an edited mouth's fine detail
is the frame's own pixels moved: no paint at the crop's resolution holds it, benchmarks/mouth_detail.py). Here each
column keeps the motion's own displacement of each lip but moves the lip whole: `BAND` either side of the line
between the lips (in the network's input crop, the uppermost dark line near the corners' line: on photos the shadow
under the lower lip can be as dark; a parabola through the middle of the mouth and the corners) moves rigidly, and
the stretch becomes a gap between them that shows the paint alone: read from the picture, the line's one row drawn
down the gap would stand in it as streaks. The opening is a lens: its height a parabola across the mouth, from the
motion's gap in the middle to nothing at the corners (where the motion puts them), the lips stretched over their
bands to close the rest; the motion opens about as far near the corners as in the middle, and the paint's opening,
magnified, would show past the lips' ends as a wide soft band. Only where a column's motion opens (its band would be
stretched): faded in over `FULL_GAP` of opening and from the corners to the middle, so a closed mouth and the
corners move as the model says. `moved_in_picture` takes the paint's difference against the picture as the split
moves it, as far as each column is split (a column starting to open in a shot passes to it over frames, not in one).
"""
from __future__ import annotations

import numpy as np

from ..arrays import Array
from ..geometry.align import Matrix, invert_affine, matrix_scale
from ..geometry.resample import WarpMode, moved_crop, sample
from ..imaging.tone import luma, smoothstep
from ..tuning import BAND, CORNER_STEPS, CORNER_WEIGHT, DARK, EDGE, FULL_GAP, MARGIN, SEARCH, TAPER


def lip_line(crop: Array, corners: Array) -> tuple[Array, Array]:
    """(columns, rows): the line between the lips of an SxSx3 crop across its mouth, crop px. ``corners``: the mouth
    corners (2, 2) in crop px, where the crop's template puts them. In each column (the columns smoothed by 3 px),
    within ``SEARCH`` of the corners' line, the uppermost dark local minimum (``DARK``; to a fraction of a pixel, by
    a parabola through it and its neighbours): the line between the lips, not the shadow under the lower lip, which
    on photos is as dark and lies below it; then a parabola through those of the mouth's middle, where the line is
    plain, and through the corners, where it ends."""
    (xa, ya), (xb, yb) = np.asarray(corners, np.float64)
    width = xb - xa
    columns = np.arange(int(np.floor(xa)) - MARGIN, int(np.ceil(xb)) + MARGIN + 1)
    reach = max(1, int(round(SEARCH * width)))
    centre = np.rint(ya + (columns - xa) * (yb - ya) / width).astype(int)
    top = np.clip(centre - reach, 0, crop.shape[0] - 2 * reach - 1)
    first = int(top.min())
    grey = luma(crop[first : int(top.max()) + 2 * reach + 1])  # only the rows searched
    grey = (np.roll(grey, 1, axis=1) + grey + np.roll(grey, -1, axis=1)) / 3
    window = grey[top[:, None] - first + np.arange(2 * reach + 1), columns[:, None]]
    rows = top + _uppermost_dark(window)
    middle = np.abs(columns - (xa + xb) / 2) <= (0.5 - EDGE) * width
    xs = np.concatenate([columns[middle], [xa, xb]])
    ys = np.concatenate([rows[middle], [ya, yb]])
    fit = np.concatenate([np.ones(int(middle.sum())), [CORNER_WEIGHT, CORNER_WEIGHT]])
    return columns, np.polyval(np.polyfit(xs, ys, 2, w=fit), columns)


def _uppermost_dark(window: Array) -> Array:
    """Each row of ``window`` (columns x rows searched): where its uppermost local minimum at most ``DARK`` of the way
    from its darkest value to its median lies, to a fraction of a row (its darkest where there is none)."""
    darkest = window.min(axis=1, keepdims=True)
    inner = window[:, 1:-1]
    dark = (inner <= window[:, :-2]) & (inner < window[:, 2:]) \
        & (inner <= darkest + DARK * (np.median(window, axis=1, keepdims=True) - darkest))
    at = np.where(dark.any(axis=1), np.argmax(dark, axis=1) + 1, np.argmin(window, axis=1))
    inside = np.clip(at, 1, window.shape[1] - 2)
    above, here, below = (np.take_along_axis(window, (inside + k)[:, None], axis=1)[:, 0] for k in (-1, 0, 1))
    curve = above - 2 * here + below
    offset = np.where((curve > 1e-9) & (at == inside), 0.5 * (above - below) / np.maximum(curve, 1e-9), 0.0)
    rows: Array = at + np.clip(offset, -0.5, 0.5)
    return rows


def _split_column(shift: Array, line: float, band: float, close: float = 0.0
                  ) -> tuple[Array, Array, float] | None:
    """(shift, gap rows, gap): one column's vertical motion (output px -> source px offsets) with the lips moved whole
    and the gap opened between them, reading the line's row; how much each output row is that gap (its edge rows in
    part); the gap the motion opens. None where it does not open. ``close``: the share of that gap the lips close
    instead, each stretched over its band by half of it (its outer edge stays where the motion puts it)."""
    rows = np.arange(len(shift), dtype=np.float64)
    # where the motion folds (reads a row again further down, as an opening jaw's can) the first reading stands
    source = np.maximum.accumulate(rows + shift) + 1e-6 * rows
    where = np.interp(rows, source, rows)  # where each source row lands
    upper, lower = np.interp(line - band, rows, where), np.interp(line + band, rows, where)
    gap = lower - upper - 2 * band
    if gap <= 0:
        return None
    reach = band + close * gap / 2  # how far each lip's band reaches toward the other
    landed = where.copy()
    above = (rows > line - band) & (rows <= line)
    below = (rows > line) & (rows < line + band)
    landed[above] = upper + (rows[above] - (line - band)) * reach / band
    landed[below] = lower - (line + band - rows[below]) * reach / band
    # back to output rows, only those that read the band (elsewhere the map is the motion's own): the gap's rows
    # read the line itself
    ends = np.concatenate([landed[rows <= line], [upper + reach, lower - reach], landed[rows > line]])
    starts = np.concatenate([rows[rows <= line], [line, line], rows[rows > line]])
    inside = (rows >= upper) & (rows <= lower)
    split = shift.copy()
    split[inside] = np.interp(rows[inside], ends, starts) - rows[inside]
    in_gap = np.clip(np.minimum(rows - (upper + reach), lower - reach - rows) + 0.5, 0.0, 1.0)
    return split, in_gap, float(gap)


def moved_corners(motion: Array, corners: Array) -> Array:
    """(2, 2): where the SxSx2 ``motion`` (output px -> source px offsets) puts the crop's mouth ``corners``: each the
    output point whose source is the corner (a fixed point; the motion is smooth, moving less than a pixel a pixel)."""
    target = np.asarray(corners, np.float64)
    points = target.copy()
    for _ in range(CORNER_STEPS):
        points = target - sample(motion, points[:, 0].astype(np.float32), points[:, 1].astype(np.float32))
    return points


def split_at_lips(crop: Array, motion: Array, corners: Array, amount: float = 1.0) -> tuple[Array, Array, Array]:
    """(motion, gap, share): the SxSx2 ``motion`` (crop px, x then y) with the lips moved whole where it opens the
    mouth of ``crop`` (the network's SxSx3 input), a new array in which columns that do not open keep the motion as it
    was; SxS, how much each crop pixel is the gap opened between the lips (as much as its column is split); and S, how
    much each column is split (0 to 1, times ``amount``). ``corners``: where the crop's template puts the mouth
    corners (2, 2), crop px."""
    (xa, _), (xb, _) = np.asarray(corners, np.float64)
    width = xb - xa
    out = np.array(motion, np.float32)
    gap_map = np.zeros(out.shape[:2], np.float32)
    share = np.zeros(out.shape[1], np.float32)
    columns, lines = lip_line(crop, corners)
    band = BAND * width
    # a column opens where the motion reads the upper lip from further down than the lower lip (the exact gap in
    # `_split_column`; this, at the lips' own rows, only spares the columns that plainly do not)
    last = out.shape[0] - 1
    upper_shift = out[np.clip(np.rint(lines - band), 0, last).astype(int), columns, 1]
    lower_shift = out[np.clip(np.rint(lines + band), 0, last).astype(int), columns, 1]
    opens = upper_shift > lower_shift
    if not opens.any():
        return out, gap_map, share
    # the lens (module docstring): closed wholly at the corners where the motion puts them, not at all midway
    left, right = moved_corners(out, corners)[:, 0]
    for x, line in zip(columns[opens], lines[opens]):
        across = float(np.clip((x - left) / max(right - left, 1.0), 0.0, 1.0))
        split = _split_column(out[:, x, 1].astype(np.float64), float(line), band, close=(2 * across - 1) ** 2)
        if split is None:
            continue
        shift, in_gap, gap = split
        weight = amount * float(smoothstep(gap / (FULL_GAP * width))) \
            * float(smoothstep(min(x - xa, xb - x) / (TAPER * width)))
        out[:, x, 1] += weight * (shift - out[:, x, 1])
        gap_map[:, x] = weight * in_gap
        share[x] = weight
    return out, gap_map, share


def moved_in_picture(crop: Array, motion: Array, split: Array, share: Array, picture: Array, m: Matrix,
                     warp: WarpMode = "bilinear") -> Array:
    """The SxSx3 ``crop`` moved by the ``split`` motion as paste-back will move the picture, for the paint's
    difference: where the split changed ``motion``, each crop pixel the mean of the ``picture`` (``m``: picture px ->
    crop px) over the pixel, moved (the split reads rows about the line that the crop's own, averaged over several
    picture rows, would misjudge by what lies beside them: 0.07-0.14 dB of a surprised or disgusted mouth on large
    faces), elsewhere the crop moved as the network moved it (``warp``: its kernel). ``share`` (S, per column, as
    `split_at_lips` gives it): how much of the picture's mean each column takes, the rest the crop's, so that a
    column starting to open does not step from one to the other between the frames of a shot."""
    size = crop.shape[0]
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float32)
    moved = moved_crop(crop, split, warp)
    rows, cols = np.nonzero(np.any(split != motion, axis=-1))
    if not len(rows):
        return moved
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    k = int(min(8, np.ceil(1.0 / matrix_scale(m))))  # samples a side: about one a picture pixel
    offsets = (np.arange(k) + 0.5) / k - 0.5
    ys = (gy[y0:y1, x0:x1, None, None] + offsets[None, None, :, None]).repeat(k, axis=3)
    xs = (gx[y0:y1, x0:x1, None, None] + offsets[None, None, None, :]).repeat(k, axis=2)
    shift = sample(split, xs, ys)
    sx, sy = xs + shift[..., 0], ys + shift[..., 1]
    inv = invert_affine(m)
    seen = sample(picture, inv[0, 0] * sx + inv[0, 1] * sy + inv[0, 2], inv[1, 0] * sx + inv[1, 1] * sy + inv[1, 2])
    moved[y0:y1, x0:x1] += share[None, x0:x1, None] * (seen.mean(axis=(2, 3)) - moved[y0:y1, x0:x1])
    return moved


def lips_whole(crop: Array, motion: Array, corners: Array, picture: Array, m: Matrix, warp: WarpMode = "bilinear",
               amount: float = 1.0) -> tuple[Array, Array, Array | None]:
    """(the motion with the lips moved whole, the crop moved by it as the picture will be, the gap between them or
    None where the mouth does not open): `split_at_lips` (``amount``: how far to split, 0 to 1) and
    `moved_in_picture`, what ``blend.crop_planes`` takes as ``motion``, ``moved`` and ``gap``."""
    split, gap, share = split_at_lips(crop, motion, corners, amount)
    return split, moved_in_picture(crop, motion, split, share, picture, m, warp), gap if gap.any() else None
