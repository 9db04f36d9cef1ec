"""Where the face is in a texture that is a picture of a face (a decal, a 2D avatar, a face crop), and the refusal of
one that is not: a head's UV unwrap shows no face the detector can find, and editing it as one paints teeth onto the
skin."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..faces.face import Face
from ..faces.locate import FaceLocator
from ..imageio.colour import detector_rgb
from ..imageio.image import ImageData

MARGIN = 0.5
"""The picture is also searched inside a grey margin of this share of its size on each side: a face that fills the
picture (a crop) is larger than the detector's largest anchor until it has room around it."""


def face_of_picture(path: Path, picture: ImageData) -> list[Face]:
    """The faces the detector finds in ``picture``, or in it with a margin (boxes and landmarks in the picture's own
    pixels); none is an `InputError` that names the way to bake expression maps instead."""
    detector = FaceLocator().detector
    rgb = detector_rgb(picture)
    faces = detector.detect(rgb)
    if faces:
        return faces
    height, width = rgb.shape[:2]
    pad_y, pad_x = int(round(height * MARGIN)), int(round(width * MARGIN))
    padded = np.pad(rgb, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="constant", constant_values=0.5)
    shift = np.array([pad_x, pad_y], np.float64)
    found = [Face((f.box[0] - pad_x, f.box[1] - pad_y, f.box[2], f.box[3]),
                  None if f.landmarks is None else np.asarray(f.landmarks, np.float64) - shift, f.score, f.source)
             for f in detector.detect(padded)]
    if found:
        return found
    raise InputError(path, "no face found: this is not a picture of a face (a head's UV unwrap is not one: bake its "
                           f"expression maps with `reggan-plugin bake-maps --mesh HEAD.obj --texture {path.name} "
                           "--out MAPS/`); for a face the detector misses, give --region X,Y,W,H or --whole-image")
