"""`reggan-plugin export ...`: compile the ONNX artifact into a TensorRT engine (and, from the lead, export ONNX).

Heavy imports (onnx, tensorrt, torch) happen inside the commands.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from reggan_plugin.cli_exits import run_or_exit
from training.config import MIXES


@click.group("export")
def export() -> None:
    """Export models: checkpoint -> ONNX artifact, ONNX artifact -> TensorRT engine."""


@export.command("tensorrt")
@click.option("--onnx", "onnx_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="ONNX artifact to compile. [default: the bundled model]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Engine directory. [default: the user cache dir, where `--backend tensorrt` looks]")
@click.option("--fp16/--fp32", "fp16", default=False, show_default=True,
              help="fp16 is about twice as fast on tensor-core GPUs; outputs are checked for NaN/inf at run time.")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="Largest batch the engine accepts (bigger batches are split).")
@click.option("--opt-batch", type=click.IntRange(1, 4096), default=None,
              help="Batch size TensorRT tunes for. [default: min(8, max batch)]")
@click.option("--workspace-gb", type=click.FloatRange(0.25, 1024), default=4.0, show_default=True,
              help="Builder scratch memory limit (GiB).")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TensorRT timing cache file (reused across builds). [default: in the engine directory]")
@click.option("--device", type=click.IntRange(0), default=0, show_default=True, help="GPU index.")
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date engine exists.")
@click.option("--preflight-only", is_flag=True,
              help="Only check the model's ops against TensorRT's ONNX parser (works without TensorRT or a GPU).")
@click.option("--target", "target_version", default=None, metavar="VERSION",
              help="TensorRT version for --preflight-only. [default: the installed one, else the newest known]")
def tensorrt(onnx_path, out, fp16, max_batch, opt_batch, workspace_gb, timing_cache, device, force, preflight_only,
             target_version) -> None:
    """Compile the ONNX artifact into a TensorRT 10+ engine for this GPU.

    The engine is cached with a JSON sidecar (TensorRT version, GPU, compute capability, precision, batch
    profile, ONNX sha256, build time); the runtime loads it only when all of those still match.

    \b
    Examples:
      reggan-plugin export tensorrt --fp16
      reggan-plugin export tensorrt --onnx model.onnx --max-batch 64 --out engines/
      reggan-plugin export tensorrt --onnx model.onnx --preflight-only --target 10.0
    """
    from reggan_plugin.artifact import default_model_path

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = onnx_path or default_model_path()

    def go() -> None:
        from reggan_plugin.backends.trt_preflight import preflight
        from reggan_plugin.sequence.shards import check_writable_dir

        check_onnx_file(path)
        if out is not None:
            check_writable_dir(out, "--out")
        if preflight_only:
            report = preflight(path, target_version)
            click.echo(report.summary())
            if not report.ok:
                sys.exit(6)
            return
        from reggan_plugin.backends.trt_build import build_engine

        paths = build_engine(path, out, precision="fp16" if fp16 else "fp32", max_batch=max_batch, opt_batch=opt_batch,
                             workspace_gb=workspace_gb, timing_cache=timing_cache, device_id=device, force=force)
        click.echo(f"engine: {paths.engine}")
        click.echo(f"sidecar: {paths.sidecar}")

    run_or_exit(go)


def check_onnx_file(path: Path) -> None:
    """A missing, truncated or non-ONNX file is a bad model (exit 3), named in one line."""
    from export.onnx_file import read_onnx

    read_onnx(path)


@export.command("onnx")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="Generator checkpoint: NAME (for NAME.safetensors + NAME.json).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="ONNX file to write.")
@click.option("--mix", type=click.Choice(MIXES), default=None,
              help="How stage 1 mixes expressions and partial intensities (not learnt: the same weights export "
                   "either way; docs/TRAINING.md). [default: the checkpoint's]")
def onnx(checkpoint: Path, out: Path, mix: str | None) -> None:
    """Export a generator checkpoint to the ONNX artifact the runtime loads.

    The export verifies itself (onnxruntime against torch on random inputs, max difference 1e-4) and
    fails loudly otherwise; the file is written atomically.
    """
    from export.onnx_export import export_checkpoint
    from reggan_plugin.sequence.shards import check_out_file
    from training.checkpoint import checkpoint_paths

    def go() -> None:
        check_out_file(out, checkpoint_paths(checkpoint))  # before loading: an --out over the weights would lose them
        path = export_checkpoint(checkpoint, out, mix)
        click.echo(f"wrote {path}")

    run_or_exit(go)


@export.command("regression-stage")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An exported RegGAN model (ONNX).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="ONNX file to write.")
def regression_stage(model_path: Path, out: Path) -> None:
    """Write a model's regression stage alone as a model of its own (the refiner cut out): a faster, rougher model,
    as `render --stage regression` runs it. The runtime loads it like any model."""
    from reggan_plugin.artifact import file_sha256, load_artifact
    from reggan_plugin.atomic import atomic_path
    from reggan_plugin.backends.preview_graph import cut_regression_stage
    from reggan_plugin.sequence.shards import check_out_file

    def go() -> None:
        check_out_file(out, [model_path])
        cut = cut_regression_stage(model_path.read_bytes(), file_sha256(model_path), name=model_path.name)
        with atomic_path(out) as tmp:
            Path(tmp).write_bytes(cut)
            load_artifact(tmp)  # refused here, with the reason, rather than written and failing in render
        click.echo(f"wrote {out}")

    run_or_exit(go)


@export.command("region-graphs")
@click.option("--out", default=Path(__file__).resolve().parent.parent / "reggan_plugin" / "models", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder to write region_align.onnx and region_paste.onnx.")
def region_graphs(out: Path) -> None:
    """Export the region graphs (align and paste-back around the network; reggan_plugin.backends.region_graphs)."""
    from export.region_graphs import export_region_graphs
    from reggan_plugin.sequence.shards import check_writable_dir

    def go() -> None:
        check_writable_dir(out, "--out")
        for path in export_region_graphs(out):
            click.echo(f"wrote {path}")

    run_or_exit(go)
