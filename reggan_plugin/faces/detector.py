"""`FaceDetector`: MediaPipe BlazeFace (short range) on onnxruntime, over a pyramid of windows.

The short-range model sees a 128x128 picture and finds faces that fill roughly 0.12 to 0.9 of it.
A rendered 1920x1080 frame may hold a 60-pixel face, 1/32 of the frame. So the frame is looked at
through square windows: the whole frame (letterboxed), then overlapping windows 3x, 9x, ... smaller,
down to windows in which a ``min_face``-pixel face is still found. Each window is resampled to
128x128 (area filter), windows run in batches, detections are mapped back to frame pixels and merged
with MediaPipe's weighted NMS. Then each face gets a second look through windows centred on it (it fills
0.4, 0.5, 0.62 of them, shifted a little for sequences): its keypoints are the score-weighted mean of those views, its score
their best, and a face must reach ``accept_score`` (0.75) to be returned. That second look is what
separates faces (0.88 and up) from face-like textures (0.70 at most) in the measurements of
docs/DETECTION.md (benchmarks/detection.py).

Landmarks: BlazeFace gives eyes, nose tip, mouth centre and ear tragions, not mouth corners. The
5 points returned (``CANONICAL_5PT`` order: left eye, right eye, nose, left mouth, right mouth, left =
image left) are where a linear map fitted on the training renders puts them from the eyes, nose and
mouth centre (``keypoint_map``): BlazeFace places its keypoints by another convention than the model's crops.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reggan_plugin.errors import ModelError
from reggan_plugin.faces.blazeface import (
    KP_LEFT_EYE,
    KP_MOUTH,
    KP_NOSE,
    KP_RIGHT_EYE,
    SHORT_RANGE,
    BlazeFaceSpec,
    RawDetections,
    box_iou_matrix,
    decode,
    ssd_anchors,
    weighted_nms,
)
from reggan_plugin.faces.face import Face
from reggan_plugin.faces.keypoint_map import five_points, frame_points
from reggan_plugin.faces.register import register_landmarks

from ..arrays import Array, UInt8Array

MODELS_DIR = Path(__file__).resolve().parent / "models"
SHORT_RANGE_MODEL = MODELS_DIR / "blazeface_short_range.onnx"

Window = tuple[int, int, int]
"""(x0, y0, size): a square of the frame in pixel-index terms; may reach past the frame (padded black)."""


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of `FaceDetector` (defaults measured in docs/DETECTION.md)."""

    min_score: float = 0.5  # scanning threshold: MediaPipe's for the short-range model
    accept_score: float = 0.75  # a face is returned when its best score (over the second looks) reaches this;
    # measured: true faces (London, ICT renders, both pasted small into 1080p) 0.88 and up, false
    # positives on cluttered backdrops 0.70 at most
    nms_iou: float = 0.3  # MediaPipe's min_suppression_threshold
    min_face: int = 48  # smallest face (box side, frame pixels) the window pyramid looks for; 0 = whole frame only
    window_shrink: float = 3.0  # each pyramid level's windows are this much smaller
    window_overlap: float = 0.5  # neighbouring windows overlap by this fraction of their side
    min_face_fraction: float = 0.15  # smallest face, as a fraction of a window, that the model finds (measured: all
    # of 40 London faces at 0.15, 39/40 at 0.12, 24/40 at 0.10)
    max_windows: int = 256  # cap on windows per frame (huge frames with a small min_face)
    # Second look at each face: windows it fills these fractions of, each also shifted by these fractions of its
    # side in x or in y (see TRACKING in faces/locate.py, which uses shifted views). () = off.
    refine_fractions: tuple[float, ...] = (0.4, 0.5, 0.62)
    refine_offsets: tuple[float, ...] = (0.0,)
    confirm: bool = True  # drop faces that no second look finds again (false positives, measured)
    keypoint_map: bool = True  # the 5 points from the keypoints by keypoint_map.py; False: the keypoints as BlazeFace
    # places them, the mouth corners derived (keypoint_map.frame_points)
    register: bool = False  # move each face's points to where the model's crop template expects them (register.py;
    # on for the faces found inside box hints, faces/refine.py)
    batch: int = 64  # windows per onnxruntime call
    threads: int = 0  # onnxruntime intra-op threads, 0 = its default


