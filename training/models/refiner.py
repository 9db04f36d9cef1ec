"""Stage 2 of RegGAN: the SARGAN-style refinement generator G, with a warp head.

Encoder (7x7 conv, two stride-2 convs) -> spatial-attention residual blocks -> decoder (two
upsample+conv, 7x7 conv). Its input is the face x, stage 1's output s1 and the target expression c
tiled over the image. Its 6 output channels are split into three heads (see ``reggan.py``):
- flow (2): where each output pixel takes the input's own pixels from (tanh, at most ``max_flow``);
- mask (1): where the output is painted instead of warped (sigmoid);
- residual (3): what is painted there, added to s1 (the "ultimate skip" of US-GAN; tanh).
Why a warp: a smile moves the mouth corners further than stage 1's r x r field reaches, and a network
that repaints a whole face trained mostly on renders repaints real faces in render style
; moving the photo's own pixels keeps its texture, and the
mask limits painting to what a warp cannot make (teeth, mouth interior, creases).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

FLOW, MASK, RESIDUAL = 2, 1, 3  # output channels of each head, in this order


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
    """G(x, s1, c) -> (flow [N,2,S,S] in grid units, mask [N,1,S,S] in [0,1], residual [N,3,S,S] in [-1,1])."""

    def __init__(self, n_expressions: int, conv_dim: int = 32, n_res: int = 3, max_flow: float = 0.15) -> None:
        super().__init__()
        d = conv_dim
        self.max_flow = max_flow  # in grid units (2 = the crop's width)
        layers: list[nn.Module] = [conv_in_relu(6 + n_expressions, d, 7)]
        layers += [conv_in_relu(d, 2 * d, 4, stride=2), conv_in_relu(2 * d, 4 * d, 4, stride=2)]
        layers += [SpatialAttentionResBlock(4 * d) for _ in range(n_res)]
        for c_in, c_out in ((4 * d, 2 * d), (2 * d, d)):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_in_relu(c_in, c_out, 3)]
        layers += [nn.Conv2d(d, FLOW + MASK + RESIDUAL, 7, 1, 3)]
        self.net = nn.Sequential(*layers)

    @property
    def head(self) -> nn.Conv2d:
        head = self.net[-1]
        assert isinstance(head, nn.Conv2d)
        return head

    def forward(self, x: Tensor, stage1: Tensor, expression: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        maps = expression[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        out = self.net(torch.cat([x, stage1, maps], dim=1))
        flow, mask, residual = out.split((FLOW, MASK, RESIDUAL), dim=1)
        return torch.tanh(flow) * self.max_flow, torch.sigmoid(mask), torch.tanh(residual)

    @torch.no_grad()
    def start_as_identity(self, mask_logit: float = -3.0) -> None:
        """Zero the head, so training starts from "warp nothing, paint sigmoid(mask_logit) of stage 1 everywhere"
        (-3: output ~ input; +3: output ~ stage 1); its gradient is not zero, so it learns from step one."""
        head = self.head
        assert head.bias is not None
        head.weight.zero_()
        head.bias.zero_()
        head.bias[FLOW : FLOW + MASK] = mask_logit
