"""Where the faces of a picture are: one set of rules for the CLI, the add-on and the API.

In order of trust: faces given for that picture (faces.json, a Blender scene), the whole picture
(already-cropped faces, texture maps), one user box, the detector.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reggan_plugin.faces.detector import FaceDetector
from reggan_plugin.faces.face import Face
from reggan_plugin.faces.faces_json import FacesFile
from reggan_plugin.faces.region import whole_image_face
from reggan_plugin.imageio import ImageData, to_network_rgb


class SharedDetector:
    """One BlazeFace session built on first use and shared by threads (onnxruntime runs are thread-safe)."""

    def __init__(self) -> None:
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    def get(self) -> FaceDetector:
        with self._lock:
            if self._detector is None:
                self._detector = FaceDetector()
            return self._detector

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return self.get().detect(rgb)


@dataclass
class FaceLocator:
    """given: faces per picture name (faces.json); whole: the picture is the face; region: one box for all."""

    given: FacesFile | None = None
    whole: bool = False
    region: Face | None = None
    detector: SharedDetector = field(default_factory=SharedDetector)

    @property
    def needs_detector(self) -> bool:
        return not (self.whole or self.region) and (self.given is None or self.given.default is None)

    def fixed_faces(self, name: str, shape: Sequence[int]) -> list[Face] | None:
        """Faces that need no pixels; None: ask the detector."""
        if self.given is not None:
            faces = self.given.faces_for(name)
            if faces is not None:
                return list(faces)
        if self.whole:
            return [whole_image_face(int(shape[0]), int(shape[1]))]
        if self.region is not None:
            return [self.region]
        return None

    def faces(self, name: str, image: ImageData) -> list[Face]:
        """The faces of one picture by the rules above (converted to network colour only to detect)."""
        fixed = self.fixed_faces(name, image.pixels.shape)
        return fixed if fixed is not None else self.detector.detect(to_network_rgb(image))
