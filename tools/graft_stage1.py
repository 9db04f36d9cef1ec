"""Take some expressions' stage 1 (ridge maps, bias, mean flow, region) from another export of the same model.

    python tools/graft_stage1.py --into runs/fit_jitter/model.onnx --donor runs/fit_happy/model.onnx --expressions happy \
        --out model.onnx

Stage 1 is fitted per expression, so one expression's maps can be swapped without touching the others: a refit of
some expressions (other data, perturbed copies) keeps the rest exactly as they were. Both files must be exports of
one architecture with one refiner (every other weight identical), else nothing is written. Needs onnx.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np


def stage1_initializers(graph) -> set[str]:
    """Names of the per-expression stage-1 tensors: ``model.stage1.*`` and the ridge taps the Einsum nodes read."""
    einsum_inputs = {name for node in graph.node if node.op_type == "Einsum" for name in node.input}
    # Taps stored in half precision reach the Einsum through a Cast (export.half_weights).
    einsum_inputs |= {node.input[0] for node in graph.node if node.op_type == "Cast" and node.output[0] in einsum_inputs}
    return {i.name for i in graph.initializer if i.name.startswith("model.stage1.") or i.name in einsum_inputs}


def record_graft(provenance: dict, donor: dict, expressions: list[str], name: str, sha256: str) -> None:
    """Note a graft in ``provenance`` (the receiving model's): the grafted expressions' fit (lambda, pairs) and
    validation metrics as the donor recorded them (one refiner: an expression's output depends only on its own stage
    1), and a graft entry with the donor's stage-1 settings, so the provenance tells how each expression's maps were
    fitted and how they score."""
    def take(mine: dict, theirs: dict) -> None:
        mine.update({e: theirs[e] for e in expressions if e in theirs})

    take(provenance.setdefault("stage1", {}).setdefault("fitted", {}), donor.get("stage1", {}).get("fitted", {}))
    take(provenance.setdefault("metrics", {}), donor.get("metrics", {}))
    settings = {k: v for k, v in donor.get("train_config", {}).items() if k.startswith(("stage1_", "ridge_"))}
    earlier = provenance.get("stage1_grafted", [])  # every graft, oldest first
    provenance["stage1_grafted"] = [*([earlier] if isinstance(earlier, dict) else earlier),
                                    {"expressions": expressions, "from": name, "from_sha256": sha256,
                                     "stage1_settings": settings}]


@click.command()
@click.option("--into", "target", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The model that receives the expressions' stage 1.")
@click.option("--donor", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The model they come from.")
@click.option("--expressions", required=True, help="Comma-separated expression names.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def main(target: Path, donor: Path, expressions: str, out: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.atomic import write_bytes

    into, source = onnx.load(str(target)), onnx.load(str(donor))
    names, given = load_artifact(target).expressions, load_artifact(donor)
    if given.expressions != names:
        raise click.ClickException(f"{donor}: its expressions differ from {target}'s")
    wanted = [e.strip() for e in expressions.split(",") if e.strip()]
    unknown = [e for e in wanted if e not in names]
    if unknown or not wanted:
        raise click.ClickException(f"unknown expression(s) {unknown or expressions!r}; the model has {', '.join(names)}")
    donated = {i.name: numpy_helper.to_array(i) for i in source.graph.initializer}
    graft = stage1_initializers(into.graph)
    for init in into.graph.initializer:
        mine = numpy_helper.to_array(init)
        theirs = donated.get(init.name)
        if theirs is None or theirs.shape != mine.shape:
            raise click.ClickException(f"{donor}: no tensor {init.name} of shape {mine.shape}: not the same architecture")
        if init.name not in graft:
            if not np.array_equal(mine, theirs):
                raise click.ClickException(f"{init.name} differs: the two models do not share the rest of the network")
            continue
        grafted = mine.copy()
        for expression in wanted:
            grafted[names.index(expression)] = theirs[names.index(expression)]
        init.CopyFrom(numpy_helper.from_array(grafted, init.name))
    recorded = json.loads(given.metadata.get("reggan.provenance", "{}"))
    for entry in into.metadata_props:
        if entry.key == "reggan.provenance":
            provenance = json.loads(entry.value)
            record_graft(provenance, recorded, wanted, donor.name, given.sha256)
            entry.value = json.dumps(provenance)
    write_bytes(out, into.SerializeToString())
    click.echo(f"wrote {out}: stage 1 of {', '.join(wanted)} from {donor}")


if __name__ == "__main__":
    main()
