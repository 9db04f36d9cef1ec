"""The reader that tells a photograph of a person from a render (``reggan_plugin.edit.subject``): its fit, and the
report of how every set reads.

Each picture is aligned as the runtime aligns it, under each of ``CONDITIONS`` (the robustness benchmark's
perturbations), and its crop's statistics (`subject.photo_features`) go into a logistic regression, the
photographs' and the renders' weighted alike. Photographs: the pictures of the recipe's ``photos`` folders (under
the shared data folder; neutral and expression pictures, located by the runtime's detector); only the people of the
first half (``identity_unit`` below 0.5) are fitted, the other half is reported. Renders: the neutrals of the
recipe's render folders, in its ``split``.

The shipped reader is built by a recipe of kind ``photo_reader`` (``reggan-plugin recipe recipes/photo_reader.toml``);
the report (docs/PHOTO_READER.md) fits the same way and adds the neutrals of ``--check`` folders, renders no choice
was made on::

    python -m training.photo_reader recipes/photo_reader.toml --check data/heldout_hd --check data/heldout_toon ...
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from reggan_plugin.errors import UsageError
from training.shared_data import shared_data_dir

if TYPE_CHECKING:
    from reggan_plugin.edit.subject import PhotoReader

CONDITIONS = ("clean", "no face given (detector)", "render noise sigma 6", "JPEG quality 50", "face 96 px",
              "face 600 px", "exposure -1 stop", "white balance warm", "rotated 10 deg")
RAMP = (1.0, 2.0)  # log-odds: where a face starts to take the gains for photographs, and where it takes them whole
L2 = 0.01
REPORT = Path("docs/PHOTO_READER.md")


@dataclass(frozen=True)
class Picture:
    identity: str
    path: Path
    detect: bool  # located by the runtime's detector (photographs), else by its landmark file


@dataclass(frozen=True)
class Row:
    group: str  # the set, as the report names it
    condition: str
    photo: bool
    fitted: bool
    features: np.ndarray


def pictures(folder: Path, photos: bool, split: str) -> Iterator[Picture]:
    """A folder's pictures: for photographs every neutral and expression picture, for renders their neutrals."""
    from training.data.split import split_of
    from training.evaluate.cases import scan_cases

    if photos:
        _, cases = scan_cases(folder, ("happy",), "all")
        for case in cases:
            yield Picture(case.identity, case.neutral, True)
            yield Picture(case.identity, case.target, True)
        return
    for neutral in sorted(folder.glob("*/neutral.png")):
        identity = f"{folder.name}/{neutral.parent.name}"
        if split == "all" or split_of(identity) == split:
            yield Picture(identity, neutral, False)


