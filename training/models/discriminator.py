"""PatchGAN discriminator with an expression-classification head (StarGAN / US-GAN style)."""
from __future__ import annotations

from torch import Tensor, nn


class Discriminator(nn.Module):
    """D(y) -> (src [N,1,h,w] realness per patch, cls [N,E] expression logits)."""

    def __init__(self, n_expressions: int, conv_dim: int = 32, n_layers: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(n_layers - 1):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.body = nn.Sequential(*layers)
        self.src = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(dim, n_expressions, 1, bias=False)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(y)
        return self.src(h), self.cls(h).mean(dim=(2, 3))
