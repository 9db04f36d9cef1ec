"""RegGAN generator: stage 1 (local regression) feeding stage 2 (adversarial refinement).

    s1              = R_c(x, alpha)                        regression stage (its mean motion, then the ridge; stage1.py)
    flow, m, r      = G(x, s1, c)                          refinement heads (refiner.py)
    warped          = x sampled at (p + alpha * flow(p))   the input's own pixels, moved
    y               = warped + alpha * m * (clamp(s1 + r) - warped)
    out             = s1 + region_c * (y - s1)             the refiner changes nothing outside the expression's region
c is the target expression weights and alpha the intensity: it scales the motions and the painting, so
alpha = 0.5 is half a smile rather than a cross-fade of two faces, alpha = 0 returns x exactly (a zero
flow samples pixel centres), and alpha > 1 exaggerates. The second output is stage 1 alone at the same
intensity (the preview).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from .refiner import Refiner
from .stage1 import LocalRegression
from .warp import warp


class RegGAN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_expr = len(config.expressions)
        self.stage1 = LocalRegression(n_expr, 3, config.image_size, config.radius)
        self.refiner = Refiner(n_expr, config.conv_dim, config.n_res, config.max_flow)

    def forward(self, image: Tensor, expression: Tensor, intensity: Tensor, heads: bool = False) -> tuple[Tensor, ...]:
        """image [N,3,S,S] sRGB in [-1,1]; expression [N,E]; intensity [N] -> (output, stage1), and with
        ``heads`` also (flow, mask) for the training losses."""
        s1 = self.stage1(image, expression, intensity)
        flow, mask, residual = self.refiner(image, s1, expression)
        alpha = intensity.to(image.dtype)[:, None, None, None]
        warped = warp(image, alpha * flow, self.stage1.grid)  # one identity grid for both stages
        out = warped + alpha * mask * ((s1 + residual).clamp(-1.0, 1.0) - warped)
        preview = s1.clamp(-1.0, 1.0)
        out = preview + self.stage1.region_of(expression) * (out - preview)
        return (out, preview, flow, mask) if heads else (out, preview)
