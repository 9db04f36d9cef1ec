"""reggan-plugin: facial-expression transfer (RegGAN) for game and avatar pipelines.

Python API (torch-free)::

    from reggan_plugin import ExpressionRenderer, InferenceConfig, EditConfig
    renderer = ExpressionRenderer(InferenceConfig(backend="auto"))
    edited = renderer.apply_array(pixels, faces=[face], expression="happy", intensity=0.8)
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["EditConfig", "ExpressionRenderer", "InferenceConfig", "SequenceConfig", "__version__", "render_sequence"]


def __getattr__(name: str):
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
