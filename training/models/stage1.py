"""Stage 1 of RegGAN: the regression layer with local receptive fields (masked regression / LSRF).

Every output pixel of every channel is a ridge regression on the r x r neighbourhood of the same
channel of the input, plus a bias: one set of maps (W, b) per target expression. It is a locally
connected layer, fitted in closed form ``w = (X^T X + lambda I)^-1 X^T t`` (`fit_ridge`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def shifted_views(x: Tensor, radius: int) -> list[Tensor]:
    """The r*r shifted copies of x (replicate padding), row-major over (dy, dx): each [N,C,H,W]."""
    pad = radius // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    height, width = x.shape[-2:]
    return [padded[..., dy : dy + height, dx : dx + width] for dy in range(radius) for dx in range(radius)]


class LocalRegression(nn.Module):
    """W: [E, C, r*r, S, S] weights, b: [E, C, S, S] biases. Initialised to the identity map."""

    def __init__(self, n_expressions: int, channels: int, size: int, radius: int) -> None:
        super().__init__()
        self.radius = radius
        taps = radius * radius
        weight = torch.zeros(n_expressions, channels, taps, size, size)
        weight[:, :, taps // 2] = 1.0
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(n_expressions, channels, size, size))

    def forward(self, x: Tensor, expression: Tensor) -> Tensor:
        """x: [N,C,S,S] in [-1,1]; expression: [N,E] weights (one-hot or a mix) -> [N,C,S,S]."""
        out = torch.einsum("ne,echw->nchw", expression, self.bias)
        for tap, view in enumerate(shifted_views(x, self.radius)):
            out = out + view * torch.einsum("ne,echw->nchw", expression, self.weight[:, :, tap])
        return out

    @torch.no_grad()
    def set_expression(self, index: int, weight: Tensor, bias: Tensor) -> None:
        """Install a ridge fit ([C, r*r, S, S], [C, S, S]) for expression `index`."""
        self.weight[index].copy_(weight)
        self.bias[index].copy_(bias)


@torch.no_grad()
def fit_ridge(
    neutral: Tensor, target: Tensor, radius: int = 3, lam: float = 0.4, chunk: int = 64
) -> tuple[Tensor, Tensor]:
    """Closed-form per-pixel ridge regression from neutral to target faces.

    neutral, target: [n, C, S, S] aligned pairs (network range). Returns (weight [C, r*r, S, S],
    bias [C, S, S]) minimising sum ||X w - t||^2 + lam ||w||^2 for each pixel and channel, where the
    design row X is the pixel's r x r neighbourhood followed by a constant 1 (the bias is regularised
    too, as in the formula). Accumulates X^T X in float64 over chunks so n can be large.
    """
    if neutral.shape != target.shape or neutral.dim() != 4:
        raise ValueError(f"neutral and target must be equal [n,C,S,S] tensors, got {tuple(neutral.shape)} and {tuple(target.shape)}")
    _, channels, height, width = neutral.shape
    taps = radius * radius + 1
    gram = torch.zeros(channels, height, width, taps, taps, dtype=torch.float64)
    moment = torch.zeros(channels, height, width, taps, dtype=torch.float64)
    for start in range(0, neutral.shape[0], chunk):
        x = neutral[start : start + chunk].double()
        t = target[start : start + chunk].double()
        design = torch.stack(shifted_views(x, radius) + [torch.ones_like(x)], dim=-1)  # [n,C,H,W,taps]
        gram += torch.einsum("nchwi,nchwj->chwij", design, design)
        moment += torch.einsum("nchwi,nchw->chwi", design, t)
    gram += lam * torch.eye(taps, dtype=torch.float64)
    solution = torch.linalg.solve(gram, moment.unsqueeze(-1)).squeeze(-1)  # [C,H,W,taps]
    weight = solution[..., :-1].permute(0, 3, 1, 2).float().contiguous()
    bias = solution[..., -1].float().contiguous()
    return weight, bias
