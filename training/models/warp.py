"""Backward warping on grid_sample's coordinates (exports as ONNX GridSample), shared by both stages."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def identity_grid(size: int) -> Tensor:
    """[1,S,S,2] grid_sample coordinates (x, y) of every pixel centre (align_corners=False)."""
    u = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    return torch.stack([u[None, :].expand(size, size), u[:, None].expand(size, size)], dim=-1)[None]


def warp(image: Tensor, flow: Tensor, grid: Tensor, mode: str = "bilinear") -> Tensor:
    """image [N,C,S,S] sampled at grid + flow ([N,2,S,S], grid units) by ``mode`` (`ModelConfig.warp`), border
    padding. A zero flow samples pixel centres, so it returns the image exactly."""
    return F.grid_sample(image, grid + flow.permute(0, 2, 3, 1), mode=mode, padding_mode="border", align_corners=False)
