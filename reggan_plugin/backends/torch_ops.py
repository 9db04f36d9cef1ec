"""The ONNX op table of the torch route (`torch_graph.TorchGraph`): each op a function of (inputs, attributes)
that returns a tensor, or a tuple of them. Integer tensors (shapes, indices) stay on the CPU.

Imports torch and onnx at module level: import this module only when that route is taken.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from ..errors import BackendUnavailable

Tensor = torch.Tensor
Op = Callable[[list[Any], dict[str, Any]], Any]
ONNX_TO_TORCH = {
    1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
    9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16,
}


def _ints(t: Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _same_device(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.device != b.device:
        if a.device.type == "cpu":
            a = a.to(b.device)
        else:
            b = b.to(a.device)
    if a.dtype != b.dtype and a.is_floating_point() and b.is_floating_point():
        b = b.to(a.dtype)
    return a, b


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Op:
    return lambda x, a: fn(*_same_device(x[0], x[1]))


def _unary(fn: Callable[[Tensor], Tensor]) -> Op:
    return lambda x, a: fn(x[0])


def _conv(x: list[Any], a: dict[str, Any]) -> Tensor:
    data, weight = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise BackendUnavailable("Conv with auto_pad is not supported by the torch route")
    pads = a.get("pads", [0] * (2 * (weight.dim() - 2)))
    half = len(pads) // 2
    begin, end = pads[:half], pads[half:]
    padding: Any = tuple(begin)
    if begin != end:
        data = F.pad(data, [p for pair in zip(reversed(begin), reversed(end)) for p in pair])
        padding = 0
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[weight.dim()]
    return conv(data, weight, bias, stride=a.get("strides", 1), padding=padding, dilation=a.get("dilations", 1), groups=a.get("group", 1))


def _conv_transpose(x: list[Any], a: dict[str, Any]) -> Tensor:
    data, weight = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    if "output_shape" in a or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise BackendUnavailable("ConvTranspose with output_shape/auto_pad is not supported by the torch route")
    pads = a.get("pads", [0] * (2 * (weight.dim() - 2)))
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        raise BackendUnavailable("ConvTranspose with asymmetric pads is not supported by the torch route")
    conv = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}[weight.dim()]
    return conv(data, weight, bias, stride=a.get("strides", 1), padding=tuple(pads[:half]),
                output_padding=a.get("output_padding", 0), groups=a.get("group", 1), dilation=a.get("dilations", 1))


def _instance_norm(x: list[Any], a: dict[str, Any]) -> Tensor:
    return F.instance_norm(x[0], weight=x[1], bias=x[2], eps=a.get("epsilon", 1e-5))


def _batch_norm(x: list[Any], a: dict[str, Any]) -> Tensor:
    return F.batch_norm(x[0], x[3], x[4], weight=x[1], bias=x[2], training=False, eps=a.get("epsilon", 1e-5))


def _layer_norm(x: list[Any], a: dict[str, Any]) -> Tensor:
    axis = a.get("axis", -1) % x[0].dim()
    shape = x[0].shape[axis:]
    return F.layer_norm(x[0], shape, x[1], x[2] if len(x) > 2 else None, eps=a.get("epsilon", 1e-5))


def _pad(x: list[Any], a: dict[str, Any]) -> Tensor:
    data: Tensor = x[0]
    pads = _ints(x[1])
    value = float(x[2].item()) if len(x) > 2 and x[2] is not None else 0.0
    rank = data.dim()
    axes = [v % rank for v in _ints(x[3])] if len(x) > 3 and x[3] is not None else list(range(rank))
    n = len(axes)
    begin, end = dict(zip(axes, pads[:n])), dict(zip(axes, pads[n:]))
    torch_pads: list[int] = []
    for axis in reversed(range(rank)):
        torch_pads += [begin.get(axis, 0), end.get(axis, 0)]
    if not any(torch_pads):  # a 1 x 1 field's padding: nothing to pad
        return data
    while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:
        torch_pads = torch_pads[:-2]
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "constant":
        return F.pad(data, torch_pads, value=value)
    if any(p < 0 for p in torch_pads):
        raise BackendUnavailable(f"Pad mode {mode} with negative pads is not supported by the torch route")
    torch_pads += [0] * (2 * (rank - 2) - len(torch_pads))  # replicate and reflect pad every spatial axis of [N,C,...]
    return F.pad(data, torch_pads, mode={"edge": "replicate", "reflect": "reflect", "wrap": "circular"}[mode])


def _resize(x: list[Any], a: dict[str, Any]) -> Tensor:
    data = x[0]
    scales = x[2] if len(x) > 2 and x[2] is not None and x[2].numel() else None
    sizes = x[3] if len(x) > 3 and x[3] is not None and x[3].numel() else None
    if sizes is not None:
        out = _ints(sizes)[2:]
    elif scales is None:
        raise BackendUnavailable("Resize without scales or sizes is not supported by the torch route")
    else:
        factors = [float(v) for v in scales.reshape(-1).tolist()]
        if factors[:2] != [1.0, 1.0]:
            raise BackendUnavailable("Resize over batch/channel axes is not supported by the torch route")
        out = [int(np.floor(d * f)) for d, f in zip(data.shape[2:], factors[2:])]
    mode = _text(a.get("mode", "nearest"))
    ctm = _text(a.get("coordinate_transformation_mode", "half_pixel"))
    if mode == "nearest":
        nearest = _text(a.get("nearest_mode", "round_prefer_floor"))
        if ctm == "asymmetric" and nearest == "floor":
            return F.interpolate(data, size=out, mode="nearest")
        if ctm in ("half_pixel", "pytorch_half_pixel") and nearest in ("round_prefer_ceil", "round_prefer_floor"):
            return F.interpolate(data, size=out, mode="nearest-exact")
    elif mode == "linear" and data.dim() == 4:
        if ctm in ("half_pixel", "pytorch_half_pixel"):
            return F.interpolate(data, size=out, mode="bilinear", align_corners=False)
        if ctm == "align_corners":
            return F.interpolate(data, size=out, mode="bilinear", align_corners=True)
    raise BackendUnavailable(f"Resize mode={mode} coordinate_transformation_mode={ctm} is not supported by the torch route")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _slice(x: list[Any], a: dict[str, Any]) -> Tensor:
    data: Tensor = x[0]
    starts, ends = _ints(x[1]), _ints(x[2])
    axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
    steps = _ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    index: list[Any] = [slice(None)] * data.dim()
    flips = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis %= data.dim()
        dim = data.shape[axis]
        if step > 0:
            start = max(0, min(dim, start + dim if start < 0 else start))
            end = max(0, min(dim, end + dim if end < 0 else end))
            index[axis] = slice(start, end, step)
        else:  # negative step: flip, then slice forward
            start = max(-1, min(dim - 1, start + dim if start < 0 else start))
            end = max(-1, min(dim - 1, end + dim if end < 0 else end))
            flips.append(axis)
            index[axis] = slice(dim - 1 - start, dim - 1 - end, -step)
    if flips:
        data = torch.flip(data, flips)
    return data[tuple(index)]


def _reshape(x: list[Any], a: dict[str, Any]) -> Tensor:
    shape = _ints(x[1])
    if not a.get("allowzero", 0):
        shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
    out: Tensor = x[0].reshape(shape)
    return out


def _squeeze(x: list[Any], a: dict[str, Any]) -> Tensor:
    axes = _ints(x[1]) if len(x) > 1 and x[1] is not None else a.get("axes")
    out: Tensor = x[0]
    if axes is None:
        return out.squeeze()
    for axis in sorted((v % out.dim() for v in axes), reverse=True):
        out = out.squeeze(axis)
    return out


def _unsqueeze(x: list[Any], a: dict[str, Any]) -> Tensor:
    axes = _ints(x[1]) if len(x) > 1 else a["axes"]
    rank = x[0].dim() + len(axes)
    out: Tensor = x[0]
    for axis in sorted(v % rank for v in axes):
        out = out.unsqueeze(axis)
    return out


def _concat(x: list[Any], a: dict[str, Any]) -> Tensor:
    parts = [t for t in x if t is not None and (t.numel() or t.dim() > 1)]
    device = next((t.device for t in parts if t.device.type != "cpu"), parts[0].device)
    dtype = next((t.dtype for t in parts if t.is_floating_point()), parts[0].dtype)
    return torch.cat([t.to(device=device, dtype=dtype) for t in parts], dim=a["axis"])


def _reduce(fn: str) -> Op:
    def op(x: list[Any], a: dict[str, Any]) -> Tensor:
        data: Tensor = x[0]
        axes = _ints(x[1]) if len(x) > 1 and x[1] is not None else a.get("axes")
        keep = bool(a.get("keepdims", 1))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return data
            axes = list(range(data.dim()))
        if fn == "max":
            return torch.amax(data, dim=axes, keepdim=keep)
        if fn == "min":
            return torch.amin(data, dim=axes, keepdim=keep)
        out: Tensor = getattr(torch, fn)(data, dim=axes, keepdim=keep)
        return out
    return op


def _gemm(x: list[Any], a: dict[str, Any]) -> Tensor:
    left = x[0].t() if a.get("transA", 0) else x[0]
    right = x[1].t() if a.get("transB", 0) else x[1]
    out: Tensor = a.get("alpha", 1.0) * (left @ right)
    if len(x) > 2 and x[2] is not None:
        out = out + a.get("beta", 1.0) * x[2]
    return out


def _split(x: list[Any], a: dict[str, Any]) -> tuple[Tensor, ...]:
    axis = a.get("axis", 0)
    if len(x) > 1 and x[1] is not None:
        return torch.split(x[0], _ints(x[1]), dim=axis)
    if "split" in a:
        return torch.split(x[0], a["split"], dim=axis)
    parts = a["_n_outputs"]
    size = -(-x[0].shape[axis] // parts)
    return torch.split(x[0], size, dim=axis)


def _clip(x: list[Any], a: dict[str, Any]) -> Tensor:
    low = x[1] if len(x) > 1 and x[1] is not None else a.get("min")
    high = x[2] if len(x) > 2 and x[2] is not None else a.get("max")
    low = low.item() if isinstance(low, Tensor) else low
    high = high.item() if isinstance(high, Tensor) else high
    return torch.clamp(x[0], low, high)


def _pool(kind: str) -> Op:
    def op(x: list[Any], a: dict[str, Any]) -> Tensor:
        kernel = a["kernel_shape"]
        pads = a.get("pads", [0] * 2 * len(kernel))
        half = len(pads) // 2
        if pads[:half] != pads[half:]:
            raise BackendUnavailable(f"{kind} with asymmetric pads is not supported by the torch route")
        strides = a.get("strides", [1] * len(kernel))
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "MaxPool":
            return F.max_pool2d(x[0], kernel, strides, pads[:half], a.get("dilations", 1), ceil_mode=ceil)
        return F.avg_pool2d(x[0], kernel, strides, pads[:half], ceil_mode=ceil, count_include_pad=bool(a.get("count_include_pad", 0)))
    return op


def _grid_sample(x: list[Any], a: dict[str, Any]) -> Tensor:
    """Sampled in float32 whatever the run dtype: half-precision sampling positions misplace pixels (a grid
    coordinate in fp16 is off by up to 1/2048, a quarter pixel on a 1000 px axis)."""
    mode = {"linear": "bilinear", "cubic": "bicubic"}.get(_text(a.get("mode", "bilinear")), _text(a.get("mode", "bilinear")))
    image, grid = x[0], x[1]
    out = F.grid_sample(image.float(), grid.float(), mode=mode, padding_mode=_text(a.get("padding_mode", "zeros")),
                        align_corners=bool(a.get("align_corners", 0)))
    return out.to(image.dtype)


def constant_tensor(x: list[Any], a: dict[str, Any]) -> Tensor:
    if "value" in a:
        return proto_tensor(a["value"])
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64), ("value_floats", np.float32), ("value_ints", np.int64)):
        if key in a:
            return torch.from_numpy(np.asarray(a[key], dtype))
    raise BackendUnavailable(f"Constant with attributes {sorted(a)} is not supported by the torch route")


def proto_tensor(proto: onnx.TensorProto) -> Tensor:
    return torch.from_numpy(np.array(numpy_helper.to_array(proto)))


def _constant_of_shape(x: list[Any], a: dict[str, Any]) -> Tensor:
    value = proto_tensor(a["value"]) if "value" in a else torch.zeros(1, dtype=torch.float32)
    return torch.full(_ints(x[0]), value.reshape(-1)[0].item(), dtype=value.dtype)


def _gather(x: list[Any], a: dict[str, Any]) -> Tensor:
    data, index = _same_device(x[0], x[1].long())
    axis = a.get("axis", 0) % data.dim()
    index = torch.where(index < 0, index + data.shape[axis], index)
    out = torch.index_select(data, axis, index.reshape(-1))
    return out.reshape(data.shape[:axis] + index.shape + data.shape[axis + 1:])


def _expand(x: list[Any], a: dict[str, Any]) -> Tensor:
    shape = _ints(x[1])
    rank = max(len(shape), x[0].dim())
    shape = [1] * (rank - len(shape)) + shape
    current = [1] * (rank - x[0].dim()) + list(x[0].shape)
    target = [c if s == 1 else s for s, c in zip(shape, current)]
    out: Tensor = x[0].reshape(current).expand(target)
    return out


def _where(x: list[Any], a: dict[str, Any]) -> Tensor:
    cond, left, right = x
    device = next((t.device for t in (cond, left, right) if t.device.type != "cpu"), cond.device)
    return torch.where(cond.to(device), left.to(device), right.to(device))


OPS: dict[str, Op] = {
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": _binary(lambda p, q: torch.div(p, q, rounding_mode="trunc") if not p.is_floating_point() else p / q),
    "Pow": _binary(torch.pow), "Equal": _binary(torch.eq), "Less": _binary(torch.lt), "Greater": _binary(torch.gt),
    "LessOrEqual": _binary(torch.le), "GreaterOrEqual": _binary(torch.ge), "And": _binary(torch.logical_and),
    "Or": _binary(torch.logical_or), "Max": lambda x, a: _fold(torch.maximum, x), "Min": lambda x, a: _fold(torch.minimum, x),
    "Sum": lambda x, a: _fold(torch.add, x), "MatMul": _binary(torch.matmul),
    "Neg": _unary(torch.neg), "Abs": _unary(torch.abs), "Sqrt": _unary(torch.sqrt), "Exp": _unary(torch.exp),
    "Log": _unary(torch.log), "Reciprocal": _unary(torch.reciprocal), "Floor": _unary(torch.floor), "Ceil": _unary(torch.ceil),
    "Tanh": _unary(torch.tanh), "Sigmoid": _unary(torch.sigmoid), "Relu": _unary(F.relu), "Erf": _unary(torch.erf),
    "Not": _unary(torch.logical_not), "Softplus": _unary(F.softplus), "Identity": _unary(lambda t: t),
    "Dropout": lambda x, a: x[0],
    "LeakyRelu": lambda x, a: F.leaky_relu(x[0], a.get("alpha", 0.01)),
    "Elu": lambda x, a: F.elu(x[0], a.get("alpha", 1.0)),
    "HardSigmoid": lambda x, a: torch.clamp(x[0] * a.get("alpha", 0.2) + a.get("beta", 0.5), 0, 1),
    "Softmax": lambda x, a: torch.softmax(x[0], a.get("axis", -1)),
    "Clip": _clip, "Cast": lambda x, a: x[0].to(ONNX_TO_TORCH[a["to"]]),
    "Conv": _conv, "ConvTranspose": _conv_transpose, "InstanceNormalization": _instance_norm,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm, "Gemm": _gemm,
    "Einsum": lambda x, a: torch.einsum(_text(a["equation"]), *[t for t in x]),
    "GlobalAveragePool": lambda x, a: x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True),
    "MaxPool": _pool("MaxPool"), "AveragePool": _pool("AveragePool"),
    "ReduceMean": _reduce("mean"), "ReduceSum": _reduce("sum"), "ReduceMax": _reduce("max"), "ReduceMin": _reduce("min"),
    "Constant": constant_tensor, "ConstantOfShape": _constant_of_shape,
    "Shape": lambda x, a: torch.tensor(list(x[0].shape)[a.get("start", 0):a.get("end", None)], dtype=torch.int64),
    "Size": lambda x, a: torch.tensor(x[0].numel(), dtype=torch.int64),
    "Reshape": _reshape, "Flatten": lambda x, a: x[0].reshape(int(np.prod(x[0].shape[:a.get("axis", 1) % max(1, x[0].dim())] or [1])), -1),
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Concat": _concat, "Split": _split, "Slice": _slice,
    "Transpose": lambda x, a: x[0].permute(a.get("perm", list(reversed(range(x[0].dim()))))),
    "Gather": _gather, "Expand": _expand, "Where": _where, "GridSample": _grid_sample,
    "Tile": lambda x, a: x[0].repeat(_ints(x[1])),
    "Range": lambda x, a: torch.arange(x[0].item(), x[1].item(), x[2].item(), dtype=x[0].dtype),
    "Pad": _pad, "Resize": _resize,
}


def _fold(fn: Callable[[Tensor, Tensor], Tensor], tensors: Sequence[Tensor]) -> Tensor:
    out = tensors[0]
    for t in tensors[1:]:
        out = fn(*_same_device(out, t))
    return out
