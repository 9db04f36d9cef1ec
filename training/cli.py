"""`reggan-plugin train`: fit stage 1 in closed form, train stage 2, checkpoint, export the ONNX artifact.

Also runnable alone (and under torchrun, one process per CPU group or GPU)::

    python -m training.cli train --data DIR --out RUN [...]
    torchrun --nproc_per_node 2 -m training.cli train --data DIR --out RUN [...]

torch is imported only when a command runs, so ``--help`` stays fast.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from reggan_plugin.cli_exits import exit_on_error
from reggan_plugin.config import field_default
from reggan_plugin.errors import InputError, NumericalError, UsageError

from .config import CHANNELS, TINY, ModelConfig
from .train_config import TrainConfig

PRESETS = {"tiny": TINY, "default": ModelConfig(), "channels": CHANNELS}


def _default(name: str):
    return field_default(TrainConfig, name)


def run_training(data_dirs: list[Path], out: Path, model_config: ModelConfig, cfg: TrainConfig, device_kind: str = "cpu",
                 resume: bool = False, cache_dir: Path | None = None, export_path: Path | None = None,
                 progress: bool = True, refit_stage1: bool = False, init_refiner: Path | None = None,
                 report: Callable[[str], None] | None = None) -> dict:
    """Everything `train` does; returns the run summary (also written to RUN/summary.json by rank 0). What it is given
    to read and write is checked first (an --out or --export that cannot be written: exit 2; an --init-refiner that is
    not a model: exit 3), and a run that fails leaves no empty run folder behind. ``report`` gets a line as stage 1
    is fitted and at each checkpoint (`Solver.train`)."""
    from export.onnx_file import read_onnx
    from reggan_plugin.atomic import new_folder
    from reggan_plugin.sequence.shards import check_out_file, check_writable_dir

    out = Path(out)
    check_writable_dir(out, "--out")
    if export_path is not None:
        check_out_file(Path(export_path), [Path(init_refiner)] if init_refiner is not None else [], option="--export")
    if init_refiner is not None and not Path(init_refiner).is_dir():
        read_onnx(init_refiner)
    with new_folder(out):
        return _train(data_dirs, out, model_config, cfg, device_kind, resume, cache_dir, export_path, progress,
                      refit_stage1, init_refiner, report or (lambda line: None))


def _train(data_dirs: list[Path], out: Path, model_config: ModelConfig, cfg: TrainConfig, device_kind: str,
           resume: bool, cache_dir: Path | None, export_path: Path | None, progress: bool, refit_stage1: bool,
           init_refiner: Path | None, report: Callable[[str], None]) -> dict:
    import os

    import torch

    from .data.dataset import PairedFaces, load_datasets
    from .data.landmarks import LazyDetector
    from .models import RegGAN
    from .run_state import DistInfo, init_distributed, latest_checkpoint, resolve_device
    from .solver import Solver, broadcast_stage1, evaluate_pairs, fit_stage1, params_digest
    from .solver import refit_stage1 as refit

    env_dist = DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_kind, env_dist)  # a missing GPU fails before any process group forms
    dist = init_distributed(device_kind)
    logging.getLogger(__name__).info("rank %d/%d on %s", dist.rank, dist.world_size, device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    latest = latest_checkpoint(out)
    if refit_stage1 and not resume:
        raise UsageError("--refit-stage1 only applies with --resume (a new run fits stage 1 anyway)")
    if init_refiner is not None and resume:
        raise UsageError("--init-refiner starts a new run; a resumed run keeps its own refiner")
    if not resume and latest is not None:
        raise UsageError(f"{out}: already holds a run (iteration {latest['iteration']}); add --resume or choose another --out")
    if resume:
        if latest is None:
            raise UsageError(f"{out}: --resume given but there is no checkpoint (latest.json) to resume from")
        stem = latest["stem"]
        state = json.loads((out / "checkpoints" / f"{stem}-state.json").read_text())
        g_meta = json.loads((out / "checkpoints" / f"{stem}-G.json").read_text())
        saved = TrainConfig.from_dict(state["train_config"])
        # the run's own settings win; only the schedule's length and bookkeeping may change on resume
        # (and with --refit-stage1, the stage-1 motion recipe given now)
        motion = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name.startswith("stage1_")}
        cfg = replace(saved, iterations=cfg.iterations, stop_at=cfg.stop_at, log_every=cfg.log_every, sample_every=cfg.sample_every,
                      checkpoint_every=cfg.checkpoint_every, **(motion if refit_stage1 else {}))
        model_config = ModelConfig.from_dict(g_meta["model_config"])

    cache = Path(cache_dir) if cache_dir else out / "cache"
    if dist.is_main:  # rank 0 builds the crop caches (BlazeFace for images without landmark files); the others read them
        sets = load_datasets(data_dirs, model_config.image_size, model_config.expressions, cache, cfg.cache_margin,
                             detector=LazyDetector(), progress=progress)
    if dist.distributed:
        torch.distributed.barrier()
    if not dist.is_main:
        sets = load_datasets(data_dirs, model_config.image_size, model_config.expressions, cache, cfg.cache_margin,
                             )
    train = PairedFaces(sets, model_config.expressions, "train", augment=cfg.augment, dataset_balance=cfg.dataset_balance,
                        val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed)
    val = PairedFaces(sets, model_config.expressions, "val", val_fraction=cfg.val_fraction,
                      test_fraction=cfg.test_fraction, seed=cfg.seed)
    if len(train) == 0:
        raise InputError(data_dirs[0], "the training split is empty (too few identities?)")
    if device.type == "cuda":
        train.to(device), val.to(device)
    data_meta = [dataclasses.asdict(s) | {"split": "train"} for s in train.summaries]

    if resume:
        model = RegGAN(model_config)
        stage1_meta = {}
    else:
        if dist.is_main:
            report("fitting stage 1")
            model, fit = fit_stage1(model_config, cfg, train, val, out)
            stage1_meta = {"radius": fit["radius"], "fitted": fit["fitted"]}
            if init_refiner is not None:
                from .checkpoint import load_refiner_from_onnx, load_refiner_from_run

                try:
                    (load_refiner_from_run if Path(init_refiner).is_dir() else load_refiner_from_onnx)(model, init_refiner)
                except ValueError as exc:
                    raise InputError(init_refiner, str(exc)) from None
                stage1_meta["refiner_from"] = Path(init_refiner).name
        obj: list[dict[str, Any] | None] = [stage1_meta if dist.is_main else None]
        if dist.distributed:
            torch.distributed.broadcast_object_list(obj, src=0)
        assert obj[0] is not None
        stage1_meta = obj[0]
        if not dist.is_main:
            model = RegGAN(replace(model_config, radius=stage1_meta["radius"]))
        broadcast_stage1(model, dist)
    solver = Solver(model, cfg, train, val, out, device, dist, meta={"stage1": stage1_meta, "data": data_meta})
    if resume:
        solver.resume()
        if refit_stage1:
            if dist.is_main:
                report("refitting stage 1")
                solver.meta["stage1"] = refit(solver.G, train, val, solver.meta.get("stage1", {}), solver.iteration, cfg, out)
            broadcast_stage1(solver.G, dist)
    if dist.is_main:
        (out / "train_config.json").write_text(json.dumps({"train": cfg.to_dict(), "model": json.loads(solver.G.config.to_json()),
                                                           "data": [str(d) for d in data_dirs], "world_size": dist.world_size}, indent=1))
    summary = solver.train(progress, report if dist.is_main else None)

    digest = params_digest(solver.G, solver.D)
    digests = [digest]
    if dist.distributed:
        digests = [""] * dist.world_size
        torch.distributed.all_gather_object(digests, digest)
    if dist.is_main:
        (out / "ranks.json").write_text(json.dumps([{"rank": r, "params_sha256": d} for r, d in enumerate(digests)], indent=1))
        metrics = evaluate_pairs(solver.G, val if len(val) else train, device)
        hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})"
        summary |= {"metrics_split": "val" if len(val) else "train", "metrics": metrics, "world_size": dist.world_size,
                    "hardware": f"{dist.world_size} process(es) on {hardware}", "stage1": solver.meta.get("stage1", {}),
                    "data": solver.meta.get("data", data_meta)}
        export_to = Path(export_path) if export_path else out / "model.onnx"
        provenance = {"training": "reggan-plugin train " + " ".join(f"--data {Path(d).name}" for d in data_dirs),
                      "iterations": summary["iteration"], "train_config": cfg.to_dict(), **summary}
        summary["onnx"] = str(solver.export(export_to, provenance))
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if dist.distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if len(set(digests)) != 1:
        raise NumericalError(f"{out}: ranks ended with different weights ({digests}); distributed training is broken")
    return summary


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """RegGAN training commands (torch)."""


@cli.command("train")
@click.option("--data", "data_dirs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A paired data folder (synthetic renders, plain neutral/+<expression>/, or CFEE-style subject "
                   "folders; see training/data/layouts.py). Repeat for several.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder: checkpoints, log.csv, samples/, model.onnx.")
@click.option("--iterations", default=_default("iterations"), show_default=True, help="Stage-2 iterations in total (a resumed run continues to this).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cuda that is not available is an error, never a CPU fallback.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint (exactly).")
@click.option("--refit-stage1", is_flag=True,
              help="With --resume: refit stage 1 (its mean flows, regions and ridge maps) on today's training pairs "
                   "with the stage1_* settings given now, keeping its radius; lambdas are chosen again on the "
                   "validation pairs (RUN/stage1_selection.md).")
@click.option("--init-refiner", type=click.Path(path_type=Path), default=None,
              help="Start the refiner from a training run's last checkpoint (a run folder, exact) or an exported "
                   "model's (ONNX) refiner instead of from scratch; stage 1 is fitted anew. Same --config.")
@click.option("--batch-size", default=_default("batch_size"), show_default=True, help="Pairs per iteration per process.")
@click.option("--image-size", type=int, default=None, help="Crop size S. [default: the --config preset's, 128 / tiny 32]")
@click.option("--config", "preset", type=click.Choice(sorted(PRESETS)), default="default", show_default=True,
              help="Model preset: size and expressions.")
@click.option("--sample-every", default=_default("sample_every"), show_default=True, help="Write samples/ITER.png every K iterations (0: only at the end).")
@click.option("--checkpoint-every", default=_default("checkpoint_every"), show_default=True, help="Checkpoint every K iterations (and always at the end).")
@click.option("--log-every", default=_default("log_every"), show_default=True, help="Append a row to log.csv every K iterations.")
@click.option("--seed", default=_default("seed"), show_default=True, help="Seed of initialisation, data order and augmentation.")
@click.option("--no-augment", is_flag=True, help="Train on the plain crops (no jitter, no photometric changes).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Where aligned crops are cached. [default: OUT/cache]")
@click.option("--export", "export_path", type=click.Path(path_type=Path), default=None, help="ONNX artifact to write at the end. [default: OUT/model.onnx]")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Set a TrainConfig field (training/train_config.py), e.g. --set lambda_cls=0.5 --set ridge_radii=3,5 "
                   "--set augment.flip=false. Repeatable; ignored on --resume (a run keeps its settings) except the "
                   "stage1_* ones with --refit-stage1.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def train(data_dirs, out, iterations, device, resume, refit_stage1, init_refiner, batch_size, image_size, preset, sample_every, checkpoint_every,
          log_every, seed, no_augment, cache_dir, export_path, overrides, progress) -> None:
    """Train RegGAN on paired faces: stage 1 by closed-form ridge (r and lambda chosen on a validation
    split), stage 2 adversarially (WGAN-GP + classification + L1 + identity terms), then export ONNX.

    \b
    Examples:
      reggan-plugin train --data renders/ --data ../shared/data/london-faces --out runs/r1 --iterations 50000 --device cuda
      reggan-plugin train --data renders/ --out runs/r1 --iterations 80000 --device cuda --resume
      torchrun --nproc_per_node 2 -m training.cli train --data renders/ --out runs/ddp --config tiny
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        model_config = PRESETS[preset]
        if image_size is not None:
            model_config = replace(model_config, image_size=image_size)
        cfg = TrainConfig(iterations=iterations, batch_size=batch_size, seed=seed, sample_every=sample_every,
                          checkpoint_every=checkpoint_every, log_every=log_every)
        if no_augment:
            cfg = replace(cfg, augment=dataclasses.replace(cfg.augment, enabled=False))
        cfg = cfg.with_overrides(list(overrides))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with exit_on_error():
        summary = run_training(list(data_dirs), out, model_config, cfg, device, resume, cache_dir, export_path, progress,
                               refit_stage1, init_refiner)
    if summary:
        click.echo(f"done: {summary['iteration']} iterations in {summary['wall_time_s']} s; model {summary.get('onnx', '-')}")
        for expr, m in summary.get("metrics", {}).items():
            click.echo(f"  {expr:10s} L1 copy {m['copy_l1']:.4f}  stage1 {m['stage1_l1']:.4f}  RegGAN {m['reggan_l1']:.4f}  "
                       f"PSNR copy {m['copy_psnr']:.2f}  stage1 {m['stage1_psnr']:.2f}  RegGAN {m['reggan_psnr']:.2f}")


if __name__ == "__main__":
    cli()
