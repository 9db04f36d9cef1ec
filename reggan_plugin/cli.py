"""The `reggan-plugin` command; `cli_exits` turns typed errors into its exit codes, as nothing else does.

Exit codes: 0 all frames done; 1 some frames failed or had no face (listed at the end);
2 bad input or option; 3 bad model; 4 backend unavailable; 5 NaN/inf output; 6 export failed;
130 interrupted.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .cli_exits import EXIT_FRAMES_FAILED, EXIT_INTERRUPTED, exit_on_error, run_or_exit, stops_on_signals
from .cli_options import FiniteRange, build_configs, inference_options
from .config import (
    BackendName,
    ColourConfig,
    Precision,
    RegionGraphs,
    SequenceConfig,
    Stage,
    Subject,
    field_default,
)
from .errors import NumericalError, RegganError, UsageError, shown

if TYPE_CHECKING:
    from .edit.calibration import Gains
    from .render_summary import RenderSummary




class LazyGroup(click.Group):
    """Sub-commands that need torch (export, train, dataset, ...) are imported only when they run;
    `--help` lists them from their one-line summaries without importing anything."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}  # name -> ("module:attr", extra to install, one-line help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][2]))
            else:
                rows.append((name, self.commands[name].get_short_help_str(formatter.width - 20)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Every command's errors end the same way: one line and the documented exit code (a usage error included,
        which click prints in three), Ctrl-C and SIGTERM quietly with 130, never a traceback for an OSError."""
        with stops_on_signals(restore=not standalone_mode):
            try:
                with exit_on_error():
                    result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except click.exceptions.Abort:  # click's own word for an interrupt at a prompt
                click.echo("interrupted", err=True)
                sys.exit(EXIT_INTERRUPTED)
            except SystemExit as exc:
                if standalone_mode and exc.code == EXIT_INTERRUPTED:
                    # the process ends here: leave at once, so that no later stage of the interpreter's shutdown
                    # (a library's import left half-done by the interrupt) can end it by the signal instead
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(EXIT_INTERRUPTED)
                raise
            except click.ClickException as exc:
                where = f"{exc.ctx.command_path}: " if isinstance(exc, click.UsageError) and exc.ctx else ""
                hint = " (--help for usage)" if isinstance(exc, click.UsageError) else ""
                message = " ".join(exc.format_message().split())
                click.echo(f"error: {where}{message}{hint}", err=True)
                sys.exit(exc.exit_code)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        target, extra, _ = self.lazy[name]
        module_name, attr = target.split(":")
        try:
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in {"torch", "onnx", "safetensors", "bpy"}:
                raise click.ClickException(
                    f"'{name}' needs {exc.name}, which is not installed: pip install 'reggan-plugin[{extra}]'"
                ) from None
            if exc.name in {"training", "export"}:
                raise click.ClickException(
                    f"'{name}' runs from a checkout of the repository ({exc.name}/ is not part of the runtime "
                    f"package): in the checkout, pip install -e '.[{extra}]' and run it there"
                ) from None
            raise


@click.group(
    cls=LazyGroup,
    lazy={
        "bake-maps": ("reggan_plugin.texture_maps.command:bake_maps_command", "",
                      "Bake expression maps in a head's UV layout from its mesh and albedo."),
        "export": ("export.cli:export", "export", "Compile a checkpoint to ONNX, or ONNX to a TensorRT engine."),
        "dataset": ("training.synth.cli:dataset", "train", "Render paired training faces from the ICT Face Model."),
        "train": ("training.cli:train", "train", "Train RegGAN on paired faces (torchrun for several processes)."),
        "recipe": ("training.recipe:recipe_command", "train",
                   "Rebuild a model from a recipe file: its renders, training phases and gains."),
        "bench": ("benchmarks.bench:bench", "export", "Measure speed and memory; writes docs/BENCHMARKS.md."),
        "evaluate": ("training.evaluate.cli:evaluate", "evaluate",
                     "Judge copy / stage 1 / RegGAN side by side on paired faces."),
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="reggan-plugin")
@click.option("-v", "--verbose", is_flag=True, help="Log more (backend choice, timings).")
def main(verbose: bool) -> None:
    """Give rendered faces another expression (happy, sad, surprised, angry, disgusted, fearful)
    without re-rigging or re-rendering.

    \b
    Examples:
      reggan-plugin render --frames shot010/ --out shot010_happy/ --expression happy
      reggan-plugin render --frames shot010/ --out out/ --expression sad --intensity 0.5 --shard 3/8
      reggan-plugin texture face_albedo.png --out face_albedo_happy.png --expression happy
      reggan-plugin info
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s")


@main.command()
@click.option("--frames", required=True, type=click.Path(path_type=Path), help="Directory of frames (PNG, JPEG, TIFF, EXR).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory (never the input directory).")
@inference_options
@click.option("--faces", type=click.Path(path_type=Path), default=None,
              help="faces.json with exact boxes/landmarks per frame (docs/FACES_JSON.md); others are detected.")
@click.option("--region", default=None, metavar="X,Y,W,H", help="Face box in pixels for frames without given faces (no detector).")
@click.option("--whole-image", is_flag=True, help="Frames are already-cropped faces: use the whole image.")
@click.option("--shard", default=str(field_default(SequenceConfig, "shard")), show_default=True, metavar="I/N",
              help="Render the I-th of N contiguous parts (farm workers; together they cover every frame once).")
@click.option("--frame-range", default=None, metavar="SPEC",
              help="Render the frames numbered SPEC, e.g. 1-10 or 1-3,5,7-20:2 (a farm task's frames; the number is "
                   "the last digits of a frame's name; docs/STUDIO.md). With --shard, the shard splits these frames.")
@click.option("--skip-existing", is_flag=True, help="Skip frames whose output exists (resume an interrupted batch).")
@click.option("--smooth", type=FiniteRange(0, 1), default=field_default(SequenceConfig, "smooth"), show_default=True,
              help="Temporal smoothing of detected faces (0 = off).")
@click.option("--curves", type=click.Path(path_type=Path), default=None,
              help="CSV of expression weights per key frame, in place of --expression: each frame its own mix "
                   "(interpolated between keys) at --intensity (docs/CURVES.md).")
def render(frames: Path, out: Path, expression: str, intensity: float, model: Path | None, backend: BackendName,
           precision: Precision, batch: int, stage: Stage, trust_box: bool, region_graphs: RegionGraphs,
           lip_split: bool, coverage: bool,
           colorspace: str | None, subject: Subject, faces: Path | None, region: str | None, whole_image: bool,
           shard: str, frame_range: str | None, skip_existing: bool, smooth: float, curves: Path | None) -> None:
    """Apply an expression to every frame in a directory.

    Frames keep their format, bit depth and alpha; pixels outside the face are untouched. A bad
    frame does not stop the batch: it is reported at the end and the exit code is 1.
    """
    from tqdm import tqdm

    from .artifact import channels_model_path
    from .faces import load_faces_json, parse_region
    from .imageio import list_frames
    from .imageio.ocio import frame_colours
    from .pipeline import render_sequence
    from .renderer import ExpressionRenderer
    from .sequence.curves import read_curves, read_table
    from .sequence.frame_range import FrameRange
    from .sequence.shards import Shard, check_out_dir

    edit, inference = build_configs(expression, intensity, model, backend, precision, batch, stage, trust_box,
                                    region_graphs, lip_split, coverage, subject)

    def go() -> RenderSummary:
        if region and whole_image:
            raise UsageError("--region and --whole-image both say where the face is; give one of them")
        seq = SequenceConfig(frames, out, faces, parse_region(region) if region else None, whole_image,
                             Shard.parse(shard), skip_existing, smooth, ColourConfig(colorspace, os.environ.get("OCIO") or None),
                             FrameRange.parse(frame_range) if frame_range is not None else None)
        check_out_dir(seq.frames, seq.out)
        every = list_frames(seq.frames)  # a bad directory, range, colour space or faces file: before the model loads
        if seq.frame_range:
            seq.frame_range.select(every, seq.frames)
        if colour := frame_colours(seq.colour).describe():
            click.echo(f"colour: {colour}", err=True)
        if seq.faces:
            load_faces_json(seq.faces)
        run_inference = inference
        if curves is not None and model is None and read_table(curves).arkit:  # ARKit curves drive the channel model
            run_inference = dataclasses.replace(inference, model=channels_model_path())
        renderer = ExpressionRenderer(run_inference)
        if curves is None:
            renderer.artifact.expression_weights(edit.expression)  # fail before the first frame
        curve_mixes = read_curves(curves, renderer.artifact.names) if curves else None  # checked against the
        # folder's frames by render_sequence before any is read
        click.echo(f"backend: {renderer.backend.description} [{renderer.backend.selection}]", err=True)
        with tqdm(unit="frame", disable=None, file=sys.stderr) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            return render_sequence(seq, edit, run_inference, renderer=renderer, progress=progress, curves=curve_mixes)

    summary = run_or_exit(go)
    for line in summary.lines():
        click.echo(line, err=True)
    if summary.numerical_failures:
        n = summary.numerical_failures
        hint = ("try --precision fp32" if summary.precision == "fp16"  # fp16 overflow: fp32 helps
                else f"at {summary.precision or 'fp32'}, so the model file may be damaged: re-export it")
        click.echo(f"NaN/inf network output in {n} frame{'s' * (n != 1)}: {hint}", err=True)
        sys.exit(NumericalError.exit_code)
    if not summary.ok:
        sys.exit(EXIT_FRAMES_FAILED)


@main.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output file (never the input).")
@inference_options
@click.option("--region", default=None, metavar="X,Y,W,H", help="Face box in pixels. [default: the face the detector "
              "finds, one filling the picture included]")
@click.option("--whole-image", is_flag=True, help="The whole picture is one aligned face (a face crop or a face decal "
              "the detector cannot read); not for a UV unwrap (see bake-maps).")
def texture(image: Path, out: Path, expression: str, intensity: float, model: Path | None, backend: BackendName,
            precision: Precision, batch: int, stage: Stage, trust_box: bool, region_graphs: RegionGraphs,
            lip_split: bool, coverage: bool,
            colorspace: str | None, subject: Subject, region: str | None, whole_image: bool) -> None:
    """Apply an expression to one picture of a face: a face decal, a 2D avatar, a face crop. A head's UV unwrap is
    refused: its expression maps are baked with `bake-maps`."""
    from .edit.subject import PHOTOGRAPH_NOTE
    from .faces import parse_region
    from .faces.locate import FaceLocator
    from .imageio import check_writable, output_format, read_image, to_network_rgb, write_image
    from .imageio.ocio import frame_colours
    from .renderer import ExpressionRenderer
    from .sequence.shards import check_out_file
    from .texture_maps.picture import face_of_picture

    edit, inference = build_configs(expression, intensity, model, backend, precision, batch, stage, trust_box,
                                    region_graphs, lip_split, coverage, subject)

    def go() -> None:
        check_out_file(Path(out), [Path(image)])
        output_format(out)  # with the other options: a format no writer has is said before the picture is read
        if region and whole_image:
            raise UsageError("--region and --whole-image both say where the face is: give one")
        picture = frame_colours(ColourConfig(colorspace, os.environ.get("OCIO") or None)).attach(read_image(image))
        check_writable(out, picture)  # 16 bits or alpha into a JPEG...: before the model loads
        if region or whole_image:
            faces = FaceLocator(region=parse_region(region) if region else None, whole=whole_image).faces(
                Path(image).name, picture)
            if not faces:
                raise RegganError(f"{image}: no face found inside --region; nothing to edit (give --region X,Y,W,H "
                                  "over the face)")
            if whole_image and not FaceLocator().detector.detect(to_network_rgb(picture)):
                click.echo(f"warning: {image}: no face detected; the whole picture is edited as one aligned face "
                           "(a head's UV unwrap is not one: bake its maps with bake-maps)", err=True)
        else:
            faces = face_of_picture(Path(image), picture)
        renderer = ExpressionRenderer(inference)
        renderer.artifact.expression_weights(edit.expression)  # an expression the model lacks: said alone
        click.echo(f"backend: {renderer.backend.description} [{renderer.backend.selection}]", err=True)
        prepared = renderer.prepare_image(picture, faces)
        if prepared.non_finite:
            click.echo(f"warning: {shown(image)}: {prepared.non_finite} NaN or inf pixel"
                       f"{'s' * (prepared.non_finite != 1)} in the face: edited around them, written as they were",
                       err=True)
        edited, photograph = renderer.edit_prepared(prepared, edit)
        if photograph:
            click.echo(f"{image}: read as a photograph of a person: {PHOTOGRAPH_NOTE}", err=True)
        Path(out).parent.mkdir(parents=True, exist_ok=True)  # as render makes --out: the check above proved it can
        write_image(Path(out), edited)
        click.echo(f"wrote {out}", err=True)

    run_or_exit(go)


def _metric_lines(metrics: object) -> list[str]:
    """The validation PSNR a model was saved with, a line per expression (anything else as it is)."""
    if not metrics:
        return []
    rows = ("copy", "stage1", "reggan")
    if not isinstance(metrics, dict) or not all(
        isinstance(v, dict) and all(isinstance(v.get(f"{r}_psnr"), (int, float)) for r in rows) for v in metrics.values()
    ):
        return [f"metrics: {metrics}"]
    lines = ["validation PSNR (dB; copy = output is input / stage 1 alone / RegGAN):"]
    for expression, v in metrics.items():
        pairs = f", {v['pairs']} pairs" if "pairs" in v else ""
        lines.append(f"  {expression}: {v['copy_psnr']:.2f} / {v['stage1_psnr']:.2f} / {v['reggan_psnr']:.2f}{pairs}")
    return lines


def _gain_lines(gains: Mapping[str, Gains]) -> list[str]:
    """The model's gains for photographs (`reggan_plugin.edit.calibration`), a line per expression that has them."""
    if not gains:
        return []
    lines = ["gains for photographs (--subject photo; auto where a picture reads as one): motion sideways x up, "
             "paint, upper face"]
    for expression, g in gains.items():
        reach = max((abs(v) for v in g.flow), default=0.0)
        flow = f", and a fitted flow on the lower face (up to {reach:.1f} crop px)" if reach else ""
        lines.append(f"  {expression}: {g.motion[0]:g} x {g.motion[1]:g}, {g.paint:g}, {g.upper:g}{flow}")
    return lines


@main.command()
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Model to describe. [default: the bundled one]")
def info(model: Path | None) -> None:
    """Version, model, and the backends this machine can run (and why not)."""
    from .artifact import load_artifact
    from .backends import describe_environment
    from .edit.calibration import model_gains

    def go() -> None:
        click.echo(f"reggan-plugin {__version__}")
        art = load_artifact(model)
        click.echo(f"model: {art.path}")
        click.echo(f"  sha256 {art.sha256[:16]}..., input {art.input_size}x{art.input_size}, "
                   f"expressions: {', '.join(art.names)}"
                   + (f" (keys: {', '.join(e for e in art.expressions if e not in art.names)})" if art.keys else ""))
        if art.turn_keys:
            click.echo(f"  stage 1 fitted at turns {', '.join(f'{k:g}' for k in art.turn_keys)} (a face takes the two "
                       "about its own)")
        if art.tilt_keys:
            click.echo(f"  its motion fitted at tilts {', '.join(f'{k:g}' for k in art.tilt_keys)} of each")
        for key in ("training", "iterations"):
            if key in art.provenance:
                click.echo(f"  {key}: {art.provenance[key]}")
        for line in _metric_lines(art.provenance.get("metrics")):
            click.echo(f"  {line}")
        for line in _gain_lines(model_gains(art, "photo")):
            click.echo(f"  {line}")
        click.echo("environment:")
        for name, value in describe_environment():
            click.echo(f"  {name}: {value}")

    run_or_exit(go)


if __name__ == "__main__":
    main()
