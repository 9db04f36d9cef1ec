"""The backend interface: one object that runs the model artifact on one device.

Arrays at this boundary (the ONNX signature, see `reggan_plugin.artifact`):
  image       float32 [N,3,S,S], sRGB, [-1,1]
  expression  float32 [N,E], weights over the artifact's expression list
  intensity   float32 [N], [0,1]
and every output is float32: [N,3,S,S] in [-1,1] ("output": full RegGAN, "stage1": regression stage), and
where the model has them [N,2,S,S] in crop pixels ("motion", "stage1_motion").
Backends never import torch or tensorrt at module import time.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from .. import artifact
from ..arrays import Array
from ..errors import ModelError, NumericalError, UsageError

BackendName = Literal["auto", "cpu", "cuda", "tensorrt"]
Precision = Literal["fp32", "fp16"]
BACKEND_NAMES: tuple[str, ...] = get_args(BackendName)
PRECISIONS: tuple[str, ...] = get_args(Precision)
OUTPUT_NAMES: tuple[str, ...] = artifact.OUTPUT_NAMES + artifact.MOTION_NAMES


def check_finite(outputs: Mapping[str, Array], *, backend: str, precision: str) -> None:
    """Raise NumericalError when an output holds NaN or inf (fp16 overflow gives black or blown-out frames).

    The message says how many values and in which output, and suggests ``--precision fp32`` for fp16 runs.
    """
    for name, array in outputs.items():
        finite = np.isfinite(array)
        if finite.all():
            continue
        bad = int(array.size - np.count_nonzero(finite))
        first_sample = int(np.argwhere(~finite)[0][0]) if array.ndim else 0
        where = f"{bad} NaN/inf value(s) in output {name!r} (first in batch item {first_sample})"
        if precision == "fp16":
            raise NumericalError(
                f"{backend} backend (fp16): {where}; fp16 overflowed on this model or GPU: "
                "rerun with --precision fp32"
            )
        raise NumericalError(f"{backend} backend ({precision}): {where}; the model file may be damaged: re-export it")


class Backend(ABC):
    """Runs the artifact. Subclasses implement `_run`; `run` validates, splits nothing, checks results.

    ``name`` is the short backend name ("cpu", "cuda", "tensorrt"); ``description`` is one line naming the
    library and its version, the provider or device, and the precision.
    """

    name: str = "abstract"
    selection: str = ""  # set by create_backend: "cpu (requested)" or why auto picked this one
    model_path: Path | None = None  # the model file it runs (set by create_backend): named when it misbehaves

    def __init__(self, *, input_size: int, n_expressions: int, precision: Precision) -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        self.input_size = int(input_size)
        self.n_expressions = int(n_expressions)
        self.precision: Precision = precision

    @property
    @abstractmethod
    def description(self) -> str:
        """One line: library and version, provider/device, precision."""

    @abstractmethod
    def _run(self, feeds: dict[str, Array], outputs: tuple[str, ...]) -> dict[str, Array]:
        """Run the graph on validated, contiguous float32 feeds; return the requested outputs as float32."""

    def run(
        self,
        image: Array,
        expression: Array,
        intensity: Array,
        outputs: Sequence[str] = ("output",),
    ) -> dict[str, Array]:
        """Run one batch. Returns {name: float32 array} for each requested output name."""
        feeds = self._feeds(image, expression, intensity)
        wanted = tuple(outputs)
        unknown = [o for o in wanted if o not in OUTPUT_NAMES]
        if unknown or not wanted:
            raise UsageError(f"unknown output(s) {unknown or wanted}; the model has: {', '.join(OUTPUT_NAMES)}")
        result = self._run(feeds, wanted)
        result = {name: np.asarray(result[name], dtype=np.float32) for name in wanted}
        self._check_shapes(result, len(feeds["image"]))
        check_finite(result, backend=self.name, precision=self.precision)
        return result

    def _check_shapes(self, result: Mapping[str, Array], n: int) -> None:
        """A model whose signature passed the load checks but whose outputs are of another shape at run time is a
        bad model (ModelError naming it), not a crash somewhere in paste-back."""
        s = self.input_size
        for name, array in result.items():
            expected = (n, 2 if name in artifact.MOTION_NAMES else 3, s, s)
            if array.shape != expected:
                raise ModelError(self.model_path or "model",
                                 f"output {name!r} has shape {list(array.shape)} at run time where its signature "
                                 f"promises {list(expected)}; re-export the model")

    def _feeds(self, image: Array, expression: Array, intensity: Array) -> dict[str, Array]:
        image = np.ascontiguousarray(image, dtype=np.float32)
        expression = np.ascontiguousarray(expression, dtype=np.float32)
        intensity = np.ascontiguousarray(intensity, dtype=np.float32).reshape(-1)
        s, e = self.input_size, self.n_expressions
        if image.ndim != 4 or image.shape[1:] != (3, s, s) or image.shape[0] < 1:
            raise UsageError(f"image batch has shape {image.shape}; this model takes [N,3,{s},{s}] with N >= 1")
        n = image.shape[0]
        if expression.shape != (n, e):
            raise UsageError(f"expression batch has shape {expression.shape}; expected [{n},{e}]")
        if intensity.shape != (n,):
            raise UsageError(f"intensity batch has shape {intensity.shape}; expected [{n}]")
        return {"image": image, "expression": expression, "intensity": intensity}

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        """Release sessions and device memory (idempotent)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"
