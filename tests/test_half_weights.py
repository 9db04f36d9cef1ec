"""Large weights stored in half precision: the file shrinks, and the model computes with the rounded weights."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.half_weights import MIN_ELEMENTS, store_half


def _model(big: np.ndarray, small: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "big"], ["y"]), helper.make_node("Add", ["y", "small"], ["out"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(big.shape))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, list(big.shape))],
        [numpy_helper.from_array(big, "big"), numpy_helper.from_array(small, "small")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_large_weights_are_stored_half_and_computed_as_rounded():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(4, MIN_ELEMENTS // 4)).astype(np.float32)
    small = rng.normal(size=(1, 1)).astype(np.float32)
    x = rng.normal(size=big.shape).astype(np.float32)
    before = _model(big, small)
    after = store_half(_model(big, small))
    onnx.checker.check_model(after)

    types = {i.name: i.data_type for i in after.graph.initializer}
    assert types == {"big__half": TensorProto.FLOAT16, "small": TensorProto.FLOAT}
    assert len(after.SerializeToString()) < 0.6 * len(before.SerializeToString())
    rounded = big.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(_run(after, x), x * rounded + small)
    assert not np.array_equal(_run(before, x), _run(after, x))  # the rounding is real, and it is what runs
