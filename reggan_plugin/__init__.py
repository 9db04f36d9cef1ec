"""reggan-plugin: facial-expression transfer (RegGAN) for game and avatar pipelines.

Python API (torch-free)::

    from reggan_plugin import ExpressionRenderer, InferenceConfig, EditConfig
    renderer = ExpressionRenderer(InferenceConfig(backend="auto"))
    edited = renderer.apply_array(pixels, faces=[face], expression="happy", intensity=0.8)
"""
from __future__ import annotations

import sys
from types import FrameType
from typing import Any

__version__ = "0.1.0"


def _quit_at_start(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM while the `reggan-plugin` command is still starting (its imports): nothing is written yet, so
    it leaves at once with the interrupted code (130); once a command runs, `cli_exits.stops_on_signals` takes over.
    Not by raising: an exception raised inside an import's class creation (a dataclass field's ``__set_name__``)
    comes out as a RuntimeError with a traceback."""
    import os

    os._exit(130)


def _starting_the_command() -> bool:
    """True only while the command itself starts (`reggan-plugin ...`, `python -m reggan_plugin.cli ...`): a host
    that imports the package (Blender, a script, a test run) keeps its own signal handling."""
    argv = getattr(sys, "orig_argv", [])
    return (bool(sys.argv) and sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] == "reggan-plugin") or (
        "-m" in argv[:3] and "reggan_plugin.cli" in argv[:4])


if _starting_the_command():
    import signal as _signal

    _signal.signal(_signal.SIGINT, _quit_at_start)
    _signal.signal(_signal.SIGTERM, _quit_at_start)

__all__ = ["EditConfig", "ExpressionRenderer", "InferenceConfig", "SequenceConfig", "__version__", "render_sequence"]


def __getattr__(name: str) -> Any:
    # Lazy: `import reggan_plugin` must stay cheap (Blender start-up, CLI --help).
    if name == "ExpressionRenderer":
        from .renderer import ExpressionRenderer

        return ExpressionRenderer
    if name == "render_sequence":
        from .pipeline import render_sequence

        return render_sequence
    if name in ("EditConfig", "InferenceConfig", "SequenceConfig"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
