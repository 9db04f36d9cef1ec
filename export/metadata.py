"""Metadata entries of a model file set or removed, the graph untouched (the tools that tune a shipped model, the
recipe's stamp)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reggan_plugin.atomic import write_bytes


def with_entries(model: Path, entries: Mapping[str, str | None], out: Path) -> None:
    """Write ``model`` to ``out`` (atomically; the same path is fine) with each metadata key of ``entries`` set to its
    value, or removed where the value is None, in their order after the entries kept; every other entry kept. Needs
    onnx."""
    import onnx

    proto = onnx.load(str(model))
    others = [entry for entry in proto.metadata_props if entry.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(others)
    for key, value in entries.items():
        if value is not None:
            proto.metadata_props.add(key=key, value=value)
    write_bytes(out, proto.SerializeToString())


def with_metadata(model: Path, key: str, value: str | None, out: Path) -> None:
    """`with_entries` for one key."""
    with_entries(model, {key: value}, out)
