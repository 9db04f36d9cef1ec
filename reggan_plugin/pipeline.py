"""A directory of frames through `ExpressionRenderer`, the way the CLI and the add-on run it.

read (in the frames' colour space: reggan_plugin.imageio.ocio) -> locate faces -> align -> batched inference (batches formed across frames) -> paste back ->
write, overlapped in threads with bounded look-ahead (`reggan_plugin.streaming`); shards or frame ranges
(`reggan_plugin.frame_range`), resume, per-frame failures and a summary.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import is_temp_of, stale_temp_files, temp_path
from .config import EditConfig, InferenceConfig, SequenceConfig
from .curves import ExpressionCurves
from .errors import InputError, ModelError, NumericalError, RegganError, shown
from .faces import Face, load_faces_json
from .faces.locate import FaceLocator
from .faces.smoothing import window_reach
from .faces.tracks import smoothed_faces
from .frame_range import describe_numbers
from .imageio import (
    ImageData,
    describe_unread,
    list_frames,
    looks_whole,
    read_image,
    unread_images,
    write_image,
)
from .imageio.frames import subfolders
from .imageio.ocio import FrameColours, frame_colours
from .renderer import EditedCrops, ExpressionRenderer, PreparedImage
from .sequence import check_out_dir, output_path
from .shots import Thumb, thumbnail
from .streaming import batch_by, ordered_map
from .subject import PHOTOGRAPH_NOTE

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (frames finished, frames total)
STREAM_WORKERS = 2  # reader and writer threads each (decode/encode release the GIL)
FRAMES_BYTES = 384 * 2**20  # decoded frames held at once (read ahead, batched, being written): 4K frames get
# smaller batches (a batch of frames costs memory, the network barely needs it on a CPU)


@dataclass
class RenderSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)  # every frame written unchanged for want of a face
    marked_no_face: list[Path] = field(default_factory=list)  # of those, the frames faces.json marks `[]`
    off_picture: list[Path] = field(default_factory=list)  # of those, frames whose given boxes lie off the picture
    unread: list[Path] = field(default_factory=list)  # images in formats not read, left out of the sequence
    subfolders: list[Path] = field(default_factory=list)  # folders in the frames folder: their frames are not read
    faces_file: Path | None = None
    unlisted: list[str] = field(default_factory=list)  # frames the faces file says nothing of (located otherwise)
    unused_keys: list[str] = field(default_factory=list)  # the faces file's keys when none names a frame
    cancelled: bool = False
    backend: str = ""
    precision: str = ""  # the network's precision as it ran ("fp32", "fp16")
    numerical_failures: int = 0  # frames whose network output was NaN/inf (fp16 overflow)
    non_finite: list[Path] = field(default_factory=list)  # frames with NaN/inf pixels in a face, kept as they were
    photographs: int = 0  # frames whose faces read as photographs of people (--subject auto) and took their gains
    frame_range: str = ""  # the --frame-range this run rendered ("" for a shard)
    missing_frames: list[int] = field(default_factory=list)  # numbers the frame range names that no frame has

    @property
    def ok(self) -> bool:
        return not (self.failed or self.no_face or self.cancelled)

    def lines(self) -> list[str]:
        """The summary, a line each; file names escaped where they hold a newline or a terminal escape."""
        head = (
            f"{self.done} done, {self.skipped} skipped (existing), {len(self.failed)} failed, "
            f"{len(self.no_face)} without a face, of {self.total} frames"
        )
        faces_file = shown(self.faces_file) if self.faces_file else ""
        return (
            [head + (" (cancelled)" if self.cancelled else "")]
            + ([f"left out: {describe_unread(self.unread)}"] if self.unread else [])
            + ([f"left out: {len(self.subfolders)} subfolder{'s' * (len(self.subfolders) != 1)} (e.g. "
                f"{shown(self.subfolders[0].name)}/): frames are read from the folder itself, not from folders in "
                "it"] if self.subfolders else [])
            + ([f"--frame-range {self.frame_range}: no frame numbered {describe_numbers(self.missing_frames)} in the "
                "folder (the frames that are were rendered)"] if self.missing_frames else [])
            + ([f"{faces_file}: no entry for {len(self.unlisted)} frame{'s' * (len(self.unlisted) != 1)} (e.g. "
                f"{shown(self.unlisted[0])}): located as without a faces file"] if self.unlisted else [])
            + ([f"{faces_file}: no key names a frame of the folder: {self.unused_keys[0]!r}"
                + (f" and {len(self.unused_keys) - 1} more" if len(self.unused_keys) > 1 else "")
                + " (a key is a frame's name, file name or stem)"] if self.unused_keys else [])
            + [f"failed: {shown(path)}: {' '.join(reason.split()) if reason.isprintable() else shown(reason)}"
               for path, reason in self.failed]
            + [self._no_face_line(path) for path in self.no_face]
            + ([f"{len(self.non_finite)} frame{'s' * (len(self.non_finite) != 1)} with NaN or inf pixels in a face "
                f"(e.g. {shown(self.non_finite[0])}): edited around them, those pixels written as they were"]
               if self.non_finite else [])
            + ([f"{self.photographs} frame{'s' * (self.photographs != 1)} read as photographs of people: "
                f"{PHOTOGRAPH_NOTE}"] if self.photographs else [])
        )


    def _no_face_line(self, path: Path) -> str:
        if path in self.marked_no_face:
            return f"no face: {shown(path)} ({shown(self.faces_file or 'faces.json')} marks it [], without a face; " \
                   "written unchanged)"
        if path in self.off_picture:
            return f"no face found: {shown(path)} (written unchanged; the face box given lies wholly off the picture)"
        return f"no face found: {shown(path)} (written unchanged; give --faces or --region)"


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
    (`reggan_plugin.shots`): shards and resumed runs give the same pixels as one run."""
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

    ``curves``: each frame gets its own mix of expressions (`reggan_plugin.curves`; read from a CSV with
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
        _StreamingRender(renderer, seq, edits, locator, detected, cancel, colours).run(todo, summary, progress)
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


@dataclass
class _FrameJob:
    """A frame travelling through the render: read -> infer -> write. Pixels are dropped once written."""

    frame: Path
    target: Path
    edit: EditConfig
    image: ImageData | None = None
    prepared: PreparedImage | None = None  # None: no face (the frame is written unchanged) or failed
    edited: EditedCrops | None = None
    no_face: bool = False
    why_no_face: str = ""  # "marked": faces.json says `[]`; "off": the given boxes lie off the picture
    error: str | None = None
    staged: Path | None = None  # the encoded frame's hidden name until it is renamed to `target`
    numerical: bool = False  # failed on a NaN/inf network output
    non_finite: bool = False  # NaN/inf pixels in its face region (written as they were)
    photo: bool = False  # its faces read as photographs of people and took their gains (--subject auto)

    @property
    def n_faces(self) -> int:
        return 0 if self.prepared is None else len(self.prepared.crops)

    def fail(self, exc: RegganError) -> None:
        self.error = getattr(exc, "reason", str(exc))
        self.numerical = isinstance(exc, NumericalError)
        log.info("%s", exc)  # the summary lists every failure, once


class _StreamingRender:
    """Readers and writers in threads, inference in the calling thread, batches formed across frames.

    A bounded number of frames is in flight, so memory does not grow with the sequence. Frames are
    reported in order; a bad frame is recorded and the batch goes on.
    """

    def __init__(self, renderer: ExpressionRenderer, seq: SequenceConfig, edits: dict[Path, EditConfig],
                 locator: FaceLocator, detected: dict[Path, list[Face]], cancel: threading.Event | None,
                 colours: FrameColours) -> None:
        self.renderer, self.seq, self.edits, self.locator = renderer, seq, edits, locator
        self.colours = colours
        self.detected, self.cancel = detected, cancel
        self.staged: set[Path] = set()  # encoded frames not yet renamed into place
        self.lock = threading.Lock()
        self.batch = max(1, renderer.inference.batch)  # faces per batch, lowered for large frames (FRAMES_BYTES)

    def read(self, frame: Path) -> _FrameJob:
        job = _FrameJob(frame, output_path(frame, self.seq.frames, self.seq.out), self.edits[frame])
        try:
            job.image = self.colours.attach(read_image(frame))
            with self.lock:  # in flight ~ 2 batches + 2 x STREAM_WORKERS + 1 frames
                fits = (FRAMES_BYTES // max(job.image.pixels.nbytes, 1) - 2 * STREAM_WORKERS - 1) // 2
                self.batch = max(1, min(self.batch, fits))
            fixed = self.locator.fixed_faces(frame.name, job.image.pixels.shape)
            if self.locator.marked_without_face(frame.name):  # as faces.json says: never a detected or tracked face
                faces, job.why_no_face = [], "marked"
            elif fixed is not None:
                faces, job.why_no_face = fixed, "off"
            else:
                faces = self.detected.get(frame) or []
            job.no_face = not faces
            if faces:
                job.prepared = self.renderer.prepare_image(job.image, faces)
                job.non_finite = job.prepared.non_finite > 0
                job.prepared.rgb = None  # frames wait in queues: the float region is made again when written
        except RegganError as exc:
            job.fail(exc)
        except (ArithmeticError, ValueError) as exc:  # geometry no check foresaw: this frame fails, the batch goes on
            job.fail(InputError(frame, f"its face cannot be aligned ({type(exc).__name__}: {exc})"))
        return job

    def infer(self, jobs: list[_FrameJob]) -> list[_FrameJob]:
        live = [(job, job.prepared) for job in jobs if job.prepared is not None and job.error is None]
        if not live:
            return jobs
        try:
            edited = self.renderer.forward_images([p for _, p in live], [job.edit for job, _ in live])
        except ModelError:  # the model, not a frame, is bad: every frame would fail alike
            raise
        except RegganError:  # one frame's bad output must not fail its neighbours: redo them one by one
            for job, prepared in live:
                try:
                    job.edited = self.renderer.forward_images([prepared], job.edit)[0]
                except ModelError:
                    raise
                except RegganError as exc:
                    job.fail(exc)
            return jobs
        for (job, _), crops in zip(live, edited):
            job.edited = crops
            job.photo = self.renderer.reads_as_photograph(crops)
        return jobs

    def write(self, job: _FrameJob) -> _FrameJob:
        """Paste back and encode to a hidden file beside the target; `commit` renames it, in order."""
        if job.error is None and job.image is not None:
            try:
                job.target.parent.mkdir(parents=True, exist_ok=True)
                job.staged = temp_path(job.target)
                with self.lock:
                    self.staged.add(job.staged)
                edited = job.image
                if job.prepared is not None and job.edited is not None:
                    edited = self.renderer.finish_image(job.prepared, job.edited)
                job.image = job.prepared = job.edited = None  # the source frame goes before encoding: peak ~2 frames
                write_image(job.staged, edited)
            except InputError as exc:  # name the output the user asked for, not its temp name
                job.fail(InputError(job.target, exc.reason))
            except RegganError as exc:
                job.fail(exc)
            except OSError as exc:
                job.fail(InputError(job.target, f"cannot write: {exc.strerror or exc}"))
        job.image = job.prepared = job.edited = None
        return job

    @staticmethod
    def commit(job: _FrameJob) -> None:
        """Rename the encoded frame into place: only frames reported done appear, even when cancelled."""
        if job.error is None and job.staged is not None:
            try:
                os.replace(job.staged, job.target)
            except OSError as exc:
                job.fail(InputError(job.target, f"cannot write: {exc.strerror or exc}"))

    def run(self, todo: list[Path], summary: RenderSummary, progress: Progress | None) -> None:
        # Readers run a batch ahead (a batch must be read before it can be inferred); writers need only
        # enough queued frames to keep their threads busy. Frames in memory: about batch (read) + batch
        # (being inferred and handed on) + STREAM_WORKERS + 1 (being written), whatever the sequence length.
        read = ordered_map(self.read, todo, workers=STREAM_WORKERS, ahead=lambda: self.batch + STREAM_WORKERS,
                           cancel=self.cancel, name="read", passthrough=(RegganError,))
        batches = batch_by((r.value for r in read), lambda: self.batch, weight=lambda job: job.n_faces)
        inferred = (job for jobs in batches for job in self.infer(jobs))
        written = ordered_map(self.write, inferred, workers=STREAM_WORKERS, ahead=STREAM_WORKERS + 1,
                              cancel=self.cancel, name="write", key=lambda job: job.frame, passthrough=(RegganError,))
        finished = summary.skipped
        try:
            for result in written:
                job = result.value
                self.commit(job)
                if job.error is not None:
                    summary.failed.append((job.frame, job.error))
                    summary.numerical_failures += job.numerical
                else:
                    summary.done += 1
                    summary.photographs += job.photo
                    if job.non_finite:
                        summary.non_finite.append(job.frame)
                    if job.no_face:
                        summary.no_face.append(job.frame)
                        if job.why_no_face == "marked":
                            summary.marked_no_face.append(job.frame)
                        elif job.why_no_face == "off":
                            summary.off_picture.append(job.frame)
                finished += 1
                if progress:
                    progress(finished, summary.total)
        finally:  # cancelled or crashed: frames encoded ahead of the last one reported are not kept
            written.close()  # waits for running writers, so none stages a file after the clean-up
            read.close()
            for path in self.staged:
                path.unlink(missing_ok=True)
        if self.cancel is not None and self.cancel.is_set() and finished < summary.total:
            summary.cancelled = True
