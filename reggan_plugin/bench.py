"""`reggan-plugin bench`: speed of the network and of the render pipeline, measured side by side in one run.

Sections (all on the same random weights of one RegGAN built from a ModelConfig; speed does not depend on
the weights):
  a  torch eager, one face per call (the authors' style)      b  torch eager, batched
  c  the default onnxruntime CPU backend, batch 1 and best    d  the regression stage alone (preview)
  e  the whole `render` pipeline on 1920x1080 PNG frames vs the network alone
  f  peak memory (RSS) over a long sequence, and the detector's own cost
  g  the machine's float32 GEMM ceiling and the model's FLOPs per face (network share of the ceiling)

The machine is shared, so timings are taken in interleaved rounds and the best round of each case is kept:
a burst of someone else's load hits one round of one case, not a whole column. torch, onnx and the
exporter are imported inside the functions that need them; importing this module is torch-free.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click
import numpy as np


PROBE_SIZES = (1, 2, 4, 8, 16, 32)


@dataclass
class Row:
    section: str
    name: str
    rate: float | None  # faces (or frames) per second
    unit: str = "faces/s"
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # headline numbers and ratios
    memory: list[tuple[int, float]] = field(default_factory=list)  # (frames done, RSS MiB)

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        click.echo(f"  {row.section:2s} {row.name:52s} {_fmt(row.rate)} {row.unit}  {row.note}", err=True)
        return row


def _fmt(rate: float | None) -> str:
    return "   n/a" if rate is None else f"{rate:8.1f}"


# -- timing -----------------------------------------------------------------------------------------


def time_per_call(fn: Callable[[], object], seconds: float, min_calls: int = 2) -> float:
    """Mean seconds per call of `fn` over at least `seconds` (and `min_calls` calls), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= min_calls:
            return elapsed / calls


def interleaved_best(cases: dict[str, tuple[Callable[[], object], int]], rounds: int, seconds: float) -> dict[str, float]:
    """{name: best items/s}: every case runs once per round, rounds interleaved, best round kept."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (fn, items) in cases.items():
            rate = items / time_per_call(fn, seconds)
            best[name] = max(best.get(name, 0.0), rate)
    return best


# -- the model ----------------------------------------------------------------------------------------


def build_models(config, workdir: Path, seed: int = 0):
    """(torch RegGAN with random weights, its exported artifact path, a stage-1-only ONNX path)."""
    import onnx
    import onnx.utils
    import torch

    from .export.onnx_export import export_model
    from .training.models import RegGAN

    torch.manual_seed(seed)
    model = RegGAN(config).eval()
    path = export_model(model, workdir / "model.onnx", provenance={"training": "none (random weights, benchmark)"})
    stage1 = workdir / "model.stage1.onnx"
    onnx.utils.extract_model(str(path), str(stage1), ["image", "expression", "intensity"], ["stage1"])
    return model, path, stage1


def inputs(n: int, size: int, n_expr: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": (rng.random((n, 3, size, size), dtype=np.float32) * 2 - 1),
        "expression": np.eye(n_expr, dtype=np.float32)[np.full(n, 1 % n_expr)],
        "intensity": np.ones(n, np.float32),
    }


def model_macs(path: Path) -> dict[str, int]:
    """Multiply-accumulates per face by op type (Conv, ConvTranspose, MatMul, Gemm, Einsum), from the ONNX graph."""
    import onnx
    from onnx import shape_inference

    proto = onnx.load(str(path))
    for value in list(proto.graph.input):  # fix the batch at 1 so every shape is concrete
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    proto = shape_inference.infer_shapes(proto)
    shapes: dict[str, list[int]] = {}
    for value in list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output):
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for init in proto.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs: dict[str, int] = {}
    for node in proto.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type in ("Conv", "ConvTranspose"):
            w = shapes[node.input[1]]
            # Conv: each output element sums Cin/group * kh * kw products; ConvTranspose: each input element
            # feeds Cout/group * kh * kw (weights [Cin, Cout/group, kh, kw])
            count = int(np.prod(out if node.op_type == "Conv" else shapes[node.input[0]])) * int(np.prod(w[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            count = int(np.prod(out)) * shapes[node.input[0]][-1]
        elif node.op_type == "Einsum":
            equation = next(a.s.decode() for a in node.attribute if a.name == "equation").replace(" ", "")
            sizes: dict[str, int] = {}
            for operand, name in zip(equation.split("->")[0].split(","), node.input):
                sizes.update(zip(operand, shapes[name]))
            count = int(np.prod(list(sizes.values())))
        else:
            continue
        macs[node.op_type] = macs.get(node.op_type, 0) + count
    return macs


# -- (g) the machine's ceiling --------------------------------------------------------------------------


def gemm_ceiling(seconds: float, sizes=(512, 1024, 2048), rounds: int = 2) -> dict[str, float]:
    """Best float32 GEMM GFLOP/s with numpy (its BLAS) and with onnxruntime's MatMul (MLAS), both cores."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from .backends.environment import physical_cores

    cases: dict[str, tuple[Callable[[], object], int]] = {}
    for n in sizes:
        a = np.random.default_rng(n).random((n, n), dtype=np.float32)
        b = np.random.default_rng(n + 1).random((n, n), dtype=np.float32)
        cases[f"numpy {n}"] = ((lambda a=a, b=b: a @ b), 2 * n**3)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "AB"],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])],
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        proto.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = physical_cores()
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        cases[f"onnxruntime {n}"] = ((lambda s=session, a=a, b=b: s.run(None, {"A": a, "B": b})), 2 * n**3)
    best = interleaved_best(cases, rounds, seconds)
    return {name: flops / 1e9 for name, flops in best.items()}


