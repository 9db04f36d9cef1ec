"""How bright the faces of render folders are, as the runtime reads them: percentiles of
``reggan_plugin.edit.face_level.face_levels`` over each identity's neutral, aligned as the runtime aligns it. The 5th
percentile over the training split of the face model's renders is ``tuning.DARKEST_FACE``.

    python tools/face_levels.py --data data/ict160 --data data/ict128b --data data/ict96 --split train
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

if TYPE_CHECKING:
    from training.evaluate.cases import SplitChoice


@click.command()
@click.option("--data", "folders", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="A render folder; repeatable.")
@click.option("--split", type=click.Choice(["all", "train", "val", "test"]), default="train", show_default=True)
def main(folders: tuple[Path, ...], split: SplitChoice) -> None:
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.edit.face_level import face_levels
    from reggan_plugin.imageio import ImageData
    from reggan_plugin.renderer import ExpressionRenderer
    from training.evaluate.cases import Cropper, given_face, read_rgb, scan_cases

    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    cropper = Cropper(256, True, "landmarks")
    levels = []
    for folder in folders:
        _, cases = scan_cases(folder, ("happy",), split)  # one case per identity: its neutral
        for case in cases:
            pixels = read_rgb(case.neutral)
            face = given_face(cropper.neutral_points(case.neutral, pixels))
            image = ImageData(pixels=pixels, path=case.neutral, format="png", linear=False, info={})
            levels.append(face_levels(renderer.prepare_image(image, [face]).crops)[0])
    percentiles = (2, 5, 10, 25, 50, 90)
    values = np.percentile(levels, percentiles)
    click.echo(f"{len(levels)} faces ({split}); linear luma percentiles: "
               + ", ".join(f"{p}%: {v:.4f}" for p, v in zip(percentiles, values)))


if __name__ == "__main__":
    main()
