"""RegGAN generator: stage 1 (local regression) feeding stage 2 (adversarial refinement).

    s1              = R_c(x)                               regression stage, c the target expression weights
    flow, m, r      = G(x, s1, c)                          refinement heads (refiner.py)
    warped          = x sampled at (p + alpha * flow(p))   the input's own pixels, moved
    out             = warped + alpha * m * (clamp(s1 + r) - warped)
alpha is the intensity: it scales the motion and the painting, so alpha = 0.5 is half a smile rather than
a cross-fade of two faces, alpha = 0 returns x exactly (the identity grid samples pixel centres), and
alpha > 1 exaggerates. The second output is stage 1 alone at the same intensity (the preview).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .refiner import Refiner
from .stage1 import LocalRegression


def identity_grid(size: int) -> Tensor:
    """[1,S,S,2] grid_sample coordinates (x, y) of every pixel centre (align_corners=False)."""
    u = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    return torch.stack([u[None, :].expand(size, size), u[:, None].expand(size, size)], dim=-1)[None]


def warp(image: Tensor, flow: Tensor, grid: Tensor) -> Tensor:
    """image [N,C,S,S] sampled at grid + flow ([N,2,S,S], grid units), bilinear, border padding."""
    return F.grid_sample(image, grid + flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=False)


class RegGAN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_expr = len(config.expressions)
        self.stage1 = LocalRegression(n_expr, 3, config.image_size, config.radius)
        self.refiner = Refiner(n_expr, config.conv_dim, config.n_res, config.max_flow)
        self.register_buffer("grid", identity_grid(config.image_size), persistent=False)

    def forward(self, image: Tensor, expression: Tensor, intensity: Tensor, heads: bool = False) -> tuple[Tensor, ...]:
        """image [N,3,S,S] sRGB in [-1,1]; expression [N,E]; intensity [N] -> (output, stage1), and with
        ``heads`` also (flow, mask) for the training losses."""
        s1 = self.stage1(image, expression)
        flow, mask, residual = self.refiner(image, s1, expression)
        alpha = intensity.to(image.dtype)[:, None, None, None]
        warped = warp(image, alpha * flow, self.grid)
        out = warped + alpha * mask * ((s1 + residual).clamp(-1.0, 1.0) - warped)
        preview = image + alpha * (s1.clamp(-1.0, 1.0) - image)
        return (out, preview, flow, mask) if heads else (out, preview)
