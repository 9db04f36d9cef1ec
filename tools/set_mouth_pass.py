"""Name the expressions a mouth model's pass paints (``reggan_plugin.edit.mouth.pass_expressions``) in its metadata.

    python tools/set_mouth_pass.py --model reggan_plugin/models/mouth.onnx --expressions sad,angry,fearful \
        --out reggan_plugin/models/mouth.onnx

The graph is untouched; an edit with an expression left out keeps the face model's mouth. ``--expressions all`` takes
the entry out (the pass paints every expression the model knows). Needs onnx.
"""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--expressions", required=True, help="Comma-separated expressions of the model, or 'all'.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def main(model: Path, expressions: str, out: Path) -> None:
    from export.metadata import with_metadata
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.edit.mouth import PASS_KEY

    known = [name for name in load_artifact(model).expressions if name != "neutral"]
    names = known if expressions == "all" else [name.strip() for name in expressions.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise click.ClickException(f"{', '.join(unknown) or 'no expression'}: give some of {', '.join(known)}, or all")
    value = None if expressions == "all" else json.dumps(names)
    with_metadata(model, PASS_KEY, value, out)
    click.echo(f"wrote {out}: {PASS_KEY} = {value or '(none: every expression)'}")


if __name__ == "__main__":
    main()
