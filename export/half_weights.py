"""Store a model's large weights in half precision: the per-pixel maps of the regression layer are most of a model
file (7 expressions x 3 channels x 128 x 128 x 26 taps), and half precision halves the file.

Each large float32 initializer is stored as float16 and read through a Cast to float32, so every backend still
computes in float32 (onnxruntime folds the casts when it loads the model). Exporting rounds the torch model's
weights to half precision first (`round_weights_half`), so the file computes what the model it was verified
against computes.

    python -m export.half_weights MODEL.onnx --out OUT.onnx    # a model exported before this step
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Tensors smaller than this stay float32: the refiner's convolutions are small, and only the maps weigh.
MIN_ELEMENTS = 1 << 16
HALF_SUFFIX = "__half"


def large(shape: tuple[int, ...] | list[int]) -> bool:
    return int(np.prod(shape)) >= MIN_ELEMENTS


def round_weights_half(module: object) -> None:
    """Round every large float parameter and buffer of a torch module to half precision, in place."""
    import torch

    assert isinstance(module, torch.nn.Module)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point() and large(tuple(tensor.shape)):
                tensor.copy_(tensor.half().float())


def store_half(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with each large float32 initializer stored as float16 behind a Cast node (in place; returned)."""
    graph = proto.graph
    casts = []
    for index, init in enumerate(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT or not large(list(init.dims)):
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + HALF_SUFFIX)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}{HALF_SUFFIX}_cast"))
        graph.initializer[index].CopyFrom(half)
    put_in_front(graph, casts)
    return proto


def put_in_front(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """``nodes``, which now make tensors that were initializers, ahead of the graph's (nodes stay in topological
    order); graph inputs naming those tensors (older exporters list initializers as inputs) would shadow them and go."""
    made = {name for node in nodes for name in node.output}
    kept_inputs = [i for i in graph.input if i.name not in made]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    kept = [*nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(kept)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="where to write it (atomically)")
    args = parser.parse_args(argv)
    from reggan_plugin.atomic import write_bytes

    proto = store_half(onnx.load(str(args.model)))
    onnx.checker.check_model(proto)
    write_bytes(args.out, proto.SerializeToString())


if __name__ == "__main__":
    main()
