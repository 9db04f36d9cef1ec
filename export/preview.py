"""The preview graph: RegGAN's regression stage alone, sliced out of an exported artifact."""
from __future__ import annotations

from pathlib import Path

import onnx
import onnx.utils
from onnx import helper

from reggan_plugin.artifact import INPUT_NAMES, file_sha256
from reggan_plugin.atomic import atomic_path
from reggan_plugin.pipeline import PREVIEW_OF_KEY, preview_model_path

PREVIEW_OUTPUTS = {"stage1": "output", "stage1_motion": "motion"}  # kept output -> the name it also goes by


def write_preview(model_path: Path) -> Path:
    """Slice the regression stage out of an artifact into a complete artifact of its own.

    The full graph's nodes that `stage1` depends on (stage 1 and the intensity mix; not the refiner), with
    both outputs, `output` and `stage1`, equal to stage 1's result (and `motion`, `stage1_motion` to stage 1's
    motion when the model has them) and the same metadata: every backend
    loads it like any model, and onnxruntime runs only stage 1 (fetching `stage1` from the full graph runs
    the refiner too). `render --stage regression` uses it when it lies beside the model.
    Written atomically (a temp file beside it, then a rename), like the model itself.
    """
    out = preview_model_path(model_path)
    with atomic_path(out) as tmp:
        full = onnx.load(str(model_path), load_external_data=False)
        names = {o.name for o in full.graph.output}
        wanted = [name for name in PREVIEW_OUTPUTS if name in names]
        onnx.utils.extract_model(str(model_path), str(tmp), list(INPUT_NAMES), wanted)
        proto = onnx.load(str(tmp))
        _as_artifact(proto, full, model_path)
        onnx.save(proto, str(tmp))
    return out


def _as_artifact(proto: onnx.ModelProto, full: onnx.ModelProto, model_path: Path) -> None:
    """Give the sliced graph the full model's output names and metadata, marked as a preview of it."""
    for source, alias in PREVIEW_OUTPUTS.items():
        found = [o for o in proto.graph.output if o.name == source]
        if not found:
            continue
        proto.graph.node.append(helper.make_node("Identity", [source], [alias], name=f"preview_{alias}"))
        output = proto.graph.output.add()
        output.CopyFrom(found[0])
        output.name = alias
    del proto.metadata_props[:]
    for prop in full.metadata_props:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    proto.metadata_props.add(key="reggan.graph", value="regression stage only (preview)")
    proto.metadata_props.add(key=PREVIEW_OF_KEY, value=file_sha256(model_path))
    onnx.checker.check_model(proto)
