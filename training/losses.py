"""RegGAN's losses, named as in the papers.

Stage 1 (masked regression / LSRF): the ridge objective ``sum ||X w - t||^2 + lambda ||w||^2`` per pixel
and channel, minimised in closed form. `select_ridge` chooses the receptive field r and lambda on a
validation split; it shares one Gram matrix across lambdas (`training.models.stage1`: ``ridge_normal_equations``,
the system `fit_ridge` solves, then ``ridge_solve`` per lambda).

Stage 2 (StarGAN / US-GAN / SARGAN, WGAN-GP):
    L_D = -E[D_src(t)] + E[D_src(y)] + lambda_cls L_cls^r + lambda_gp L_gp
    L_G = -E[D_src(y)] + lambda_cls L_cls^f + lambda_l1 sum_k |down_k(y) - down_k(t)|_1 + lambda_l2 |y - t|_2^2
          + lambda_grad |nabla y - nabla t|_1 + lambda_sparse |m_out (y - x)|_1 + lambda_ident |G(x, neutral) - x|_1
          + lambda_mask mean(m) + lambda_flow_tv |nabla flow|_1
x the neutral input, t the paired target, y = G(x, c) the refined face, m_out the part of the crop an
expression does not move (outside the face oval), m the paint mask and flow the warp of the refiner.
The L1 is taken at full, half and quarter resolution: the coarse terms give the warp a gradient that
reaches further than one pixel (bilinear sampling alone only sees its 2 x 2 neighbourhood).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from reggan_plugin.geometry.align import CANONICAL_BOX

from .models.stage1 import ridge_normal_equations, ridge_solve, shifted_views

# ---------------------------------------------------------------------------------------------------
# Stage 1: ridge regression, closed form


@torch.no_grad()
def apply_ridge(x: Tensor, weight: Tensor, bias: Tensor, radius: int) -> Tensor:
    """x [n,C,S,S] -> the regression output, as `LocalRegression` computes it for one expression."""
    out = bias.unsqueeze(0).expand_as(x).clone()
    for tap, view in enumerate(shifted_views(x, radius)):
        out += view * weight[:, tap]
    return out


@dataclass(frozen=True)
class RidgeRow:
    expression: str
    radius: int
    lam: float
    val_l1: float  # mean |R(x) - t| in the network range [-1, 1]
    val_psnr: float  # dB, peak-to-peak 2
    copy_l1: float  # the copy baseline (output = input) on the same pairs


def psnr(a: Tensor, b: Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")


@torch.no_grad()
def select_ridge(train: dict[str, tuple[Tensor, Tensor]], val: dict[str, tuple[Tensor, Tensor]],
                 radii: tuple[int, ...], lambdas: tuple[float, ...], toward_identity: bool = False,
                 shared_colour: bool = False, colour_tie: float = 0.0
                 ) -> tuple[int, dict[str, float], list[RidgeRow]]:
    """Choose stage 1's radius (one for all expressions: the model has one) and a lambda per expression.

    ``train`` / ``val`` map expression -> (neutral, target) [n,3,S,S]. The radius minimises the mean over
    expressions of the best validation L1; each expression then takes its best lambda at that radius.
    Returns (radius, {expression: lambda}, the full table).
    """
    rows: list[RidgeRow] = []
    for expr, (xt, tt) in train.items():
        xv, tv = val[expr]
        copy = float((xv - tv).abs().mean())
        for r in radii:
            gram, moment = ridge_normal_equations(xt, tt, r)
            for lam in lambdas:
                w, b = ridge_solve(gram, moment, lam, toward_identity, shared_colour, colour_tie)
                pred = apply_ridge(xv, w, b, r)
                rows.append(RidgeRow(expr, r, lam, float((pred - tv).abs().mean()), psnr(pred, tv), copy))
            del gram, moment

    def best(expr: str, r: int) -> RidgeRow:
        return min((row for row in rows if row.expression == expr and row.radius == r), key=lambda row: row.val_l1)

    radius = min(radii, key=lambda r: sum(best(e, r).val_l1 for e in train) / max(len(train), 1))
    return radius, {e: best(e, radius).lam for e in train}, rows


def ridge_table_markdown(rows: list[RidgeRow], radius: int, lambdas: dict[str, float]) -> str:
    lines = ["| expression | r | lambda | val L1 | val PSNR (dB) | copy L1 | chosen |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        mark = "**yes**" if row.radius == radius and lambdas.get(row.expression) == row.lam else ""
        lines.append(f"| {row.expression} | {row.radius} | {row.lam:g} | {row.val_l1:.4f} | {row.val_psnr:.2f} | "
                     f"{row.copy_l1:.4f} | {mark} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# Stage 2: adversarial refinement


def gradient_penalty(d_src_hat: Tensor, x_hat: Tensor) -> Tensor:
    """WGAN-GP: E[(|grad_x_hat D_src(x_hat)|_2 - 1)^2] on random interpolates of real and fake."""
    grad = torch.autograd.grad(d_src_hat.sum(), x_hat, create_graph=True)[0]
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_cls: cross-entropy of D's expression head (single-label, StarGAN's RaFD setting)."""
    return F.cross_entropy(logits, labels)


def multiscale_l1(y: Tensor, t: Tensor, scales: int = 3) -> Tensor:
    """Mean of |y - t|_1 at full resolution and ``scales - 1`` successive 2x average-pooled ones."""
    total = (y - t).abs().mean()
    for _ in range(scales - 1):
        y, t = F.avg_pool2d(y, 2), F.avg_pool2d(t, 2)
        total = total + (y - t).abs().mean()
    return total / scales


def total_variation(field: Tensor) -> Tensor:
    """Mean |d field/dx| + |d field/dy|: a smooth warp moves features, a rough one tears them."""
    return (field[..., :, 1:] - field[..., :, :-1]).abs().mean() + (field[..., 1:, :] - field[..., :-1, :]).abs().mean()


def image_gradient_l1(y: Tensor, t: Tensor) -> Tensor:
    """|dy/dx - dt/dx|_1 + |dy/dy - dt/dy|_1: keeps edges (eyes, hair, texture) as sharp as the target's.
    Differences are linear, so this is the total variation of y - t."""
    return total_variation(y - t)


def face_oval_mask(size: int, softness: float = 0.06, grow: float = 1.15) -> Tensor:
    """[1,1,S,S] soft ellipse (1 inside) around the canonical face box (brows to chin, cheek to cheek),
    grown by ``grow``: where an expression moves pixels. 1 - mask is where a change only loses identity."""
    bx, by, bw, bh = CANONICAL_BOX
    cx, cy, rx, ry = bx + bw / 2, by + bh / 2 - 0.02, bw / 2 * grow, bh / 2 * grow
    u = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    d = ((u[None, :] - cx) / rx) ** 2 + ((u[:, None] - cy) / ry) ** 2
    return torch.sigmoid((1 - d.sqrt()) / softness)[None, None]


def masked_residual_sparsity(y: Tensor, x: Tensor, outside: Tensor) -> Tensor:
    """mean |m_out (y - x)|_1: penalises repainting hair, background and jaw line (identity, no seams)."""
    return (outside * (y - x)).abs().mean()
