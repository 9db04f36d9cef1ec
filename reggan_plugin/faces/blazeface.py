"""BlazeFace (MediaPipe face detection) decoding in numpy: SSD anchors, box/keypoint decode, weighted NMS.

The networks (converted to ONNX by tools/convert_blazeface.py) output, for each of A anchors, 16
regressors (box centre x, y, width, height, then six keypoints x, y) in input pixels relative to the
anchor centre, and one classification logit. Coordinates decoded here are normalised to the network
input: 0 = left/top EDGE, 1 = right/bottom edge.

MediaPipe's keypoints, in output order: 0 right eye, 1 left eye (the SUBJECT's right/left: keypoint 0
is on the image left), 2 nose tip, 3 mouth centre, 4 right ear tragion, 5 left ear tragion.
Constants follow mediapipe/modules/face_detection/face_detection.pbtxt (mediapipe 0.10.14).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arrays import Array


@dataclass(frozen=True)
class BlazeFaceSpec:
    """Everything about one BlazeFace variant that decoding needs."""

    name: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_anchor: bool  # one extra anchor per location per layer (short range: yes)
    min_score: float  # MediaPipe's default threshold for this model


SHORT_RANGE = BlazeFaceSpec("short_range", 128, (8, 16, 16, 16), True, 0.5)
FULL_RANGE = BlazeFaceSpec("full_range", 192, (4,), False, 0.6)

NUM_KEYPOINTS = 6
KP_RIGHT_EYE, KP_LEFT_EYE, KP_NOSE, KP_MOUTH, KP_RIGHT_EAR, KP_LEFT_EAR = range(NUM_KEYPOINTS)


def ssd_anchors(spec: BlazeFaceSpec) -> Array:
    """(A, 2) anchor centres in normalised input coordinates (MediaPipe SsdAnchorsCalculator,
    fixed_anchor_size: every anchor is 1 x 1 so only the centres matter)."""
    per_layer = 2 if spec.interpolated_anchor else 1  # aspect ratio 1.0 (+ the interpolated scale)
    centres: list[Array] = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        last = layer
        while last < len(spec.strides) and spec.strides[last] == stride:
            last += 1
        repeats = per_layer * (last - layer)  # layers sharing a stride share the grid
        cells = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
        layer = last
    return np.concatenate(centres).astype(np.float64)


@dataclass(frozen=True)
class RawDetections:
    """Decoded detections of one network input, normalised coordinates.

    boxes: (N, 4) x0, y0, x1, y1; keypoints: (N, 6, 2) x, y; scores: (N,) in [0, 1].
    """

    boxes: Array
    keypoints: Array
    scores: Array

    @staticmethod
    def empty() -> RawDetections:
        return RawDetections(np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0,)))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, indices: list[int]) -> RawDetections:
        return RawDetections(self.boxes[indices], self.keypoints[indices], self.scores[indices])


def decode(regressors: Array, logits: Array, anchors: Array, spec: BlazeFaceSpec, min_score: float) -> RawDetections:
    """One input's raw outputs, (A, 16) and (A, 1) or (A,), -> detections scoring at least ``min_score``."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return RawDetections.empty()
    raw = np.asarray(regressors, dtype=np.float64)[keep] / spec.input_size
    centre = anchors[keep]
    cx = raw[:, 0] + centre[:, 0]
    cy = raw[:, 1] + centre[:, 1]
    w = raw[:, 2]
    h = raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keypoints = raw[:, 4 : 4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + centre[:, None, :]
    valid = (w > 0) & (h > 0)
    return RawDetections(boxes[valid], keypoints[valid], scores[keep][valid])


def box_iou_matrix(a: Array, b: Array) -> Array:
    """(N, 4) x (M, 4) corner boxes -> (N, M) intersection over union."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou: Array = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)
    return iou


def box_containment_matrix(a: Array, b: Array) -> Array:
    """(N, M): the fraction of box b_j's area that lies inside box a_i."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    contained: Array = (ix * iy) / np.maximum(area_b[None, :], 1e-12)
    return contained


def weighted_nms(dets: RawDetections, iou_threshold: float = 0.3, containment_threshold: float = 0.8) -> RawDetections:
    """MediaPipe's weighted non-maximum suppression, numpy.

    Take the best remaining detection; every remaining detection overlapping it (IoU above
    ``iou_threshold``, or lying mostly inside it: a half face seen by a tile) joins its cluster; the
    cluster's boxes and keypoints are averaged weighted by score, keeping the best score. Averaging
    rather than picking steadies the result from frame to frame.
    """
    if len(dets) == 0:
        return dets
    order = np.argsort(-dets.scores, kind="stable")
    boxes, kps, scores = dets.boxes[order], dets.keypoints[order], dets.scores[order]
    iou = box_iou_matrix(boxes, boxes)
    inside = box_containment_matrix(boxes, boxes)
    remaining = np.ones(len(scores), dtype=bool)
    out_b, out_k, out_s = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & ((iou[i] > iou_threshold) | (inside[i] > containment_threshold))
        cluster[i] = True
        remaining &= ~cluster
        w = scores[cluster][:, None]
        out_b.append((boxes[cluster] * w).sum(0) / w.sum())
        out_k.append((kps[cluster] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
    return RawDetections(np.array(out_b), np.array(out_k), np.array(out_s))
