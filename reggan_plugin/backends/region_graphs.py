"""The face region's two resampling steps as ONNX graphs, run by onnxruntime where the network runs.

Aligning (region -> crop) and pasting back (crop planes -> region) are the per-face work that grows with the
face: a 1000 px face's region is a million pixels against the crop's 16 thousand. The graphs
(``reggan_plugin/models/region_*.onnx``, made by ``export/region_graphs.py``) do exactly those region-sized
steps; everything crop-sized (the colour cast, the moved crop) stays in numpy, where it costs well under a
millisecond. On a GPU they run on the device beside the network; on the CPU in onnxruntime's threads.

Aligning runs in the graph for every face (a grainy region is aligned from its structure, made in numpy). Paste-back
runs there for clean regions of faces at least half the crop's size: moving a grainy region's structure
(``reggan_plugin.imaging.filters``) and box-downsampling a crop onto a face under half its size have no graph, and those
faces are pasted in numpy.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Array
from ..config import RegionGraphs
from ..edit.blend import apply_planes, mask_box
from ..errors import BackendUnavailable
from ..geometry.align import Matrix, invert_affine, matrix_scale
from ..geometry.resample import crop_coordinates, crop_roi, pooled_matrix, prefilter_window
from ..imaging.filters import grain_level
from ..tuning import NOISE_FLOOR
from .base import Backend

log = logging.getLogger(__name__)
GPU_PROVIDER = "CUDAExecutionProvider"

MODELS = Path(__file__).resolve().parents[1] / "models"
ALIGN_FILE, PASTE_FILE = "region_align.onnx", "region_paste.onnx"
ALIGN_INPUTS, ALIGN_OUTPUTS = ("region", "grid", "pool"), ("crop",)
PASTE_INPUTS, PASTE_OUTPUTS = ("region", "planes", "matrix", "inverse"), ("pasted", "mask")


class RegionOps:
    """The two region graphs in onnxruntime sessions on the given providers (the network's)."""

    def __init__(self, providers: list[Any], options: Any, models: Path = MODELS) -> None:
        from .cpu import create_session

        self._align = create_session(str(models / ALIGN_FILE), providers, options)
        self._paste = create_session(str(models / PASTE_FILE), providers, options)
        self.providers: list[str] = self._align.get_providers()

    def align(self, region: Array, m: Matrix, size: int) -> Array:
        """The size x size x 3 crop of map ``m`` (region px -> crop px) from the HxWx3 float32 region."""
        k, x0, y0, _, _ = prefilter_window(m, region.shape, (size, size))
        grid = np.stack(crop_coordinates(m if k == 1 else pooled_matrix(m, k, x0, y0), size), axis=-1).astype(np.float32)
        feeds = {"region": np.ascontiguousarray(region, np.float32), "grid": grid,
                 "pool": np.array([k, x0, y0], np.int64)}
        crop: Array = self._align.run(list(ALIGN_OUTPUTS), feeds)[0]
        return crop

    def paste(self, region: Array, planes: Array, m: Matrix, *, inplace: bool = False
              ) -> tuple[Array, Array]:
        """``reggan_plugin.edit.blend.apply_planes`` in the graph: (pasted HxWx3 region, HxW mask). Only the part of
        the region under the mask, and as far around it as the motion reads, goes to the graph."""
        m = np.asarray(m, np.float64)
        if matrix_scale(m) >= 2.0:  # the crop would be box-downsampled onto the region
            return apply_planes(region, planes, m, inplace=inplace)
        new = region if inplace else region.copy()
        mask = np.zeros(region.shape[:2], np.float32)
        box = mask_box(planes[..., 3])
        if box is None:
            return new, mask
        inverse = invert_affine(m)[:, :2]
        ys, xs = crop_roi(m, planes.shape[0], (region.shape[0], region.shape[1]), box)
        grain = grain_level(region[ys, xs])
        if grain >= NOISE_FLOOR:  # grain stays while the structure moves: numpy
            return apply_planes(region, planes, m, inplace=inplace, grain=grain)
        if planes.shape[-1] < 7:  # no motion (nothing moves), no gap between the lips: zeros
            planes = np.concatenate([planes, np.zeros((*planes.shape[:2], 7 - planes.shape[-1]), np.float32)], axis=2)
        # the frame px the motion reads beyond the mask: its largest crop px through the inverse and bicubic's 2
        # (``resample.sample_planes_cubic``), and one to spare
        reach = 3 + int(np.ceil(np.abs(planes[..., 4:6]).max() * np.abs(inverse).sum(axis=1).max()))
        y0, x0 = max(ys.start - reach, 0), max(xs.start - reach, 0)
        part = (slice(y0, ys.stop + reach), slice(x0, xs.stop + reach))
        local = m.copy()
        local[:, 2] += m[:, 0] * x0 + m[:, 1] * y0
        feeds = {"region": np.ascontiguousarray(region[part], np.float32), "planes": np.ascontiguousarray(planes, np.float32),
                 "matrix": local.astype(np.float32), "inverse": inverse.astype(np.float32)}
        new[part], mask[part] = self._paste.run(list(PASTE_OUTPUTS), feeds)
        return new, mask


def _providers(backend: Backend) -> list[Any]:
    """The network's onnxruntime providers with their options; for a backend that is not an onnxruntime session
    (TensorRT, the torch route) the CUDA provider when onnxruntime has it, else the CPU."""
    session = getattr(backend, "session", None)
    if session is not None:
        options = session.get_provider_options()
        return [(name, options.get(name, {})) for name in session.get_providers()]
    if backend.name != "cpu":
        import onnxruntime as ort

        if GPU_PROVIDER in ort.get_available_providers():
            return [(GPU_PROVIDER, {"device_id": 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def region_ops_for(backend: Backend, choice: RegionGraphs) -> RegionOps | None:
    """The region graphs for this backend, or None for numpy: "on" always, "auto" where they run on a GPU."""
    if choice == "off":
        return None
    from .cpu import session_options

    providers = _providers(backend)
    names = [p if isinstance(p, str) else p[0] for p in providers]
    if choice == "auto" and GPU_PROVIDER not in names:
        return None
    try:
        ops = RegionOps(providers, session_options())
    except BackendUnavailable as exc:
        if choice == "on":
            raise
        log.warning("region graphs unavailable, aligning and pasting in numpy: %s", exc)
        return None
    log.info("region graphs on %s", ", ".join(ops.providers))
    return ops
