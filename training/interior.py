"""The mouth interiors the runtime draws into an opened mouth (`reggan_plugin.edit.interior`), cut from renders.

For each expression that opens the mouth, every render's inside of the mouth (the picture between the inner lip contours
of its 68 landmarks: 60-64 above, 64-67 and 60 below) is unrolled into a strip, corner to corner across and upper lip to
lower lip down, white-balanced on the identity's teeth (`teeth_balance`: a render's light is warm or cool, and the
runtime lights the strip by the paint at most so much, so a warm-lit strip's teeth would stay yellow); the strip shipped
is the medoid (least summed squared distance to the others, each with its mean colour taken away: the runtime shifts it
to the paint's colour), a real render's mouth rather than an average, which would blur the teeth. Renders of training
identities, 1080 px (a mouth about 220 px wide, under the strip's width, so the strip holds the render's own edges), by
a recipe of kind ``interior`` (``reggan-plugin recipe recipes/interior.toml``); the file keeps the recipe that built it
(`RECIPE_ENTRY`).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from reggan_plugin.atomic import atomic_path
from reggan_plugin.edit.interior import RECIPE_ENTRY
from reggan_plugin.errors import UsageError
from reggan_plugin.geometry.resample import sample
from reggan_plugin.imaging.tone import REC709_LUMA

OPENING = ("surprised", "disgusted", "fearful")
STRIP = (96, 384)  # rows (upper lip to lower), columns (corner to corner)
UPPER = [60, 61, 62, 63, 64]  # 68-point inner lip contour, left corner to right
LOWER = [60, 67, 66, 65, 64]
TEETH_FROM = "disgusted"  # the expression whose render bares the upper teeth: each identity's teeth read from it
TEETH = 0.05  # its strip's lightest share: the teeth (the upper teeth fill about a third of a disgusted strip)


def unrolled(picture: np.ndarray, points: np.ndarray, shape: tuple[int, int] = STRIP) -> np.ndarray:
    """The HxWx3 ``picture`` between the inner lip contours of its 68 ``points`` (picture px) as a ``shape`` strip:
    column u at the fraction u of the way from corner 60 to corner 64, row v the fraction v of the way from the
    upper contour to the lower, both measured along and across the corners' line."""
    left, right = points[60], points[64]
    width = float(np.linalg.norm(right - left))
    across = (right - left) / width
    down = np.array([-across[1], across[0]])

    def contour(ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        rel = points[ids] - left
        return rel @ across / width, rel @ down

    rows, cols = shape
    u = (np.arange(cols) + 0.5) / cols
    top, bottom = np.interp(u, *contour(UPPER)), np.interp(u, *contour(LOWER))
    v = (np.arange(rows) + 0.5) / rows
    offset = top[None, :] + v[:, None] * (bottom - top)[None, :]
    xs = left[0] + u[None, :] * width * across[0] + offset * down[0]
    ys = left[1] + u[None, :] * width * across[1] + offset * down[1]
    return sample(picture, xs.astype(np.float32), ys.astype(np.float32))


def medoid(strips: list[np.ndarray]) -> int:
    """Index of the strip nearest all the others, each without its mean colour."""
    centred = np.stack([s - s.mean(axis=(0, 1)) for s in strips])
    distance = ((centred[:, None] - centred[None]) ** 2).mean(axis=(2, 3, 4)).sum(axis=1)
    return int(np.argmin(distance))


def landmarks(picture: Path) -> np.ndarray:
    """A render's 68 landmarks (picture px) from the file `dataset render` writes beside it."""
    return np.array(json.loads(picture.with_suffix(".landmarks.json").read_text())["points"], np.float64)


def teeth_balance(strip: np.ndarray) -> np.ndarray:
    """Per-channel gains that make the teeth of ``strip`` (HxWx3 [0, 1]; its lightest ``TEETH`` of pixels) grey at
    their own luma: the render's light colour taken out of everything the strips of that render hold."""
    pixels = strip.reshape(-1, 3).astype(np.float64)
    lightness = pixels @ np.asarray(REC709_LUMA)
    teeth = pixels[np.argsort(lightness)[-max(int(TEETH * len(pixels)), 1):]].mean(axis=0)
    gains: np.ndarray = float(teeth @ np.asarray(REC709_LUMA)) / np.maximum(teeth, 1e-6)
    return gains


def strip_of(path: Path) -> np.ndarray:
    """A render's unrolled inside of the mouth (`unrolled`), float32 [0, 1]."""
    with Image.open(path) as src:
        picture = np.asarray(src.convert("RGB"), np.float32) / 255
    return unrolled(picture, landmarks(path))


def interiors(folders: list[Path], expressions: tuple[str, ...] = OPENING) -> dict[str, tuple[np.ndarray, str]]:
    """{expression: (the medoid strip, float32 [0, 1], its identity)} over `dataset render` folders, each identity's
    strips white-balanced on its teeth where it has a ``TEETH_FROM`` render (`teeth_balance`)."""
    renders = {name: sorted(p for folder in folders for p in folder.glob(f"*/{name}.png"))
               for name in {*expressions, TEETH_FROM}}
    unrolled_at = {path: strip_of(path) for paths in renders.values() for path in paths}  # each render read once
    balance = {path.parent: teeth_balance(unrolled_at[path]) for path in renders[TEETH_FROM]}
    out: dict[str, tuple[np.ndarray, str]] = {}
    for expression in expressions:
        found = renders[expression]
        if len(found) < 2:
            raise UsageError(f"{', '.join(map(str, folders))}: fewer than two {expression} renders to choose from")
        strips = [np.clip(unrolled_at[path] * balance.get(path.parent, 1.0), 0.0, 1.0).astype(np.float32)
                  for path in found]
        best = medoid(strips)
        out[expression] = (strips[best], found[best].parent.name)
    return out


def build_strips(folders: list[Path], out: Path, recipe: dict[str, str], log: Callable[[str], None] = print) -> None:
    """The medoid strips of the render ``folders``, written to ``out`` (uint8 .npz) with ``recipe``
    (`training.recipe.Recipe.stamp`) as JSON beside them."""
    chosen = interiors(folders)
    arrays = {name: np.rint(strip * 255).astype(np.uint8) for name, (strip, _) in chosen.items()}
    arrays[RECIPE_ENTRY] = np.array(json.dumps(recipe, sort_keys=True))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    for name, (_, identity) in chosen.items():
        log(f"{name}: {identity}")
