"""Make the template that detected landmarks are registered to (``reggan_plugin/faces/register.py``).

    python tools/make_align_template.py --data data/ict160 --data data/ict128b --data data/ict96 \
        --out reggan_plugin/faces/models/align_template.npy

The mean Laplacian-of-Gaussian of the luma of the training split's neutral crops, each aligned on its true
landmarks the way the runtime aligns a face (the crop caches of ``train``), kept inside the face (the blend
mask's core), zero mean and unit norm there; float16. Needs torch (the training data loaders).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np


@click.command()
@click.option("--data", "data_dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="Paired render folders (repeat).")
@click.option("--cache", default=Path("runs/template-cache"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Crop cache folder (shared with train's).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def main(data_dirs: tuple[Path, ...], cache: Path, out: Path) -> None:
    from reggan_plugin.atomic import atomic_path
    from reggan_plugin.edit.blend import feather_mask
    from reggan_plugin.expressions import EXPRESSIONS
    from reggan_plugin.faces.register import SIZE, edges
    from training.data.dataset import PairedFaces, load_datasets

    sets = load_datasets(list(data_dirs), SIZE, EXPRESSIONS, cache)
    train = PairedFaces(sets, EXPRESSIONS, "train")
    neutrals = sorted(set(train.pair_neutral.tolist()))
    margin = (train.neutral.shape[-1] - SIZE) // 2
    total = np.zeros((SIZE, SIZE), np.float64)
    for n in neutrals:
        crop = train.neutral[n, :, margin:margin + SIZE, margin:margin + SIZE].permute(1, 2, 0).numpy()
        total += edges(crop)
    mean = total / len(neutrals)
    inside = feather_mask(SIZE) > 0.5
    template = np.where(inside, mean - mean[inside].mean(), 0.0)
    template /= np.linalg.norm(template)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, template.astype(np.float16))
    click.echo(f"wrote {out}: the mean edges of {len(neutrals)} neutral training crops")


if __name__ == "__main__":
    main()
