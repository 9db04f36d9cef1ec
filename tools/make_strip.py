"""The README's before/after strip: sample frames of the demo shot, neutral and edited by the bundled model, cropped
to the face, one row per frame (runtime only: no torch).

    python tools/make_strip.py --out docs/before_after.jpg

Each column is the frame as `reggan-plugin render --faces samples/faces.json --expression EXPR` writes it, at 1:1.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
MARGIN = 0.08  # of the landmarks' extent, each side of the crop (twice that above the brows)
LABEL_H = 14


@click.command()
@click.option("--out", default=Path("docs/before_after.jpg"), type=click.Path(dir_okay=False, path_type=Path),
              show_default=True)
@click.option("--frame", "frames", multiple=True, default=("shot_0001.png", "shot_0006.png"), show_default=True,
              help="A frame of samples/frames; repeatable, one row each.")
@click.option("--expressions", default="happy,sad,surprised,angry", show_default=True)
def main(out: Path, frames: tuple[str, ...], expressions: str) -> None:
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.faces.faces_json import load_faces_json
    from reggan_plugin.imageio import read_image
    from reggan_plugin.renderer import ExpressionRenderer

    names = ["neutral", *expressions.split(",")]
    faces_file = load_faces_json(SAMPLES / "faces.json")
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    rows = []
    for name in frames:
        image = read_image(SAMPLES / "frames" / name)
        faces = faces_file.faces_for(name)
        if not faces:
            raise click.ClickException(f"{name}: no face in samples/faces.json")
        edits = [image.pixels] + [renderer.apply_image(image, faces, EditConfig(e, 1.0)).pixels for e in names[1:]]
        x0, y0, x1, y1 = _crop_box(faces[0], image.width, image.height)
        rows.append([_rgb(p)[y0:y1, x0:x1] for p in edits])
    tile_w = max(t.shape[1] for row in rows for t in row)
    tile_h = max(t.shape[0] for row in rows for t in row)
    sheet = Image.new("RGB", (tile_w * len(names), LABEL_H + tile_h * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(names):
        draw.text((c * tile_w + 4, 1), label, fill=(0, 0, 0))
        for r, row in enumerate(rows):
            sheet.paste(Image.fromarray(row[c]), (c * tile_w, LABEL_H + r * tile_h))
    out.parent.mkdir(parents=True, exist_ok=True)
    # JPEG 95 without chroma subsampling: a quarter of the PNG's size, colour fringes kept as they are
    sheet.save(out, quality=95, subsampling=0, optimize=True)
    click.echo(f"{out}: {sheet.width} x {sheet.height}, {out.stat().st_size // 1024} KB")


def _crop_box(face, width: int, height: int) -> tuple[int, int, int, int]:
    """The landmarks' extent (the box where there are none), grown by MARGIN each side, within the frame."""
    if face.landmarks is not None:
        (x0, y0), (x1, y1) = face.landmarks.min(axis=0), face.landmarks.max(axis=0)
    else:
        x, y, w, h = face.box
        x0, y0, x1, y1 = x, y, x + w, y + h
    mx, my = MARGIN * (x1 - x0), MARGIN * (y1 - y0)
    return (max(0, int(x0 - mx)), max(0, int(y0 - 2 * my)), min(width, int(np.ceil(x1 + mx))),
            min(height, int(np.ceil(y1 + my))))


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """8-bit RGB over white (the sample frames are RGBA)."""
    rgb = pixels[..., :3].astype(np.float32)
    if pixels.shape[2] == 4:
        alpha = pixels[..., 3:].astype(np.float32) / 255.0
        rgb = rgb * alpha + 255.0 * (1.0 - alpha)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


if __name__ == "__main__":
    main()
