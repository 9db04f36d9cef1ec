"""Stage 2 of RegGAN: the SARGAN-style refinement generator G.

Encoder (7x7 conv, two stride-2 convs) -> spatial-attention residual blocks -> decoder (two
upsample+conv, 7x7 conv, tanh). Its input is the face x, stage 1's output s1 and the target
expression c tiled over the image; its output r is ADDED to s1 (the "ultimate skip" of US-GAN).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_in_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 1, bias=False),
        nn.InstanceNorm2d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


class SpatialAttentionResBlock(nn.Module):
    """SARGAN's block: y = x + F(x) * A(x), A a 1-channel sigmoid map from a small hourglass."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_in_relu(dim, dim, 3),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(dim, affine=True),
        )
        self.attention = nn.Sequential(
            conv_in_relu(dim, dim // 2, 4, stride=2),
            conv_in_relu(dim // 2, dim // 2, 3),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(dim // 2, 1, 3, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.features(x) * self.attention(x)


class Refiner(nn.Module):
    """G(x, s1, c) -> r in [-1,1]^3; the refined face is clamp(s1 + r)."""

    def __init__(self, n_expressions: int, conv_dim: int = 32, n_res: int = 3) -> None:
        super().__init__()
        d = conv_dim
        layers: list[nn.Module] = [conv_in_relu(6 + n_expressions, d, 7)]
        layers += [conv_in_relu(d, 2 * d, 4, stride=2), conv_in_relu(2 * d, 4 * d, 4, stride=2)]
        layers += [SpatialAttentionResBlock(4 * d) for _ in range(n_res)]
        for c_in, c_out in ((4 * d, 2 * d), (2 * d, d)):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_in_relu(c_in, c_out, 3)]
        layers += [nn.Conv2d(d, 3, 7, 1, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, stage1: Tensor, expression: Tensor) -> Tensor:
        maps = expression[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.net(torch.cat([x, stage1, maps], dim=1))
