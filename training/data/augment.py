"""Pair augmentation on batches (torch): every random draw is shared by the two images of a pair.

Geometric jitter (small similarity + mirror) cuts the S x S crop out of the wider cached crop, so
the pair stays pixel-aligned; photometric changes (brightness, contrast, saturation, hue, gamma,
noise, blur) are one function applied to both images, so the network learns to keep them rather
than to undo them. Render noise and JPEG blocks on the input alone (``degrade_inputs``) are what the
edit must ignore instead. All draws come from the caller's ``torch.Generator`` (on the CPU), which makes a
run reproducible and resumable on any device.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from reggan_plugin.imaging.filters import degrained

from ..train_config import AugmentConfig

# RGB <-> YIQ (NTSC): hue is a rotation of the (I, Q) chroma plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def center_crop(images: Tensor, size: int) -> Tensor:
    """The central size x size square of [B, C, T, T] (the runtime's crop, no jitter)."""
    m = (images.shape[-1] - size) // 2
    return images[..., m : m + size, m : m + size]


def geometric_thetas(cfg: AugmentConfig, n: int, size: int, total: int, gen: torch.Generator) -> Tensor:
    """[n, 2, 3] affine_grid matrices taking output (S) normalised coords to cache (T) normalised coords."""
    k = size / total
    angle = torch.deg2rad(_uniform(gen, n, -cfg.rotate_deg, cfg.rotate_deg))
    zoom = _uniform(gen, n, 1 - cfg.scale, 1 + cfg.scale)
    shift = _uniform(gen, 2 * n, -cfg.translate, cfg.translate).view(n, 2) * 2 * k
    mirror = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n)
    cos, sin = torch.cos(angle) * k / zoom, torch.sin(angle) * k / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * mirror, -sin, shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * mirror, cos, shift[:, 1]
    return theta


