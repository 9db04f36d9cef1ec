"""`reggan-plugin evaluate`: copy baseline, stage 1 alone and RegGAN side by side on a paired held-out set."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from reggan_plugin.cli_exits import exit_on_error
from reggan_plugin.config import BACKENDS, SUBJECTS, field_default
from reggan_plugin.errors import UsageError

from .cases import LOCATE_CHOICES, SPLIT_CHOICES
from .runner import EvalConfig


def _default(name: str):
    return field_default(EvalConfig, name)


def _expressions(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise UsageError(f"--expressions: no names in {value!r}")
    return names


@click.command()
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="ONNX model to evaluate. [default: the model bundled with reggan-plugin]")
@click.option("--data", type=click.Path(path_type=Path), required=True, multiple=True,
              help="Paired data: a synthetic render folder (manifest.json) or neutral/ + <expression>/ folders. "
                   "With --perturb, repeat it: the first folder gets every perturbation, each other one (another "
                   "render look) is a clean condition of its own.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Report folder (report.md, report.json, grids).")
@click.option("--expressions", default=None, help="Comma-separated expressions. [default: every non-neutral one of the model]")
@click.option("--split", type=click.Choice(SPLIT_CHOICES), default=_default("split"), show_default=True,
              help="Only the people of this split by identity (the training split rule); 'held-out': val + test; "
                   "'all': every pair.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N pairs per expression (a quick look).")
@click.option("--reference-real", is_flag=True, help="Add a row judging the real target pictures themselves.")
@click.option("--intensity", type=click.FloatRange(0, 1), default=_default("intensity"), show_default=True,
              help="The edit's intensity, judged against the renders at that intensity (`dataset render "
                   "--intensities 0.5,1`): below 1, rendered folders only.")
@click.option("--crop-size", type=click.IntRange(64, 1024), default=_default("crop_size"), show_default=True,
              help="Side of the canonical crops every row is judged on.")
@click.option("--grid-rows", type=click.IntRange(0, 64), default=_default("grid_rows"), show_default=True,
              help="Cases per expression in each image grid.")
@click.option("--locate", type=click.Choice(LOCATE_CHOICES), default=_default("locate"), show_default=True,
              help="Neutral faces from their landmark files (the detector where none) or always the runtime detector.")
@click.option("--backend", type=click.Choice(BACKENDS), default=_default("backend"), show_default=True)
@click.option("--batch", type=click.IntRange(1, 1024), default=_default("batch"), show_default=True)
@click.option("--lip-split/--no-lip-split", default=_default("lip_split"), show_default=True,
              help="As `render --lip-split`: on large faces each lip moved whole where the mouth opens.")
@click.option("--subject", type=click.Choice(SUBJECTS), default=_default("subject"), show_default=True,
              help="As `render --subject`: the edit as fitted on renders, or with the model's gains for photographs.")
@click.option("--perturb", is_flag=True,
              help="The robustness benchmark instead: the same edit under other tools' boxes, landmark noise, "
                   "rotation, render noise, exposure, white balance, JPEG and face sizes, beside the clean condition "
                   "and the copy baseline, on the first folder's --split (test for a folder training used; OUT/robustness.md, .json, grid_*.png; --limit defaults to 6).")
@click.option("--conditions", default=None,
              help="With --perturb: comma-separated condition names (training/evaluate/perturbations.py). [default: all]")
@click.option("--rerender", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="With --perturb (repeatable): the first --data folder's neutrals rendered again with fewer samples "
                   "and no denoiser (`dataset render ... --samples 4 --no-denoise --expressions neutral`): real render "
                   "noise, a condition each.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def evaluate(model, data, out, expressions, split, limit, reference_real, intensity, crop_size, grid_rows, locate,
             backend, batch, lip_split, subject, perturb, conditions, rerender,
             progress) -> None:
    """Judge the copy baseline, stage 1 alone and RegGAN side by side on paired faces: L1/PSNR/SSIM
    against the true target, an independent expression judge (fer's FER2013 model), an independent
    identity judge (dlib's 128-D embedding) and a Frechet distance on those embeddings (not FID).
    Writes OUT/report.md, OUT/report.json and OUT/grid_<expression>.png.

    \b
    Examples:
      reggan-plugin evaluate --model runs/r1/model.onnx --data renders/ --split test --out reports/synth
      reggan-plugin evaluate --data ../shared/data/london-faces --reference-real --out out/london
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from reggan_plugin.sequence.shards import check_writable_dir

    from .report import write_report
    from .runner import evaluate as run

    with exit_on_error():
        check_writable_dir(out, "--out")  # before the model runs over every pair

    if rerender and not perturb:
        raise click.UsageError("--rerender goes with --perturb")
    runtime = {"lip_split": lip_split, "subject": subject}
    if perturb:
        _perturb(model, data, out, expressions, split, limit, intensity, backend, runtime, conditions, rerender, progress)
        return
    if len(data) != 1:
        raise click.UsageError("give one --data folder (several only with --perturb)")
    data = data[0]
    with exit_on_error():
        config = EvalConfig(data=data, out=out, model=model, backend=backend, batch=batch, **runtime,
                            intensity=intensity, expressions=_expressions(expressions), split=split, limit=limit,
                            reference_real=reference_real, crop_size=crop_size, grid_rows=grid_rows, locate=locate)
        result = _with_progress(lambda tick: run(config, progress=tick), "pair", "evaluate", progress)
        written = write_report(result, out)
    click.echo((out / "report.md").read_text())
    click.echo("wrote " + ", ".join(str(p) for p in written))


def _with_progress(work, unit: str, desc: str, show: bool):
    """Run ``work(tick)`` with a progress bar that ``tick(done, total)`` moves."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit=unit, disable=None if show else True, desc=desc)  # None: a terminal only

    def tick(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        return work(tick)
    finally:
        bar.close()


def _perturb(model, data, out, expressions, split, limit, intensity, backend, runtime, conditions, rerender, progress
             ) -> None:
    from .robustness import RobustnessConfig, evaluate_robustness, write_robustness

    names = tuple(c.strip() for c in conditions.split(",") if c.strip()) if conditions else None
    with exit_on_error():
        config = RobustnessConfig(data=tuple(data), out=out, model=model, backend=backend, **runtime, split=split,
                                  limit=limit or 6, expressions=_expressions(expressions), intensity=intensity,
                                  conditions=names, rerenders=tuple(rerender))
        result = _with_progress(lambda tick: evaluate_robustness(config, progress=tick), "case", "perturb", progress)
        written = write_robustness(result, out)
    click.echo((out / "robustness.md").read_text())
    click.echo("wrote " + ", ".join(str(p) for p in written))
