"""Reading an ONNX file given by a user (torch-free): a bad file is a bad model, exit 3, in one line."""
from __future__ import annotations

from pathlib import Path

from reggan_plugin.errors import ModelError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def read_onnx(path: str | Path):
    """An ONNX file's ModelProto; a missing, empty, truncated or non-ONNX file is a ModelError (exit 3) naming it."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "no such model file" if not path.exists() else "not a file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(path, f"not a readable ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    if not proto.graph.node:
        raise ModelError(path, "not an ONNX model (no graph)")
    return proto
