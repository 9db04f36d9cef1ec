"""``dataset`` click group: render the synthetic ICT face set, pack the OBJ model, make a contact sheet.

Importing this module is cheap: bpy is imported only by the render workers.
"""
from __future__ import annotations

from pathlib import Path

import click

from reggan_plugin.cli_exits import run_or_exit
from reggan_plugin.config import field_default

from .face_model import ENV_VAR
from .looks import LOOKS
from .render import RenderConfig
from .variation import LIPS


def _default(name: str):
    return field_default(RenderConfig, name)


@click.group(name="dataset")
def dataset() -> None:
    """Synthetic paired training data from the ICT Face Model (Blender/Cycles)."""


def _yaw_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"not MIN,MAX in degrees: {text!r}", param_hint="--yaw") from None
    if not 0 <= low <= high <= 80:
        raise click.BadParameter(f"need 0 <= MIN <= MAX <= 80 degrees, got {text!r}", param_hint="--yaw")
    return low, high


@dataset.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: <identity>/<expression>.png, landmarks, manifest.json.")
@click.option("--identities", type=click.IntRange(1), required=True, help="Number of identities.")
@click.option("--start", type=click.IntRange(0), default=_default("start"), show_default=True,
              help="First identity index (shards: --start 1000 --identities 1000).")
@click.option("--size", type=click.IntRange(8), default=_default("size"), show_default=True, help="Image size in pixels.")
@click.option("--seed", type=int, default=_default("seed"), show_default=True, help="Seed of every random parameter.")
@click.option("--expressions", multiple=True,
              help="Expressions (repeat or comma separate); 'basic' (default), 'compound' (CFEE set), 'all'.")
@click.option("--intensities", default=",".join(map(str, _default("intensities"))), show_default=True,
              help="Comma-separated intensities in (0, 1]; <1 writes e.g. happy_050.png.")
@click.option("--samples", type=click.IntRange(1), default=_default("samples"), show_default=True, help="Cycles samples per pixel.")
@click.option("--denoise/--no-denoise", default=_default("denoise"), show_default=True, help="OpenImageDenoise.")
@click.option("--look", type=click.Choice(LOOKS), default=_default("look"), show_default=True,
              help="Shading/lighting/colour-management style (training/synth/looks.py).")
@click.option("--lips", type=click.Choice(LIPS), default=_default("lips"), show_default=True,
              help="Lip colours: one pinkish tint, or varied (darker, redder, lipstick; training/synth/variation.py).")
@click.option("--recipes", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=_default("recipes"),
              help="Expression recipes as action units, JSON laid out as the bundled training/synth/recipes.json "
                   "(the default).")
@click.option("--face-model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Packed ICT model (.npz); default: ${ENV_VAR}.")
@click.option("--workers", type=click.IntRange(1), default=_default("workers"), show_default=True,
              help="Render processes (each uses cores/W threads).")
@click.option("--yaw", default=None, metavar="MIN,MAX",
              help="Turned heads: each identity turned MIN..MAX degrees to a random side (e.g. 18,35). "
                   "Default: near frontal (within 12).")
@click.option("--pitch", type=click.FloatRange(0, 45), default=_default("pitch"), show_default=True,
              help="With --yaw: the head's pitch within +-this many degrees.")
@click.option("--progress/--no-progress", default=True, help="Progress bar.")
def render(out: Path, identities: int, start: int, size: int, seed: int, expressions: tuple[str, ...],
           intensities: str, samples: int, denoise: bool, look: str, lips: str, recipes: Path,
           face_model: Path | None, workers: int, yaw: str | None, pitch: float, progress: bool) -> None:
    """Render DIR/<identity>/<expression>.png pairs; resumes what exists."""
    from .face_model import resolve_model_path
    from .recipes import load_recipes, parse_expressions
    from .render import render_dataset

    try:
        inten = tuple(float(x) for x in intensities.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {intensities!r}", param_hint="--intensities") from None
    if not inten or any(not 0 < x <= 1 for x in inten):
        raise click.BadParameter("intensities must lie in (0, 1]", param_hint="--intensities")
    turn = None if yaw is None else _yaw_range(yaw)

    def action():
        from reggan_plugin.sequence.shards import check_writable_dir

        check_writable_dir(out, "--out")
        names = parse_expressions(expressions, load_recipes(recipes))
        config = RenderConfig(
            out=out, face_model=resolve_model_path(face_model), identities=identities, start=start,
            expressions=names, intensities=inten, size=size, seed=seed, samples=samples, denoise=denoise,
            workers=workers, look=look, lips=lips, recipes=recipes, yaw=turn, pitch=pitch,
        )
        return render_dataset(config, progress=progress, log=lambda m: click.echo(m, err=True))

    summary = run_or_exit(action)
    click.echo(f"rendered {summary.rendered} images ({summary.skipped} existed) in {summary.seconds:.1f} s "
               f"({summary.images_per_second:.2f} img/s) -> {out}")


@dataset.command("convert-obj")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def convert_obj(folder: Path, out: Path) -> None:
    """Pack ICT-FaceKit's FaceXModel/ OBJ FOLDER into OUT (.npz) for --face-model."""
    from .obj_convert import convert_obj_folder

    path = run_or_exit(lambda: convert_obj_folder(folder, out))
    click.echo(f"wrote {path}")


@dataset.command("contact-sheet")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tile", type=click.IntRange(16), default=192, show_default=True, help="Tile size in pixels.")
@click.option("--max-identities", type=click.IntRange(1), default=16, show_default=True)
def contact_sheet_cmd(folder: Path, out: Path, tile: int, max_identities: int) -> None:
    """Grid PNG of a rendered FOLDER: one row per identity, one column per expression."""
    from .contact_sheet import contact_sheet

    run_or_exit(lambda: contact_sheet(folder, out, tile=tile, max_identities=max_identities))
    click.echo(f"wrote {out}")


@dataset.command("bench")
@click.option("--face-model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Packed ICT model (.npz); default: ${ENV_VAR}.")
@click.option("--sizes", default="128,256", show_default=True, help="Comma-separated image sizes.")
@click.option("--identities", type=click.IntRange(1), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
              help="Cycles threads (0: all cores).")
def bench_cmd(face_model: Path | None, sizes: str, identities: int, threads: int) -> None:
    """Measure render speed and quality for a few sample/denoise settings; prints a markdown table."""
    from benchmarks.render_speed import format_table, run_bench

    from .face_model import resolve_model_path

    rows = run_or_exit(lambda: run_bench(resolve_model_path(face_model), tuple(int(s) for s in sizes.split(",")),
                                  identities=identities, threads=threads))
    click.echo(format_table(rows))


if __name__ == "__main__":
    dataset()
