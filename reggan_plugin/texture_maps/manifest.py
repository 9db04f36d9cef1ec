"""Expression maps on disk: a multiplier and a mask per expression as 16-bit PNG or EXR, and `maps.json` naming them
(schema: `manifest.schema.json`, beside this module; docs/TEXTURE_MAPS.md)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Array
from ..atomic import write_text
from ..imageio.image import ImageData
from ..imageio.write import write_image
from .bake import ExpressionMap

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
MANIFEST_NAME = "maps.json"
BLEND = "albedo * (1 + (multiplier - 1) * mask * weight)"
PNG_SCALE = 32768.0
"""A 16-bit PNG multiplier is value / 32768: x0 to x2 in steps of 1/32768."""


def write_maps(out: Path, maps: Sequence[ExpressionMap], fmt: str, *, mesh: str, texture: str,
               model: dict[str, Any]) -> Path:
    """Each map's files and the manifest into ``out`` (made if missing), every file written atomically; the
    manifest last, so that one on disk always names files that are there. ``fmt``: 'png' or 'exr'."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for m in maps:
        names = {kind: f"{m.name}_{kind}.{fmt}" for kind in ("multiplier", "mask")}
        if fmt == "png":
            multiplier = np.round(np.clip(m.multiplier * PNG_SCALE, 0, 65535)).astype(np.uint16)
            mask = np.round(np.clip(m.mask, 0, 1) * 65535).astype(np.uint16)[..., None]
            write_image(out / names["multiplier"], ImageData(multiplier, format="png"))
            write_image(out / names["mask"], ImageData(mask, format="png"))
        else:
            write_image(out / names["multiplier"], ImageData(m.multiplier.astype(np.float32), format="exr", linear=True))
            write_image(out / names["mask"], ImageData(m.mask.astype(np.float32)[..., None], format="exr", linear=True))
        expression = m.edit.expression if not isinstance(m.edit.expression, str) else {m.edit.expression: 1.0}
        entries.append({"name": m.name, "expression": {k: float(v) for k, v in dict(expression).items()},
                        "intensity": float(m.edit.intensity), **names})
    height, width = maps[0].mask.shape
    manifest = {
        "format": "reggan-expression-maps", "version": 1, "mesh": mesh, "texture": texture, "size": [width, height],
        "model": model, "blend": BLEND,
        "encoding": {"multiplier": "png16: multiplier = value / 32768" if fmt == "png" else "exr: float multiplier",
                     "mask": "png16: mask = value / 65535" if fmt == "png" else "exr: float mask"},
        "maps": entries,
    }
    target = out / MANIFEST_NAME
    write_text(target, json.dumps(manifest, indent=2) + "\n")
    return target


def read_multiplier(path: Path) -> Array:
    """A written multiplier back as float32 [H,W,3]."""
    from ..imageio import read_image

    image = read_image(path)
    if image.pixels.dtype == np.uint16:
        return image.pixels.astype(np.float32) / PNG_SCALE
    return image.pixels.astype(np.float32)
