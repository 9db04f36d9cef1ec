"""Sections a-d and g of `reggan-plugin bench`: the network in torch and onnxruntime, its FLOPs, architecture variants."""
from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from benchmarks.timing import Report, interleaved_best

if TYPE_CHECKING:
    from training.config import ModelConfig

PROBE_SIZES = (1, 2, 4, 8, 16, 32)


# -- the model ----------------------------------------------------------------------------------------


def build_models(config, workdir: Path, seed: int = 0):
    """(torch RegGAN with random weights, its exported artifact path, its preview graph's path)."""
    import torch

    from export.onnx_export import export_model
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.backends.preview_graph import derive_preview
    from training.models import RegGAN

    torch.manual_seed(seed)
    model = RegGAN(config).eval()
    path = export_model(model, workdir / "model.onnx", provenance={"training": "none (random weights, benchmark)"})
    return model, path, derive_preview(path, load_artifact(path).sha256, cache=workdir)


def load_shipped(path: Path, workdir: Path, seed: int = 0):
    """(torch RegGAN of `path`'s architecture with random weights, `path`, its preview graph's path): the ONNX cases
    run the model itself; torch eager, which needs the module, runs the same architecture (speed does not depend on
    the weights)."""
    import json

    import torch

    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.backends.preview_graph import derive_preview
    from training.config import ModelConfig
    from training.models import RegGAN

    artifact = load_artifact(path)
    fields = json.loads(json.loads(artifact.metadata.get("reggan.provenance", "{}")).get("model_config", "{}"))
    if not fields:
        raise click.ClickException(f"{path}: no model_config in its provenance; cannot build its torch twin")
    torch.manual_seed(seed)
    model = RegGAN(ModelConfig.from_dict(fields)).eval()
    return model, artifact.path, derive_preview(artifact.path, artifact.sha256, cache=workdir)


def expression_width(config: ModelConfig) -> int:
    """The network's expression input: a weight per expression, or per expression and pose key (as the runtime reads
    it from a model file)."""
    from reggan_plugin.artifact import _input_width

    return _input_width(len(config.expressions), config.turn_keys, config.tilt_keys)


