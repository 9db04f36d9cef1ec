"""What users feed the runtime, as perturbations of a held-out pair (``evaluate --perturb``).

A perturbation turns one case (the neutral picture, its 5 true points, the true target) into what the
runtime is given (pixels and a face) and what the edit is scored against, so that a perfect model scores
the clean condition's PSNR under every perturbation:

- where it moves or resamples the picture (rotation, face size), the target is moved alike;
- where it adds flaws to the picture (render noise, JPEG), the edit (output - perturbed input) is added to the
  clean input and that is scored against the clean target: the score is the edit's, not the perturbation's (a
  JPEG'd target carries blocks of its own);
- where it scales light (exposure, white balance), the target gets the same change, and output, input and
  target are taken back through the inverse gains before scoring: a brighter pair scales every error, and
  highlights clipped in the brighter picture are clipped in its target too (a fifth of a render's face at +1 stop:
  no edit could put back what they held, so the clean picture is no reference there);
- where it only changes how the face is located (boxes in other conventions, noisy landmarks), the
  picture and the target stay as they are.

Pictures are HxWx3 uint8 sRGB; points (5, 2) float pixels, pixel centres at integers.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from reggan_plugin.faces import Face, box_from_landmarks
from reggan_plugin.faces.locate import TRACKING, SharedDetector
from reggan_plugin.imaging.tone import luma

from .cases import given_face


@dataclass(frozen=True)
class Perturbed:
    """What the runtime gets and what its edit is judged against."""

    pixels: np.ndarray  # HxWx3 uint8: the runtime's input
    face: Face | None  # how the face is located (a box alone, or landmarks); None: not found, nothing is edited
    points: np.ndarray  # (5, 2) true points in ``pixels``' frame (the judging crop)
    target: np.ndarray  # HxWx3 uint8, same frame
    clean: np.ndarray | None = None  # set for flaws on the input: the edit is added to this picture
    undo: Callable[[np.ndarray], np.ndarray] | None = None  # set for a light change: float pixels -> the clean scale


Perturbation = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], Perturbed]


def clean(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
    return Perturbed(img, given_face(pts), pts, tgt)


def box(shift: tuple[float, float], scale: float, grow_y: float = 1.0) -> Perturbation:
    """A box alone (no landmarks), moved by ``shift`` x its size and scaled about its centre: another tool's box."""

    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        x, y, w, h = box_from_landmarks(pts)
        cx, cy = x + w / 2 + shift[0] * w, y + h / 2 + shift[1] * h
        bw, bh = w * scale, h * scale * grow_y
        return Perturbed(img, Face(box=(cx - bw / 2, cy - bh / 2, bw, bh), source="given"), pts, tgt)

    return make


