"""Checkpoints are safetensors (tensors) + JSON (config and state): nothing is ever unpickled."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from reggan_plugin.atomic import write_text, write_with
from reggan_plugin.errors import ModelError

from .config import ModelConfig
from .models import RegGAN


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """`run/100-G` or `run/100-G.safetensors` -> (tensors file, JSON file)."""
    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def save_generator(path: str | Path, model: RegGAN, info: dict | None = None) -> Path:
    tensors_path, json_path = checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_with(tensors_path, lambda tmp: save_file(state, tmp))
    meta = {"model_config": json.loads(model.config.to_json()), "info": info or {}}
    write_text(json_path, json.dumps(meta, indent=2, sort_keys=True))
    return tensors_path


def load_generator(path: str | Path, mix: str | None = None) -> tuple[RegGAN, dict]:
    """Rebuild a RegGAN from its checkpoint; returns (model in eval mode, info dict). ``mix``: how its stage 1 mixes
    expressions (`ModelConfig.mix`) instead of the checkpoint's; nothing of it is learnt, so the weights load alike."""
    tensors_path, json_path = checkpoint_paths(path)
    for needed in (tensors_path, json_path):
        if not needed.is_file():
            raise ModelError(needed, "checkpoint file not found (a checkpoint is NAME.safetensors + NAME.json)")
    try:
        meta = json.loads(json_path.read_text())
        config = ModelConfig.from_dict(meta["model_config"] | ({"mix": mix} if mix else {}))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(json_path, f"bad checkpoint config: {exc}") from None
    model = RegGAN(config)
    try:
        state = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as exc:  # junk, cut short, empty
        raise ModelError(tensors_path, f"not readable safetensors ({_first_line(exc)})") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise ModelError(tensors_path, f"weights do not match the config: {_first_line(exc)}") from None
    return model.eval(), meta.get("info", {})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


__all__ = ["checkpoint_paths", "load_generator", "save_generator"]


def load_refiner_from_run(model: RegGAN, run: str | Path) -> int:
    """Start ``model``'s refiner from the last checkpoint of a training run (``run``/latest.json), exactly as it was
    trained; returns how many tensors were loaded. Stage 1 is left alone."""
    latest = Path(run) / "latest.json"
    if not latest.is_file():
        raise ValueError(f"{run}: not a training run with a checkpoint (no latest.json)")
    trained, _ = load_generator(Path(run) / "checkpoints" / f"{json.loads(latest.read_text())['stem']}-G")
    state, theirs = model.refiner.state_dict(), trained.refiner.state_dict()
    if any(k not in theirs or theirs[k].shape != v.shape for k, v in state.items()):
        raise ValueError(f"{run}: its refiner does not match this model's; use the same --config")
    model.refiner.load_state_dict(theirs, strict=True)
    return len(state)


def load_refiner_from_onnx(model: RegGAN, path: str | Path) -> int:
    """Start ``model``'s refiner from the refiner weights of an exported artifact (its ONNX initializers are
    named after the torch parameters, ``model.refiner.*``); returns how many tensors were loaded. Stage 1 is
    left alone: it is fitted in closed form on the run's own data."""
    from onnx import numpy_helper

    from export.half_weights import HALF_SUFFIX
    from export.onnx_file import read_onnx

    graph = read_onnx(path).graph
    prefix = "model.refiner."
    weights = {i.name[len(prefix):].removesuffix(HALF_SUFFIX): torch.from_numpy(numpy_helper.to_array(i).astype("float32"))
               for i in graph.initializer if i.name.startswith(prefix)}  # large ones are stored in half precision
    state = model.refiner.state_dict()
    missing = [k for k, v in state.items() if k not in weights or tuple(weights[k].shape) != tuple(v.shape)]
    if missing:
        raise ValueError(f"{path}: its refiner does not match this model's ({len(missing)} tensors differ, "
                         f"e.g. {missing[0]}); use the same --config")
    model.refiner.load_state_dict({k: weights[k] for k in state}, strict=True)
    return len(state)