def inputs(n: int, size: int, n_expr: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of ``n`` random crops, each with one column of the ``n_expr`` wide expression input set (speed does not
    depend on which)."""
    rng = np.random.default_rng(seed)
    return {
        "image": (rng.random((n, 3, size, size), dtype=np.float32) * 2 - 1),
        "expression": np.eye(n_expr, dtype=np.float32)[np.full(n, 1 % n_expr)],
        "intensity": np.ones(n, np.float32),
    }


def model_macs(path: Path) -> dict[str, int]:
    """Multiply-accumulates per face by op type (Conv, ConvTranspose, MatMul, Gemm, Einsum), from the ONNX graph."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    proto = onnx.load(str(path))
    for value in list(proto.graph.input):  # fix the batch at 1 so every shape is concrete
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    # onnxruntime's inference computes shapes through Reshape and Shape arithmetic, where ONNX's own leaves them
    # unknown (0): a turn-keyed model's stage-1 weights are mixed per key through such reshapes
    proto = SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
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
            count = int(np.prod((out if node.op_type == "Conv" else shapes[node.input[0]]) or [])) * int(np.prod(w[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            count = int(np.prod(out or [])) * shapes[node.input[0]][-1]
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


def gemm_ceiling(seconds: float, sizes=(512, 1024, 1536, 2048), rounds: int = 2) -> dict[str, float]:
    """Best float32 GEMM GFLOP/s with numpy (its BLAS) and with onnxruntime's MatMul (MLAS), both cores."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from reggan_plugin.backends.environment import physical_cores

    cases: dict[str, tuple[Callable[..., object], int]] = {}
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



# -- (a)-(d) the network ------------------------------------------------------------------------------------


def bench_network(report: Report, model, path: Path, stage1_path: Path, *, rounds: int, seconds: float,
                  batches: tuple[int, ...], pipeline_batch: int) -> dict[str, Any]:
    """Faces/s of torch eager (1 and batched), the cpu backend per batch size, and the regression stage."""
    import torch

    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.backends import create_backend
    from reggan_plugin.backends.cpu import CpuTuning
    from reggan_plugin.backends.environment import physical_cores

    torch.set_num_threads(physical_cores())
    size, n_expr = model.config.image_size, expression_width(model.config)
    backend = create_backend(load_artifact(path), "cpu")
    preview = create_backend(load_artifact(stage1_path), "cpu")
    torch_batches = sorted({8, max(batches)})
    feeds = {n: inputs(n, size, n_expr) for n in set(batches) | set(torch_batches) | {1, pipeline_batch}}
    tensors = {n: tuple(torch.from_numpy(v) for v in f.values()) for n, f in feeds.items()}

    def eager(n: int) -> Callable[..., object]:
        def call() -> object:
            with torch.no_grad():  # the authors' test loop: eager, no_grad, one image at a time
                return model(*tensors[n])
        return call

    cases: dict[str, tuple[Callable[..., object], int]] = {"eager 1": (eager(1), 1)}
    cases.update({f"eager {n}": (eager(n), n) for n in torch_batches})
    cases.update({f"cpu {n}": ((lambda f=feeds[n]: backend.run(f["image"], f["expression"], f["intensity"])), n)
                  for n in sorted(set(batches) | {pipeline_batch})})
    cases.update({f"stage1 {n}": ((lambda f=feeds[n]: preview.run(f["image"], f["expression"], f["intensity"])), n)
                  for n in (1, max(batches))})
    big = max(batches)
    cases["stage1 via full graph"] = ((lambda f=feeds[big]: backend.run(f["image"], f["expression"], f["intensity"],
                                                                       outputs=("stage1",))), big)
    click.echo(f"network: {len(cases)} cases x {rounds} rounds x {seconds:g} s ...", err=True)
    best = interleaved_best(cases, rounds, seconds)

    # per core: one thread each, immune to how either library's thread pool copes with other jobs on the machine
    one = create_backend(load_artifact(path), "cpu", cpu_tuning=CpuTuning(threads=1))
    torch.set_num_threads(1)
    try:
        single = interleaved_best({"eager": (eager(1), 1), "cpu": ((lambda f=feeds[1]: one.run(
            f["image"], f["expression"], f["intensity"])), 1)}, rounds, seconds)
    finally:
        torch.set_num_threads(physical_cores())

    cpu = {n: best[f"cpu {n}"] for n in batches}
    best_batch = max(cpu, key=lambda n: cpu[n])
    eager_batch = max(torch_batches, key=lambda n: best[f"eager {n}"])
    stage1_batch = max((1, big), key=lambda n: best[f"stage1 {n}"])
    report.add("a", "torch eager, 1 face per call (authors' style)", best["eager 1"])
    report.add("b", f"torch eager, batch {eager_batch}", best[f"eager {eager_batch}"],
               note="(" + ", ".join(f"batch {n}: {best['eager ' + str(n)]:.1f}" for n in torch_batches) + ")")
    report.add("c", "cpu backend (onnxruntime), batch 1", cpu[1])
    report.add("c", f"cpu backend (onnxruntime), best batch = {best_batch}", cpu[best_batch],
               note="(" + ", ".join(f"{n}: {r:.1f}" for n, r in cpu.items()) + ")")
    report.add("a", "torch eager, 1 face per call, 1 thread (per core)", single["eager"])
    report.add("c", "cpu backend, batch 1, 1 thread (per core)", single["cpu"],
               note=f"({single['cpu'] / single['eager']:.1f}x torch eager per core)")
    report.add("d", f"regression stage alone (preview graph), batch {stage1_batch}", best[f"stage1 {stage1_batch}"],
               note=f"(batch 1: {best['stage1 1']:.1f})")
    report.add("d", f"regression stage fetched from the full graph, batch {big}", best["stage1 via full graph"],
               note="(runs the refiner too)")
    report.facts["backend"] = backend.description
    report.facts["best_batch"] = str(best_batch)
    return {"eager1": best["eager 1"], "cpu1": cpu[1], "per_core": single["cpu"] / single["eager"], "cpu_best": cpu[best_batch], "best_batch": best_batch,
            "cpu_pipeline_batch": best[f"cpu {pipeline_batch}"], "stage1": best[f"stage1 {stage1_batch}"]}


def op_profile(path: Path, batch: int, size: int, n_expr: int, runs: int = 5) -> list[tuple[str, float, int]]:
    """(op type, ms per face, nodes) from onnxruntime's profiler, slowest first (Conv includes fused activations)."""
    import json

    import onnxruntime as ort

    from reggan_plugin.backends.cpu import session_options

    options = session_options()
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = inputs(batch, size, n_expr)
        session.run(["output"], feeds)
        for _ in range(runs):
            session.run(["output"], feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    total: dict[str, float] = {}
    nodes: dict[str, set] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            total[op] = total.get(op, 0.0) + event["dur"]
            nodes.setdefault(op, set()).add(event["name"])
    scale = 1e-3 / ((runs + 1) * batch)
    return sorted(((op, us * scale, len(nodes[op])) for op, us in total.items()), key=lambda r: -r[1])



# -- architecture variants: what-ifs built by module surgery on the default model --------------------------------


def variant_models(config) -> dict[str, Any]:
    """The default RegGAN and single-change variants of it, built by module surgery (random weights)."""
    import torch
    from torch import nn

    from training.models import RegGAN

    def build(change: Callable[[object], None] | None = None, cfg=config) -> object:
        torch.manual_seed(0)
        model = RegGAN(cfg).eval()
        if change is not None:
            change(model)
        return model

    def head_3x3(model) -> None:
        head = model.refiner.head
        model.refiner.net[-1] = nn.Conv2d(head.in_channels, head.out_channels, 3, 1, 1)

    def no_instance_norm(model) -> None:
        for module in list(model.modules()):
            for name, child in module.named_children():
                if isinstance(child, nn.InstanceNorm2d):
                    setattr(module, name, nn.Identity())

    def transposed_upsampling(model) -> None:
        layers = list(model.refiner.net)
        out: list[nn.Module] = []
        i = 0
        while i < len(layers):
            if isinstance(layers[i], nn.Upsample):
                conv = layers[i + 1][0]
                block = layers[i + 1]
                block[0] = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, 4, 2, 1, bias=False)
                out.append(block)
                i += 2
            else:
                out.append(layers[i])
                i += 1
        model.refiner.net = nn.Sequential(*out)

    return {
        "default (ModelConfig())": build(),
        f"final 7x7 head conv ({config.conv_dim}->6) as 3x3": build(head_3x3),
        "no InstanceNorm (timing only)": build(no_instance_norm),
        "upsample+3x3 conv -> 4x4 stride-2 ConvTranspose": build(transposed_upsampling),
        f"n_res {config.n_res} -> {config.n_res + 1}": build(cfg=dataclasses.replace(config, n_res=config.n_res + 1)),
        f"conv_dim {config.conv_dim} -> 32": build(cfg=dataclasses.replace(config, conv_dim=32)),
    }


def bench_variants(report: Report, config, workdir: Path, *, rounds: int, seconds: float, batch: int,
                   ceiling: float) -> list[tuple[str, float, float, float]]:
    """(variant, faces/s, GFLOP/face, share of the GEMM ceiling) for each architecture variant."""
    import warnings

    import torch

    from reggan_plugin.backends.cpu import create_session, session_options

    cases, flops = {}, {}
    for i, (name, model) in enumerate(variant_models(config).items()):
        path = workdir / f"variant{i}.onnx"
        example = tuple(torch.from_numpy(v) for v in inputs(2, config.image_size, expression_width(config)).values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example, str(path), dynamo=False, opset_version=17,
                              input_names=["image", "expression", "intensity"], output_names=["output", "stage1"],
                              dynamic_axes={k: {0: "batch"} for k in ("image", "expression", "intensity", "output", "stage1")})
        session = create_session(str(path), ["CPUExecutionProvider"], session_options())
        feeds = inputs(batch, config.image_size, expression_width(config))
        cases[name] = ((lambda s=session, f=feeds: s.run(["output"], f)), batch)
        flops[name] = 2 * sum(model_macs(path).values()) / 1e9
    click.echo(f"variants: {len(cases)} x {rounds} rounds ...", err=True)
    best = interleaved_best(cases, rounds, seconds)
    return [(name, best[name], flops[name], best[name] * flops[name] / ceiling) for name in cases]


