"""A directory of frames through `ExpressionRenderer`, the way the CLI and the add-on run it.

read (in the frames' colour space: reggan_plugin.imageio.ocio) -> locate faces -> align -> batched inference (batches formed across frames) -> paste back ->
write, overlapped in threads with bounded look-ahead (`reggan_plugin.sequence.streaming_render`); shards or frame ranges
(`reggan_plugin.sequence.frame_range`), resume, per-frame failures and a summary (`reggan_plugin.render_summary`).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

from .atomic import is_temp_of, stale_temp_files
from .config import EditConfig, InferenceConfig, SequenceConfig
from .errors import InputError, RegganError
from .faces import Face, load_faces_json
from .faces.locate import FaceLocator
from .faces.smoothing import window_reach
from .faces.tracks import smoothed_faces
from .imageio import list_frames, looks_whole, read_image, unread_images
from .imageio.frames import subfolders
from .imageio.ocio import FrameColours, frame_colours
from .render_summary import RenderSummary
from .renderer import ExpressionRenderer
from .sequence.curves import ExpressionCurves
from .sequence.shards import check_out_dir, output_path
from .sequence.shots import Thumb, thumbnail
from .sequence.streaming import ordered_map
from .sequence.streaming_render import STREAM_WORKERS, Progress, StreamingRender

log = logging.getLogger(__name__)


def _frames(seq: SequenceConfig) -> tuple[list[Path], list[Path], list[int]]:
    """(every frame of the directory, this shard's or frame range's frames, numbers the range names that no frame
    has). With both a frame range and a shard, the shard splits the range's frames."""
    check_out_dir(seq.frames, seq.out)
    every = list_frames(seq.frames)
    if seq.frame_range is None:
        return every, seq.shard.select(every), []
    picked = seq.frame_range.select(every, seq.frames)
    return every, seq.shard.select(picked.frames), picked.missing


def _remove_stale_temps(targets: list[Path]) -> None:
    """Temp files for these outputs: at the start, what a killed run (SIGKILL, power loss) left; at the end,
    anything of this run's. No other run writes this shard's outputs; other shards' temps are left alone."""
    wanted = {target.name for target in targets}
    for folder in {target.parent for target in targets}:
        for temp in stale_temp_files(folder):
            if any(is_temp_of(temp, folder / name) for name in wanted):
                log.info("removing the temp file %s", temp)
                temp.unlink(missing_ok=True)


def _finished(target: Path) -> bool:
    """--skip-existing trusts an output only when it decodes fully (an empty, cut-off or garbled file does not,
    whatever its first and last bytes say): the cheap look at its ends first, then a whole read."""
    if not target.is_file():
        return False
    problem = "not a whole image"
    if looks_whole(target):
        try:
            read_image(target, report=False)
            return True
        except InputError as exc:
            problem = f"does not decode ({exc.reason})"
    log.warning("%s exists but %s: rendering it again", target, problem)
    return False


def _locator(seq: SequenceConfig) -> FaceLocator:
    given = load_faces_json(seq.faces) if seq.faces else None
    return FaceLocator(given=given, whole=seq.whole_image, region=seq.region)


def _detect_all(frames: list[Path], todo: list[Path], locator: FaceLocator, seq: SequenceConfig,
                colours: FrameColours, cancel: threading.Event | None = None
                ) -> dict[Path, list[Face]]:
    """First pass when a detector is needed: the faces of each frame to do, smoothed over time.

    A frame's faces depend only on its neighbours within `window_reach` frames of the whole directory
    (read even when another shard renders them or a resumed run has done them), never across a cut
    (`reggan_plugin.sequence.shots`): shards and resumed runs give the same pixels as one run."""
    reach = window_reach(seq.smooth)
    position = {frame: i for i, frame in enumerate(frames)}
    needed = sorted({j for frame in todo for j in range(max(0, position[frame] - reach),
                                                       min(len(frames), position[frame] + reach + 1))})

    def locate(index: int) -> tuple[list[Face], Thumb | None]:
        try:
            image = colours.attach(read_image(frames[index], report=False))  # the render pass reads and reports
        except InputError:
            return [], None  # reported by the render pass
        return locator.faces(frames[index].name, image), thumbnail(image) if reach else None

    found: dict[int, list[Face]] = {}
    thumbs: dict[int, Thumb | None] = {}
    # decoding overlaps detection; onnxruntime sessions may be run from several threads
    for result in ordered_map(locate, needed, workers=STREAM_WORKERS, ahead=2 * STREAM_WORKERS, cancel=cancel,
                              name="detect", passthrough=(RegganError,)):
        index = needed[result.index]
        found[index], thumbs[index] = result.value
    out: dict[Path, list[Face]] = {}
    for frame in todo:
        k = position[frame]
        if k in found:  # else cancelled before it was read
            out[frame] = smoothed_faces(found, thumbs, k, len(frames), seq.smooth)
    return out


