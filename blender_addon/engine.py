"""The add-on's side of the runtime: cached renderers and the work the background threads do.

Nothing here imports bpy: these functions run in worker threads (see jobs.py) and take plain values
(numpy arrays, paths, frozen configs) that the main thread prepared. The runtime (numpy, onnxruntime)
is imported lazily so that enabling the add-on stays cheap.

Array conventions are the runtime's (reggan_plugin.imageio): HxWxC, top row first, uint8 or float32;
float32 is scene-linear when `linear` is True.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reggan_plugin.config import ColourConfig, EditConfig, InferenceConfig, SequenceConfig

if TYPE_CHECKING:
    import numpy as np

    from reggan_plugin.faces import Face
    from reggan_plugin.faces.locate import SharedDetector
    from reggan_plugin.imageio import ImageData
    from reggan_plugin.render_summary import RenderSummary
    from reggan_plugin.renderer import ExpressionRenderer

FaceMode = Literal["AUTO", "BOX", "SCENE", "WHOLE"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunSettings:
    """Everything a worker needs, built on the main thread from the panel and the preferences."""

    inference: InferenceConfig
    edit: EditConfig
    cache_dir: Path | None = None  # TensorRT engine cache (None: the runtime's default)


_renderers: dict[tuple, ExpressionRenderer] = {}
_detector: SharedDetector | None = None
_lock = threading.Lock()


def get_renderer(settings: RunSettings) -> ExpressionRenderer:
    """One loaded model per (model, backend, precision, batch, stage), shared by all jobs.

    Loading happens in the calling (worker) thread, so a TensorRT engine build never blocks the UI."""
    from reggan_plugin.renderer import ExpressionRenderer

    key = (settings.inference, settings.cache_dir)
    with _lock:
        renderer = _renderers.get(key)
        if renderer is None:
            if settings.cache_dir is not None:
                # ExpressionRenderer has no cache_dir argument yet: the runtime reads this variable
                # (reggan_plugin.backends.engine_cache.default_cache_dir); this process is Blender's.
                settings.cache_dir.mkdir(parents=True, exist_ok=True)
                os.environ["REGGAN_CACHE_DIR"] = str(settings.cache_dir)
            renderer = ExpressionRenderer(settings.inference)
            _renderers[key] = renderer
        return renderer


def release() -> int:
    """Forget every loaded model (frees its memory, and GPU memory with a GPU backend). Returns how many."""
    with _lock:
        count = len(_renderers)
        _renderers.clear()
    return count


def loaded() -> list[str]:
    with _lock:
        return [r.backend.description for r in _renderers.values()]


def locate_faces(image: ImageData, mode: FaceMode, given: Sequence[Face] | None) -> list[Face]:
    """Faces for one picture by the runtime's rules: the given ones (BOX, SCENE), the whole picture, or
    the detector (AUTO), which is built once and shared by jobs."""
    global _detector
    from reggan_plugin.faces import FacesFile
    from reggan_plugin.faces.locate import TRACKING, FaceLocator, SharedDetector

    with _lock:
        if _detector is None:
            _detector = SharedDetector(TRACKING)  # the detector of the CLI's sequences: the same faces
    faces_file = None if given is None else FacesFile(path=Path("<blender>"), default=tuple(given))
    return FaceLocator(given=faces_file, whole=mode == "WHOLE", detector=_detector).faces("", image)


def edit_pixels(
    pixels: np.ndarray, *, linear: bool, mode: FaceMode, faces: Sequence[Face] | None,
    settings: RunSettings, cancel: threading.Event | None = None, colour: ColourConfig | None = None,
) -> tuple[np.ndarray, int]:
    """(edited copy of `pixels`, number of faces edited). Raises InterruptedError when cancelled.

    `colour`: the pixels' colour space (`images.colour_of`): the faces are found and edited in sRGB and the edit
    goes back into that space."""
    from reggan_plugin.imageio import ImageData
    from reggan_plugin.imageio.ocio import frame_colours

    renderer = get_renderer(settings)
    image = frame_colours(colour or ColourConfig()).attach(ImageData(pixels=pixels, format="exr" if linear else "png", linear=linear))
    found = locate_faces(image, mode, faces)
    if cancel is not None and cancel.is_set():
        raise InterruptedError("cancelled")
    if not found:
        return pixels, 0
    edit = settings.edit
    out = renderer.apply_image(image, found, edit).pixels
    if cancel is not None and cancel.is_set():
        raise InterruptedError("cancelled")
    return out, len(found)


def edit_file(source: Path, target: Path, *, mode: FaceMode, faces: Sequence[Face] | None, settings: RunSettings) -> int:
    """Read `source`, edit it, write `target` atomically (the runtime's writer); returns faces edited.
    A frame without a face is written unchanged, like the CLI does."""
    from reggan_plugin.imageio import read_image, write_image

    renderer = get_renderer(settings)
    image = read_image(source)
    found = locate_faces(image, mode, faces)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(target, renderer.apply_image(image, list(found), settings.edit) if found else image)
    return len(found)


def render_frames(
    seq: SequenceConfig, settings: RunSettings, progress: Progress | None, cancel: threading.Event | None,
    frame_edits: Mapping[str, EditConfig] | None = None,
) -> RenderSummary:
    """A directory of frames -> a new directory, exactly as `reggan-plugin render` does it. `frame_edits`: each
    frame's edit by file name (the Mix sliders), in place of `settings.edit`."""
    from reggan_plugin.pipeline import render_sequence

    return render_sequence(
        seq, settings.edit, settings.inference, renderer=get_renderer(settings), progress=progress, cancel=cancel,
        frame_edits=frame_edits,
    )


def sibling_dir(frames_dir: Path, expression: str) -> Path:
    """Where edited frames go by default: next to the input folder, never inside it."""
    frames_dir = Path(frames_dir)
    tag = expression.split("=")[0].split(",")[0]
    return frames_dir.with_name(f"{frames_dir.name or 'frames'}_reggan_{tag}")


def faces_json(boxes: dict[str, tuple[float, float, float, float] | None]) -> dict:
    """faces.json (docs/FACES_JSON.md) for per-frame boxes keyed by frame stem; None = no face."""
    return {
        "version": 1,
        "comment": "written by the RegGAN Blender add-on from the scene camera",
        "frames": {key: ([] if box is None else [{"box": list(box)}]) for key, box in boxes.items()},  # exact floats
    }
