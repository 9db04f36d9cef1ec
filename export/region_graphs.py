"""The region graphs: the face-region work around the network as two small ONNX graphs.

What a frame costs outside the network grows with the face (a 1000 px face's region is a million pixels) while
the crop stays 128 x 128. The runtime therefore does crop-sized work in numpy and hands the two region-sized
steps to these graphs, which run wherever the network does (onnxruntime's CPU threads, CUDA):

- ``region_align.onnx``: the region (H x W x 3, network colour), the mean-pool plan (k, x0, y0) and a sampling
  grid (S x S x 2, px of the pooled region: where each crop pixel lies) -> the crop (S x S x 3). The region
  mean-pooled in k x k blocks from (x0, y0) (any k, from a cumulative sum), then sampled bilinearly,
  edge-replicated: ``reggan_plugin.geometry.resample.warp_to_crop`` step for step.
- ``region_paste.onnx``: the region, the crop-space planes (S x S x 7: colour-matched difference, mask,
  motion x, y in crop px, the gap between the lips), the region px -> crop px map (2 x 3) and the inverse of its
  linear part (2 x 2) -> the pasted region and its mask (``reggan_plugin.edit.blend.apply_planes``: the frame moved by
  the motion at its own resolution, a magnified face's pixel-scale detail kept, none of it in the gap, plus the mask
  times the difference; pixels the mask does not reach are returned unchanged).

They hold no weights and do not depend on the model; `export region-graphs` writes them into the package
(``reggan_plugin/models``), and a test checks the shipped files against a fresh export.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F

from export.onnx_export import OPSET  # GridSample needs 16
from reggan_plugin.atomic import atomic_path
from reggan_plugin.backends.region_graphs import (
    ALIGN_FILE,
    ALIGN_INPUTS,
    ALIGN_OUTPUTS,
    PASTE_FILE,
    PASTE_INPUTS,
    PASTE_OUTPUTS,
)


def _normalised(xs: torch.Tensor, ys: torch.Tensor, width: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates -> grid_sample's [-1, 1] (align_corners: -1 and 1 are the first and last pixel centres)."""
    return torch.stack([2 * xs / (width - 1).clamp(min=1) - 1, 2 * ys / (height - 1).clamp(min=1) - 1], dim=-1)


def _block_means(x: torch.Tensor, k: torch.Tensor, start: torch.Tensor, dim: int) -> torch.Tensor:
    """Means of the k-sample blocks starting at start, start + k, ... along ``dim`` to its end (the last block
    padded with the edge sample): ``reggan_plugin.geometry.resample._box_downsample`` along one axis."""
    n = x.shape[dim]
    # tensor bounds (not ints) keep the exported graph dynamic in the region size and k
    padded = x.index_select(dim, torch.arange(n + k - 1).clamp(max=n - 1))  # type: ignore[call-overload]
    shape = list(padded.shape)
    shape[dim] = 1
    total = torch.cat([torch.zeros(shape, dtype=x.dtype), torch.cumsum(padded, dim=dim)], dim=dim)
    starts = torch.arange(start, n, k)  # type: ignore[call-overload]
    return (total.index_select(dim, starts + k) - total.index_select(dim, starts)) / k.to(x.dtype)


class AlignGraph(torch.nn.Module):
    def forward(self, region: torch.Tensor, grid: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        k, x0, y0 = pool[0], pool[1], pool[2]
        planes = region.permute(2, 0, 1)  # 3 x H x W
        pooled = _block_means(_block_means(planes, k, y0, 1), k, x0, 2)
        norm = _normalised(grid[..., 0], grid[..., 1], torch.tensor(pooled.shape[2], dtype=grid.dtype),
                           torch.tensor(pooled.shape[1], dtype=grid.dtype))
        crop = F.grid_sample(pooled[None], norm[None], mode="bilinear", padding_mode="border", align_corners=True)
        return crop[0].permute(1, 2, 0)


def _sample(image: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)[0]


class PasteGraph(torch.nn.Module):
    def forward(self, region: torch.Tensor, planes: torch.Tensor, matrix: torch.Tensor, inverse: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = region.shape[0], region.shape[1]
        planes = planes.permute(2, 0, 1)
        size = torch.tensor(planes.shape[2], dtype=region.dtype)
        ys = torch.arange(height, dtype=region.dtype)[:, None].expand(height, width)
        xs = torch.arange(width, dtype=region.dtype)[None, :].expand(height, width)
        qx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
        qy = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
        warped = F.grid_sample(planes[None], _normalised(qx, qy, size, size)[None], mode="bilinear",
                               padding_mode="zeros", align_corners=True)[0]
        weight = warped[3].clamp(0, 1)
        mx, my = warped[4] * weight, warped[5] * weight
        sx = xs + inverse[0, 0] * mx + inverse[0, 1] * my
        sy = ys + inverse[1, 0] * mx + inverse[1, 1] * my
        frame = region.permute(2, 0, 1)[None]
        size_x, size_y = torch.tensor(width, dtype=region.dtype), torch.tensor(height, dtype=region.dtype)
        grid = _normalised(sx, sy, size_x, size_y)[None]
        moved = _sample(frame, grid, "bicubic")  # ``resample.sample_planes_cubic``: the frame's detail kept
        pasted = (moved * (1 - weight * warped[6]) + weight * warped[:3]).clamp(0, 1)
        out = torch.where(weight > 0, pasted, frame[0])
        return out.permute(1, 2, 0), weight


def _export(module: torch.nn.Module, example: tuple, names: tuple[tuple[str, ...], tuple[str, ...]],
            axes: dict[str, dict[int, str]], out: Path) -> Path:
    inputs, outputs = names
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp_path, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and trace warnings
        torch.onnx.export(module, example, str(tmp_path), dynamo=False, opset_version=OPSET,
                          input_names=list(inputs), output_names=list(outputs), dynamic_axes=axes)
        proto = onnx.load(str(tmp_path))
        proto.producer_name = "reggan-plugin"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp_path))
    return out


def export_region_graphs(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``region_align.onnx`` and ``region_paste.onnx`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    gen = torch.Generator().manual_seed(0)
    region = torch.rand(40, 50, 3, generator=gen)
    grid = torch.rand(16, 16, 2, generator=gen) * 30
    align = _export(AlignGraph(), (region, grid, torch.tensor([2, 1, 3])), (ALIGN_INPUTS, ALIGN_OUTPUTS),
                    {"region": {0: "height", 1: "width"}, "grid": {0: "size", 1: "size"},
                     "crop": {0: "size", 1: "size"}}, out_dir / ALIGN_FILE)
    planes = torch.rand(16, 16, 7, generator=gen)
    matrix = torch.tensor([[0.4, 0.0, -2.0], [0.0, 0.4, -1.0]])
    inverse = torch.linalg.inv(matrix[:, :2])
    paste = _export(PasteGraph(), (region, planes, matrix, inverse), (PASTE_INPUTS, PASTE_OUTPUTS),
                    {"region": {0: "height", 1: "width"}, "planes": {0: "size", 1: "size"},
                     "pasted": {0: "height", 1: "width"}, "mask": {0: "height", 1: "width"}}, out_dir / PASTE_FILE)
    return align, paste
