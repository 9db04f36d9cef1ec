"""Where the faces of a picture are: one set of rules for the CLI, the add-on and the API.

In order of trust: faces given for that picture (faces.json, a Blender scene), the whole picture
(already-cropped faces, texture maps), one user box, the detector.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from reggan_plugin.faces.detector import DetectorConfig, FaceDetector
from reggan_plugin.faces.face import Face
from reggan_plugin.faces.faces_json import FacesFile
from reggan_plugin.faces.region import whole_image_face
from reggan_plugin.imageio import ImageData, detector_rgb

from ..arrays import Array


def overlaps_picture(face: Face, height: int, width: int) -> bool:
    """True when some of the face box lies on the height x width picture."""
    x, y, w, h = face.box
    return x < width and y < height and x + w > 0 and y + h > 0


# The detector for sequences: each face's second look also through windows shifted by 2% and 4% of their side
# (27 views, not 3). Their mean averages out how BlazeFace's keypoints depend on the framing: on a slow pan the
# landmarks' std falls from 1.10 to 0.69 px (a render) and from 0.33 to 0.17 px (a photo), and with the track
# smoothing the mouth holds still (docs/TEMPORAL.md). Beside the search of a whole 1080p frame the extra views
# cost no measurable time. Box hints (faces/refine.py) search only around the box and keep the quick 3 views.
# Its points are not registered to the crop template (faces/register.py; box hints' are): registration brings the
# keypoint map's crops on held-out renders no nearer the true ones (docs/DETECTION.md), and its per-frame
# corrections, smoothed, moved the mouth more on a slow pan (jitter 2.2% -> 2.8% and 3.8% -> 4.0% of the edit on two
# renders).
TRACKING = DetectorConfig(refine_offsets=(0.0, 0.02, -0.02, 0.04, -0.04))


class SharedDetector:
    """One BlazeFace session built on first use and shared by threads (onnxruntime runs are thread-safe)."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    def get(self) -> FaceDetector:
        with self._lock:
            if self._detector is None:
                self._detector = FaceDetector(config=self.config)
            return self._detector

    def detect(self, rgb: Array) -> list[Face]:
        return self.get().detect(rgb)


@dataclass
class FaceLocator:
    """given: faces per picture name (faces.json); whole: the picture is the face; region: one box for all."""

    given: FacesFile | None = None
    whole: bool = False
    region: Face | None = None
    detector: SharedDetector = field(default_factory=lambda: SharedDetector(TRACKING))

    @property
    def needs_detector(self) -> bool:
        return not (self.whole or self.region) and (self.given is None or self.given.default is None)

    def marked_without_face(self, name: str) -> bool:
        """True when faces.json gives this picture an empty list (or an empty ``default``): "no face here". Such a
        picture is passed through unchanged: no detector, no faces carried over from its neighbours."""
        return self.given is not None and self.given.faces_for(name) == []

    def fixed_faces(self, name: str, shape: Sequence[int]) -> list[Face] | None:
        """Faces that need no pixels (a box wholly outside the picture is no face); None: ask the detector."""
        height, width = int(shape[0]), int(shape[1])
        given = None if self.given is None else self.given.faces_for(name)
        if given is None and self.whole:
            return [whole_image_face(height, width)]
        if given is None and self.region is not None:
            given = [self.region]
        if given is None:
            return None
        return [face for face in given if overlaps_picture(face, height, width)]

    def faces(self, name: str, image: ImageData) -> list[Face]:
        """The faces of one picture by the rules above (converted to network colour only to detect)."""
        fixed = self.fixed_faces(name, image.pixels.shape)
        if fixed is not None:
            return fixed
        return self.detector.detect(detector_rgb(image))
