"""Checkpoint -> ONNX artifact, verified against torch before it is accepted."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from export.half_weights import round_weights_half, store_half
from export.mirrored_keys import store_mirrored_keys
from reggan_plugin.artifact import INPUT_NAMES, MOTION_NAMES, OUTPUT_NAMES, build_metadata
from reggan_plugin.atomic import atomic_path
from reggan_plugin.errors import RegganError
from reggan_plugin.faces.turn import Pose, pose_weights
from reggan_plugin.geometry.align import CANONICAL_5PT
from training.checkpoint import load_generator
from training.models import RegGAN

OPSET = 17
TOLERANCE = 1e-4


GRAPH_OUTPUTS = OUTPUT_NAMES + MOTION_NAMES


class ExportError(RegganError):
    exit_code = 6


class _Graph(torch.nn.Module):
    """What the artifact computes: RegGAN's outputs in `GRAPH_OUTPUTS` order."""

    def __init__(self, model: RegGAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, expression: torch.Tensor, intensity: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.run(image, expression, intensity)
        return tuple(getattr(out, name) for name in GRAPH_OUTPUTS)


def _random_inputs(model: RegGAN, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    size, n_expr = model.config.image_size, len(model.config.expressions)
    image = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    expression = torch.nn.functional.one_hot(torch.randint(n_expr, (batch,), generator=gen), n_expr).float()
    keys, tilts = model.config.turn_keys, model.config.tilt_keys
    if keys:  # each face at a pose between the end keys, weighted as the runtime weighs it
        turns = keys[0] + torch.rand(batch, generator=gen) * (keys[-1] - keys[0])
        tilted = (tilts[0] + torch.rand(batch, generator=gen) * (tilts[-1] - tilts[0])).tolist() if tilts else [None] * batch
        turn = torch.from_numpy(np.stack([pose_weights(Pose(float(t), v), keys, tilts) for t, v in zip(turns, tilted)]))
        expression = (expression[:, :, None] * turn[:, None]).reshape(batch, -1)
    intensity = torch.rand(batch, generator=gen)
    return image, expression, intensity


def verify_onnx(model: RegGAN, onnx_path: Path, batches: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Max |onnxruntime - torch| over random inputs and batch sizes; raises ExportError above TOLERANCE."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, batch in enumerate(batches):
        inputs = _random_inputs(model, batch, seed + i)
        with torch.no_grad():
            expected = [t.numpy() for t in _Graph(model)(*inputs)]
        got = session.run(list(GRAPH_OUTPUTS), {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(expected, got)))
    if not worst <= TOLERANCE:
        raise ExportError(f"{onnx_path}: ONNX output differs from torch by {worst:.3g} (> {TOLERANCE}); export rejected")
    return worst


def export_model(model: RegGAN, out: str | Path, provenance: dict | None = None) -> Path:
    """Export `model` to `out` (atomically), stage 1's weights stored once where the colours share them (for every
    expression or some, `LocalRegression.share_colour`) and for one side's turn keys where the other's are their
    mirror images (``export.mirrored_keys``), its large weights in half precision (``export.half_weights``), stamp
    the metadata and verify it against the model so rounded. Returns the model's path.
    (`--stage regression` cuts its preview graph out of it at run time: ``reggan_plugin.backends.preview_graph``.)"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval()
    model.stage1.share_colour()
    round_weights_half(model)
    example = _random_inputs(model, 2, seed=0)
    with atomic_path(out) as tmp_path:
        tmp = str(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                _Graph(model), example, tmp, dynamo=False, opset_version=OPSET,
                input_names=list(INPUT_NAMES), output_names=list(GRAPH_OUTPUTS),
                dynamic_axes={name: {0: "batch"} for name in INPUT_NAMES + GRAPH_OUTPUTS},
            )
        proto = store_half(store_mirrored_keys(onnx.load(tmp), model.stage1))
        meta = build_metadata(
            input_size=model.config.image_size,
            expressions=model.config.expressions,
            crop_template=CANONICAL_5PT,
            provenance={"model_config": model.config.to_json(), **(provenance or {})},
        )
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        proto.producer_name = "reggan-plugin"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        verify_onnx(model, Path(tmp))
        check_renders(Path(tmp))  # refused here, with the reason, rather than written and failing in render
    return out


def check_renders(path: Path) -> None:
    """The runtime loads `path` and edits a picture with it (what `render` does), or ExportError says why."""
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import whole_image_face
    from reggan_plugin.renderer import ExpressionRenderer

    try:
        renderer = ExpressionRenderer(InferenceConfig(model=path, backend="cpu", batch=1))
        side = 2 * renderer.size
        pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
        renderer.apply_array(pixels, faces=[whole_image_face(side, side)], expression=renderer.artifact.names[-1])
    except (RegganError, ValueError) as exc:
        raise ExportError(f"the exported model would not run in `render`: {exc}") from exc


def export_checkpoint(checkpoint: str | Path, out: str | Path, mix: str | None = None) -> Path:
    """``mix``: how the exported stage 1 mixes expressions (`load_generator`), else the checkpoint's."""
    model, info = load_generator(checkpoint, mix)
    return export_model(model, out, provenance={"checkpoint": Path(checkpoint).name, **info})
