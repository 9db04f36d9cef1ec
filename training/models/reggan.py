"""RegGAN generator: stage 1 (local regression) feeding stage 2 (adversarial refinement).

    s1   = R_c(x)                          regression stage, c the target expression weights
    y    = clamp(s1 + G(x, s1, c), -1, 1)  refined face
    out  = x + alpha * (y - x)             intensity alpha in [0, 1]; alpha = 0 returns x exactly
"""
from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from .refiner import Refiner
from .stage1 import LocalRegression


class RegGAN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_expr = len(config.expressions)
        self.stage1 = LocalRegression(n_expr, 3, config.image_size, config.radius)
        self.refiner = Refiner(n_expr, config.conv_dim, config.n_res)

    def forward(self, image: Tensor, expression: Tensor, intensity: Tensor) -> tuple[Tensor, Tensor]:
        """image [N,3,S,S] sRGB in [-1,1]; expression [N,E]; intensity [N] -> (output, stage1)."""
        s1 = self.stage1(image, expression)
        refined = (s1 + self.refiner(image, s1, expression)).clamp(-1.0, 1.0)
        alpha = intensity.to(image.dtype)[:, None, None, None]
        return image + alpha * (refined - image), image + alpha * (s1.clamp(-1.0, 1.0) - image)
