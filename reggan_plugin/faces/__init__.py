"""Face location for the torch-free runtime.

In order of trust (docs/FACES_JSON.md, docs/DETECTION.md): faces given by the caller
(``load_faces_json``), the BlazeFace detector on onnxruntime (``FaceDetector``), a user box
(``parse_region``), the whole image (``whole_image_face``). ``smooth_tracks`` steadies boxes and
landmarks over a sequence so that crops do not jitter.
"""
from reggan_plugin.faces.detector import DetectorConfig, FaceDetector
from reggan_plugin.faces.face import (
    FACE_SOURCES,
    Box,
    Face,
    FaceSource,
    Landmarks,
    box_from_landmarks,
    iou,
    landmarks68_to_5,
)
from reggan_plugin.faces.faces_json import FacesFile, load_faces_json, parse_faces_doc
from reggan_plugin.faces.region import parse_region, region_fits, whole_image_face
from reggan_plugin.faces.smoothing import smooth_tracks

__all__ = [
    "FACE_SOURCES",
    "Box",
    "DetectorConfig",
    "Face",
    "FaceDetector",
    "FaceSource",
    "FacesFile",
    "Landmarks",
    "box_from_landmarks",
    "iou",
    "landmarks68_to_5",
    "load_faces_json",
    "parse_faces_doc",
    "parse_region",
    "region_fits",
    "smooth_tracks",
    "whole_image_face",
]
