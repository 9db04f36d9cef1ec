"""The render pipeline: read -> locate faces -> align -> batched inference -> paste back -> write.

`ExpressionRenderer` owns the model session and turns the faces of one picture into the same faces
with another expression (the API the add-on and studio scripts use); `render_sequence` runs it over
a directory of frames the way the CLI does (shards, resume, per-frame failures, summary).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .align import Matrix, crop_matrix_from_box, crop_roi, matrix_scale, similarity_from_points, units_to_crop_px, warp_to_crop
from .artifact import ModelArtifact, load_artifact
from .backends import create_backend
from .blend import feather_mask, paste_back
from .config import EditConfig, InferenceConfig, SequenceConfig
from .errors import InputError, RegganError
from .faces import Face, FaceDetector, FacesFile, landmarks68_to_5, load_faces_json, parse_region, whole_image_face
from .faces.refine import hint_region, needs_refining, refine_box_face
from .imageio import ImageData, compose_output, list_frames, read_image, to_network_rgb, write_image
from .sequence import check_out_dir, output_path, select_shard
from .streaming import batch_by, ordered_map

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (frames finished, frames total)
STREAM_WORKERS = 2  # reader and writer threads each (decode/encode release the GIL)


@dataclass
class PreparedImage:
    """One picture's faces, aligned and ready for the network; only the face region is held in float.

    roi: (rows, cols) slices of the picture that alignment reads and paste-back writes; rgb: that region
    as network colour (HxWx3 float32 sRGB [0,1]); matrices: region px -> crop px, one per face; crops:
    [n,S,S,3] float32 sRGB [0,1].
    """

    image: ImageData
    roi: tuple[slice, slice]
    rgb: np.ndarray
    matrices: list[Matrix]
    crops: np.ndarray


PREVIEW_OF_KEY = "reggan.preview_of"  # metadata of a preview graph: sha256 of the model it was sliced from


def preview_model_path(model: Path) -> Path:
    """The regression stage alone, sliced out of `model` (a complete artifact of its own): `<stem>.preview.onnx`
    beside it. `--stage regression` runs it when present (the full graph would run the refiner too)."""
    return Path(model).with_name(Path(model).stem + ".preview.onnx")


def face_region(matrices: Sequence[Matrix], size: int, shape: Sequence[int]) -> tuple[slice, slice]:
    """The part of a frame that aligning (warp_to_crop, with its anti-alias prefilter) and pasting back
    (warp_from_crop) these faces touch, with margin: everything outside it is copied, never converted."""
    height, width = int(shape[0]), int(shape[1])
    y0, x0, y1, x1 = height, width, 0, 0
    for m in matrices:
        ys, xs = crop_roi(m, size, (height, width))
        k = max(1, int(np.floor(1.0 / matrix_scale(m))))  # the prefilter reads up to 2k + 1 px past the crop
        margin = 2 * k + 2
        y0, x0 = min(y0, ys.start - margin), min(x0, xs.start - margin)
        y1, x1 = max(y1, ys.stop + margin), max(x1, xs.stop + margin)
    y0, x0 = max(0, y0), max(0, x0)
    return slice(y0, max(y0, min(height, y1))), slice(x0, max(x0, min(width, x1)))


def _shift(m: Matrix, rows: slice, cols: slice) -> Matrix:
    """Frame px -> crop px map re-based on a region whose top-left pixel is (cols.start, rows.start)."""
    m = np.array(m, dtype=np.float64)
    m[:, 2] += m[:, 0] * cols.start + m[:, 1] * rows.start
    return m


@dataclass
class RenderSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)
    cancelled: bool = False
    backend: str = ""

    @property
    def ok(self) -> bool:
        return not (self.failed or self.no_face or self.cancelled)

    def lines(self) -> list[str]:
        head = (
            f"{self.done} done, {self.skipped} skipped (existing), {len(self.failed)} failed, "
            f"{len(self.no_face)} without a face, of {self.total} frames"
        )
        return (
            [head + (" (cancelled)" if self.cancelled else "")]
            + [f"failed: {path}: {reason}" for path, reason in self.failed]
            + [f"no face found: {path} (written unchanged; give --faces or --region)" for path in self.no_face]
        )


class ExpressionRenderer:
    """One loaded model + backend. Arrays follow reggan_plugin.imageio's conventions."""

    def __init__(self, inference: InferenceConfig = InferenceConfig()) -> None:
        self.inference = inference
        self.artifact: ModelArtifact = load_artifact(inference.model)
        self._output, self._motion = "output", "motion"
        network = self.artifact
        if inference.stage == "regression":
            preview = preview_model_path(self.artifact.path)
            sliced = load_artifact(preview) if preview.is_file() else None
            if sliced is not None and sliced.metadata.get(PREVIEW_OF_KEY) == self.artifact.sha256:
                network = sliced  # the regression stage sliced out: the refiner does not run at all
            else:
                if sliced is not None:
                    log.warning("%s was not sliced from %s (sha256 differs): ignoring it", preview, self.artifact.path)
                log.info("%s: no preview graph %s; the regression stage runs inside the full graph (no faster)",
                         self.artifact.path, preview.name)
                self._output, self._motion = "stage1", "stage1_motion"
        self.backend = create_backend(network, inference.backend, precision=inference.precision)
        self.has_motion = network.has_motion
        self.size = self.artifact.input_size
        template = self.artifact.crop_template
        self._template_px = None if template is None else units_to_crop_px(template, self.size)
        self.mask = feather_mask(self.size)
        self._detector: FaceDetector | None = None
        self._detector_lock = threading.Lock()

    # -- prepare: faces -> aligned crops --------------------------------------------------------
    def crop_matrix(self, face: Face, frame_shape: Sequence[int]) -> Matrix:
        """Image px -> crop px: landmarks when known, else the box (the whole image maps onto the crop)."""
        size = self.size
        if face.source == "whole":
            height, width = frame_shape[:2]
            scale = size / max(height, width)
            return np.array([[scale, 0, (size - scale * width) / 2], [0, scale, (size - scale * height) / 2]])
        if face.landmarks is not None and self._template_px is not None:
            points = face.landmarks if len(face.landmarks) == 5 else landmarks68_to_5(face.landmarks)
            return similarity_from_points(points, self._template_px)
        return crop_matrix_from_box(face.box, size)

    def prepare(self, rgb: np.ndarray, faces: Iterable[Face]) -> tuple[list[Matrix], np.ndarray]:
        matrices = [self.crop_matrix(face, rgb.shape) for face in faces]
        crops = np.stack([warp_to_crop(rgb, m, self.size) for m in matrices]) if matrices else np.zeros((0, self.size, self.size, 3), np.float32)
        return matrices, crops

    # -- forward: crops -> edited crops ----------------------------------------------------------
    def forward(self, crops: np.ndarray, edit: EditConfig) -> np.ndarray:
        """crops [n,S,S,3] float32 sRGB [0,1] -> edited crops [n,S,S,3], in batches of `batch`; for a model
        with motion outputs [n,S,S,5]: the edited RGB, then the motion (x, y crop px) that paste-back applies
        to the frame itself (see `reggan_plugin.blend.paste_back`)."""
        weights = self.artifact.expression_weights(edit.expression)
        out = np.empty(crops.shape[:3] + (5 if self.has_motion else 3,), np.float32)
        wanted = (self._output, self._motion) if self.has_motion else (self._output,)
        step = max(1, self.inference.batch)
        for start in range(0, len(crops), step):
            chunk = crops[start : start + step]
            n = len(chunk)
            image = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), np.float32) * 2 - 1
            result = self.backend.run(
                image, np.repeat(weights[None], n, 0), np.full(n, edit.intensity, np.float32), outputs=wanted
            )
            # The change, not the output, goes back: where the model changes nothing (intensity 0)
            # the crop comes back bit-identical.
            out[start : start + n, ..., :3] = chunk + (np.clip(result[self._output], -1, 1) - image).transpose(0, 2, 3, 1) / 2
            if self.has_motion:
                out[start : start + n, ..., 3:] = result[self._motion].transpose(0, 2, 3, 1)
        return out

    # -- paste back ------------------------------------------------------------------------------
    def paste(self, rgb: np.ndarray, matrices: Sequence[Matrix], crops_in: np.ndarray, crops_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.zeros(rgb.shape[:2], np.float32)
        for m, crop_in, crop_out in zip(matrices, crops_in, crops_out):
            motion = crop_out[..., 3:] if crop_out.shape[-1] == 5 else None
            rgb, face_mask = paste_back(rgb, crop_in, crop_out[..., :3], m, self.mask, motion=motion)
            np.maximum(mask, face_mask, out=mask)
        return rgb, mask

    # -- whole pictures --------------------------------------------------------------------------
    def find_in_boxes(self, image: ImageData, faces: Sequence[Face]) -> list[Face]:
        """Faces given by a box alone get the landmarks of the face the detector finds inside the box
        (``reggan_plugin.faces.refine``); only the region around those boxes is converted and searched."""
        hinted = [face for face in faces if needs_refining(face)]
        if not (self.inference.find_in_box and hinted):
            return list(faces)
        with self._detector_lock:  # frames may be prepared in several reader threads: build it once
            if self._detector is None:
                self._detector = FaceDetector()
        rows, cols = hint_region(hinted, image.height, image.width)
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return list(faces)
        rgb = to_network_rgb(dataclasses.replace(image, pixels=image.pixels[rows, cols]))
        return [refine_box_face(rgb, face, self._detector, (cols.start, rows.start)) for face in faces]

    def prepare_image(self, image: ImageData, faces: Sequence[Face]) -> PreparedImage:
        """Locate the faces' region, convert only it to network colour, and align the crops."""
        faces = self.find_in_boxes(image, faces)
        shape = image.pixels.shape
        matrices = [self.crop_matrix(face, shape) for face in faces]
        rows, cols = face_region(matrices, self.size, shape) if matrices else (slice(0, 0), slice(0, 0))
        rgb = to_network_rgb(dataclasses.replace(image, pixels=image.pixels[rows, cols]))
        local = [_shift(m, rows, cols) for m in matrices]
        size = self.size
        crops = np.stack([warp_to_crop(rgb, m, size) for m in local]) if local else np.zeros((0, size, size, 3), np.float32)
        return PreparedImage(image, (rows, cols), rgb, local, crops)

    def finish_image(self, prepared: PreparedImage, edited: np.ndarray) -> ImageData:
        """Paste the edited crops back into the region and the region into a copy of the picture."""
        image, (rows, cols) = prepared.image, prepared.roi
        if not prepared.matrices:
            return image
        new_rgb, mask = self.paste(prepared.rgb, prepared.matrices, prepared.crops, edited)
        region = compose_output(dataclasses.replace(image, pixels=image.pixels[rows, cols]), new_rgb, mask)
        pixels = image.pixels.copy()
        pixels[rows, cols] = region.pixels
        return dataclasses.replace(image, pixels=pixels)

    def apply_image(self, image: ImageData, faces: Sequence[Face], edit: EditConfig) -> ImageData:
        prepared = self.prepare_image(image, faces)
        if not prepared.matrices:
            return image
        return self.finish_image(prepared, self.forward(prepared.crops, edit))

    def apply_array(
        self, pixels: np.ndarray, *, faces: Sequence[Face], expression: str, intensity: float = 1.0, linear: bool = False
    ) -> np.ndarray:
        """HxWxC pixels (uint8/uint16/float32; float32 linear when `linear`) -> same shape and dtype."""
        image = ImageData(pixels=pixels, path=None, format="exr" if linear else "png", linear=linear, info={})
        return self.apply_image(image, faces, EditConfig(expression, intensity)).pixels


class FaceLocator:
    """Faces for each frame, in order of trust: faces.json, whole image, --region, the detector."""

    def __init__(self, seq: SequenceConfig) -> None:
        self.given: FacesFile | None = load_faces_json(seq.faces) if seq.faces else None
        self.region = parse_region(seq.region) if seq.region else None
        self.whole = seq.whole_image
        self._detector = None
        self._lock = threading.Lock()

    @property
    def needs_detector(self) -> bool:
        return not (self.whole or self.region) and (self.given is None or self.given.default is None)

    def fixed_faces(self, frame: Path, shape: Sequence[int]) -> list[Face] | None:
        """Faces that need no pixels (None: ask the detector)."""
        if self.given is not None:
            faces = self.given.faces_for(frame.name)
            if faces is not None:
                return list(faces)
        if self.whole:
            return [whole_image_face(shape[0], shape[1])]
        if self.region is not None:
            return [self.region]
        return None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        with self._lock:  # detection may run in several reader threads: build the detector once
            if self._detector is None:
                from .faces import FaceDetector

                self._detector = FaceDetector()
        return self._detector.detect(rgb)


def _frames(seq: SequenceConfig) -> list[Path]:
    check_out_dir(seq.frames, seq.out)
    return select_shard(list_frames(seq.frames), seq.shard)


def _detect_all(frames: list[Path], locator: FaceLocator, seq: SequenceConfig, summary: RenderSummary,
                cancel: threading.Event | None = None) -> dict[Path, list[Face]]:
    """First pass when a detector is needed: faces for every frame, smoothed over time."""
    from .faces import smooth_tracks

    def locate(frame: Path) -> list[Face] | None:
        try:
            image = read_image(frame)
        except InputError:
            return None  # reported by the render pass
        fixed = locator.fixed_faces(frame, image.pixels.shape)
        return fixed if fixed is not None else locator.detect(to_network_rgb(image))

    found: dict[Path, list[Face]] = {}
    # decoding overlaps detection; onnxruntime sessions may be run from several threads
    for result in ordered_map(locate, frames, workers=STREAM_WORKERS, ahead=2 * STREAM_WORKERS, cancel=cancel,
                              name="detect", passthrough=(RegganError,)):
        if result.value is not None:
            found[frames[result.index]] = result.value
    if seq.smooth > 0:
        keys = list(found)
        smoothed = smooth_tracks([found[k] for k in keys], seq.smooth)
        found = dict(zip(keys, smoothed))
    return found


def render_sequence(
    seq: SequenceConfig,
    edit: EditConfig = EditConfig(),
    inference: InferenceConfig = InferenceConfig(),
    *,
    renderer: ExpressionRenderer | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    streaming: bool = True,
) -> RenderSummary:
    """Render one shard of a frame directory. Never raises for a bad frame: see the summary.

    streaming: decode + align, inference (batches formed across frames) and paste + encode overlap in
    threads with bounded look-ahead (`reggan_plugin.streaming`); False renders one frame at a time. Both
    give the same files.
    """
    frames = _frames(seq)
    summary = RenderSummary(total=len(frames))
    todo = []
    for frame in frames:
        if seq.skip_existing and output_path(frame, seq.frames, seq.out).is_file():
            summary.skipped += 1
        else:
            todo.append(frame)
    if progress:
        progress(summary.skipped, summary.total)
    if not todo:
        return summary
    renderer = renderer or ExpressionRenderer(inference)
    summary.backend = renderer.backend.description
    locator = FaceLocator(seq)
    detected = _detect_all(todo, locator, seq, summary, cancel) if locator.needs_detector else {}
    if streaming:
        _render_streaming(renderer, todo, seq, edit, locator, detected, summary, progress, cancel)
        return summary

    finished = summary.skipped
    for frame in todo:
        if cancel is not None and cancel.is_set():
            summary.cancelled = True
            break
        target = output_path(frame, seq.frames, seq.out)
        try:
            image = read_image(frame)
            faces = detected.get(frame)
            if faces is None:
                faces = locator.fixed_faces(frame, image.pixels.shape) or []
            target.parent.mkdir(parents=True, exist_ok=True)
            if faces:
                write_image(target, renderer.apply_image(image, faces, edit))
            else:
                write_image(target, image)  # never drop a frame: the sequence stays complete
                summary.no_face.append(frame)
            summary.done += 1
        except RegganError as exc:
            summary.failed.append((frame, getattr(exc, "reason", str(exc))))
            log.warning("%s", exc)
        finished += 1
        if progress:
            progress(finished, summary.total)
    return summary


@dataclass
class _FrameJob:
    """A frame travelling through the streaming render: read -> infer -> write. Fields are dropped once used."""

    frame: Path
    target: Path
    image: ImageData | None = None
    prepared: PreparedImage | None = None
    edited: np.ndarray | None = None
    no_face: bool = False
    error: str | None = None
    staged: Path | None = None  # the encoded frame's hidden name until it is renamed to `target`

    def fail(self, exc: RegganError) -> None:
        self.error = getattr(exc, "reason", str(exc))
        log.warning("%s", exc)


def _render_streaming(
    renderer: ExpressionRenderer,
    todo: list[Path],
    seq: SequenceConfig,
    edit: EditConfig,
    locator: FaceLocator,
    detected: dict[Path, list[Face]],
    summary: RenderSummary,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> None:
    """The streaming render: readers and writers in threads, inference in this thread, batches across frames.

    A bounded number of frames is in flight (see the look-ahead below), so memory does not grow with the
    sequence. Frames are reported in order; a bad frame is recorded and the batch goes on.
    """

    def read(frame: Path) -> _FrameJob:
        job = _FrameJob(frame, output_path(frame, seq.frames, seq.out))
        try:
            job.image = read_image(frame)
            faces = detected.get(frame)
            if faces is None:
                faces = locator.fixed_faces(frame, job.image.pixels.shape) or []
            job.no_face = not faces
            if faces:
                job.prepared = renderer.prepare_image(job.image, faces)
        except RegganError as exc:
            job.fail(exc)
        return job

    def infer(batches: Iterable[list]) -> Iterable[_FrameJob]:
        for batch in batches:
            jobs = [result.value for result in batch]
            live = [job for job in jobs if job.prepared is not None and job.error is None]
            if live:
                try:
                    edited = renderer.forward(np.concatenate([job.prepared.crops for job in live]), edit)
                except RegganError:
                    edited = None  # one frame's bad output must not fail its neighbours: redo them one by one
                start = 0
                for job in live:
                    count = len(job.prepared.crops)
                    if edited is not None:
                        job.edited = edited[start : start + count]
                    else:
                        try:
                            job.edited = renderer.forward(job.prepared.crops, edit)
                        except RegganError as exc:
                            job.fail(exc)
                    start += count
            yield from jobs

    staged: set[Path] = set()  # encoded frames not yet renamed into place
    lock = threading.Lock()

    def write(job: _FrameJob) -> _FrameJob:
        """Paste back and encode to a hidden file beside the target; the consumer renames it, in order."""
        if job.error is None:
            job.staged = job.target.with_name(f".{job.target.name}.{secrets.token_hex(4)}.part{job.target.suffix}")
            with lock:
                staged.add(job.staged)
            try:
                job.target.parent.mkdir(parents=True, exist_ok=True)
                write_image(job.staged, job.image if job.no_face else renderer.finish_image(job.prepared, job.edited))
            except RegganError as exc:
                job.fail(exc)
        job.image = job.prepared = job.edited = None
        return job

    def commit(job: _FrameJob) -> None:
        """Rename the encoded frame into place: only frames reported done appear, even when cancelled."""
        if job.error is None and job.staged is not None:
            try:
                os.replace(job.staged, job.target)
            except OSError as exc:
                job.fail(InputError(job.target, f"cannot write: {exc.strerror or exc}"))

    # readers run a batch ahead (a batch must be read before it can be inferred); writers need only enough
    # queued frames to keep their threads busy. Frames in memory: about batch (read) + batch (being inferred
    # and handed on) + STREAM_WORKERS + 1 (being written), whatever the sequence length.
    faces = lambda result: 0 if result.value.prepared is None else len(result.value.prepared.crops)  # noqa: E731
    read_results = ordered_map(read, todo, workers=STREAM_WORKERS, ahead=max(1, renderer.inference.batch) + STREAM_WORKERS,
                               cancel=cancel, name="read", passthrough=(RegganError,))
    inferred = infer(batch_by(read_results, max(1, renderer.inference.batch), weight=faces))
    finished = summary.skipped
    written = ordered_map(write, inferred, workers=STREAM_WORKERS, ahead=STREAM_WORKERS + 1, cancel=cancel, name="write",
                          key=lambda job: job.frame, passthrough=(RegganError,))
    try:
        for result in written:
            job = result.value
            commit(job)
            if job.error is not None:
                summary.failed.append((job.frame, job.error))
            else:
                summary.done += 1
                if job.no_face:
                    summary.no_face.append(job.frame)
            finished += 1
            if progress:
                progress(finished, summary.total)
    finally:  # cancelled or crashed: frames encoded ahead of the last one reported are not kept
        written.close()  # waits for running writers, so none stages a file after the clean-up
        for path in staged:
            path.unlink(missing_ok=True)
    if cancel is not None and cancel.is_set() and finished < summary.total:
        summary.cancelled = True
