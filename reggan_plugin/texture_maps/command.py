"""`reggan-plugin bake-maps`: expression maps for a head's UV layout from its mesh and albedo."""
from __future__ import annotations

import re
from pathlib import Path

import click

from ..cli_options import FiniteRange
from ..config import BACKENDS, EditConfig, InferenceConfig
from ..errors import InputError, UsageError
from ..sequence.shards import check_writable_dir, same_file


def map_name(expression: str) -> str:
    """A file-safe name for an expression or a mix ('happy=0.6,surprised=0.4' -> 'happy0.6_surprised0.4')."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", expression.replace("=", "")).strip("_") or "map"


@click.command("bake-maps")
@click.option("--mesh", required=True, type=click.Path(path_type=Path), help="Head mesh with UVs: .obj, .gltf or .glb "
              "(+Y up, the face towards +Z).")
@click.option("--texture", required=True, type=click.Path(path_type=Path), help="Its albedo (colour) texture.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the maps and maps.json.")
@click.option("--expression", "-e", "expressions", multiple=True, default=("happy",), show_default=True,
              help="An expression or a mix (happy=0.6,surprised=0.4); repeat for several maps.")
@click.option("--intensity", "-i", type=FiniteRange(0, 1), default=1.0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["png", "exr"]), default="png", show_default=True,
              help="16-bit PNG or float EXR maps.")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="ONNX model file. [default: the model bundled with reggan-plugin]")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="Where the network runs (as for render).")
def bake_maps_command(mesh: Path, texture: Path, out: Path, expressions: tuple[str, ...], intensity: float, fmt: str,
                      model: Path | None, backend: str) -> None:
    """Bake expression maps in a head's UV layout: a colour multiplier and a mask per expression, and maps.json."""
    from ..cli_exits import run_or_exit
    from ..imageio import read_image, to_network_rgb
    from ..imageio.colour import srgb_decode
    from ..renderer import ExpressionRenderer
    from .bake import bake_maps
    from .manifest import write_maps
    from .mesh import load_mesh

    def go() -> None:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        for given in (mesh, texture):
            for kind in ("multiplier", "mask"):
                for name in expressions:
                    if same_file(out / f"{map_name(name)}_{kind}.{fmt}", given):
                        raise UsageError(f"--out {out} would write over the input {given}: choose another folder")
        check_writable_dir(out, "--out")
        edits = [(map_name(e), EditConfig(e, intensity)) for e in expressions]
        names = [n for n, _ in edits]
        if len(set(names)) != len(names):
            raise UsageError(f"--expression given twice: {', '.join(expressions)}")
        head = load_mesh(mesh)
        picture = read_image(texture)
        albedo = srgb_decode(to_network_rgb(picture))
        if albedo.shape[0] < 16 or albedo.shape[1] < 16:
            raise InputError(texture, f"{albedo.shape[1]}x{albedo.shape[0]} is too small for a texture")
        renderer = ExpressionRenderer(InferenceConfig(model=model, backend=backend, subject="render"))  # type: ignore[arg-type]  # a Choice of BACKENDS
        for _, edit in edits:
            renderer.artifact.expression_weights(edit.expression)
        click.echo(f"backend: {renderer.backend.description} [{renderer.backend.selection}]", err=True)
        maps = bake_maps(head, albedo, edits, renderer, progress=lambda line: click.echo(line, err=True))
        manifest = write_maps(out, maps, fmt, mesh=mesh.name, texture=texture.name,
                              model={"sha256": renderer.artifact.sha256, "expressions": list(renderer.artifact.expressions)})
        click.echo(f"wrote {len(maps)} map(s) and {manifest}", err=True)

    run_or_exit(go)
