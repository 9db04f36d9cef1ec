"""The mouth interiors the runtime draws into an opened mouth (`reggan_plugin.interior`), cut from renders.

For each expression that shows the mouth's inside, every render's inside of the mouth (the picture between the inner
lip contours of its 68 landmarks: 60-64 above, 64-67 and 60 below) is unrolled into a strip, corner to corner across
and upper lip to lower lip down; the strip shipped is the medoid (least summed squared distance to the others, each
with its mean colour taken away: the runtime shifts it to the paint's colour), a real render's mouth rather than an
average, which would blur the teeth. For a smile whose motion hardly parts the lips (the teeth are the paint's), the
strip is white-balanced on its teeth and the inner lip contours go with it: their mean over the renders, in the face
crop their neutral's landmarks align, each a parabola through the mean corners, measured across from the template's
mouth corners and down from the line between the neutral's lips as the runtime finds it. Renders of training
identities, 1080 px (a mouth about 220 px wide, under the strip's width, so the strip holds the render's own
edges)::

    reggan-plugin dataset render --seed 7000 --out data/interior_1080 --start 0 --identities 8 --size 1080 \\
        --samples 8 --expressions surprised,disgusted,fearful,happy
    python -m training.interior --renders data/interior_1080
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from reggan_plugin.align import (
    apply_affine,
    crop_matrix_from_landmarks,
    crop_template,
    sample,
    similarity_from_points,
    units_to_crop_px,
    warp_to_crop,
)
from reggan_plugin.atomic import atomic_path
from reggan_plugin.faces.face import landmarks68_to_5
from reggan_plugin.grain import luma
from reggan_plugin.interior import LIPS_SUFFIX, STRIPS_FILE, line_offsets
from reggan_plugin.lips import lip_line

OPENING = ("surprised", "disgusted", "fearful")
SMILING = ("happy",)  # the motion hardly parts the lips: the inside is drawn between its inner lip contours
CONTOUR_POINTS = 17  # samples of each contour shipped, corner to corner
LINE_CROP = 128  # the face crop's side where the line between the lips is found, as the bundled model's
TEETH_SHARE = 0.3  # of a smile's strip, its brightest pixels: the teeth
STRIP = (96, 384)  # rows (upper lip to lower), columns (corner to corner)
UPPER = [60, 61, 62, 63, 64]  # 68-point inner lip contour, left corner to right
LOWER = [60, 67, 66, 65, 64]


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


def in_mouth_frame(points: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """``points`` (picture px) as (u, v) against the mouth corners of the face crop the ``neutral``'s 68 landmarks
    align: u the fraction of the way from the template's left corner to its right, v mouth widths below their line
    (`reggan_plugin.interior.smile_opening`)."""
    template = crop_template("face")
    units = apply_affine(similarity_from_points(landmarks68_to_5(neutral), template), points)
    left, right = template[3], template[4]
    across = right - left
    down = np.array([-across[1], across[0]])
    rel = units - left
    return np.stack([rel @ across, rel @ down], axis=-1) / float(across @ across)


def below_lip_line(framed: np.ndarray, picture: np.ndarray, neutral: np.ndarray, size: int = LINE_CROP) -> np.ndarray:
    """(u, v) points in the mouth frame of ``neutral`` (`in_mouth_frame`) with v measured from the line between the
    lips of the neutral ``picture`` instead of the corners' line: that line as the runtime finds it
    (`lips.lip_line`, on the face crop of ``size`` the landmarks align), so that a smile is placed by the person's
    lips and not by where a detector puts the mouth corners (on photos the line lies higher against them)."""
    template = crop_template("face")
    m = crop_matrix_from_landmarks(landmarks68_to_5(neutral), size, template)
    corners = units_to_crop_px(template[3:5], size)
    columns, rows = lip_line(warp_to_crop(picture, m, size), corners)
    return framed - np.stack([np.zeros(len(framed)), line_offsets(framed[:, 0], columns, rows, corners)], axis=-1)


def smile_lips(contours: list[tuple[np.ndarray, np.ndarray]], count: int = CONTOUR_POINTS) -> np.ndarray:
    """(2, count, 2): the mean of the (upper, lower) inner lip contours given (each 5 points, corner to corner, in the
    mouth frame), each a parabola through the mean corners fitted to its mean inner points, sampled at ``count``
    places from corner to corner (upper then lower)."""
    upper = np.mean([c[0] for c in contours], axis=0)
    lower = np.mean([c[1] for c in contours], axis=0)
    (u0, v0), (u1, v1) = (upper[0] + lower[0]) / 2, (upper[-1] + lower[-1]) / 2
    u = np.linspace(u0, u1, count)

    def parabola(points: np.ndarray) -> np.ndarray:
        # v = the corners' line + a (u - u0)(u - u1): a by least squares over the inner points
        pu, pv = points[1:-1, 0], points[1:-1, 1]
        line = v0 + (pu - u0) * (v1 - v0) / (u1 - u0)
        basis = (pu - u0) * (pu - u1)
        a = float(basis @ (pv - line) / (basis @ basis))
        return v0 + (u - u0) * (v1 - v0) / (u1 - u0) + a * (u - u0) * (u - u1)

    return np.stack([np.stack([u, parabola(upper)], axis=-1), np.stack([u, parabola(lower)], axis=-1)])


def white_balanced(strip: np.ndarray, share: float = TEETH_SHARE) -> np.ndarray:
    """``strip`` with its teeth (its brightest ``share`` of pixels by luma) made grey, as bright as they were: each
    render's lights tint its teeth, and the runtime lights a smile's teeth by the paint (`interior.SMILE_TINT`)."""
    brightness = luma(strip)
    teeth = strip[brightness >= np.quantile(brightness, 1.0 - share)].mean(axis=0)
    return np.clip(strip * (float(luma(teeth)) / np.maximum(teeth, 1e-6)), 0.0, 1.0).astype(np.float32)


def interiors(renders: Path, expressions: tuple[str, ...] = OPENING + SMILING
              ) -> dict[str, tuple[np.ndarray, str, np.ndarray | None]]:
    """{expression: (the medoid strip, float32 [0, 1], its identity, for a smile its inner lip contours (`smile_lips`)
    else None)} over a `dataset render` folder."""
    out: dict[str, tuple[np.ndarray, str, np.ndarray | None]] = {}
    for expression in expressions:
        found = sorted(renders.glob(f"*/{expression}.png"))
        if len(found) < 2:
            raise SystemExit(f"{renders}: fewer than two {expression} renders to choose from")
        strips, contours = [], []
        for path in found:
            with Image.open(path) as src:
                picture = np.asarray(src.convert("RGB"), np.float32) / 255
            points = landmarks(path)
            strips.append(unrolled(picture, points))
            if expression in SMILING:
                neutral = path.with_name("neutral.png")
                with Image.open(neutral) as src:
                    neutral_picture = np.asarray(src.convert("RGB"), np.float32) / 255
                neutral_points = landmarks(neutral)
                framed = below_lip_line(in_mouth_frame(points, neutral_points), neutral_picture, neutral_points)
                contours.append((framed[UPPER], framed[LOWER]))
        best = medoid(strips)
        if contours:
            out[expression] = (white_balanced(strips[best]), found[best].parent.name, smile_lips(contours))
        else:
            out[expression] = (strips[best], found[best].parent.name, None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, required=True, help="A `dataset render` folder (68-point landmarks).")
    parser.add_argument("--out", type=Path, default=STRIPS_FILE)
    args = parser.parse_args()
    chosen = interiors(args.renders)
    arrays = {name: np.rint(strip * 255).astype(np.uint8) for name, (strip, _, _) in chosen.items()}
    arrays.update({name + LIPS_SUFFIX: lips.astype(np.float32) for name, (_, _, lips) in chosen.items()
                   if lips is not None})
    with atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    for name, (_, identity, _) in chosen.items():
        print(f"{name}: {identity}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
