"""One shard's frames through `ExpressionRenderer` in a stream (`StreamingRender`): readers and writers in threads,
inference in the calling thread, batches formed across frames, a bounded number of frames in memory
(`reggan_plugin.sequence.streaming`); frames committed in order, a bad frame recorded in the `RenderSummary`."""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..atomic import temp_path
from ..config import EditConfig, SequenceConfig
from ..edit.crop_inference import EditedCrops
from ..errors import InputError, ModelError, NumericalError, RegganError
from ..faces import Face
from ..faces.locate import FaceLocator
from ..imageio import ImageData, read_image, write_image
from ..imageio.ocio import FrameColours
from ..prepared_image import PreparedImage
from ..render_summary import RenderSummary
from ..renderer import ExpressionRenderer
from .shards import output_path
from .streaming import batch_by, ordered_map

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (frames finished, frames total)
STREAM_WORKERS = 2  # reader and writer threads each (decode/encode release the GIL)
FRAMES_BYTES = 384 * 2**20  # decoded frames held at once (read ahead, batched, being written): 4K frames get
# smaller batches (a batch of frames costs memory, the network barely needs it on a CPU)


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


class StreamingRender:
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
