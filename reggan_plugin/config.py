"""Run configuration: frozen dataclasses built at the entry point (CLI, add-on, API) and passed down.

Defaults are defined here once; the CLI options and the Blender properties read them from these
fields (a test checks that they agree).
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from .faces.face import Face
from .sequence.frame_range import FrameRange
from .sequence.shards import Shard


def field_default(config: type, name: str) -> Any:
    """The single source of a default: the config dataclass field (CLI options and add-on properties read it)."""
    return next(f.default for f in fields(config) if f.name == name)

BackendName = Literal["auto", "cpu", "cuda", "tensorrt"]
Precision = Literal["fp32", "fp16"]
Stage = Literal["full", "regression"]
RegionGraphs = Literal["auto", "on", "off"]
Subject = Literal["auto", "render", "photo"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
PRECISIONS: tuple[str, ...] = get_args(Precision)
STAGES: tuple[str, ...] = get_args(Stage)
REGION_GRAPHS: tuple[str, ...] = get_args(RegionGraphs)
SUBJECTS: tuple[str, ...] = get_args(Subject)


@dataclass(frozen=True)
class InferenceConfig:
    """Which network runs, and where."""

    model: Path | None = None  # None: the bundled default model
    backend: BackendName = "auto"
    precision: Precision = "fp32"
    batch: int = 8  # faces per inference call
    stage: Stage = "full"  # "regression": stage 1 alone, a fast preview
    find_in_box: bool = True  # a face box without landmarks is a hint: align on the face found inside it
    region_graphs: RegionGraphs = "auto"  # align and paste-back in onnxruntime (reggan_plugin.backends.region_graphs); auto: on a GPU
    lip_split: bool = True  # on large faces the lips move whole where the mouth opens (reggan_plugin.edit.lips) and
    # a rendered mouth's inside is drawn in it (reggan_plugin.edit.interior)
    subject: Subject = "auto"  # "photo": the model's gains for photographs of people (reggan_plugin.edit.calibration);
    # "render": the edit as fitted; "auto": the gains as much as a picture's faces read as photographs (.subject)
    coverage: bool = True  # the edit kept on the head above its jaw (reggan_plugin.edit.coverage), not the backdrop


@dataclass(frozen=True)
class EditConfig:
    """What to do to each face."""

    expression: str | Mapping[str, float] = "happy"  # a name, a mix "happy=0.6,surprised=0.4", or {name: weight}
    intensity: float = 1.0

    def __post_init__(self) -> None:
        """Refused here, as bad input, rather than handed to the network (NaN would come back as a 'damaged model')."""
        from .errors import UsageError

        value = self.intensity
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
            raise UsageError(f"intensity {value!r}: expected a number from 0 to 1 (NaN and inf are not)")
        if isinstance(self.expression, Mapping):
            from .artifact import check_mix

            check_mix(self.expression, repr(dict(self.expression)))
        elif not isinstance(self.expression, str) or not self.expression.strip():
            raise UsageError(f"expression {self.expression!r}: expected a name such as 'happy', a mix such as "
                             "'happy=0.6,surprised=0.4' or a mapping {'happy': 0.6, 'surprised': 0.4}")


@dataclass(frozen=True)
class ColourConfig:
    """The frames' colour space (OpenColorIO; docs/STUDIO.md). All None: as before OCIO, 8/16-bit frames are
    sRGB, float frames (EXR, float TIFF) scene-linear with sRGB's primaries."""

    colorspace: str | None = None  # every frame's colour space, a name (or alias, or role) in `ocio_config`
    ocio_config: str | None = None  # a config file or ocio:// URI (the entry point passes $OCIO); None: the
    # library's built-in CG config. Without `colorspace`, float frames are in its scene_linear role


@dataclass(frozen=True)
class SequenceConfig:
    """A directory of frames in, a directory of frames out."""

    frames: Path
    out: Path
    faces: Path | None = None  # faces.json (given boxes/landmarks), most trusted
    region: Face | None = None  # a box (`parse_region`) used when a frame has no given face
    whole_image: bool = False  # frames are already-cropped faces
    shard: Shard = Shard()  # noqa: RUF009 (frozen: a safe default) this worker renders the I-th of N contiguous parts
    skip_existing: bool = False
    smooth: float = 0.5  # temporal smoothing of detected faces, 0 = off
    colour: ColourConfig = ColourConfig()
    frame_range: FrameRange | None = None  # the frames a farm task names by number (instead of `shard`)
