"""The face-coverage model: where an aligned face crop shows the head rather than what is behind it, and which of
the head is the face above the jaw.

The expression model paints and moves the crop's pixels; on a head turned from the camera the crop's far side is
background, and an edit that reaches it drags the backdrop into the cheek and the cheek into the backdrop. The
renders carry the answer in their alpha (the head's coverage), so a small U-Net learns it from them: aligned
crops of renders of many heads, turned up to 40 degrees, over their varied backdrops, and the runtime keeps the
edit where it predicts the head (`reggan_plugin.edit.coverage`).

An opening jaw passes in front of the neck, and the expression model's motion, smooth across the jaw line, drags
the neck and the backdrop below the chin along with it. So the same network also learns the face layer: the head
above its jaw line (the render's own 68 landmarks, `face_layer`), which moves in front of what lies below it.

Built by a recipe of kind ``coverage`` (``reggan-plugin recipe recipes/coverage.toml``): its renders, then
``[coverage]`` ``steps``, ``batch`` and ``seed``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from reggan_plugin.atomic import atomic_path
from reggan_plugin.edit.coverage import FACE, INPUT, OUTPUT
from reggan_plugin.errors import UsageError
from reggan_plugin.geometry.align import crop_matrix_from_landmarks
from reggan_plugin.geometry.resample import warp_to_crop
from training.data.landmarks import find_68_points, to_five

SIZE = 128
JAW = slice(0, 17)  # the jaw line's points in the 68
COVERAGE_KIND = "reggan.coverage"  # metadata key: the model's provenance (its command and data)


class CoverageNet(nn.Module):
    """A small U-Net at half the crop's resolution (a silhouette is smooth): [n, S, S, 3] sRGB [0, 1] -> [n, 2, S, S]
    logits of the head's coverage and of the face layer (NHWC in, as the runtime's crops)."""

    def __init__(self, width: int = 12) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))

        w = width
        self.down = nn.ModuleList([block(3, w), block(w, 2 * w), block(2 * w, 4 * w)])
        self.up = nn.ModuleList([block(6 * w, 2 * w), block(3 * w, w)])
        self.head = nn.Conv2d(w, 2, 1)

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(crop.permute(0, 3, 1, 2) * 2 - 1, 2)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False), skip], 1))
        return F.interpolate(self.head(x), scale_factor=2.0, mode="bilinear", align_corners=False)


def render_images(folders: list[Path]) -> list[Path]:
    """Every finished render (an RGBA PNG beside its landmark file) under the folders."""
    return sorted(p for folder in folders for p in folder.glob("*/*.png")
                  if not p.name.startswith(".") and p.with_suffix(".landmarks.json").is_file())


def aligned(path: Path, rng: np.random.Generator, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """One render's canonical crop (S x S x 3 float32) and what the model learns of it (S x S x 2: its alpha and its
    face layer), as `render_crop` cuts them."""
    crop, alpha, layer = render_crop(path, rng, jitter)
    return crop, np.stack([alpha, alpha * layer], -1)


def render_crop(path: Path, rng: np.random.Generator, jitter: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One render's canonical crop (S x S x 3 float32), its alpha and its face layer (S x S each: `face_layer` of its
    own jaw line), cut on the five points of its 68 moved by up to ``jitter`` of the eye distance (a detector's are
    that far off; 0: the runtime's crop from the render's landmarks)."""
    sidecar = path.with_suffix(".landmarks.json")
    points = find_68_points(path)
    if points is None:
        raise UsageError(f"{sidecar}: the coverage model learns the jaw line from the 68 points renders write")
    five = to_five(points, sidecar)
    eyes = float(np.linalg.norm(five[1] - five[0]))
    five = five + rng.normal(0, jitter * eyes, (1, 2)) + rng.normal(0, jitter * eyes / 2, five.shape)
    rgba = np.asarray(load_rgb_alpha(path), np.float32) / 255.0
    m = crop_matrix_from_landmarks(five, SIZE)
    crop = warp_to_crop(rgba, m, SIZE)
    return crop[..., :3], crop[..., 3], face_layer(points[JAW] @ m[:, :2].T + m[:, 2], SIZE)


def face_layer(jaw: np.ndarray, size: int) -> np.ndarray:
    """S x S float32: 0 below the jaw line ``jaw`` (17 x 2 crop px, ear to ear through the chin), 1 elsewhere, over a
    pixel's width (pixel centres at integers, as the landmarks have them); a column's bound is the lowest point the
    line passes there. Beside the line's span nothing is below it: on a turned head the far jaw's points lie inside
    the silhouette, and the lips and the nose's tip reach past them."""
    xs = np.arange(size, dtype=np.float64)
    bound = np.full(size, np.inf)
    for a, b in pairwise(jaw):
        if a[0] == b[0]:
            continue
        inside = (xs >= min(a[0], b[0])) & (xs <= max(a[0], b[0]))
        y = a[1] + (xs[inside] - a[0]) / (b[0] - a[0]) * (b[1] - a[1])
        bound[inside] = np.where(np.isinf(bound[inside]), y, np.maximum(bound[inside], y))
    ys = np.arange(size, dtype=np.float64)[:, None]
    return np.clip(bound[None, :] - ys + 0.5, 0.0, 1.0).astype(np.float32)


