"""Whether a face is a photograph of a person or a render, read from its aligned crop (``--subject auto``).

The model's gains for photographs (`reggan_plugin.edit.calibration`) make an edit a photograph's; on a render they take
it further from the true expression. ``auto`` reads each picture's faces and gives them those gains in proportion to how
much they read as photographs (`photo_weights`, 0 to 1).

The reader is a logistic regression on a few statistics of the crop, where photographs and the face model's
renders differ (measured on the training renders, their looks and 35 of the London set's people):

- a photograph's skin is less saturated than a rendered skin, and its fine detail (pores, hair, creases) is in its
  light more than in its colour: per band of detail, its luma's energy and the chroma's energy against it;
- around the face (above the brows, at the sides) a photograph has hair and the things around a person, a render of
  the face model a bald head before a backdrop.

Its coefficients are fitted by ``recipes/photo_reader.toml`` (`training.photo_reader`) into
``models/photo_reader.json``; docs/PHOTO_READER.md gives how every set reads. A render with a photograph's look (real
skin textures, hair) may read as a photograph: ``--subject render`` edits it as fitted, whatever it looks like.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np

from ..arrays import Array
from ..errors import ModelError
from ..imaging.filters import gaussian_blurred
from ..imaging.tone import REC709_LUMA
from ..tuning import BANDS, EPS, FACE_ELLIPSE, REFERENCE_SIZE, SIDE_BANDS, TOP_BAND
from .calibration import ellipse_region

READER_PATH = Path(__file__).parents[1] / "models" / "photo_reader.json"
# what a user is told of pictures read as photographs
PHOTOGRAPH_NOTE = "edited by the model's motion alone, without its paint (--subject render edits them as renders)"
REGION_NAMES = ("face", "top", "side")
FEATURE_NAMES: list[str] = [
    name for region in REGION_NAMES
    for name in [f"{region} {what} {sigma}" for sigma in BANDS for what in ("luma", "chroma/luma")]
    + [f"{region} saturation"]] + ["face detail: red with luma", "face detail: blue with luma"]


@cache
def _regions(size: int) -> tuple[Array, ...]:
    """SxS masks of `REGION_NAMES`: the face (`tuning.FACE_ELLIPSE`), above the brows, the sides."""
    u = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = u[None, :], u[:, None]
    face = ellipse_region(size, FACE_ELLIPSE) > 0.5
    top = np.broadcast_to((y < TOP_BAND[0]) & (np.abs(x - 0.5) < TOP_BAND[1]), (size, size))
    edge, start, stop = SIDE_BANDS
    side = ((x < edge) | (x > 1 - edge)) & (y > start) & (y < stop)
    return face, top, side


def photo_features(crop: Array) -> Array:
    """SxSx3 float32 sRGB [0, 1] face crop -> the reader's statistics (`READER_PATH`'s ``features``, in order)."""
    size = crop.shape[0]
    regions = _regions(size)
    y = crop @ np.asarray(REC709_LUMA, np.float32)
    planes = np.stack([y, crop[..., 2] - y, crop[..., 0] - y], axis=-1)  # luma, blue and red difference
    level = float(y[regions[0]].mean()) + 1e-3
    blurred = [planes] + [gaussian_blurred(planes, s * size / REFERENCE_SIZE) for s in BANDS]
    bands: list[Array] = [fine - coarse for fine, coarse in pairwise(blurred)]
    chroma = np.hypot(planes[..., 1], planes[..., 2])
    out = []
    for region in regions:
        for band in bands:
            luma_sd = float(band[..., 0][region].std())
            chroma_sd = float(band[..., 1][region].std() + band[..., 2][region].std())
            out += [np.log(luma_sd / level + EPS), np.log(chroma_sd / (luma_sd + 1e-5) + EPS)]
        out.append(float(chroma[region].mean()) / level)
    middle = bands[1][regions[0]]
    centred = middle - middle.mean(axis=0)
    spread = np.sqrt((centred**2).sum(axis=0)) + 1e-12
    for k in (2, 1):  # how much of the face's detail in its colour goes with its light (their correlation)
        out.append(float((centred[:, 0] * centred[:, k]).sum() / (spread[0] * spread[k])))
    return np.asarray(out, np.float64)


@dataclass(frozen=True)
class PhotoReader:
    """A logistic regression on `photo_features`, standardised by ``mean`` and ``scale``."""

    mean: Array
    scale: Array
    weights: Array
    bias: float
    ramp: tuple[float, float]  # the logit where a face starts to read as a photograph, and where it fully does

    def logits(self, crops: Array) -> Array:
        """[n,S,S,3] crops -> [n] the log-odds that each is a photograph."""
        if not len(crops):
            return np.zeros(0)
        features = np.stack([photo_features(c) for c in crops])
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def weights_of(self, crops: Array) -> Array:
        """[n,S,S,3] crops -> [n] in [0, 1]: how much each face takes a photograph's gains."""
        lo, hi = self.ramp
        return np.clip((self.logits(crops) - lo) / (hi - lo), 0.0, 1.0)

    def to_json(self, fitted: str, recipe: dict[str, str]) -> str:
        """The reader's file, with the command that ``fitted`` it and its ``recipe`` (name, sha256, text)."""
        return json.dumps({"features": FEATURE_NAMES, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                           "weights": self.weights.tolist(), "bias": self.bias, "ramp": list(self.ramp),
                           "fitted": fitted, "recipe": recipe}, indent=1)


@cache
def photo_reader(path: Path = READER_PATH) -> PhotoReader:
    """The shipped reader (a ModelError naming the file when it is missing or malformed)."""
    try:
        data = json.loads(path.read_text())
        reader = PhotoReader(np.asarray(data["mean"], np.float64), np.asarray(data["scale"], np.float64),
                             np.asarray(data["weights"], np.float64), float(data["bias"]),
                             (float(data["ramp"][0]), float(data["ramp"][1])))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelError(path, f"not a photo reader: {exc}") from None
    n = len(FEATURE_NAMES)
    if not (reader.mean.shape == reader.scale.shape == reader.weights.shape == (n,)) or reader.ramp[1] <= reader.ramp[0]:
        raise ModelError(path, f"not a photo reader: expected {n} features and a rising ramp")
    return reader


def photo_weights(crops: Array) -> Array:
    """[n,S,S,3] float32 sRGB face crops -> [n] in [0, 1], how much each reads as a photograph (the shipped reader)."""
    return photo_reader().weights_of(crops)