class FaceDetector:
    """Find faces in an RGB frame with BlazeFace (short range) on onnxruntime's CPU provider.

    ``detect(rgb)`` takes HxWx3 (or HxWx4, alpha ignored) uint8, or float32 in [0, 1] (sRGB-encoded),
    and returns faces sorted
    by score (best first), each with a box, 5 landmarks and a score; [] when there is none.
    """

    def __init__(self, model_path: str | Path | None = None, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.spec: BlazeFaceSpec = SHORT_RANGE
        self.model_path = Path(model_path) if model_path is not None else SHORT_RANGE_MODEL
        self.anchors = ssd_anchors(self.spec)
        self._session = _open_session(self.model_path, self.spec, len(self.anchors), self.config.threads)

    # -- public -------------------------------------------------------------------------------

    def detect(self, rgb: Array) -> list[Face]:
        """Faces in one frame, best first. HxWx3(4) uint8, uint16 or float [0, 1]; other input raises ValueError."""
        image = _to_uint8_rgb(rgb)
        found = self.find(image)
        return [self.face(image, found, i) for i in range(len(found))]

    def find(self, image: Array) -> RawDetections:
        """BlazeFace's accepted detections in a uint8 HxWx3 frame, best first, keypoints as the model gives them."""
        height, width = image.shape[:2]
        merged = self.detect_windows(image, plan_windows(height, width, self.config, self.spec.input_size))
        if self.config.refine_fractions and len(merged):
            merged = self.refine(image, merged)
        return merged.take([i for i in range(len(merged)) if merged.scores[i] >= self.config.accept_score])

    def face(self, image: Array, dets: RawDetections, i: int) -> Face:
        """Detection ``i`` of ``image`` as a Face (``to_face``), its points registered when ``config.register``."""
        face = to_face(dets, i, self.config.keypoint_map)
        if not self.config.register or face.landmarks is None:
            return face
        return replace(face, landmarks=register_landmarks(image, face.landmarks))

    def refine(self, image: Array, dets: RawDetections) -> RawDetections:
        """Look at each face again through windows centred on it that it fills ``refine_fractions`` of.

        BlazeFace's score and keypoints change with how a face is framed (the same rendered face
        scores 0.3 to 0.9 from windows a few pixels apart), and it places keypoints best when the
        face fills about half the window (eye error 4.5% of the inter-ocular distance at 0.5, 6%
        at 0.2 or 0.75, London set). So whichever pyramid window found a face, its result is the
        score-weighted mean of these views, and its score their best. A face no view finds again
        (at ``min_score``, box IoU >= 0.5) is dropped when ``confirm`` is set: most false positives
        are textures that look like a face through one window only.
        """
        fractions = self.config.refine_fractions
        shifts = [(dx, dy) for dx in self.config.refine_offsets for dy in self.config.refine_offsets
                  if dx == 0 or dy == 0]
        per_face = len(fractions) * len(shifts)
        windows: list[Window] = []
        for x0, y0, x1, y1 in dets.boxes:
            for fraction in fractions:
                side = max(int(round(max(x1 - x0, y1 - y0) / fraction)), 8)
                for dx, dy in shifts:
                    windows.append((int(round((x0 + x1 - side) / 2 + dx * side)),
                                    int(round((y0 + y1 - side) / 2 + dy * side)), side))
        views = self._run_batch(image, windows, drop_cut=False)
        boxes, keypoints, scores = dets.boxes.copy(), dets.keypoints.copy(), dets.scores.copy()
        confirmed = np.zeros(len(dets), dtype=bool)
        for i in range(len(dets)):
            mine = [v for v in views[i * per_face : (i + 1) * per_face] if len(v)]
            if not mine:
                continue
            pooled = _concat(mine)
            match = box_iou_matrix(dets.boxes[i : i + 1], pooled.boxes)[0] >= 0.5
            if not match.any():
                continue
            w = pooled.scores[match]
            boxes[i] = (pooled.boxes[match] * w[:, None]).sum(0) / w.sum()
            keypoints[i] = (pooled.keypoints[match] * w[:, None, None]).sum(0) / w.sum()
            scores[i] = max(float(w.max()), scores[i])
            confirmed[i] = True
        keep = confirmed if self.config.confirm else np.ones(len(dets), dtype=bool)
        order = [i for i in np.argsort(-scores, kind="stable") if keep[i]]
        return RawDetections(boxes[order], keypoints[order], scores[order])

    def detect_windows(self, image: Array, windows: list[Window]) -> RawDetections:
        """Run the given windows of a uint8 HxWx3 image; detections in frame pixels, merged by NMS.

        Boxes are (x0, y0, x1, y1) in pixel-index terms (the frame is [0, W] x [0, H]); keypoints are
        point coordinates (pixel centres at integers).
        """
        return weighted_nms(_concat(self._run_batch(image, windows)), self.config.nms_iou)

    def _run_batch(self, image: Array, windows: list[Window], drop_cut: bool = True) -> list[RawDetections]:
        """Detections of each window (frame coordinates, not merged), in the order of ``windows``."""
        size = self.spec.input_size
        found: list[RawDetections] = []
        for start in range(0, len(windows), max(1, self.config.batch)):
            chunk = windows[start : start + self.config.batch]
            batch = np.stack([sample_window(image, win, size) for win in chunk])
            x = (batch.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)
            regressors, logits = self._session.run(["regressors", "classificators"], {"input": np.ascontiguousarray(x)})
            for (x0, y0, side), reg, logit in zip(chunk, regressors, logits):
                dets = decode(reg, logit, self.anchors, self.spec, self.config.min_score)
                if drop_cut and len(dets):
                    dets = _drop_cut_faces(dets, (x0, y0, side), image.shape[0], image.shape[1])
                boxes = dets.boxes * side + np.array([x0, y0, x0, y0])
                keypoints = dets.keypoints * side + np.array([x0, y0]) - 0.5
                found.append(RawDetections(boxes, keypoints, dets.scores))
        return found


def _concat(parts: list[RawDetections]) -> RawDetections:
    parts = [p for p in parts if len(p)]
    if not parts:
        return RawDetections.empty()
    return RawDetections(
        np.concatenate([d.boxes for d in parts]),
        np.concatenate([d.keypoints for d in parts]),
        np.concatenate([d.scores for d in parts]),
    )


def plan_windows(height: int, width: int, config: DetectorConfig, input_size: int = 128) -> list[Window]:
    """The window pyramid for a height x width frame (see the module docstring).

    Level 0 is the whole frame, letterboxed into a centred square; the model finds faces of
    ``min_face_fraction`` of a window and up, so level 0 finds faces of ``min_face_fraction`` x the
    frame's long side. Each next level's windows are ``window_shrink`` times smaller (the last one
    no smaller than needed to find ``min_face``) and tile the frame overlapping by ``window_overlap``,
    so every face up to (1 - overlap) x window lies whole inside one of them. Windows are never
    smaller than ``input_size`` / 2 (upsampling further shows the model nothing new).
    """
    side = max(height, width)
    windows: list[Window] = [((width - side) // 2, (height - side) // 2, side)]
    if config.min_face <= 0:
        return windows
    needed = max(int(np.ceil(config.min_face / config.min_face_fraction)), input_size // 2)
    while side > needed:
        side = max(int(round(side / config.window_shrink)), needed)
        level = [(x0, y0, side) for y0 in _starts(height, side, config.window_overlap) for x0 in _starts(width, side, config.window_overlap)]
        if len(windows) + len(level) > config.max_windows:
            break
        windows += level
    return windows


def _starts(length: int, side: int, overlap: float) -> list[int]:
    """Window starts covering [0, length) with windows of ``side`` overlapping by ``overlap``."""
    if side >= length:
        return [(length - side) // 2]  # one window, centred, padded on both sides
    count = int(np.ceil((length - side) / (side * (1.0 - overlap)))) + 1
    return [int(round(v)) for v in np.linspace(0, length - side, count)]


def sample_window(image: Array, window: Window, size: int) -> Array:
    """The window's pixels resampled to size x size uint8 RGB (area filter), black outside the frame."""
    x0, y0, side = window
    height, width = image.shape[:2]
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1, :3]
    if side == size:
        return canvas
    resample = Image.Resampling.BOX if side > size else Image.Resampling.BILINEAR
    if side > 3 * size:  # reduce in two steps: same result as BOX alone, much faster on big windows
        return np.asarray(Image.fromarray(canvas).reduce(side // size).resize((size, size), resample))
    return np.asarray(Image.fromarray(canvas).resize((size, size), resample))


def _drop_cut_faces(dets: RawDetections, window: Window, height: int, width: int) -> RawDetections:
    """Drop detections that run off a window edge lying inside the frame: a face cut by the window,
    which a neighbouring, overlapping window sees whole. Edges on the frame border are kept."""
    x0, y0, side = window
    margin = 0.02
    b = dets.boxes
    bad = np.zeros(len(dets), dtype=bool)
    if x0 > 0:
        bad |= b[:, 0] < -margin
    if y0 > 0:
        bad |= b[:, 1] < -margin
    if x0 + side < width:
        bad |= b[:, 2] > 1 + margin
    if y0 + side < height:
        bad |= b[:, 3] > 1 + margin
    if not bad.any():
        return dets
    keep = ~bad
    return RawDetections(dets.boxes[keep], dets.keypoints[keep], dets.scores[keep])


def face_keypoints(dets: RawDetections, i: int) -> Array:
    """(4, 2) of detection ``i``: image-left eye, image-right eye, nose, mouth centre (what ``keypoint_map`` reads).
    MediaPipe's "right eye" is the subject's right: the image-left eye, first in CANONICAL_5PT."""
    points: Array = dets.keypoints[i][[KP_RIGHT_EYE, KP_LEFT_EYE, KP_NOSE, KP_MOUTH]]
    return points


def to_face(dets: RawDetections, i: int, mapped: bool = True) -> Face:
    """Detection ``i`` as a Face: its box and the 5 points (see the module docstring; ``mapped`` False: the keypoints as
    they are)."""
    x0, y0, x1, y1 = dets.boxes[i]
    five = (five_points if mapped else frame_points)(face_keypoints(dets, i))
    return Face(box=(x0, y0, x1 - x0, y1 - y0), landmarks=five, score=float(dets.scores[i]), source="detector")


def _to_uint8_rgb(rgb: Array) -> UInt8Array:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"FaceDetector.detect expects an HxWx3 RGB array, got shape {array.shape}")
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"FaceDetector.detect expects uint8 or float [0, 1] pixels, got {array.dtype}")


def _open_session(path: Path, spec: BlazeFaceSpec, anchors: int, threads: int) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(path, "face detector model not found (reinstall reggan-plugin, or run tools/convert_blazeface.py)")
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the network's (backends.cpu)
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable files
        raise ModelError(path, f"cannot load face detector: {str(err).splitlines()[0]}") from None
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if list(inputs.get("input", []))[1:] != [3, spec.input_size, spec.input_size] or outputs.get("regressors", [None, None])[1] != anchors:
        raise ModelError(path, f"not a BlazeFace {spec.name} model (inputs {inputs}, outputs {outputs})")
    return session
