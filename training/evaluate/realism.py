"""Measures of what a person sees at 1:1 that a score against the target can miss: skin detail kept away from the
mouth, spill (change where the true expression changes nothing), how bright the mouth is against the skin, how
far its colours stray toward green or blue, and what an open mouth shows.

Regions are in canonical crop units (`reggan_plugin.geometry.align`'s template), so the same region is measured on every
face, and on a frame through its crop matrix (`frame_region`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reggan_plugin.edit.blend import feather_mask, template_ellipse
from reggan_plugin.geometry.align import Matrix
from reggan_plugin.imaging.tone import REC709_LUMA

# Away from the mouth (a smile's and a jaw drop's reach) and the eyes (a squint, a brow): where an edit should keep
# the skin's pores, stubble and freckles. Crop units at the canonical template's eye distance.
MOUTH_REACH = (0.24, 0.15)
EYE_REACH = (0.12, 0.08)
# Between the lips: where a smile shows teeth and an opened mouth its inside.
MOUTH_INSIDE = (0.11, 0.05)
SPILL_UNCHANGED = 2  # levels: a pixel the true expression changes by at most this is one it leaves alone
SPILL_LARGE = 16  # levels: a change anyone sees
# px: the band along what the true expression changes where an edge the edit places a pixel off already counts as
# spill; beyond it, what is left is the edit's own ghosts (a jaw reaching into the neck, a streak on the backdrop)
SPILL_EDGE = 2
# An open mouth: at least this share of the crop inside the inner lip contour (a closed mouth's contour encloses a few
# pixels of lip line); its darkest tenth is the opening's dark, its lightest tenth its light (teeth, a lit tongue)
OPENING_LEAST = 0.003
OPENING_TENTH = 0.1
OPENING_RIM = 2 / 256  # crop units: the contour's band whose detail is the lips' edge, not the inside's
# An open mouth's lightest third: its teeth (a smile's upper row, an opened mouth's) and a tongue in their light
TEETH_SHARE = 1 / 3


def _sharp(size: int, anchor: tuple[int, ...], radii: tuple[float, float], drop: float = 0.0) -> np.ndarray:
    return template_ellipse(size, None, anchor, radii, drop, feather=0.01) > 0


def skin_region(size: int) -> np.ndarray:
    """SxS bool: the face (the paste mask's inner half) less the mouth's and the eyes' reach."""
    near = _sharp(size, (3, 4), MOUTH_REACH, 0.027) | _sharp(size, (0,), EYE_REACH) | _sharp(size, (1,), EYE_REACH)
    return (feather_mask(size) >= 0.5) & ~near


def mouth_region(size: int) -> np.ndarray:
    """SxS bool: between the mouth corners, where the lips part."""
    return _sharp(size, (3, 4), MOUTH_INSIDE)


def frame_region(region: np.ndarray, m: Matrix, shape: tuple[int, ...]) -> np.ndarray:
    """A crop-space bool ``region`` as an HxW bool mask of the frame (``m``: frame px -> crop px), nearest."""
    size = region.shape[0]
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    cx = np.rint(m[0, 0] * xs + m[0, 1] * ys + m[0, 2]).astype(np.intp)
    cy = np.rint(m[1, 0] * xs + m[1, 1] * ys + m[1, 2]).astype(np.intp)
    inside = (cx >= 0) & (cy >= 0) & (cx < size) & (cy < size)
    out = np.zeros(shape[:2], bool)
    out[inside] = region[cy[inside], cx[inside]]
    return out


def luma(rgb: np.ndarray) -> np.ndarray:
    """HxW float64 Rec. 709 luma of HxWx3 pixels, in their own levels."""
    return np.asarray(rgb, np.float64)[..., :3] @ np.asarray(REC709_LUMA, np.float64)


def laplacian_energy(rgb: np.ndarray, region: np.ndarray) -> float:
    """The variance of the 4-neighbour Laplacian of the luma over ``region`` (HxW bool; its 1 px border is left
    out): how much fine detail (pores, stubble, freckles) there is."""
    y = luma(rgb)
    lap = y[1:-1, 2:] + y[1:-1, :-2] + y[2:, 1:-1] + y[:-2, 1:-1] - 4 * y[1:-1, 1:-1]
    return float(lap[region[1:-1, 1:-1]].var())


def detail_kept(before: np.ndarray, after: np.ndarray, region: np.ndarray) -> float:
    """The fine detail of ``after`` over ``before``'s within ``region``: 1 keeps it all, 0.5 is an airbrush."""
    return laplacian_energy(after, region) / max(laplacian_energy(before, region), 1e-12)


def spill(out: np.ndarray, source: np.ndarray, target: np.ndarray, margin: int = 0) -> tuple[float, float]:
    """Where the true expression leaves a pixel alone (``target`` within ``SPILL_UNCHANGED`` levels of ``source``, every
    channel; uint8 pixels) and, with ``margin`` px, no pixel it changes lies within that distance: the 99.9th percentile
    of the edit's change there (levels, the largest channel's), and the percentage of those pixels it changes by more
    than ``SPILL_LARGE``."""
    source = np.asarray(source, np.int32)[..., :3]
    changed = np.abs(np.asarray(target, np.int32)[..., :3] - source).max(axis=2) > SPILL_UNCHANGED
    if margin > 0:
        changed = cv2.dilate(changed.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
    change = np.abs(np.asarray(out, np.int32)[..., :3] - source).max(axis=2)[~changed]
    if change.size == 0:
        return 0.0, 0.0
    return float(np.percentile(change, 99.9)), float(100.0 * np.mean(change > SPILL_LARGE))


def mouth_light(crop: np.ndarray) -> float:
    """How much brighter the mouth's brightest part is than the skin (levels of an SxSx3 uint8 canonical crop): the
    95th percentile of the luma between the lips less the median skin luma. Real smiles' teeth sit in the mouth's
    shade, a few levels above the cheek; a pasted white band sits a hundred above it."""
    size = crop.shape[0]
    y = luma(crop)
    return float(np.percentile(y[mouth_region(size)], 95) - np.median(y[skin_region(size)]))


def mouth_tint(crop: np.ndarray) -> float:
    """How far the mouth's coolest colours stray from a mouth's (levels of an SxSx3 uint8 canonical crop): the 99th
    percentile of luma less red between the lips. Lips, gums, tongue and teeth are red to white, their red at or above
    their luma (people's smiles: some 15 levels below 0); a paint whose colours come apart into green and blue fringes
    goes to 0 and above."""
    f = np.asarray(crop, np.float32)
    return float(np.percentile((luma(crop) - f[..., 0])[mouth_region(crop.shape[0])], 99))


@dataclass(frozen=True)
class Opening:
    """What an open mouth shows (`opening`): ``share`` of the crop inside the inner lip contour; the colour of its
    darkest tenth, ``dark`` (luma) and ``red`` (red less the mean of green and blue); its ``detail`` (the standard
    deviation of the luma's Laplacian inside it); and ``glow``, the red of its lightest tenth; each over the skin's
    median luma."""

    share: float
    dark: float
    red: float
    detail: float
    glow: float


def _redness(rgb: np.ndarray) -> float:
    return float(rgb[0] - (rgb[1] + rgb[2]) / 2)


def opening(crop: np.ndarray, inner_lips: np.ndarray, least: float = OPENING_LEAST) -> Opening | None:
    """What an open mouth shows (an SxSx3 uint8 canonical crop; ``inner_lips`` the inner lip contour, (20, 2) crop
    units, `mouth_shape.MouthShapeJudge.inner_lips`). A real opening's dark is the mouth's shade, reddish
    (tongue, gums), with the edges of teeth and tongue in it (the detail is read ``OPENING_RIM`` inside the contour,
    off the lips' own edge, and per pixel: compare crops of one size), and its lightest parts are teeth and a tongue in
    that shade, a little red; a dark blot is near black and featureless, a smear grey or purple and soft, a rendered
    inside lit brighter than the mouth's shade glows coral or orange (a high ``glow``; the detail alone reads that glow
    as edges). None where the mouth is closed (less than ``least`` of the crop inside)."""
    size = crop.shape[0]
    inside = _inside(size, inner_lips)
    if inside.sum() < least * size * size:
        return None
    y = luma(crop)
    pixels = np.asarray(crop, np.float64)[..., :3][inside > 0]
    order = np.argsort(y[inside > 0])
    tenth = max(int(OPENING_TENTH * len(pixels)), 1)
    dark, light = pixels[order[:tenth]].mean(axis=0), pixels[order[-tenth:]].mean(axis=0)
    skin = float(np.median(y[skin_region(size)]))
    rim = max(round(OPENING_RIM * size), 1)
    core = cv2.erode(inside, np.ones((2 * rim + 1,) * 2, np.uint8)) > 0  # the lips' edges left out
    return Opening(share=float(inside.mean()), dark=float(dark @ np.asarray(REC709_LUMA)) / skin,
                   red=_redness(dark) / skin,
                   detail=float(np.sqrt(laplacian_energy(crop, core))) / skin if core.any() else 0.0,
                   glow=_redness(light) / skin)


def _inside(size: int, inner_lips: np.ndarray) -> np.ndarray:
    """SxS uint8: 1 inside the inner lip contour (crop units)."""
    inside = np.zeros((size, size), np.uint8)
    cv2.fillPoly(inside, [np.round(np.asarray(inner_lips) * size).astype(np.int32)], (1,))
    return inside


def teeth_colour(crop: np.ndarray, target: np.ndarray, inner_lips: np.ndarray,
                 least: float = OPENING_LEAST) -> float | None:
    """How far the colour an edit shows inside the true expression's open mouth strays from the truth's: the CIELAB
    a*b* distance between the mean colours of the lightest ``TEETH_SHARE`` (by L*) of each inside the target's inner lip
    contour (``inner_lips``: the target's, (20, 2) crop units; SxSx3 uint8 crops of one size). Teeth are cream to grey
    in both; a paint whose filter carries the lips' red into them turns them teal, and closed lips where the truth shows
    teeth read red. None where the target's mouth is closed (less than ``least`` of the crop inside)."""
    size = crop.shape[0]
    inside = _inside(size, inner_lips) > 0
    if inside.sum() < least * size * size:
        return None

    def lightest(rgb: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), cv2.COLOR_RGB2LAB)[inside]
        lab = lab.astype(np.float64)
        return lab[lab[:, 0] >= np.quantile(lab[:, 0], 1.0 - TEETH_SHARE), 1:].mean(axis=0)

    return float(np.linalg.norm(lightest(crop) - lightest(target)))
