"""Does a GPU backend compute what the CPU computes? One check, run when a GPU backend is created.

The sample is a face-like crop (skin, eyes, brows, a closed mouth on a shaded background, at the model's input
size), not noise: the motion and paint heads act on faces, and noise would exercise paths a face never takes.
"""
from __future__ import annotations

import numpy as np

from ..arrays import Array
from ..artifact import ModelArtifact
from ..errors import BackendUnavailable, NumericalError
from ..faces.turn import FACING
from .base import Backend

PARITY_TOLERANCE = {"fp32": 1e-3, "fp16": 6e-2}  # max |GPU - onnxruntime CPU| on the sample, per precision


def sample_face(size: int) -> Array:
    """[1, 3, size, size] float32 in [-1, 1]: a neutral face drawn where the aligned crop puts one."""
    y, x = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    rgb = np.stack([0.35 + 0.2 * y, 0.38 + 0.1 * x, 0.45 - 0.1 * y], -1)  # a shaded backdrop
    face = ((x - 0.5) / 0.3) ** 2 + ((y - 0.55) / 0.4) ** 2 <= 1
    shade = np.clip(1.0 - 0.6 * np.hypot(x - 0.45, y - 0.45), 0.5, 1.0)[..., None]
    rgb[face] = (np.array([0.86, 0.66, 0.56], np.float32) * shade)[face]
    for cx in (0.38, 0.62):
        rgb[(x - cx) ** 2 + ((y - 0.45) * 1.8) ** 2 < 0.0016] = (0.12, 0.1, 0.1)  # eyes
        rgb[(np.abs(x - cx) < 0.07) & (np.abs(y - 0.39) < 0.008)] = (0.25, 0.18, 0.14)  # brows
    rgb[(np.abs(x - 0.5) < 0.09) & (np.abs(y - 0.72) < 0.012)] = (0.62, 0.32, 0.32)  # lips
    return (np.ascontiguousarray(rgb.transpose(2, 0, 1))[None] * 2 - 1).astype(np.float32)


def check_parity(backend: Backend, artifact: ModelArtifact, what: str) -> float:
    """Max |backend - CPU| on the sample face over every output; BackendUnavailable (naming `what`) beyond the
    precision's tolerance. A GPU test turns that into a failure, `auto` into the next backend."""
    from .cpu import CpuBackend

    image = sample_face(artifact.input_size)
    e = len(artifact.expressions)
    worst = 0.0
    for index in range(1, e):  # every expression but neutral, facing the camera
        expression = artifact.posed(np.eye(e, dtype=np.float32)[index], FACING)[None]
        intensity = np.ones(1, np.float32)
        want = CpuBackend(artifact).run(image, expression, intensity, outputs=("output",))["output"]
        try:
            got = backend.run(image, expression, intensity, outputs=("output",))["output"]
        except NumericalError:
            worst = float("inf")
            break
        worst = max(worst, float(np.max(np.abs(got - want))))
    tolerance = PARITY_TOLERANCE[backend.precision]
    if worst > tolerance:
        raise BackendUnavailable(f"{what}: differs from onnxruntime on the CPU by {worst:.3g} (> {tolerance}) in "
                                 f"{backend.precision} on a sample face; use --precision fp32 or another backend")
    return worst