# -- synthetic frames -----------------------------------------------------------------------------------


def synthetic_frame(width: int, height: int, seed: int, face: tuple[int, int, int]) -> np.ndarray:
    """An RGBA uint8 'render': smooth background, a shaded face-like ellipse with eyes and mouth, mild noise.

    face = (centre x, centre y, height). Content matters for PNG codec speed: a smooth render with a little
    sampling noise compresses like a Cycles frame, not like white noise.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([40 + 60 * x / width, 50 + 40 * y / height, 70 + 30 * (x + y) / (width + height)], -1)
    cx, cy, fh = face
    r = ((x - cx) / (0.38 * fh)) ** 2 + ((y - cy) / (0.5 * fh)) ** 2
    skin = np.array([205, 160, 135], np.float32) * (1.05 - 0.25 * np.clip(r, 0, 1))[..., None]
    rgb = np.where((r < 1)[..., None], skin, rgb)
    for dx, dy, rad, colour in ((-0.16, -0.1, 0.05, 40), (0.16, -0.1, 0.05, 40), (0, 0.22, 0.08, 120)):
        d = ((x - cx - dx * fh) ** 2 + ((y - cy - dy * fh) * 1.8) ** 2) < (rad * fh) ** 2
        rgb[d] = colour
    rgb += rng.normal(0, 1.5, rgb.shape).astype(np.float32)
    alpha = np.full((height, width, 1), 255, np.float32)
    return np.clip(np.concatenate([rgb, alpha], -1), 0, 255).astype(np.uint8)


def write_frames(directory: Path, count: int, width: int, height: int, distinct: int = 8) -> tuple[int, int, int, int]:
    """`count` PNG frames in `directory` (`distinct` different ones, the rest hard links); returns the face box."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    fh = height // 4
    face = (width // 2, height // 2, fh)
    sources = []
    for i in range(min(distinct, count)):
        path = directory / f"frame_{i:05d}.png"
        Image.fromarray(synthetic_frame(width, height, i, (face[0] + 3 * i, face[1], fh)), "RGBA").save(path, compress_level=3)
        sources.append(path)
    for i in range(len(sources), count):
        target = directory / f"frame_{i:05d}.png"
        try:
            os.link(sources[i % len(sources)], target)
        except OSError:
            shutil.copyfile(sources[i % len(sources)], target)
    side = int(fh * 1.1)
    return (face[0] - side // 2, face[1] - side // 2, side, side)
