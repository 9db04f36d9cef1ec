"""Execute an ONNX graph with torch ops, node by node (the cuda backend's route when onnxruntime-gpu is absent).

Covers the ops a torch-exported conv GAN uses (see `torch_ops.OPS`). Anything else is refused when the graph is
loaded, naming each op and node, before any run. Integer tensors (shapes, indices) stay on the CPU; float tensors live
on the target device in the target dtype. The cuda backend checks this executor against onnxruntime on a
sample before use; tests check it on the CPU against onnxruntime for our models.

Imports torch and onnx at module level: import this module only when that route is taken.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from onnx import helper

from ..errors import BackendUnavailable
from .graph_precision import grid_arithmetic
from .torch_ops import OPS, Tensor, constant_tensor, proto_tensor


def load_onnx(path: str | Path) -> onnx.ModelProto:
    return onnx.load(str(path))


def unsupported_nodes(model: onnx.ModelProto) -> list[str]:
    """'OpType (node name)' for every node this executor cannot run."""
    bad = []
    for index, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
            domain = f"{node.domain}::" if node.domain not in ("", "ai.onnx") else ""
            bad.append(f"{domain}{node.op_type} ({node.name or f'node #{index}'})")
    return bad


class TorchGraph:
    """An ONNX graph bound to a device and float dtype. `run(feeds, outputs)` takes and returns torch tensors."""

    def __init__(self, model: onnx.ModelProto, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        bad = unsupported_nodes(model)
        if bad:
            raise BackendUnavailable(
                f"the torch route cannot run this model: unsupported op(s) {', '.join(bad[:8])}"
                + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
                + "; install onnxruntime-gpu (`pip uninstall -y onnxruntime && pip install onnxruntime-gpu`)"
            )
        self.device = torch.device(device)
        self.dtype = dtype
        self.values: dict[str, Tensor] = {}
        for init in model.graph.initializer:
            self.values[init.name] = self._place(proto_tensor(init))
        self.fp32_values = {init.name: proto_tensor(init).to(self.device) for init in model.graph.initializer
                            if init.data_type == onnx.TensorProto.FLOAT} if dtype != torch.float32 else {}
        keep_fp32 = grid_arithmetic(model) if dtype != torch.float32 else set()
        self.nodes = []
        for node in model.graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            attrs["_n_outputs"] = len(node.output)
            if node.op_type == "Constant":  # fold now: constants never change
                value = constant_tensor([], attrs)
                self.values[node.output[0]] = self._place(value)
                if keep_fp32 and value.dtype == torch.float32:
                    self.fp32_values[node.output[0]] = value.to(self.device)
                continue
            attrs["_fp32"] = node.output[0] in keep_fp32
            self.nodes.append((node.op_type, OPS[node.op_type], list(node.input), list(node.output), attrs))
        self.output_names = [o.name for o in model.graph.output]

    def _place(self, t: Tensor) -> Tensor:
        """Float tensors go to the device in the run dtype; integer/bool tensors (shapes) stay on the CPU."""
        if t.is_floating_point():
            return t.to(device=self.device, dtype=self.dtype)
        return t

    def run(self, feeds: dict[str, Tensor], outputs: Sequence[str] | None = None) -> dict[str, Tensor]:
        # cuDNN convolves float32 in TF32 by default (10-bit mantissa): 4e-3 off onnxruntime on an H200, beyond
        # fp32 parity. A float32 graph runs in float32; the flag is restored after the run.
        cudnn = torch.backends.cudnn
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                         allow_tf32=cudnn.allow_tf32 and self.dtype != torch.float32):
            return self._run(feeds, outputs)

    def _run(self, feeds: dict[str, Tensor], outputs: Sequence[str] | None) -> dict[str, Tensor]:
        values = dict(self.values)
        values.update({k: self._place(v) for k, v in feeds.items()})
        for op_type, fn, inputs, outs, attrs in self.nodes:
            fp32 = attrs["_fp32"]
            if fp32:  # the sampling-grid arithmetic: float32 inputs (constants at full precision) and outputs
                args = [None if not name else self.fp32_values.get(name, values[name]) for name in inputs]
                args = [a.float() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
            else:  # in the run dtype, a float32 grid value that another node reads too (a turn-keyed flow) included
                args = [values[name] if name else None for name in inputs]
                args = [a.to(self.dtype) if isinstance(a, Tensor) and a.is_floating_point() and a.dtype != self.dtype
                        else a for a in args]
            try:
                result = fn(args, attrs)
            except (RuntimeError, ValueError, IndexError, KeyError, TypeError) as exc:
                raise BackendUnavailable(f"the torch route failed on {op_type} node {outs[0]!r}: {str(exc).splitlines()[0][:200]}") from None
            if isinstance(result, (tuple, list)):
                values.update(zip(outs, result))
            else:
                if result.is_floating_point() and result.dtype != self.dtype and not fp32:
                    result = result.to(self.dtype)
                values[outs[0]] = result
        return {name: values[name] for name in (outputs or self.output_names)}
