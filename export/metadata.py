"""One metadata entry of a model file set or removed, the graph untouched (the tools that tune a shipped model)."""
from __future__ import annotations

from pathlib import Path

from reggan_plugin.atomic import write_bytes


def with_metadata(model: Path, key: str, value: str | None, out: Path) -> None:
    """Write ``model`` to ``out`` (atomically; the same path is fine) with metadata ``key`` set to ``value``, or
    without it when ``value`` is None; every other entry kept. Needs onnx."""
    import onnx

    proto = onnx.load(str(model))
    others = [entry for entry in proto.metadata_props if entry.key != key]
    del proto.metadata_props[:]
    proto.metadata_props.extend(others)
    if value is not None:
        proto.metadata_props.add(key=key, value=value)
    write_bytes(out, proto.SerializeToString())
