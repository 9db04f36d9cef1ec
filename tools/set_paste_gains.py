"""Write one expression's paste gains (``reggan_plugin.calibration``) into a model file's metadata.

    python tools/set_paste_gains.py --model reggan_plugin/models/default.onnx --subject photo --expression happy \
        --motion 0.5,0.5 --rest-paint 0.7 --upper 0 --out reggan_plugin/models/default.onnx

The graph is untouched; the other subjects' and expressions' gains are kept (an old ``teeth`` gain is dropped).
``--motion 1,1 --rest-paint 1 --upper 1`` takes an expression's gains out. Needs onnx.
"""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--subject", type=click.Choice(["photo"]), default="photo", show_default=True,
              help="Renders are always edited as fitted.")
@click.option("--expression", required=True)
@click.option("--motion", default="1,1", show_default=True, help="Sideways and upward gains of the motion.")
@click.option("--rest-paint", type=float, default=1.0, show_default=True, help="Gain of the paint outside the mouth.")
@click.option("--upper", type=float, default=1.0, show_default=True,
              help="Gain of the whole edit outside the lower face (0: the eyes and brows as they were).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def main(model: Path, subject: str, expression: str, motion: str, rest_paint: float, upper: float, out: Path) -> None:
    from export.metadata import with_metadata
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.calibration import METADATA_KEY, Gains, dump_gains, parse_gains

    artifact = load_artifact(model)
    if expression not in artifact.expressions:
        raise click.ClickException(f"unknown expression {expression!r}; the model has {', '.join(artifact.expressions)}")
    try:
        gx, gy = (float(v) for v in motion.split(","))
    except ValueError:
        raise click.ClickException(f"--motion {motion!r}: give two numbers, sideways,upward") from None
    text = artifact.metadata.get(METADATA_KEY)
    table = {} if text is None else parse_gains(model, text)
    table.setdefault(subject, {})[expression] = Gains(motion=(gx, gy), rest_paint=rest_paint, upper=upper)
    table = {s: kept for s, g in table.items() if (kept := {e: v for e, v in g.items() if not v.is_identity})}
    value = dump_gains(table)
    parse_gains(model, value)  # the bounds the runtime checks, before anything is written
    with_metadata(model, METADATA_KEY, value if table else None, out)
    click.echo(f"wrote {out}: {METADATA_KEY} = {value if table else '(none)'}")


if __name__ == "__main__":
    main()
