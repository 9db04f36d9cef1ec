"""The preview graph (the regression stage alone), derived from a model file when first asked for.

onnxruntime runs every node of a graph whatever outputs are fetched, so `--stage regression` needs a
graph without the refiner. Shipping one beside each model doubled what a model version weighs (stage 1
holds most of the weights); instead it is cut out of the model here, on first use, and kept in the user
cache under the model's sha256 (``<cache>/previews``).

The cut walks the ONNX protobuf directly (wire format: tag, length, bytes) because the runtime does not
depend on the onnx package: it keeps the nodes that ``stage1`` (and ``stage1_motion``) depend on, their
initializers and value infos, adds ``output``/``motion`` as Identity aliases of them (so every backend runs
the preview like any model), and stamps the metadata with ``reggan.preview_of`` = the model's sha256.
Tensor payloads are copied as opaque bytes, never decoded.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from ..artifact import ModelArtifact, load_artifact
from ..atomic import write_bytes
from ..errors import ModelError, RegganError, shown
from ..user_cache import cache_root

log = logging.getLogger(__name__)

PREVIEW_OF_KEY = "reggan.preview_of"  # metadata of a preview graph: sha256 of the model it was cut from
ALIASES = {"stage1": "output", "stage1_motion": "motion"}  # kept output -> the name it also goes by
_SUBGRAPH_OPS = {b"If", b"Loop", b"Scan"}  # their bodies read outer names: not cut here

# ONNX field numbers (onnx.proto3)
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 1, 5, 11, 12, 13
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP = 1, 2, 3, 4
_TENSOR_NAME, _VALUE_INFO_NAME = 8, 1


def preview_path(model_sha256: str, cache: Path | None = None) -> Path:
    return (cache or cache_root()) / "previews" / f"{model_sha256[:32]}.preview.onnx"


def derive_preview(model: Path, model_sha256: str, cache: Path | None = None) -> Path:
    """The preview graph of `model` (cut and cached on first use). ModelError when the graph cannot be cut.

    A cached file that does not load as this model's preview (cut short, junk, another model's) is cut again, in
    place, atomically: the stamp ``reggan.preview_of`` is the last field written, so a file cut short lacks it."""
    out = preview_path(model_sha256, cache)
    if out.is_file():
        problem = _cached_problem(out, model_sha256)
        if problem is None:
            return out
        log.warning("%s: the cached preview graph %s; cutting it again", shown(out), problem)
    write_bytes(out, cut_regression_stage(Path(model).read_bytes(), model_sha256, name=Path(model).name))
    return out


def _cached_problem(path: Path, model_sha256: str) -> str | None:
    """Why a cached preview graph cannot be used (None: it can)."""
    try:
        cached = load_artifact(path)
    except ModelError as exc:
        return f"does not load ({exc.reason})"
    if cached.metadata.get(PREVIEW_OF_KEY) != model_sha256:
        return "was not cut from this model"
    return None


def stage_network(artifact: ModelArtifact, stage: str) -> tuple[ModelArtifact, tuple[str, str]]:
    """The graph to run for ``stage`` ("full" or "regression") and the names of its edited image and motion: for
    the regression stage its preview graph, so that the refiner does not run at all, or where none can be cut the
    whole graph's stage-1 outputs (no faster)."""
    if stage != "regression":
        return artifact, ("output", "motion")
    try:
        return load_artifact(derive_preview(artifact.path, artifact.sha256)), ("output", "motion")
    except (RegganError, OSError) as exc:
        log.warning("%s: no preview graph (%s); the regression stage runs inside the full graph (no faster)",
                    artifact.path, exc)
        return artifact, ("stage1", "stage1_motion")


