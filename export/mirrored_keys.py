"""Store a stage 1's turned keys of one side alone: the other side's are their mirror images
(`LocalRegression.mirror_keys`), made in the graph from them.

A stage 1 fitted at seven turn keys holds seven maps per expression and tap, most of the file; where each key turned
one way is exactly the mirror image of the key turned as far the other way, the file keeps the key facing the camera
and those turned one way, and a few nodes in front of the graph (a Gather of the keys, a Gather flipping the columns, a
Mul negating a flow's x) give every node the tensor it had. onnxruntime folds them when it loads the model, as it
folds the casts of half precision (``export.half_weights``), so an edit costs what it did there; the torch route
(``TorchGraph``) runs them at every call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.half_weights import put_in_front

if TYPE_CHECKING:
    import torch

    from training.models.stage1 import LocalRegression

ONE_SIDE_SUFFIX = "__one_side"


@dataclass(frozen=True)
class _Map:
    """One of stage 1's keyed maps as the graph holds it, [E, keys, C*S*S], and how its mirror image is made."""

    values: np.ndarray
    partner: int  # the map whose mirror image it is (a tap's neighbourhood column flipped; the others themselves)
    channels: int
    negate_x: bool  # a flow's


def _keyed_maps(stage1: LocalRegression) -> list[_Map]:
    """Every keyed map of a stage 1 as the exporter writes it (`LocalRegression._turned`'s input; a flow per tilt key
    is a turn key's 2 * tilts channels, `LocalRegression._flows`)."""
    keys, r = stage1.keys, stage1.radius
    weight, bias, flow, region = (t.detach().cpu().float() for t in (stage1.weight, stage1.bias, stage1.flow,
                                                                     stage1.region))

    def flat(tensor: torch.Tensor, rows: int = len(region) // keys) -> np.ndarray:
        return tensor.reshape(rows, keys, -1).numpy()

    def taps(maps: torch.Tensor, first: int) -> list[_Map]:  # a tap's partner: its neighbourhood column flipped
        rows = len(maps) // keys
        return [_Map(flat(maps[:, :, t], rows), first + (t // r) * r + r - 1 - t % r, maps.shape[1], False)
                for t in range(r * r)]

    n = r * r
    keyed = [*taps(weight, 0), _Map(flat(bias), n, bias.shape[1], False),
             _Map(flat(flow), n + 1, 2 * stage1.tilts, True), _Map(flat(region), n + 2, 1, False)]
    if stage1.colour_delta is not None:  # the colours of the expressions whose weights are their own per colour
        keyed += taps(stage1.colour_delta.detach().cpu().float(), n + 3)
    return keyed


def store_mirrored_keys(proto: onnx.ModelProto, stage1: LocalRegression) -> onnx.ModelProto:
    """``proto`` (exported from a model with ``stage1``) with each keyed map stored for the keys facing the camera
    and turned one way, where every key turned the other way is their mirror image (in place; returned). A stage 1
    whose keys are not mirror images (`LocalRegression.keys_mirrored`) is left as it is."""
    if not stage1.keys_mirrored():
        return proto
    maps = _keyed_maps(stage1)
    keys = maps[0].values.shape[1]
    half = keys // 2
    size = int(stage1.weight.shape[-1])
    graph = proto.graph

    def which(values: np.ndarray) -> list[int]:
        return [i for i, known in enumerate(maps)
                if known.values.shape == values.shape and np.array_equal(known.values, values)]

    stored: dict[int, str] = {}  # map -> a one-side initializer holding its values
    found: list[tuple[int, onnx.TensorProto, np.ndarray]] = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or len(init.dims) != 3 or init.dims[1] != keys:
            continue
        values = np.asarray(numpy_helper.to_array(init))
        matches = which(values)
        if matches:
            found.append((matches[0], init, values))
            for match in matches:
                stored.setdefault(match, init.name + ONE_SIDE_SUFFIX)
    if not found or any(maps[index].partner not in stored for index, _, _ in found):
        return proto  # a partner's values are nowhere in the graph: every map stays whole

    consts: dict[str, np.ndarray] = {
        "mirrored_keys__keys": np.array([keys - 1 - half - j for j in range(half)], np.int64),
        "mirrored_keys__columns": np.arange(size - 1, -1, -1, dtype=np.int64),
    }
    nodes: list[onnx.NodeProto] = []
    for index, init, values in found:
        m, name = maps[index], init.name
        rows, _, width = m.values.shape
        source = stored[m.partner]
        shape_in = f"mirrored_keys__shape_{rows}x{m.channels}"
        shape_out = f"mirrored_keys__flat_{rows}x{width}"
        consts[shape_in] = np.array([rows, half, m.channels, size, size], np.int64)
        consts[shape_out] = np.array([rows, half, width], np.int64)
        step = [f"{name}__mirror{i}" for i in range(5)]
        nodes += [helper.make_node("Gather", [source, "mirrored_keys__keys"], [step[0]], axis=1),
                  helper.make_node("Reshape", [step[0], shape_in], [step[1]]),
                  helper.make_node("Gather", [step[1], "mirrored_keys__columns"], [step[2]], axis=4)]
        flipped = step[2]
        if m.negate_x:  # every flow's x: (x, y) per tilt key
            negate = f"mirrored_keys__negate_x_{m.channels}"
            consts[negate] = np.tile(np.array([-1.0, 1.0], np.float32), m.channels // 2).reshape(1, 1, -1, 1, 1)
            nodes.append(helper.make_node("Mul", [step[2], negate], [step[3]]))
            flipped = step[3]
        nodes += [helper.make_node("Reshape", [flipped, shape_out], [step[4]]),
                  helper.make_node("Concat", [step[4], name + ONE_SIDE_SUFFIX], [name], axis=1)]
        one_side = numpy_helper.from_array(np.ascontiguousarray(values[:, half:]), name + ONE_SIDE_SUFFIX)
        init.CopyFrom(one_side)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    put_in_front(graph, nodes)
    return proto
