"""Which parts of a graph must stay in float32 when the rest runs in half precision (onnx only, no torch).

A sampling grid in fp16 holds a coordinate to about 1/2048 of the image: a quarter pixel on a 1000 px
axis, enough to smear the motion paste (the shipped model: 0.3 max error in fp16, 0.006 with the grid in
float32). The torch route and the TensorRT builder both keep these nodes in float32.
"""
from __future__ import annotations

from typing import Any

HEAVY_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "InstanceNormalization", "BatchNormalization"}


def grid_arithmetic(model: Any) -> set[str]:
    """Outputs of the nodes that compute GridSample's sampling grid from the network's outputs (the identity
    grid plus the flow, scaled): run in float32 when the graph runs in half precision. The walk back from each
    grid stops at the network's heavy layers, whose half-precision results it then reads."""
    producer = {out: node for node in model.graph.node for out in node.output}
    keep: set[str] = set()
    todo = [node.input[1] for node in model.graph.node if node.op_type == "GridSample" and len(node.input) > 1]
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or name in keep or node.op_type in HEAVY_OPS:
            continue
        keep.add(name)
        todo.extend(i for i in node.input if i)
    return keep
