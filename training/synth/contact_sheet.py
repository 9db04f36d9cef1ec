"""A contact sheet (identities x expressions) of a rendered dataset folder, for a person to look at."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from reggan_plugin.errors import InputError

from .render import MANIFEST


def contact_sheet(folder: Path, out: Path, tile: int = 192, max_identities: int = 16,
                  stems: tuple[str, ...] | None = None) -> Path:
    """Write a PNG grid: one row per identity, one column per image stem, labelled. Returns ``out``."""
    manifest_path = Path(folder) / MANIFEST
    if not manifest_path.is_file():
        raise InputError(manifest_path, "no manifest.json: not a rendered dataset folder")
    manifest = json.loads(manifest_path.read_text())
    names = sorted(manifest["identities"])[:max_identities]
    if stems is None:
        first = manifest["identities"][names[0]]["images"]
        stems = tuple(first)
    label_h, label_w = 18, 64
    sheet = Image.new("RGB", (label_w + tile * len(stems), label_h + tile * len(names)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, stem in enumerate(stems):
        draw.text((label_w + c * tile + 4, 3), stem, fill=(235, 235, 235))
    for r, name in enumerate(names):
        y = label_h + r * tile
        draw.text((4, y + tile // 2 - 6), name, fill=(235, 235, 235))
        for c, stem in enumerate(stems):
            path = Path(folder) / name / f"{stem}.png"
            if not path.is_file():
                continue
            with Image.open(path) as im:
                rgb = im.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS)
            sheet.paste(rgb, (label_w + c * tile, y))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out