def _gaussian_kernels(sigma: Tensor, radius: int) -> Tensor:
    """[n, 1, 2r+1, 2r+1] normalised Gaussians; sigma 0 gives a delta."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    s = sigma.clamp(min=1e-3)[:, None]
    g = torch.exp(-0.5 * (x[None] / s) ** 2)
    g = g / g.sum(dim=1, keepdim=True)
    return (g[:, :, None] * g[:, None, :])[:, None]


def _blurred(x: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """[B, C, H, W] each blurred by its own Gaussian (``sigma`` [B] px; 0: unchanged), edges replicated."""
    b, c, h, w = x.shape
    kernels = _gaussian_kernels(sigma, radius).to(x.device)
    padded = F.pad(x.reshape(1, b * c, h, w), (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernels.repeat_interleave(c, dim=0), groups=b * c).reshape(b, c, h, w)


def photometric(images: list[Tensor], cfg: AugmentConfig, gen: torch.Generator) -> list[Tensor]:
    """Apply one random photometric function per pair to each [B, 3, S, S] tensor in [0, 1]."""
    ref = images[0]
    n, device = ref.shape[0], ref.device

    def draw(low: float, high: float) -> Tensor:
        return _uniform(gen, n, low, high).to(device)[:, None, None, None]

    brightness = draw(-cfg.brightness, cfg.brightness)
    contrast = draw(1 - cfg.contrast, 1 + cfg.contrast)
    saturation = draw(1 - cfg.saturation, 1 + cfg.saturation)
    hue = torch.deg2rad(_uniform(gen, n, -cfg.hue_deg, cfg.hue_deg))
    gamma = draw(-cfg.gamma, cfg.gamma).exp()
    gain = (draw(-cfg.exposure, cfg.exposure) * math.log(2.0)).exp()
    balance = torch.ones(n, 3, 1, 1, device=device)
    balance[:, 0] = 1 + draw(-cfg.white_balance, cfg.white_balance)[:, 0]
    balance[:, 2] = 1 + draw(-cfg.white_balance, cfg.white_balance)[:, 0]
    noise_sigma = draw(0.0, cfg.noise)
    noise = torch.randn(ref.shape, generator=gen).to(device) * noise_sigma
    blur_on = torch.rand(n, generator=gen) < cfg.blur_prob
    blur_sigma = torch.where(blur_on, _uniform(gen, n, 0.3, max(cfg.blur_sigma, 0.3)), torch.zeros(n))
    # hue rotation as one 3x3 colour matrix per pair: RGB -> YIQ, rotate (I, Q), back
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(hue), -torch.sin(hue)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(hue), torch.cos(hue)
    colour = (torch.linalg.inv(_YIQ) @ rot @ _YIQ).to(device)
    luma = _LUMA.to(device)[None, :, None, None]
    mean = (ref * luma).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)  # the neutral's: one function per pair
    radius = max(1, math.ceil(3 * max(cfg.blur_sigma, 0.3)))
    out = []
    for img in images:
        # exposure and white balance act on linear light (sRGB approximated by a 2.2 power), the rest on the encoding
        x = ((img.clamp(0.0, 1.0) ** 2.2) * gain * balance).clamp(0.0, 1.0) ** (1 / 2.2)
        x = x + brightness
        x = (x - mean) * contrast + mean
        grey = (x * luma).sum(1, keepdim=True)
        x = grey + (x - grey) * saturation
        x = torch.einsum("nij,njhw->nihw", colour, x)
        x = x.clamp(0.0, 1.0) ** gamma
        if bool(blur_on.any()):
            x = _blurred(x, blur_sigma, radius)
        out.append((x + noise).clamp(0.0, 1.0))
    return out


def augment_pairs(neutral: Tensor, target: Tensor, cfg: AugmentConfig, size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """[B, 3, T, T] float in [0, 1] (cache crops) -> two [B, 3, S, S] in [0, 1], augmented alike."""
    if not cfg.enabled:
        return center_crop(neutral, size), center_crop(target, size)
    n, total = neutral.shape[0], neutral.shape[-1]
    theta = geometric_thetas(cfg, n, size, total, gen).to(neutral.device)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    both = torch.cat([neutral, target])
    warped = F.grid_sample(both, torch.cat([grid, grid]), mode="bilinear", padding_mode="border", align_corners=False)
    x, t = warped[:n], warped[n:]
    x, t = photometric([x, t], cfg, gen)
    return degrade_inputs(x, t, cfg, gen)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """HxWx3 float [0, 1] through a JPEG file at ``quality`` (4:2:0, as cameras and most tools write it)."""
    buf = io.BytesIO()
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255.0


def degrade_inputs(x: Tensor, t: Tensor, cfg: AugmentConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """What a user's picture carries and the target does not: a photograph's sharper detail, render noise (as the
    runtime sees it, after ``reggan_plugin.imaging.filters.degrained``) and JPEG blocks, on the input [B, 3, S, S] in
    [0, 1] alone. The target gets the input's change too: the pair keeps the clean edit, which is what must not depend
    on the input's flaws (a target with its own noise would teach the map to invent some)."""
    if cfg.input_noise <= 0 and cfg.input_jpeg_prob <= 0 and cfg.input_sharpen <= 0:
        return x, t
    n, original = x.shape[0], x
    if cfg.input_sharpen > 0:
        amount = _uniform(gen, n, 0.0, cfg.input_sharpen).view(n, 1, 1, 1).to(x.device)
        x = torch.clamp(x + amount * (x - _blurred(x, torch.ones(n), 3)), 0.0, 1.0)
    sigma = _uniform(gen, n, 0.0, cfg.input_noise)
    noise = torch.randn(x.shape, generator=gen)
    jpeg = torch.rand(n, generator=gen) < cfg.input_jpeg_prob
    low, high = cfg.input_jpeg_quality
    quality = torch.randint(int(low), int(high) + 1, (n,), generator=gen)
    images = x.detach().cpu().permute(0, 2, 3, 1).numpy()
    out = np.empty_like(images)
    for i, img in enumerate(images):
        if cfg.input_noise > 0:
            img = degrained(np.clip(img + sigma[i].item() * noise[i].permute(1, 2, 0).numpy(), 0.0, 1.0))
        out[i] = _jpeg(img, int(quality[i])) if jpeg[i] else img
    degraded = torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device)
    return degraded, t + (degraded - original)
