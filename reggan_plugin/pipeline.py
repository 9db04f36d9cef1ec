"""The render pipeline: read -> locate faces -> align -> batched inference -> paste back -> write.

`ExpressionRenderer` owns the model session and turns the faces of one picture into the same faces
with another expression (the API the add-on and studio scripts use); `render_sequence` runs it over
a directory of frames the way the CLI does (shards, resume, per-frame failures, summary).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .align import Matrix, crop_matrix_from_box, similarity_from_points, units_to_crop_px, warp_to_crop
from .artifact import ModelArtifact, load_artifact
from .backends import create_backend
from .blend import feather_mask, paste_back
from .config import EditConfig, InferenceConfig, SequenceConfig
from .errors import InputError, RegganError
from .faces import Face, FacesFile, landmarks68_to_5, load_faces_json, parse_region, whole_image_face
from .imageio import ImageData, compose_output, list_frames, read_image, to_network_rgb, write_image
from .sequence import check_out_dir, output_path, select_shard

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (frames finished, frames total)


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
        self.backend = create_backend(self.artifact, inference.backend, precision=inference.precision)
        self.size = self.artifact.input_size
        template = self.artifact.crop_template
        self._template_px = None if template is None else units_to_crop_px(template, self.size)
        self.mask = feather_mask(self.size)
        self._output = "stage1" if inference.stage == "regression" else "output"

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
        """crops [n,S,S,3] float32 sRGB [0,1] -> edited crops, same layout, in batches of `batch`."""
        weights = self.artifact.expression_weights(edit.expression)
        out = np.empty_like(crops)
        step = max(1, self.inference.batch)
        for start in range(0, len(crops), step):
            chunk = crops[start : start + step]
            n = len(chunk)
            image = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), np.float32) * 2 - 1
            result = self.backend.run(
                image, np.repeat(weights[None], n, 0), np.full(n, edit.intensity, np.float32), outputs=(self._output,)
            )[self._output]
            # The change, not the output, goes back: where the model changes nothing (intensity 0)
            # the crop comes back bit-identical.
            out[start : start + n] = chunk + (np.clip(result, -1, 1) - image).transpose(0, 2, 3, 1) / 2
        return out

    # -- paste back ------------------------------------------------------------------------------
    def paste(self, rgb: np.ndarray, matrices: Sequence[Matrix], crops_in: np.ndarray, crops_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.zeros(rgb.shape[:2], np.float32)
        for m, crop_in, crop_out in zip(matrices, crops_in, crops_out):
            rgb, face_mask = paste_back(rgb, crop_in, crop_out, m, self.mask)
            np.maximum(mask, face_mask, out=mask)
        return rgb, mask

    # -- whole pictures --------------------------------------------------------------------------
    def apply_image(self, image: ImageData, faces: Sequence[Face], edit: EditConfig) -> ImageData:
        rgb = to_network_rgb(image)
        matrices, crops = self.prepare(rgb, faces)
        if not matrices:
            return image
        new_rgb, mask = self.paste(rgb, matrices, crops, self.forward(crops, edit))
        return compose_output(image, new_rgb, mask)

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
        if self._detector is None:
            from .faces import FaceDetector

            self._detector = FaceDetector()
        return self._detector.detect(rgb)


def _frames(seq: SequenceConfig) -> list[Path]:
    check_out_dir(seq.frames, seq.out)
    return select_shard(list_frames(seq.frames), seq.shard)


def _detect_all(frames: list[Path], locator: FaceLocator, seq: SequenceConfig, summary: RenderSummary) -> dict[Path, list[Face]]:
    """First pass when a detector is needed: faces for every frame, smoothed over time."""
    from .faces import smooth_tracks

    found: dict[Path, list[Face]] = {}
    for frame in frames:
        try:
            image = read_image(frame)
        except InputError:
            continue  # reported by the render pass
        rgb = to_network_rgb(image)
        fixed = locator.fixed_faces(frame, rgb.shape)
        found[frame] = fixed if fixed is not None else locator.detect(rgb)
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
) -> RenderSummary:
    """Render one shard of a frame directory. Never raises for a bad frame: see the summary."""
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
    detected = _detect_all(todo, locator, seq, summary) if locator.needs_detector else {}

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
