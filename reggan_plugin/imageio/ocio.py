"""Frames in an OpenColorIO colour space: the way from it to the network's colour and back (docs/STUDIO.md).

The network works in sRGB-encoded Rec.709; `FrameColours.attach` gives each frame read a ``colour``
(`reggan_plugin.imageio.image.FrameColour`) that takes its stored values to scene-linear Rec.709 and back,
so `to_network_rgb` and `write_edit` see the frame in the network's colour and put the edit back in its own.

Which space a frame is in:
- ``ColourConfig.colorspace`` (``--colorspace NAME``): every frame, whatever its format, in that space of
  ``ColourConfig.ocio_config`` (the ``$OCIO`` config, else the library's built-in CG config);
- else, with a config (``$OCIO``): float frames (EXR, float TIFF) in its ``scene_linear`` role (``default`` where
  it has none); 8/16-bit frames stay sRGB-encoded Rec.709 (roles say nothing reliable about byte files);
- else nothing is attached: 8/16-bit frames are sRGB, float frames scene-linear Rec.709, as before OCIO.
A space that is the network's own (a no-op conversion) attaches nothing either, so those frames take the
unmanaged path and its exact bits.

A foreign config is related to the network's space through both configs' ``aces_interchange`` role
(``Config.GetProcessorFromConfigs``); nothing is downloaded: the built-in configs ship inside the library.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from reggan_plugin.config import ColourConfig
from reggan_plugin.errors import InputError, UsageError
from reggan_plugin.imageio.image import ImageData

from ..arrays import Array

log = logging.getLogger(__name__)

BUILTIN_CONFIG = "ocio://cg-config-latest"
"""The ACES CG config that ships inside OpenColorIO (2.2 and newer): what `--colorspace` names without $OCIO."""
NETWORK_LINEAR = "lin_rec709"
"""The built-in config's alias for scene-linear Rec.709 (sRGB primaries): the network's colour before its curve."""
NETWORK_ENCODED = "srgb_tx"
"""The built-in config's alias for sRGB-encoded Rec.709: the network's colour itself."""


class OcioColour:
    """A frame colour space (`FrameColour`) carried out by two OpenColorIO CPU processors."""

    def __init__(self, name: str, to_linear: Any, from_linear: Any) -> None:
        self.name = name
        self._to, self._from = to_linear, from_linear

    def __repr__(self) -> str:
        return f"OcioColour({self.name!r})"

    @staticmethod
    def _apply(processor: Any, rgb: Array) -> Array:
        flat = np.array(rgb, dtype=np.float32, order="C").reshape(-1, 3)  # a copy: OCIO works in place
        processor.applyRGB(flat)
        return flat.reshape(np.shape(rgb))

    def to_linear(self, rgb: Array) -> Array:
        return self._apply(self._to, rgb)

    def from_linear(self, rgb: Array) -> Array:
        return self._apply(self._from, rgb)


@dataclass(frozen=True)
class FrameColours:
    """The colour space of each kind of frame: float (EXR, float TIFF) and 8/16-bit; None is the unmanaged path."""

    float_frames: OcioColour | None = None
    stored_frames: OcioColour | None = None

    def attach(self, image: ImageData) -> ImageData:
        colour = self.float_frames if image.pixels.dtype == np.float32 else self.stored_frames
        return image if colour is None else dataclasses.replace(image, colour=colour)

    def describe(self) -> str | None:
        """`colour: ...` for the render's log, or None when nothing is managed."""
        if self.float_frames is None and self.stored_frames is None:
            return None
        kinds = [(kind, c.name) for kind, c in (("float", self.float_frames), ("8/16-bit", self.stored_frames)) if c]
        return ", ".join(f"{kind} frames read as {name}" for kind, name in kinds)


def _ocio() -> Any:
    try:
        import PyOpenColorIO
    except ImportError:
        raise UsageError("colour management needs OpenColorIO: pip install opencolorio") from None
    return PyOpenColorIO


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _config(where: str | None) -> tuple[Any, Any, str]:
    """(the frames' config, the built-in one, how to name the frames' config in a message)."""
    ocio = _ocio()
    builtin = ocio.Config.CreateFromFile(BUILTIN_CONFIG)
    if where is None:
        return builtin, builtin, "the built-in OCIO config"
    try:
        config = ocio.Config.CreateFromFile(where)
        config.validate()
    except (ocio.Exception, ocio.ExceptionMissingFile) as exc:  # the second is not a subclass of the first
        raise InputError(where, f"not a usable OCIO config: {_one_line(exc)}") from None
    return config, builtin, f"the OCIO config {where}"


def _space(config: Any, name: str, label: str) -> str:
    space = config.getColorSpace(name)
    if space is None:
        spaces = list(config.getColorSpaces())  # scene-referred first: what a frame is usually in
        known = [s.getName() for s in sorted(spaces, key=lambda s: str(s.getReferenceSpaceType()).endswith("DISPLAY"))]
        shown = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
        raise UsageError(f"unknown colour space {name!r} in {label} (it has {shown})")
    if space.isData():
        raise UsageError(f"colour space {name!r} in {label} is non-colour data; give the frames' colour space")
    return str(space.getName())


def _colour(config: Any, builtin: Any, name: str, label: str, encoded: bool) -> OcioColour | None:
    """The way from `name` to the network's linear colour and back; None where it is the network's own (as a float
    frame when not `encoded`, as an 8/16-bit one when `encoded`)."""
    ocio = _ocio()
    space = _space(config, name, label)
    try:
        if config is builtin:
            to_lin = config.getProcessor(space, NETWORK_LINEAR)
            from_lin = config.getProcessor(NETWORK_LINEAR, space)
            same = config.getProcessor(space, NETWORK_ENCODED if encoded else NETWORK_LINEAR).isNoOp()
        else:
            to_lin = ocio.Config.GetProcessorFromConfigs(config, space, builtin, NETWORK_LINEAR)
            from_lin = ocio.Config.GetProcessorFromConfigs(builtin, NETWORK_LINEAR, config, space)
            same = False
    except ocio.Exception as exc:
        raise UsageError(f"cannot convert colour space {space!r} of {label} to sRGB (does the config have an "
                         f"aces_interchange role?): {_one_line(exc)}") from None
    if same:
        return None
    return OcioColour(space, to_lin.getDefaultCPUProcessor(), from_lin.getDefaultCPUProcessor())


@functools.lru_cache(maxsize=8)
def frame_colours(colour: ColourConfig) -> FrameColours:
    """Resolve a `ColourConfig` once (at the entry point: a bad name or config is a UsageError/InputError, exit 2,
    before any frame is read); cached, so the pipeline asking again costs nothing."""
    if colour.colorspace is None and colour.ocio_config is None:
        return FrameColours()
    config, builtin, label = _config(colour.ocio_config)
    if colour.colorspace is not None:
        return FrameColours(_colour(config, builtin, colour.colorspace, label, encoded=False),
                            _colour(config, builtin, colour.colorspace, label, encoded=True))
    role = next((r for r in ("scene_linear", "default") if config.hasRole(r)), None)
    if role is None:
        log.warning("%s has no scene_linear or default role: float frames are read as linear sRGB", label)
        return FrameColours()
    return FrameColours(_colour(config, builtin, role, f"{label} (its {role} role)", encoded=False))