def render_sequence(
    seq: SequenceConfig,
    edit: EditConfig = EditConfig(),
    inference: InferenceConfig = InferenceConfig(),
    *,
    renderer: ExpressionRenderer | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    curves: ExpressionCurves | None = None,
    frame_edits: Mapping[str, EditConfig] | None = None,
) -> RenderSummary:
    """Render one shard of a frame directory. Never raises for a bad frame: see the summary.

    Faces come from ``seq``: faces.json, then a region or the whole image, else the face detector (a frame's
    detected faces smoothed over its neighbours); `ExpressionRenderer.apply_array` without ``faces`` detects the same
    way for one picture. ``edit``'s expression and intensity are checked when it is made (EditConfig).

    ``curves``: each frame gets its own mix of expressions (`reggan_plugin.sequence.curves`; read from a CSV with
    `read_curves`, or made with `ExpressionCurves.from_keys`) at ``edit.intensity``, in place of ``edit.expression``.
    Frames are matched to the curves over the whole folder, so shards and resumed runs give the pixels of one run;
    curves that do not fit the folder or the model raise (InputError, UsageError) before any frame is read.

    ``frame_edits``: each frame's whole edit by file name (the Blender add-on's keyed Mix sliders, which set the
    intensity per frame too), in place of ``edit`` and ``curves``; a frame it leaves out is an InputError, raised
    before any frame is read.
    """
    frames_all, frames, missing = _frames(seq)
    edits = _frame_edits(frames_all, edit, curves) if frame_edits is None else _given_edits(seq, frames_all, frame_edits)
    colours = frame_colours(seq.colour)
    summary = RenderSummary(total=len(frames), unread=unread_images(seq.frames), subfolders=subfolders(seq.frames),
                            missing_frames=missing, frame_range=str(seq.frame_range or ""))
    _remove_stale_temps([output_path(frame, seq.frames, seq.out) for frame in frames])
    todo = []
    for frame in frames:
        if seq.skip_existing and _finished(output_path(frame, seq.frames, seq.out)):
            summary.skipped += 1
        else:
            todo.append(frame)
    if progress:
        progress(summary.skipped, summary.total)
    if not todo:
        return summary
    renderer = renderer or ExpressionRenderer(inference)
    if curves is not None:
        for name in curves.names:  # an expression the model lacks, said before any frame is read
            renderer.artifact.expression_weights({name: 0.0})
    summary.backend, summary.precision = renderer.backend.description, renderer.backend.precision
    locator = _locator(seq)
    if locator.given is not None:
        summary.faces_file = locator.given.path
        summary.unlisted, summary.unused_keys = locator.given.unmatched([f.name for f in frames_all],
                                                                        [f.name for f in todo])
    detected = _detect_all(frames_all, todo, locator, seq, colours, cancel) if locator.needs_detector else {}
    try:
        StreamingRender(renderer, seq, edits, locator, detected, cancel, colours).run(todo, summary, progress)
    finally:  # however the run ends (Ctrl-C, SIGTERM, a crash), none of this shard's temp files outlives it
        _remove_stale_temps([output_path(frame, seq.frames, seq.out) for frame in todo])
    return summary


def _frame_edits(frames: list[Path], edit: EditConfig, curves: ExpressionCurves | None) -> dict[Path, EditConfig]:
    """Each frame's edit: ``edit`` itself, or the frame's mix from ``curves`` at ``edit.intensity``."""
    if curves is None:
        return {frame: edit for frame in frames}
    return {frame: EditConfig(mix, edit.intensity) for frame, mix in zip(frames, curves.mixes_for(frames))}


def _given_edits(seq: SequenceConfig, frames: list[Path], edits: Mapping[str, EditConfig]) -> dict[Path, EditConfig]:
    missing = [frame.name for frame in frames if frame.name not in edits]
    if missing:
        raise InputError(seq.frames, f"no edit given for frame {missing[0]}" +
                         (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    return {frame: edits[frame.name] for frame in frames}