def crops_of(items: list[Picture], conditions: tuple[str, ...]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each picture's aligned crop under each condition: ([n,S,S,3] float32, the condition and person of each)."""
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.imageio import ImageData
    from reggan_plugin.renderer import ExpressionRenderer
    from training.evaluate.cases import Cropper, read_rgb
    from training.evaluate.perturbations import PERTURBATIONS

    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    croppers = {detect: Cropper(256, True, "detector" if detect else "landmarks") for detect in (False, True)}
    rng = np.random.default_rng(0)
    crops, names = [], []
    for item in items:
        pixels = read_rgb(item.path)
        points = croppers[item.detect].neutral_points(item.path, pixels)
        for name in conditions:
            perturbed = PERTURBATIONS[name](pixels, points, pixels, rng)
            if perturbed.face is None:
                continue
            image = ImageData(pixels=perturbed.pixels, path=item.path, format="png", linear=False, info={})
            crops.append(renderer.prepare_image(image, [perturbed.face]).crops[0])
            names.append((name, item.identity))
    return np.stack(crops), names


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 4000) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression on standardised ``x``, the classes weighted alike
    (plain gradient descent: 23 features, a few thousand rows)."""
    w, b = np.zeros(x.shape[1]), 0.0
    balance = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = (p - y) * balance
        w -= 0.5 * (x.T @ g / len(y) + l2 * w)
        b -= 0.5 * float(g.mean())
    return w, b


def report_lines(rows: list[Row], logits: np.ndarray, command: str) -> list[str]:
    """docs/PHOTO_READER.md: each set's log-odds, then each condition's extremes."""
    lines = ["# How pictures read: photograph or render", "", f"Generated by `{command}`; do not edit by hand.", "",
             "Each picture aligned as the runtime aligns it, under the conditions "
             + ", ".join(f"`{c}`" for c in CONDITIONS)
             + ". The reader's log-odds that a crop is a photograph; a face takes the model's gains for photographs "
             f"from {RAMP[0]:g} (none) to {RAMP[1]:g} (whole) (`reggan_plugin.edit.subject`).", "",
             "| set | kind | crops | lowest | median | highest | some gains | whole gains |",
             "|---|---|---|---|---|---|---|---|"]
    for group in dict.fromkeys(r.group for r in rows):
        at = [i for i, r in enumerate(rows) if r.group == group]
        v, first = logits[at], rows[at[0]]
        kind = "photographs" if first.photo else ("renders, fitted" if first.fitted else "renders, held out")
        lines.append(f"| {group} | {kind} | {len(v)} | {v.min():.2f} | {np.median(v):.2f} | {v.max():.2f} | "
                     f"{int((v > RAMP[0]).sum())} | {int((v >= RAMP[1]).sum())} |")
    lines += ["", "By condition (every set of the kind):", "",
              "| condition | photographs held out: lowest | renders held out: highest | renders fitted: highest |",
              "|---|---|---|---|"]
    for name in CONDITIONS:
        cells = []
        for photo, fitted, pick in ((True, False, min), (False, False, max), (False, True, max)):
            kept = [x for x, r in zip(logits, rows) if r.condition == name and r.photo == photo and r.fitted == fitted]
            cells.append(f"{pick(kept):.2f}" if kept else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


SETTINGS = {"photos": ["london-faces"], "split": "train", "limit": 80}  # a recipe's [photo_reader] table's keys and
# their values when it leaves one out: the photograph folders (under the shared data folder), the renders' people
# fitted on ("train" or "all") and the pictures per folder at most


def rows_of(renders: list[Path], options: dict[str, Any], check: tuple[Path, ...] = (),
            log: Callable[[str], None] = print) -> list[Row]:
    """Every picture's features: the recipe's photographs and ``renders`` (fitted, but the photographs' second
    half), then the neutrals of the ``check`` folders (reported alone)."""
    from reggan_plugin.edit.subject import photo_features
    from training.data.split import in_choosing_half

    settings = {**SETTINGS, **options}
    photos = [shared_data_dir() / name for name in settings["photos"]]
    missing = [str(p) for p in photos if not p.is_dir()]
    if missing:
        raise UsageError(f"photographs not found: {', '.join(missing)} (set REGGAN_SHARED_DATA)")
    limit = int(settings["limit"])
    rows: list[Row] = []
    for kind, folders in (("photo", photos), ("render", renders), ("check", list(check))):
        for folder in folders:
            items = list(pictures(folder, kind == "photo", settings["split"] if kind == "render" else "all"))
            crops, names = crops_of(items[: 2 * limit if kind == "photo" else limit], CONDITIONS)
            for crop, (name, person) in zip(crops, names):
                fitted = kind == "render" or (kind == "photo" and in_choosing_half(person))
                group = folder.name if kind != "photo" else f"{folder.name} ({'fitted' if fitted else 'held out'})"
                rows.append(Row(group, name, kind == "photo", fitted, photo_features(crop)))
            log(f"{folder.name}: {len(crops)} crops")
    return rows


def fit_reader(rows: list[Row]) -> PhotoReader:
    """The logistic regression on the fitted rows, their features standardised."""
    from reggan_plugin.edit.subject import PhotoReader

    fit = [r for r in rows if r.fitted]
    x = np.stack([r.features for r in fit])
    y = np.array([1.0 if r.photo else 0.0 for r in fit])
    mean, scale = x.mean(0), x.std(0) + 1e-6
    weights, bias = fit_logistic((x - mean) / scale, y)
    return PhotoReader(mean, scale, weights, bias, RAMP)


def build_reader(renders: list[Path], out: Path, options: dict[str, Any], recipe: dict[str, str],
                 log: Callable[[str], None] = print) -> None:
    """Fit the reader on a recipe's renders and ``options`` (keys of `SETTINGS`) and write it to ``out``, with the
    recipe (`training.recipe.Recipe.stamp`) inside."""
    from reggan_plugin.atomic import write_text

    reader = fit_reader(rows_of(renders, options, log=log))
    write_text(out, reader.to_json(f"reggan-plugin recipe {recipe['name']}.toml", recipe) + "\n")


@click.command()
@click.argument("recipe_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="Where the recipe's renders are.")
@click.option("--check", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Renders reported, not fitted; repeatable.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=REPORT, show_default=True)
def main(recipe_file: Path, data_root: Path, check: tuple[Path, ...], report: Path) -> None:
    """Write the report of how every set reads to the reader a photo-reader recipe fits."""
    from reggan_plugin.atomic import write_text
    from training.recipe import load_recipe

    recipe = load_recipe(recipe_file)
    rows = rows_of([data_root / spec.name for spec in recipe.data], recipe.options, check,
                   log=lambda line: click.echo(line, err=True))
    reader = fit_reader(rows)
    logits = ((np.stack([r.features for r in rows]) - reader.mean) / reader.scale) @ reader.weights + reader.bias
    command = "python -m training.photo_reader " + " ".join(sys.argv[1:])
    write_text(report, "\n".join(report_lines(rows, logits, command)) + "\n")
    click.echo(f"wrote {report}", err=True)


if __name__ == "__main__":
    main()
