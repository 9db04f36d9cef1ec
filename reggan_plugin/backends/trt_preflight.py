"""Preflight for TensorRT: every op of the ONNX graph against the TensorRT ONNX parser's support list.

Works without TensorRT (and without a GPU): it reads the graph with `onnx` (imported only when a preflight runs;
the `tensorrt` extra installs it) and the list in `trt_ops.py`.
The target version is the installed tensorrt package's (read from its metadata, not imported), else the
newest the list knows. Each finding names the op, the node and the reason.
"""
from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reggan_plugin.errors import BackendUnavailable

from . import trt_ops

if TYPE_CHECKING:
    import onnx

TRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11", "tensorrt_lean", "tensorrt-lean")


def installed_tensorrt_version() -> str | None:
    """The installed TensorRT's version from package metadata (no import, so it works where the libraries do not load)."""
    for name in TRT_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def parse_version(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"not a TensorRT version: {version!r}") from None


@dataclass(frozen=True)
class Finding:
    op: str
    node: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op} (node {self.node!r}): {self.reason}"


@dataclass(frozen=True)
class PreflightReport:
    path: str
    tensorrt_version: str
    version_source: str  # "installed" | "requested" | "newest known (TensorRT not installed)"
    opset: int
    findings: tuple[Finding, ...]
    op_counts: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        """One line: verdict, the target version and (when failing) every unsupported op with its node."""
        head = f"{self.path}: TensorRT {self.tensorrt_version} ({self.version_source})"
        if self.ok:
            return f"{head}: all {sum(self.op_counts.values())} nodes ({len(self.op_counts)} op types, opset {self.opset}) are supported"
        return f"{head} cannot build this model: " + "; ".join(str(f) for f in self.findings)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise BackendUnavailable("the TensorRT preflight reads the model with the onnx package, which is not installed: "
                                 "pip install 'reggan-plugin[tensorrt]' (or pip install onnx)") from None
    return onnx


def _nodes(graph: onnx.GraphProto, prefix: str = "") -> Iterator[tuple[onnx.NodeProto, str]]:
    """All nodes, including those inside If/Loop/Scan bodies, with a readable name."""
    onnx = _onnx()
    for index, node in enumerate(graph.node):
        name = prefix + (node.name or f"#{index} {node.op_type}")
        yield node, name
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g, f"{name}/{attr.name}/")
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for j, sub in enumerate(attr.graphs):
                    yield from _nodes(sub, f"{name}/{attr.name}[{j}]/")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _attribute_problem(node: onnx.NodeProto) -> str | None:
    """Restrictions from operators.md that an exported conv GAN can actually hit."""
    attrs = {a.name: _onnx().helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Resize":
        mode = _text(attrs.get("mode", "nearest"))
        if mode not in trt_ops.RESIZE_MODES:
            return f"Resize mode {mode!r} is not supported (only nearest, linear)"
        ctm = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
        if ctm not in trt_ops.RESIZE_COORDINATE_MODES:
            return f"Resize coordinate_transformation_mode {ctm!r} is not supported"
        nearest = _text(attrs.get("nearest_mode", "round_prefer_floor"))
        if mode == "nearest" and nearest not in trt_ops.RESIZE_NEAREST_MODES:
            return f"Resize nearest_mode {nearest!r} is not supported"
        if int(attrs.get("antialias", 0)):
            return "Resize with antialias is not supported"
    if node.op_type in ("AveragePool", "MaxPool", "LpPool") and any(d != 1 for d in attrs.get("dilations", [])):
        return f"{node.op_type} dilations must be all ones"
    if node.op_type in ("AveragePool", "MaxPool") and len(attrs.get("kernel_shape", [0, 0])) not in (2, 3):
        return f"{node.op_type}: only 2-D or 3-D pooling is supported"
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        return "MaxPool's Indices output is not supported"
    return None


def preflight(model: str | Path | onnx.ModelProto, tensorrt_version: str | None = None) -> PreflightReport:
    """Check every node against the parser's op list for `tensorrt_version` (default: installed, else newest known)."""
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        proto, path = model, "<model>"
    else:
        path = str(model)
        proto = onnx.load(path, load_external_data=False)
    if tensorrt_version is not None:
        version, source = tensorrt_version, "requested"
    else:
        installed = installed_tensorrt_version()
        version, source = (installed, "installed") if installed else (trt_ops.LATEST, "newest known; TensorRT is not installed")
    major_minor = parse_version(version)
    findings: list[Finding] = []
    if major_minor[0] < trt_ops.MIN_MAJOR:
        findings.append(Finding("-", "-", f"TensorRT {version} is older than {trt_ops.MIN_MAJOR}.0, which this plugin needs"))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    known = [v for v in sorted(trt_ops.OPSET_MAX) if v <= major_minor]
    opset_max = trt_ops.OPSET_MAX[known[-1]] if known else trt_ops.OPSET_MAX[min(trt_ops.OPSET_MAX)]
    if not trt_ops.OPSET_MIN <= opset <= opset_max:
        findings.append(Finding("-", "-", f"ai.onnx opset {opset} is outside {trt_ops.OPSET_MIN}..{opset_max} supported by TensorRT {version}"))
    counts: Counter[str] = Counter()
    for node, name in _nodes(proto.graph):
        counts[node.op_type] += 1
        if node.domain not in ("", "ai.onnx"):
            findings.append(Finding(f"{node.domain}::{node.op_type}", name, "custom-domain op: needs a TensorRT plugin, which this plugin does not ship"))
            continue
        if node.op_type in trt_ops.UNSUPPORTED:
            findings.append(Finding(node.op_type, name, "listed as unsupported by the TensorRT ONNX parser"))
        elif node.op_type not in trt_ops.SUPPORTED:
            findings.append(Finding(node.op_type, name, "not in the TensorRT ONNX parser's operator list"))
        elif node.op_type in trt_ops.ADDED_IN and trt_ops.ADDED_IN[node.op_type] > major_minor:
            added = ".".join(map(str, trt_ops.ADDED_IN[node.op_type]))
            findings.append(Finding(node.op_type, name, f"supported from TensorRT {added} on (target is {version})"))
        else:
            problem = _attribute_problem(node)
            if problem:
                findings.append(Finding(node.op_type, name, problem))
    return PreflightReport(path, version, source, opset, tuple(findings), counts)