def jaw_agreement(face: np.ndarray, alpha: np.ndarray, layer: np.ndarray) -> tuple[float, float]:
    """How far a predicted face layer (S x S, on at 0.5) agrees with a render's: the share of the crop on the same side
    as the render's head above its jaw line (``alpha`` times `face_layer`'s ``layer``), and the same over the band
    about 6 px either side of that line, where the neck begins."""
    truth, found = alpha * layer > 0.5, face > 0.5
    band = np.abs(cv2.GaussianBlur(layer, (0, 0), 3.0) - 0.5) < 0.49
    return float(np.mean(found == truth)), float(np.mean(found[band] == truth[band]))


def load_rgb_alpha(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def backdrop(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A random backdrop: a flat colour, a gradient, or soft or fine noise, in random colours."""
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    kind = rng.integers(0, 4)
    t: np.ndarray
    if kind == 0:
        t = np.zeros((size, size, 1))
    elif kind == 1:
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / size
        t = ((np.cos(angle) * xx + np.sin(angle) * yy) % 1.0)[..., None]
    else:
        cells = int(rng.integers(2, 8)) if kind == 2 else int(rng.integers(16, 64))
        t = cv2.resize(rng.uniform(0, 1, (cells, cells)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_CUBIC)[..., None]
    return np.clip(a * (1 - t) + b * t, 0, 1).astype(np.float32)


def photometric(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light and colour as other pictures have them: exposure, white balance, contrast, a little noise."""
    crop = crop * rng.uniform(0.5, 1.5) * rng.uniform(0.85, 1.15, 3)
    mean = crop.mean()
    crop = mean + (crop - mean) * rng.uniform(0.7, 1.3)
    crop = crop + rng.normal(0, rng.uniform(0, 0.03), crop.shape)
    return np.clip(crop, 0, 1).astype(np.float32)


def train(folders: list[Path], steps: int, batch: int, seed: int, device: str = "cpu", log_every: int = 100,
          log: Callable[[str], None] = print) -> CoverageNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    paths = render_images(folders)
    if not paths:
        raise UsageError(f"no renders with landmark files under {', '.join(map(str, folders))}")
    # the crops are cut once, jittered four ways each; light, colour and mirroring are drawn per step
    pairs = [aligned(p, rng, 0.04) for p in paths for _ in range(4)]
    crops = np.stack([c for c, _ in pairs])
    targets = np.stack([a for _, a in pairs])
    log(f"{len(paths)} renders, {len(pairs)} crops")
    net = CoverageNet().to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    start = time.time()
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(crops), batch)
        y = targets[idx]
        x = crops[idx].copy()
        for k in np.nonzero(rng.random(batch) < 0.5)[0]:  # the head over another backdrop
            x[k] = x[k] * y[k][..., :1] + backdrop(rng) * (1 - y[k][..., :1])
        x = np.stack([photometric(c, rng) for c in x])
        flip = rng.random(batch) < 0.5
        x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, ::-1]
        loss = F.binary_cross_entropy_with_logits(net(torch.from_numpy(np.ascontiguousarray(x)).to(device)),
                                                  torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2))).to(device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % log_every == 0 or step == steps:
            log(f"step {step}/{steps}: loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    return net.cpu().eval()


class _Probabilities(nn.Module):
    def __init__(self, net: CoverageNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.sigmoid(self.net(crop))
        return p[:, 0], p[:, 1]


def export(net: CoverageNet, out: Path, provenance: dict, recipe: dict[str, str]) -> None:
    """Write the model as ONNX (atomically): ``crop`` [n, S, S, 3] -> ``coverage`` and ``face`` [n, S, S] in [0, 1],
    with its provenance and the recipe that built it in the metadata."""
    from .recipe import RECIPE_KEY

    example = torch.rand(2, SIZE, SIZE, 3)
    with atomic_path(out) as tmp:
        torch.onnx.export(_Probabilities(net), (example,), str(tmp), dynamo=False, opset_version=17,
                          input_names=[INPUT], output_names=[OUTPUT, FACE],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}, FACE: {0: "batch"}})
        proto = onnx.load(str(tmp))
        proto.metadata_props.add(key=COVERAGE_KIND, value=json.dumps(provenance, sort_keys=True))
        proto.metadata_props.add(key=RECIPE_KEY, value=json.dumps(recipe, sort_keys=True))
        proto.producer_name = "reggan-plugin"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))


SETTINGS = {"steps": 1500, "batch": 16, "seed": 0}  # a recipe's [coverage] table; these when it leaves one out


def build_model(folders: list[Path], out: Path, options: dict, recipe: dict[str, str], device: str,
                log: Callable[[str], None] = print) -> None:
    """Train on the render ``folders`` with a recipe's ``options`` (keys of `SETTINGS`, checked as the recipe
    loads) and write the model to ``out``, stamped with ``recipe`` (`training.recipe.Recipe.stamp`)."""
    settings = {**SETTINGS, **{k: int(v) for k, v in options.items()}}
    net = train(folders, settings["steps"], settings["batch"], settings["seed"], device, log=log)
    data = [{"folder": folder.name, **_render_settings(folder)} for folder in folders]
    export(net, out, {"data": data, **settings, "size": SIZE,
                      "training": f"reggan-plugin recipe {recipe['name']}.toml"}, recipe)


def _render_settings(folder: Path) -> dict:
    """How a render folder was made (its manifest's settings) and what of it was read, for the model's provenance."""
    manifest = json.loads((folder / "manifest.json").read_text())
    settings = {k: v for k, v in manifest["settings"].items() if k not in ("face_model",)}
    used = render_images([folder])
    return {"settings": settings, "identities": sorted({p.parent.name for p in used}), "renders": len(used)}
