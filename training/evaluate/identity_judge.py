"""The identity judge: dlib's 128-D face embedding (ResNet, ``dlib_face_recognition_resnet_model_v1``),
Euclidean distance. dlib's own rule of thumb: same person below 0.6.

Files come from the PyPI packages ``dlib-bin`` (the dlib library, Boost licence) and
``face-recognition-models`` (Davis King's trained models, CC0 / public domain). Chips are aligned with
the 5-point shape predictor (``shape_predictor_5_face_landmarks``, CC0, trained on dlib's own
5-point data set); the 68-point predictor in the same package is NOT used: its training data (iBUG
300-W) excludes commercial use. Independent of our model: never used as a training loss.

Faces arrive as the runtime's canonical crops (``reggan_plugin.geometry.align``). The predictor starts from
``DLIB_BOX``, a fixed rectangle in crop units: the mean box of dlib's HOG frontal-face detector on the
London canonical crops (its boxes there average (0.225, 0.226, 0.569, 0.569) units, and distances
from the fixed box equal those from detected boxes to 0.005). No detector runs, so an edited face
cannot fail detection. ``compute_face_descriptor`` then cuts its own 150 px chip (padding 0.25) from
the 5 points, as in ``face_recognition.face_encodings``. Give crops of 200 px or more: the chip is
cut from the crop, so a smaller crop is upsampled.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from reggan_plugin.errors import BackendUnavailable

DLIB_BOX = (0.225, 0.226, 0.569, 0.569)
"""(x, y, w, h) canonical crop units: the face rectangle given to the 5-point shape predictor."""
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
EMBED_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "pip install 'dlib-bin==20.0.1.post1' 'face-recognition-models==0.3.0'"


def models_dir() -> Path | None:
    """face_recognition_models/models, found without importing the package (it needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder if (folder / SHAPE_MODEL).is_file() and (folder / EMBED_MODEL).is_file() else None


def unavailable_reason() -> str | None:
    if importlib.util.find_spec("dlib") is None:
        return f"the identity judge needs dlib: {INSTALL_HINT}"
    if models_dir() is None:
        return f"the identity judge needs face-recognition-models' 5-point and ResNet files: {INSTALL_HINT}"
    return None


class IdentityJudge:
    """128-D embeddings of canonical face crops; ``distance`` is Euclidean."""

    name = "dlib ResNet 128-D face embedding (5-point alignment; dlib-bin + face-recognition-models)"

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        import dlib

        folder = models_dir()
        assert folder is not None
        self._shape = dlib.shape_predictor(str(folder / SHAPE_MODEL))
        self._net = dlib.face_recognition_model_v1(str(folder / EMBED_MODEL))
        self._rectangle = dlib.rectangle

    def rectangle(self, size: int):
        x, y, w, h = (v * size for v in DLIB_BOX)
        return self._rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """[N,S,S,3] uint8 RGB canonical crops -> [N,128] float64 embeddings."""
        out = np.empty((len(crops), 128), np.float64)
        for i, crop in enumerate(crops):
            img = np.ascontiguousarray(crop, dtype=np.uint8)
            shape = self._shape(img, self.rectangle(img.shape[0]))
            out[i] = np.asarray(self._net.compute_face_descriptor(img, shape))
        return out

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise Euclidean distance between two [N,128] embedding sets (or two single vectors)."""
        return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)
