"""Filters on a picture: Gaussian blur, and its split into structure and grain (a non-local mean, Buades et al. 2005).

Paste-back moves the frame by the model's motion. Moving every pixel would move the picture's grain with the
face: render noise, sensor noise and the finest texture, which belong to the image, not to the surface, and
then show as noise that crawls where the face moves (and as a doubled noise when the edit is judged against the
still picture). So the structure (edges above the grain's contrast, the lips, the shading) is moved and the grain
stays where it is. Only grainy pictures are split (``noise_level``): on a clean one the finest detail is the
face's own and moves with it. A path tracer's fireflies (``despeckled``) go before the split: far above any
contrast threshold, they would count as structure and move with the face. A JPEG's 8x8 blocks are grain too
(``grain_level``): they belong to the grid of the file, and moved with the face they drew their edges into the edit
(JPEG quality 50 cost angry and sad 0.4-0.6 dB more with them moved). What counts as grain scales with the noise
measured (``degrained``), measured where it is strongest (``grain_level``): a path tracer's noise is mostly luma,
which the chroma level, the one that tells grain from detail, underrates. Whatever grain the structure keeps moves
with the face, so the split averages each pixel with the pixels around it whose neighbourhoods look alike
(``nonlocal_mean``): flat skin loses most of its noise, an edge averages only along itself; and what moves is that
structure less its pixel-scale part (``moving_structure``), which stays with the grain. The network, too, sees
a grainy region's structure (``ExpressionRenderer.prepare_image``): fed grain, it paints it back as coloured speckle
and smear. Arrays: HxWxC float32, any range.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ..arrays import Array
from ..tuning import BLOCKS_MIN_SIDE, BLOCKY, FIREFLY_STDS, MOVED_SIGMA, NOISE_FLOOR, SEARCH_RADIUS, STRENGTH
from .tone import REC601_LUMA, luma

# The split's tuned numbers (window, strength, what moves, fireflies, what counts as grainy or blocky):
# reggan_plugin.tuning. The picture's structure is read in Rec. 601 luma (``tone.REC601_LUMA``, `luma`'s default).
STRUCTURE_REACH = SEARCH_RADIUS + 2  # px: how far from a pixel the picture decides its structure (``degrained``): the
# window, the patch, the firefly median
GRAIN_REACH = STRUCTURE_REACH + int(np.ceil(3 * MOVED_SIGMA))  # px: how far from a pixel the picture decides what moves
# (``moving_structure``): its structure, then MOVED_SIGMA's Gaussian (taps to 3 sigma, ``gaussian_blurred``)
BAND_ROWS = 128  # rows the split works on at a time (``in_bands``): its filters hold a dozen arrays the size of what
# they work on, over 300 MB for a 4K close-up's face region in one piece, and pictures are split in several threads
# (the same result pixel for pixel whatever its value: a memory bound, not a tuned number)


def shifted(img: Array, axis: int, radius: int) -> list[Array]:
    """The 2 ``radius`` + 1 copies of ``img`` whose pixel i is ``img``'s pixel i + k along ``axis``, k from -radius to
    radius, edges repeated: the taps of a filter along one axis, without a BLAS product (``luma``)."""
    p = np.pad(img, [(radius, radius) if a == axis else (0, 0) for a in range(img.ndim)], mode="edge")
    n = img.shape[axis]
    return [np.take(p, np.arange(k, k + n), axis=axis) for k in range(2 * radius + 1)]


_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_levels(img: Array) -> tuple[float, float]:
    """The std of white noise in HxWx3 sRGB [0, 1] ``img``'s chroma (B - Y, R - Y) and in its luma (as the std per
    channel that would give that much luma noise), by Immerkaer's fast estimate. Faces and backgrounds have smooth
    chroma, so the chroma level tells grain from detail; the luma level also counts a picture's finest detail, and
    a path tracer's noise is mostly luma: renders of 4-16 samples without a denoiser measure 2-2.5 times as much luma
    noise as their chroma level implies (white noise: as much)."""
    rgb = np.asarray(img)[..., :3]
    if rgb.shape[0] < 3 or rgb.shape[1] < 3:
        return 0.0, 0.0
    step = max(1, (rgb.shape[0] - 2) // 96)  # every step-th row's 3x3 neighbourhoods: an estimate, not a filter
    if step > 2:  # only the rows those neighbourhoods read
        starts = np.arange(0, rgb.shape[0] - 2, step)
        rgb = rgb[(starts[:, None] + np.arange(3)).ravel()]
        step = 3
    x = rgb.astype(np.float32, copy=False)
    grey = luma(x)
    h, w = grey.shape

    def level(plane: Array) -> float:
        conv = sum(_IMMERKAER[i, j] * plane[i : h - 2 + i : step, j : w - 2 + j] for i in range(3) for j in range(3))
        return float(float(np.abs(conv).mean()) * np.sqrt(np.pi / 2) / 6)

    chroma = (level(x[..., 2] - grey) + level(x[..., 0] - grey)) / 2
    return chroma, level(grey) / float(np.sqrt((REC601_LUMA * REC601_LUMA).sum()))


def noise_level(img: Array) -> float:
    """The std of white noise in HxWx3 sRGB [0, 1] ``img``'s chroma (``noise_levels``): what tells a grainy picture
    (``NOISE_FLOOR``)."""
    return noise_levels(img)[0]


def blockiness(img: Array) -> float:
    """How much more the luma of HxWx3 ``img`` steps between two pixels at the strongest phase of an 8 px grid than
    at the next strongest (the mean step, its largest tenth left out), across columns and rows: about 1 for a
    picture (a pattern finer than the grid steps at several phases alike), above ``BLOCKY`` for a JPEG's blocks
    (one phase: their edges, all over the picture). 1 for a picture under
    ``BLOCKS_MIN_SIDE`` px a side: over a few blocks a face's own edges fall on one phase as often as not."""
    if min(img.shape[0], img.shape[1]) < BLOCKS_MIN_SIDE:
        return 1.0
    rgb = np.asarray(img)
    ratios = []
    for lines in (rgb[:: max(1, rgb.shape[0] // 128)], rgb[:, :: max(1, rgb.shape[1] // 128)].transpose(1, 0, 2)):
        steps = np.abs(np.diff(luma(lines), axis=1))  # some rows, then some columns: an estimate
        n = steps.shape[1] // 8 * 8
        by_phase = steps[:, :n].reshape(-1, 8)
        kept = by_phase <= np.percentile(by_phase, 90, axis=0)  # a long straight edge puts all its steps on one phase
        phases = np.sort((by_phase * kept).sum(axis=0) / np.maximum(kept.sum(axis=0), 1))
        ratios.append(float(phases[-1] / max(float(phases[-2]), 1e-6)))
    return float(np.mean(ratios))


def grain_level(img: Array, *, blocks: bool = True) -> float:
    """The noise level HxWx3 sRGB [0, 1] ``img`` is split at (``degrained``). On a grainy picture (chroma noise from
    ``NOISE_FLOOR``) the stronger of its chroma and luma noise (``noise_levels``): split at the chroma level, a
    4-sample render kept most of its noise in the structure, and paste-back moved it with the face. Else
    ``NOISE_FLOOR`` where the picture shows JPEG blocks (``blocks``), and its chroma level (not split) elsewhere."""
    chroma, lum = noise_levels(img)
    if chroma >= NOISE_FLOOR:
        return max(chroma, lum)
    return NOISE_FLOOR if blocks and blockiness(img) >= BLOCKY else chroma


def nonlocal_mean(img: Array, level: float) -> Array:
    """HxWxC ``img``, each pixel the weighted mean of the pixels of its (2 SEARCH_RADIUS + 1)^2 window, a pixel's
    weight falling with how unlike its 3 x 3 patch is to the centre's beyond what noise of std ``level`` makes
    (``STRENGTH``). Each pair of pixels is weighed once for both (the distance is symmetric); edges repeated. Worked
    on channel planes (contiguous rows for every sum): about 0.25 s of CPU per million pixels."""
    x = np.asarray(img, np.float32)
    h, w = x.shape[:2]
    m = SEARCH_RADIUS + 1  # the window and the patch
    p = np.ascontiguousarray(np.pad(x, ((m, m), (m, m), (0, 0)), mode="edge").transpose(2, 0, 1))
    channels, rows, cols = p.shape
    acc, total = p.copy(), np.ones((rows, cols), np.float32)
    n = 9 * channels  # squared differences in a patch
    expected = np.float32(2 * n * level * level)  # what noise alone gives two patches of the same surface
    scale = np.float32(-1 / (n * (STRENGTH * level) ** 2))
    for dy in range(SEARCH_RADIUS + 1):
        for dx in range(-SEARCH_RADIUS, SEARCH_RADIUS + 1):
            if dy == 0 and dx <= 0:  # each pair once: (i, i + o) stands for (i + o, i) too
                continue
            c0, c1 = max(0, -dx), cols - max(0, dx)
            diff = p[:, : rows - dy, c0:c1] - p[:, dy:, c0 + dx : c1 + dx]
            diff *= diff
            d = diff.sum(axis=0)
            d = d[:-2] + d[1:-1] + d[2:]  # over the 3 x 3 patch
            d = d[:, :-2] + d[:, 1:-1] + d[:, 2:]
            d -= expected
            np.maximum(d, 0, out=d)
            d *= scale
            weight = np.exp(d)  # of the pair centred at a = (1 + i) and b = a + o
            ay, ax = slice(1, 1 + weight.shape[0]), slice(c0 + 1, c0 + 1 + weight.shape[1])
            by, bx = slice(1 + dy, 1 + dy + weight.shape[0]), slice(c0 + 1 + dx, c0 + 1 + dx + weight.shape[1])
            total[ay, ax] += weight
            total[by, bx] += weight
            acc[:, ay, ax] += weight * p[:, by, bx]
            acc[:, by, bx] += weight * p[:, ay, ax]
    return np.ascontiguousarray((acc[:, m : m + h, m : m + w] / total[m : m + h, m : m + w]).transpose(1, 2, 0))


def despeckled(img: Array, level: float) -> Array:
    """HxWxC ``img`` with its fireflies (a path tracer's single pixels far brighter or darker than their
    neighbours) replaced by their neighbourhood's median: where a pixel lies more than FIREFLY_STDS noise stds
    (``level``) from a 3-tap median along the rows, then the columns (a separable 3x3 pseudo-median). Gaussian
    noise hardly reaches that far, and edges are their own median."""
    x = np.asarray(img, np.float32)
    med = x
    for axis in (1, 0):
        a, b, c = shifted(med, axis, 1)
        med = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return np.where(np.abs(x - med) > FIREFLY_STDS * level, med, x)


def in_bands(img: Array, reach: int, work: Callable[[Array], Array]) -> Array:
    """``work`` on HxWxC ``img``, worked BAND_ROWS rows at a time, each band with ``reach`` rows of the picture
    either side: the same result as in one piece for a filter whose row i reads rows i - reach to i + reach at most
    (edges repeated), in a fraction of the memory."""
    x = np.asarray(img, np.float32)
    h = x.shape[0]
    if h <= BAND_ROWS + 2 * reach:
        return work(x)
    out = np.empty(x.shape, np.float32)
    for r0 in range(0, h, BAND_ROWS):
        r1 = min(h, r0 + BAND_ROWS)
        a, b = max(0, r0 - reach), min(h, r1 + reach)
        out[r0:r1] = work(x[a:b])[r0 - a : r1 - a]
    return out


def degrained(img: Array, level: float | None = None) -> Array:
    """``img``'s structure when it is grainy (``grain_level`` >= NOISE_FLOOR: fireflies taken out, ``despeckled``,
    then the ``nonlocal_mean`` at that noise level), else ``img`` itself: a clean picture's finest detail is its own.
    ``level``: the noise level measured elsewhere (default: ``grain_level`` of ``img``, blocks not judged)."""
    level = grain_level(img, blocks=False) if level is None else level
    if level < NOISE_FLOOR:
        return img
    return in_bands(img, STRUCTURE_REACH, lambda band: _structure(band, level))


def _structure(img: Array, level: float) -> Array:
    """A grainy ``img``'s structure in one piece: fireflies out, then the non-local mean (row i reads STRUCTURE_REACH
    rows either side)."""
    return nonlocal_mean(despeckled(img, level), level)


def gaussian_blurred(img: Array, sigma: float) -> Array:
    """HxWxC ``img`` blurred by a Gaussian of std ``sigma`` px (taps to 3 sigma, edges repeated): OpenCV's separable
    filter, 12-31x faster than the same taps summed in numpy (docs/FILTERS.md), to within 3e-7. A pixel's result
    depends on its neighbourhood alone, so bands of a picture blur as the whole does (``in_bands``)."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    x = np.asarray(img, np.float32)
    parts = []
    for start in range(0, x.shape[2], 4):  # OpenCV filters up to 4 channels at a time
        part = cv2.sepFilter2D(np.ascontiguousarray(x[..., start : start + 4]), -1, taps, taps,
                               borderType=cv2.BORDER_REPLICATE)
        parts.append(part.reshape(*x.shape[:2], -1))
    out: Array = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    return out


def moving_structure(img: Array, level: float) -> Array:
    """What paste-back moves of HxWxC ``img``: ``img`` itself when it is clean (``level`` under NOISE_FLOOR), else its
    structure (``degrained``) less its pixel-scale part (a Gaussian of MOVED_SIGMA px), which stays with the grain."""
    if level < NOISE_FLOOR:
        return img
    return in_bands(img, GRAIN_REACH, lambda band: gaussian_blurred(_structure(band, level), MOVED_SIGMA))
