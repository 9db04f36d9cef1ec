"""The mouth-shape judge: where the lips are, by MediaPipe Face Mesh on ai-edge-litert, so that an edit's mouth can be
held against the person's own expression and not only against what the expression judge rewards.

Face Mesh (``models/face_landmark.tflite``, Apache-2.0; ``models/NOTICE.txt``) gives 468 points of a face seen in a
192 x 192 window, which its own graph cuts from the face detector's box grown 1.5 times. Faces arrive here as the
runtime's canonical crops, so the judge cuts ``MESH_BOX``: the canonical face box (`identity_judge.DLIB_BOX`) grown
1.5 times about its centre. It reads the 40 points of the lips' outer and inner contours (``LIPS``, MediaPipe's
``FACEMESH_LIPS``). `lips_error` is the mean distance between two faces' lip points, in percent of the crop's side:
an edit's against the real expression, beside the neutral's against it, says how far toward the real mouth's shape
the edit went. Independent of our model: never used as a training loss.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from reggan_plugin.errors import BackendUnavailable

from .identity_judge import DLIB_BOX

MODEL_PATH = Path(__file__).resolve().parent / "models" / "face_landmark.tflite"
MODEL_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"  # mediapipe 0.10.14
WINDOW = 192
GROWTH = 1.5  # Face Mesh's window: the detector's face box grown this much (mediapipe's face_landmark_front graph)
_x, _y, _w, _h = DLIB_BOX
MESH_BOX = (_x + _w / 2 - GROWTH * _w / 2, _y + _h / 2 - GROWTH * _h / 2, GROWTH * _w, GROWTH * _h)
"""(x, y, w, h) canonical crop units: the window Face Mesh is given."""
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
"""Face Mesh's outer lip contour (20 points, from the left corner, 61) and inner one (20, from 78)."""
INNER = slice(20, 40)  # the inner contour's points in `LIPS`


def unavailable_reason() -> str | None:
    """Why the judge cannot run here, or None."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "the mouth-shape judge needs ai-edge-litert: pip install 'ai-edge-litert==2.3.0'"
    digest = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest() if MODEL_PATH.is_file() else "missing"
    if digest != MODEL_SHA256:
        return f"{MODEL_PATH}: not mediapipe 0.10.14's face_landmark.tflite (sha256 {digest[:12]})"
    return None


class MouthShapeJudge:
    """The lips' 40 points of canonical face crops."""

    name = "MediaPipe Face Mesh (face_landmark.tflite, ai-edge-litert), 40 lip points"

    def __init__(self, threads: int = 1) -> None:
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(MODEL_PATH), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._points = self._interpreter.get_output_details()[0]["index"]

    def lips(self, crop: np.ndarray) -> np.ndarray:
        """One canonical crop (SxSx3 uint8 RGB) -> the lips' points (40, 2) in crop units."""
        size = crop.shape[0]
        x, y, w, h = (np.array(MESH_BOX) * size).round().astype(int)
        window = cv2.resize(np.ascontiguousarray(crop[y : y + h, x : x + w]), (WINDOW, WINDOW),
                            interpolation=cv2.INTER_AREA)
        self._interpreter.set_tensor(self._input, (window.astype(np.float32) / 255.0)[None])
        self._interpreter.invoke()
        points = self._interpreter.get_tensor(self._points).reshape(-1, 3)[list(LIPS), :2]
        return (points / WINDOW * np.array([w, h]) + np.array([x, y])) / size

    def inner_lips(self, crop: np.ndarray) -> np.ndarray:
        """One canonical crop -> the inner lip contour (20, 2) in crop units: `lips`' last 20 points, where an open
        mouth shows its inside (`realism.opening`)."""
        return self.lips(crop)[INNER]


def lips_error(lips: np.ndarray, reference: np.ndarray) -> float:
    """Mean distance between two faces' lip points (`MouthShapeJudge.lips`), percent of the crop's side."""
    return float(np.linalg.norm(np.asarray(lips) - np.asarray(reference), axis=1).mean() * 100)
