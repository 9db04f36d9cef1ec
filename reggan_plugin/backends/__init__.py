"""Backends that run the model artifact: cpu (onnxruntime), cuda (onnxruntime-gpu or torch), tensorrt (engines).

`create_backend` is the only way in; `reggan_plugin.backends.select` is the one module that chooses.
Beside them, graphs that run where the network runs: the regression stage cut out of a model (`preview_graph`) and
the face region's align and paste-back (`region_graphs`).
Importing this package imports neither torch nor tensorrt nor onnxruntime.
"""
from .base import BACKEND_NAMES, PRECISIONS, Backend, BackendName, Precision, check_finite
from .cpu import CpuTuning
from .select import availability, create_backend, describe_environment

__all__ = [
    "BACKEND_NAMES",
    "PRECISIONS",
    "Backend",
    "BackendName",
    "CpuTuning",
    "Precision",
    "availability",
    "check_finite",
    "create_backend",
    "describe_environment",
]
