"""The training run on disk: full checkpoints that resume exactly, the CSV log, process-group helpers.

A checkpoint at iteration i is (all safetensors + JSON, nothing pickled)::

    RUN/checkpoints/000000i-G.safetensors + .json   the generator (training/checkpoint.py: exportable alone)
    RUN/checkpoints/000000i-D.safetensors           the discriminator
    RUN/checkpoints/000000i-state.safetensors       Adam moments of G and D, torch RNG state
    RUN/checkpoints/000000i-state.json              iteration, Adam hyper-parameters and steps, configs, wall time
    RUN/latest.json                                 {"iteration": i, "stem": "000000i"}, written last

Data order and augmentation draw from a generator seeded by (seed, iteration, rank) afresh every
iteration, so no sampler state needs saving for a resume to replay exactly what a straight run does.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from reggan_plugin.atomic import write_text, write_with
from reggan_plugin.errors import BackendUnavailable, ModelError

from .checkpoint import load_generator, save_generator
from .models import RegGAN

LATEST = "latest.json"


# ---------------------------------------------------------------------------------------------------
# processes and devices


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return info


def resolve_device(kind: str, dist: DistInfo) -> torch.device:
    """'cpu' or 'cuda' (cuda:LOCAL_RANK under torchrun). A missing GPU is an error, never a CPU fallback."""
    if kind == "cpu":
        return torch.device("cpu")
    if kind != "cuda":
        raise BackendUnavailable(f"unknown device {kind!r} (use cpu or cuda)")
    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device or driver is visible"
        raise BackendUnavailable(f"--device cuda requested but {why} (torch {torch.__version__}); use --device cpu")
    if dist.local_rank >= torch.cuda.device_count():
        raise BackendUnavailable(f"rank {dist.rank} wants cuda:{dist.local_rank} but only {torch.cuda.device_count()} GPU(s)")
    torch.cuda.set_device(dist.local_rank)
    return torch.device("cuda", dist.local_rank)


def iteration_generator(seed: int, iteration: int, rank: int) -> torch.Generator:
    """A fresh CPU generator for one iteration of one process (counter-based: resumable by construction)."""
    state = np.random.SeedSequence([seed, iteration, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# ---------------------------------------------------------------------------------------------------
# checkpoints


def _opt_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = opt.state_dict()
    tensors, steps = {}, {}
    for index, slot in state["state"].items():
        for key, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                steps[f"{index}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": steps}


def _opt_load(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_run_checkpoint(run_dir: Path, iteration: int, g: RegGAN, d: torch.nn.Module, opt_g: torch.optim.Optimizer,
                        opt_d: torch.optim.Optimizer, meta: dict, keep: int = 3) -> Path:
    """Write the checkpoint of ``iteration`` and point latest.json at it; prune older ones."""
    folder = run_dir / "checkpoints"
    stem = f"{iteration:07d}"
    save_generator(folder / f"{stem}-G", g, info={"iteration": iteration, **meta.get("generator_info", {})})
    d_state = {k: v.detach().cpu().contiguous() for k, v in d.state_dict().items()}
    write_with(folder / f"{stem}-D.safetensors", lambda tmp: save_file(d_state, tmp))
    tg, mg = _opt_tensors("opt_g", opt_g)
    td, md = _opt_tensors("opt_d", opt_d)
    tensors = {**tg, **td, "rng.torch": torch.get_rng_state()}
    write_with(folder / f"{stem}-state.safetensors", lambda tmp: save_file(tensors, tmp))
    state_meta = {"iteration": iteration, "opt_g": mg, "opt_d": md, **meta}
    write_text(folder / f"{stem}-state.json", json.dumps(state_meta, indent=1, sort_keys=True))
    latest = {"iteration": iteration, "stem": stem}
    write_text(run_dir / LATEST, json.dumps(latest))
    stems = sorted({p.name.split("-")[0] for p in folder.glob("*-state.json")})
    for old in stems[:-keep] if keep > 0 else []:
        for p in folder.glob(f"{old}-*"):
            p.unlink(missing_ok=True)
    return folder / f"{stem}-G.safetensors"


def latest_checkpoint(run_dir: Path) -> dict | None:
    path = run_dir / LATEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ModelError(path, f"unreadable: {exc}") from None


def load_run_state(run_dir: Path) -> tuple[RegGAN, dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(generator, D state dict, optimiser/RNG tensors, state JSON) of the latest checkpoint."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise ModelError(run_dir / LATEST, "no checkpoint to resume from")
    folder = run_dir / "checkpoints"
    stem = latest["stem"]
    g, _ = load_generator(folder / f"{stem}-G")
    for needed in (folder / f"{stem}-D.safetensors", folder / f"{stem}-state.safetensors", folder / f"{stem}-state.json"):
        if not needed.is_file():
            raise ModelError(needed, "checkpoint file missing")
    meta = json.loads((folder / f"{stem}-state.json").read_text())
    return g, load_file(str(folder / f"{stem}-D.safetensors")), load_file(str(folder / f"{stem}-state.safetensors")), meta


def restore_optimisers(opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    _opt_load("opt_g", opt_g, tensors, meta["opt_g"])
    _opt_load("opt_d", opt_d, tensors, meta["opt_d"])
    torch.set_rng_state(tensors["rng.torch"])


# ---------------------------------------------------------------------------------------------------
# CSV log


class CsvLog:
    """Append-only CSV with a fixed header; on resume, rows after the resumed iteration are dropped."""

    def __init__(self, path: Path, columns: list[str], resume_from: int | None) -> None:
        self.path, self.columns = path, columns
        rows: list[dict] = []
        if resume_from is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= resume_from]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