def cut_regression_stage(model: bytes, model_sha256: str, *, name: str = "model") -> bytes:
    """ModelProto bytes -> the bytes of its regression stage as a complete model (see the module docstring)."""
    fields = list(_fields(model))
    graphs = [body for number, body, _ in fields if number == _MODEL_GRAPH]
    if len(graphs) != 1:
        raise ModelError(Path(name), "not an ONNX model (no graph)")
    graph = list(_fields(graphs[0]))
    nodes = [(raw, _node_io(body)) for number, body, raw in graph if number == _GRAPH_NODE]
    outputs = {_name(body, _VALUE_INFO_NAME): raw for number, body, raw in graph if number == _GRAPH_OUTPUT}
    kept_outputs = [o for o in ALIASES if o in outputs]
    if "stage1" not in kept_outputs:
        raise ModelError(Path(name), "the graph has no 'stage1' output: it is not a RegGAN model")
    if any(op in _SUBGRAPH_OPS for _, (_, _, op) in nodes):
        raise ModelError(Path(name), "the graph has control-flow nodes: the regression stage cannot be cut out")

    needed = set(kept_outputs)
    keep = [False] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):  # nodes are topologically sorted (an ONNX rule)
        _, (inputs, outs, _) = nodes[i]
        if needed & set(outs):
            keep[i] = True
            needed |= set(inputs)

    new_graph = bytearray()
    for number, body, raw in graph:
        if number == _GRAPH_NODE:
            continue  # written below, in order
        if number == _GRAPH_INITIALIZER and _name(body, _TENSOR_NAME) not in needed:
            continue
        if number == _GRAPH_VALUE_INFO and _name(body, _VALUE_INFO_NAME) not in needed:
            continue
        if number == _GRAPH_OUTPUT:
            continue
        new_graph += raw
    for (raw, _), kept in zip(nodes, keep):
        if kept:
            new_graph += raw
    for source in kept_outputs:
        alias = ALIASES[source]
        new_graph += _field(_GRAPH_NODE, _field(_NODE_INPUT, source.encode()) + _field(_NODE_OUTPUT, alias.encode())
                            + _field(_NODE_NAME, f"preview_{alias}".encode()) + _field(_NODE_OP, b"Identity"))
    for source in kept_outputs:
        new_graph += outputs[source]
        new_graph += _field(_GRAPH_OUTPUT, _renamed(_field_body(outputs[source]), ALIASES[source]))

    new_model = bytearray()
    for number, _, raw in fields:
        new_model += _field(_MODEL_GRAPH, bytes(new_graph)) if number == _MODEL_GRAPH else raw
    for key, value in (("reggan.graph", "regression stage only (preview)"), (PREVIEW_OF_KEY, model_sha256)):
        new_model += _field(_MODEL_METADATA, _field(1, key.encode()) + _field(2, value.encode()))
    return bytes(new_model)


# -- protobuf wire format ----------------------------------------------------------------------------------------
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ModelError(Path("model"), "truncated ONNX protobuf")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(field number, body of a length-delimited field or b"", the field's raw bytes) for each field."""
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        body = b""
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            body = data[pos : pos + length]
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ModelError(Path("model"), f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ModelError(Path("model"), "truncated ONNX protobuf")
        yield number, body, data[start:pos]


def _field(number: int, body: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(body)) + body


def _field_body(raw: bytes) -> bytes:
    (_, body, _), = _fields(raw)
    return body


def _name(message: bytes, number: int) -> str:
    return next((body.decode() for n, body, _ in _fields(message) if n == number), "")


def _renamed(value_info: bytes, name: str) -> bytes:
    """A ValueInfoProto with another name (type and shape kept)."""
    rest = b"".join(raw for n, _, raw in _fields(value_info) if n != _VALUE_INFO_NAME)
    return _field(_VALUE_INFO_NAME, name.encode()) + rest


def _node_io(node: bytes) -> tuple[list[str], list[str], bytes]:
    inputs, outputs, op = [], [], b""
    for number, body, _ in _fields(node):
        if number == _NODE_INPUT:
            inputs.append(body.decode())
        elif number == _NODE_OUTPUT:
            outputs.append(body.decode())
        elif number == _NODE_OP:
            op = body
    return inputs, outputs, op
