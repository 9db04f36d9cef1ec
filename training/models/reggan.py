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

`run` also gives each output's motion: where its pixels came from in the input, in crop pixels (x, y).
The runtime moves the full-resolution frame by it and pastes only the rest of the change (reggan_plugin/edit/blend.py): a
moved lip pasted as a low-resolution difference would ghost. Stage 1's motion is its mean flow; the full
output's follows the refiner's mask, stage 1's flow where it paints and the refiner's where it warps:
    motion = m1 + region_c * (1 - alpha * m) * (alpha * flow - m1),   m1 = stage 1's motion

A model with turn keys (`ModelConfig.turn_keys`) takes c per expression and key (`split_turn`), with tilt keys per
expression, turn key and tilt key: stage 1 paints with the face's blend of its keys and moves by its blend of their
flows; the refiner sees c summed over them. Trained on a keyed stage 1, each pair gets its own
turn's weights (solver.py), as the runtime gives a face.

A model with an ``exposure_reference`` runs all of this on the crop brought to that brightness and scales the
change back (exposure.py): x + (y(g x) - g x) / g, g the crop's gain; the motions are geometry and stay as they are.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .exposure import exposure_gain, normalise
from .refiner import Refiner
from .stage1 import LocalRegression
from .warp import warp


class RegGANOutputs(NamedTuple):
    output: Tensor  # [N,3,S,S] in [-1,1]
    stage1: Tensor  # [N,3,S,S] in [-1,1]
    motion: Tensor  # [N,2,S,S] crop pixels (x, y): output(p) draws on input(p + motion(p))
    stage1_motion: Tensor  # [N,2,S,S], the same for stage 1
    flow: Tensor  # the refiner's heads, for the training losses
    mask: Tensor


class RegGAN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_expr = len(config.expressions)
        self.stage1 = LocalRegression(n_expr, 3, config.image_size, config.radius, config.warp, config.mix,
                                      config.keys_per_expression, config.tilts_per_key)
        self.refiner = Refiner(n_expr, config.conv_dim, config.n_res, config.max_flow)

    def run(self, image: Tensor, expression: Tensor, intensity: Tensor) -> RegGANOutputs:
        """image [N,3,S,S] sRGB in [-1,1]; expression [N,E]; intensity [N] -> every output (RegGANOutputs)."""
        if not self.config.exposure_reference:
            return self._run(image, expression, intensity)
        gain = exposure_gain(image, self.config.exposure_reference)
        scaled = normalise(image, gain)
        out = self._run(scaled, expression, intensity)
        # the change goes back, not the output: where nothing changes (intensity 0) the crop returns exactly
        back = [(image + (y - scaled) / gain).clamp(-1.0, 1.0) for y in (out.output, out.stage1)]
        return out._replace(output=back[0], stage1=back[1])

    def split_turn(self, expression: Tensor) -> tuple[Tensor, Tensor | None]:
        """The expression input as (weights over the expressions [N,E], each face's weights over the pose keys
        [N,K*T] (turn-major; T tilt keys, else 1) or None without keys). A keyed model takes a weight per expression
        and key, expression-major: the runtime gives the mix times the face's pose weights, whose sums give both back.
        A keyed model given one weight per expression (a caller that knows no poses) takes the turn key nearest
        facing the camera, its tilt keys alike."""
        keys, tilts = self.config.turn_keys, self.config.tilts_per_key
        if not keys:
            return expression, None
        n, width = expression.shape
        if width == len(self.config.expressions):
            nearest = min(range(len(keys)), key=lambda k: abs(keys[k]))
            turn = F.one_hot(torch.full((n,), nearest), len(keys)).to(expression)
            return expression, (turn[:, :, None] / tilts).expand(-1, -1, tilts).reshape(n, -1)
        per_key = expression.reshape(n, -1, len(keys) * tilts)
        turn = per_key.sum(1)
        return per_key.sum(2), turn / turn.sum(1, keepdim=True).clamp_min(1e-8)

    def keyed(self, expression: Tensor, turn: Tensor | None) -> Tensor:
        """Weights over the expressions [N,E] and each face's weights over the pose keys [N,K*T] as the input a keyed
        model takes (the inverse of `split_turn`); without keys or ``turn``, ``expression`` itself."""
        if not self.config.turn_keys or turn is None:
            return expression
        return (expression[:, :, None] * turn[:, None, :].to(expression)).reshape(len(expression), -1)

    def _run(self, image: Tensor, expression: Tensor, intensity: Tensor) -> RegGANOutputs:
        expression, turn = self.split_turn(expression)
        s1 = self.stage1(image, expression, intensity, turn)
        flow, mask, residual = self.refiner(image, s1, expression)
        alpha = intensity.to(image.dtype)[:, None, None, None]
        warped = warp(image, alpha * flow, self.stage1.grid, self.config.warp)  # one identity grid for both stages
        out = warped + alpha * mask * ((s1 + residual).clamp(-1.0, 1.0) - warped)
        preview = s1.clamp(-1.0, 1.0)
        region = self.stage1.region_of(expression, turn)
        out = preview + region * (out - preview)
        m1 = self.stage1.motion(expression, alpha, turn)
        motion = m1 + region * (1.0 - alpha * mask) * (alpha * flow - m1)
        to_px = image.shape[-1] / 2.0  # grid units span 2 over the crop's width
        return RegGANOutputs(out, preview, motion * to_px, m1 * to_px, flow, mask)

    def forward(self, image: Tensor, expression: Tensor, intensity: Tensor, heads: bool = False) -> tuple[Tensor, ...]:
        """-> (output, stage1), and with ``heads`` also (flow, mask) for the training losses (see `run`)."""
        out = self.run(image, expression, intensity)
        return (out.output, out.stage1, out.flow, out.mask) if heads else (out.output, out.stage1)
