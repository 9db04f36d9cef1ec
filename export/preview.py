"""The preview graph: RegGAN's regression stage alone, sliced out of an exported artifact."""
from __future__ import annotations

import os
from pathlib import Path

import onnx
import onnx.utils
from onnx import helper

from reggan_plugin.artifact import file_sha256
from reggan_plugin.pipeline import PREVIEW_OF_KEY, preview_model_path


def write_preview(model_path: Path) -> Path:
    """Slice the regression stage out of an artifact into a complete artifact of its own.

    The full graph's nodes that `stage1` depends on (stage 1 and the intensity mix; not the refiner), with
    both outputs, `output` and `stage1`, equal to stage 1's result and the same metadata: every backend
    loads it like any model, and onnxruntime runs only stage 1 (fetching `stage1` from the full graph runs
    the refiner too). `render --stage regression` uses it when it lies beside the model.
    Written atomically (a temp file beside it, then a rename), like the model itself.
    """
    out = preview_model_path(model_path)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        onnx.utils.extract_model(str(model_path), str(tmp), ["image", "expression", "intensity"], ["stage1"])
        proto = onnx.load(str(tmp))
        _as_artifact(proto, model_path)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _as_artifact(proto: onnx.ModelProto, model_path: Path) -> None:
    """Give the sliced graph an `output` and the full model's metadata, marked as a preview of it."""
    stage1 = next(o for o in proto.graph.output if o.name == "stage1")
    proto.graph.node.append(helper.make_node("Identity", ["stage1"], ["output"], name="preview_output"))
    output = proto.graph.output.add()
    output.CopyFrom(stage1)
    output.name = "output"
    full = onnx.load(str(model_path), load_external_data=False)
    del proto.metadata_props[:]
    for prop in full.metadata_props:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    proto.metadata_props.add(key="reggan.graph", value="regression stage only (preview)")
    proto.metadata_props.add(key=PREVIEW_OF_KEY, value=file_sha256(model_path))
    onnx.checker.check_model(proto)