def tight_box(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
    """Brows to chin, eye corner to eye corner: a tight detector box."""
    x, y, w, h = box_from_landmarks(pts)
    return Perturbed(img, Face(box=(x + 0.14 * w, y + 0.12 * h, 0.72 * w, 0.86 * h), source="given"), pts, tgt)


def head_box(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
    """The bounds of a sphere around the whole head, as from a head bone: about twice the face, centred higher."""
    x, y, w, h = box_from_landmarks(pts)
    side = 2.0 * max(w, h)
    cx, cy = x + w / 2, y + h / 2 - 0.15 * h
    return Perturbed(img, Face(box=(cx - side / 2, cy - side / 2, side, side), source="given"), pts, tgt)


@cache
def _detector() -> SharedDetector:
    return SharedDetector(TRACKING)


def detected(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
    """No face given: the runtime's own detector locates it, as for a picture given without a faces file (the face found
    nearest the true one; where it finds none the runtime edits nothing, and the case scores the copy)."""
    centre = np.array(Face(box=box_from_landmarks(pts)).center)
    nearest = min(_detector().detect(img), key=lambda f: float(np.linalg.norm(np.array(f.center) - centre)), default=None)
    return Perturbed(img, nearest, pts, tgt)


def landmark_noise(fraction: float) -> Perturbation:
    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        iod = float(np.linalg.norm(pts[1] - pts[0]))
        return Perturbed(img, given_face(pts + rng.normal(0.0, fraction * iod, pts.shape)), pts, tgt)

    return make


def mouth_landmarks_low(fraction: float) -> Perturbation:
    """The mouth corners given ``fraction`` of the eye distance lower, the eyes and nose as they are: landmarks in
    another tool's convention (its mouth corner a vertex or a contour point away from ours)."""

    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        iod = float(np.linalg.norm(pts[1] - pts[0]))
        given = pts.copy()
        given[3:5, 1] += fraction * iod
        return Perturbed(img, given_face(given), pts, tgt)

    return make


def _affine(img: np.ndarray, m: np.ndarray, size: tuple[int, int], fill: int) -> np.ndarray:
    """Warp by a 2x3 map (output px -> input px, PIL's convention), bicubic."""
    coeffs = tuple(float(v) for v in m.ravel())
    return np.asarray(Image.fromarray(img).transform(size, Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC,
                                                     fillcolor=(fill,) * 3))


def rotation(degrees: float) -> Perturbation:
    """The picture and the target rotated in-plane about the face centre (a tilted head or camera)."""

    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        c = pts.mean(axis=0)
        a = np.deg2rad(degrees)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        forward = np.hstack([rot, (c - rot @ c)[:, None]])  # input px -> output px
        inverse = np.hstack([rot.T, (c - rot.T @ c)[:, None]])
        size = (img.shape[1], img.shape[0])
        fill = int(np.median(img[0]))
        new_pts = pts @ forward[:, :2].T + forward[:, 2]
        return Perturbed(_affine(img, inverse, size, fill), given_face(new_pts), new_pts, _affine(tgt, inverse, size, fill))

    return make


def render_noise(sigma: float) -> Perturbation:
    """Gaussian noise of ``sigma`` levels on the input only (a low-sample render); scored as an edit on clean."""

    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        noisy = np.clip(np.round(img + rng.normal(0.0, sigma, img.shape)), 0, 255).astype(np.uint8)
        return Perturbed(noisy, given_face(pts), pts, tgt, clean=img)

    return make


def rerendered(pixels: np.ndarray) -> Perturbation:
    """The same picture rendered again another way (``pixels``: fewer samples, no denoiser): real render noise on the
    input only; scored as an edit on clean."""

    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        if pixels.shape != img.shape:
            raise ValueError(f"the re-rendered picture is {pixels.shape}, the picture {img.shape}")
        return Perturbed(pixels, given_face(pts), pts, tgt, clean=img)

    return make


def _gained(img: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Float sRGB levels with linear light scaled per channel (sRGB approximated by a 2.2 power), unclipped."""
    return (np.clip(img, 0, 255) / 255.0) ** 2.2 * gains


def linear_gain(gains: tuple[float, float, float]) -> Perturbation:
    """Linear light scaled per channel (exposure, white balance), on the input and the target alike; scored back
    through the inverse gains."""
    g = np.asarray(gains, np.float64)

    def gained(img: np.ndarray) -> np.ndarray:
        return np.clip(np.round(np.clip(_gained(img, g), 0, 1) ** (1 / 2.2) * 255), 0, 255).astype(np.uint8)

    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        return Perturbed(gained(img), given_face(pts), pts, gained(tgt),
                         undo=lambda a: _gained(a, 1.0 / g) ** (1 / 2.2) * 255.0)

    return make


def exposure(stops: float) -> Perturbation:
    return linear_gain((2.0**stops,) * 3)


def white_balance(red: float, blue: float) -> Perturbation:
    return linear_gain((red, 1.0, blue))


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def jpeg(quality: int) -> Perturbation:
    """The input through a JPEG file; scored as an edit on the clean picture."""
    return lambda img, pts, tgt, rng: Perturbed(_jpeg(img, quality), given_face(pts), pts, tgt, clean=img)


def face_size(pixels: int) -> Perturbation:
    """The picture (and target) resampled so the face box is ``pixels`` tall, on a canvas with room around it."""

    def make(img: np.ndarray, pts: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> Perturbed:
        k = pixels / box_from_landmarks(pts)[3]
        h, w = img.shape[:2]
        nh, nw = max(int(round(h * k)), 8), max(int(round(w * k)), 8)
        pad = nw // 4
        def scaled(a: np.ndarray) -> np.ndarray:
            small = np.asarray(Image.fromarray(a).resize((nw, nh), Image.Resampling.LANCZOS))
            canvas = np.empty((nh + 2 * pad, nw + 2 * pad, 3), np.uint8)
            canvas[:] = np.median(a[0], axis=0).astype(np.uint8)
            canvas[pad : pad + nh, pad : pad + nw] = small
            return canvas
        # pixel centres at integers: x' = (x + 0.5) * k - 0.5 + pad
        new_pts = (pts + 0.5) * np.array([nw / w, nh / h]) - 0.5 + pad
        return Perturbed(scaled(img), given_face(new_pts), new_pts, scaled(tgt))

    return make


PERTURBATIONS: dict[str, Perturbation] = {
    "clean": clean,
    "no face given (detector)": detected,
    "box shifted 8% right/up": box((0.08, -0.08), 1.0),
    "box x0.85": box((0.0, 0.0), 0.85),
    "box x1.2 shifted 5% down": box((0.0, 0.05), 1.2),
    "tight brows-to-chin box": tight_box,
    "head-sphere box (bone)": head_box,
    "landmark noise 2% IOD": landmark_noise(0.02),
    "mouth landmarks 6% IOD low": mouth_landmarks_low(0.06),
    "rotated 5 deg": rotation(5.0),
    "rotated 10 deg": rotation(10.0),
    "render noise sigma 3": render_noise(3.0),
    "render noise sigma 6": render_noise(6.0),
    "render noise sigma 10": render_noise(10.0),
    "exposure +1 stop": exposure(1.0),
    "exposure -1 stop": exposure(-1.0),
    "white balance warm": white_balance(1.15, 0.85),
    "JPEG quality 50": jpeg(50),
    "face 64 px": face_size(64),
    "face 96 px": face_size(96),
    "face 300 px": face_size(300),
    "face 600 px": face_size(600),
    "face 900 px": face_size(900),
}
"""Every condition of the benchmark, the clean one first."""


def chroma_speckle(edit: np.ndarray, clean: np.ndarray, target: np.ndarray, region: tuple[slice, slice]) -> float:
    """Colour speckle of an edit, in levels: the RMS of the edit's high-pass chroma (Cb, Cr minus their 5x5 mean)
    over the pixels of ``region`` where the true target does not change (|target - clean| < 3 levels)."""
    e = edit[region].astype(np.float64)
    grey = luma(e)
    chroma = np.stack([e[..., 2] - grey, e[..., 0] - grey], axis=-1)
    pad = np.pad(chroma, ((2, 2), (2, 2), (0, 0)), mode="edge")
    mean = sum(pad[dy : dy + chroma.shape[0], dx : dx + chroma.shape[1]] for dy in range(5) for dx in range(5)) / 25.0
    still = np.abs(target[region].astype(np.float64) - clean[region].astype(np.float64)).max(axis=-1) < 3.0
    if still.sum() < 16:
        return 0.0
    return float(np.sqrt(((chroma - mean)[still] ** 2).sum(axis=-1).mean()))
