"""Stage 1 of RegGAN: the regression layer with local receptive fields (masked regression / LSRF).

Every output pixel of every channel is a ridge regression on the r x r neighbourhood of the same
channel of the input, plus a bias: one set of maps (W, b) per target expression. It is a locally
connected layer, fitted in closed form ``w = (X^T X + lambda I)^-1 X^T t`` (`fit_ridge`).

In front of it, per expression, a fixed mean flow moves the input's pixels (`fit_mean_flow`), and a region
bounds what the expression may change (`ellipse_region`):

    moved = x sampled at (p + alpha * flow_c(p));   s1 = moved + alpha * region_c * (R_c(moved) - moved)

for one expression c; a mix carries each expression's paint to the mix's moved input (`LocalRegression.forward`).
With turn keys each expression has maps and a flow per key; with tilt keys too, each turn key a flow per tilt key.

Why: a smile moves the mouth corners 3-7 px of the 128 px crop, beyond the r x r field, so a linear map
alone cross-fades the old lip into the new one (the doubled lip on photos); once the mean motion is
undone the regression only has to paint. And renders change more than a photo should lose (the squint
of a rendered smile costs the person's identity on real faces): the region keeps happy to the lower face
. A model without a fitted motion (flow 0, region 1) is plain LSRF.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reggan_plugin.edit import calibration

from .warp import identity_grid, warp


def shifted_views(x: Tensor, radius: int) -> list[Tensor]:
    """The r*r shifted copies of x (replicate padding), row-major over (dy, dx): each [N,C,H,W]."""
    pad = radius // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    height, width = x.shape[-2:]
    return [padded[..., dy : dy + height, dx : dx + width] for dy in range(radius) for dx in range(radius)]


def _after_first_colour(paint: Tensor, difference: Tensor) -> Tensor:
    """``paint`` [..., C, S, S] with ``difference`` [..., C - 1, S, S] added to its colours after the first (the own
    colours' weights are stored as their differences from the first's, `LocalRegression.share_colour`)."""
    return torch.cat([paint[..., :1, :, :], paint[..., 1:, :, :] + difference], dim=-3)


def _colour_differences(views: list[Tensor], colour_delta: Tensor, blend: Callable[[Tensor], Tensor]) -> Tensor:
    """The own colours' paint beyond the first colour's weights: each tap's view of the colours after the first times
    its ``colour_delta`` maps [E_own * keys, C - 1, r*r, S, S] as ``blend`` gives them (mixed, or per expression),
    summed over the taps."""
    out = views[0] * blend(colour_delta[:, :, 0])
    for tap, view in enumerate(views[1:], start=1):
        out = out + view * blend(colour_delta[:, :, tap])
    return out


def _mix(expression: Tensor, maps: Tensor) -> Tensor:
    """[N,E] expression weights x per-expression maps [E,C,S,S] (or each face's own, [N,E,C,S,S]) -> [N,C,S,S]."""
    if maps.dim() == 5:
        return torch.einsum("ne,nechw->nchw", expression, maps)
    return torch.einsum("ne,echw->nchw", expression, maps)


class LocalRegression(nn.Module):
    """W: [E, C, r*r, S, S] weights (C is 1 where every channel shares them, `share_colour`), b: [E, C, S, S] biases,
    flow [E, 2, S, S] (grid units), region [E, 1, S, S] in [0, 1]. Initialised to the identity map with no motion and
    no bound. With ``keys`` turn keys each expression has that many of each, expression-major (index e * keys + k),
    and a face takes its own blend of them (``turn`` [N, keys], `reggan_plugin.faces.turn.turn_weights`): the
    neighbouring turns' maps are alike, so blending them is a turn between them. With ``tilts`` tilt keys each turn
    key has that many flows ([E * keys * tilts, 2, S, S]), and ``turn`` is each face's weights over both, turn-major
    ([N, keys * tilts], `reggan_plugin.faces.turn.pose_weights`): the maps take its turn, the flow its turn and tilt."""


    flow: Tensor  # buffers (register_buffer), typed for static checks
    region: Tensor
    grid: Tensor
    colour_delta: nn.Parameter | None

    def __init__(self, n_expressions: int, channels: int, size: int, radius: int, warp_mode: str = "bilinear",
                 mix: str = "maps", keys: int = 1, tilts: int = 1) -> None:
        super().__init__()
        self.keys = keys
        self.tilts = tilts
        n_expressions *= keys
        self.radius = radius
        self.warp_mode = warp_mode
        self.mix = mix
        taps = radius * radius
        weight = torch.zeros(n_expressions, channels, taps, size, size)
        weight[:, :, taps // 2] = 1.0
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(n_expressions, channels, size, size))
        # where only some expressions share their weights across the colours (`share_colour`), the others' differences
        # from the first colour, [E_own * keys, C - 1, r*r, S, S] (the colours after the first), for the expressions
        # ``own_colour``
        self.register_parameter("colour_delta", None)
        self.own_colour: tuple[int, ...] = ()
        self.register_buffer("flow", torch.zeros(n_expressions * tilts, 2, size, size))
        self.register_buffer("region", torch.ones(n_expressions, 1, size, size))
        self.register_buffer("grid", identity_grid(size), persistent=False)

    def forward(self, x: Tensor, expression: Tensor, intensity: Tensor | None = None, turn: Tensor | None = None
                ) -> Tensor:
        """x: [N,C,S,S] in [-1,1]; expression: [N,E] weights (one-hot or a mix); intensity [N] (default 1); turn
        [N,keys * tilts]: each face's weights over the pose keys (none without keys) -> [N,C,S,S] (not clamped).

        A mix moves the input by its mixed flow. ``mix`` "carried": each expression's paint is made where its maps
        were fitted, on the input moved by its own flow, and carried to the mix's frame by the difference of the two
        flows. "maps": the mixed maps paint the mix's moved input, each expression's features where that expression
        alone puts them (a smile's teeth and a surprise's dark opening, each at its own lips, between the mix's):
        fragments that change from frame to frame along a curve. One expression (one-hot) is the same either way."""
        alpha = 1.0 if intensity is None else intensity.to(x.dtype)[:, None, None, None]
        mixed = self.motion(expression, alpha, turn)
        moved = warp(x, mixed, self.grid, self.warp_mode)
        if self.mix == "maps":
            paint = self._mixed_maps(moved, expression, turn)
        else:
            paint = self._carried(x, expression, alpha, mixed, turn)
        return moved + alpha * paint

    def _turned(self, maps: Tensor, turn: Tensor | None) -> Tensor:
        """Per-expression maps [E*keys, ...] as each face's blend of its turn keys, [N,E,...] (``turn``: its weights
        over the pose keys, summed over the tilts); as they are without keys."""
        if turn is None:
            return maps
        return self._blend(maps, turn.reshape(-1, self.keys, self.tilts).sum(2) if self.tilts > 1 else turn)

    def _blend(self, maps: Tensor, turn: Tensor) -> Tensor:
        """Maps [E*keys, ...] blended by each face's weights over the turn keys [N, keys] -> [N,E,...]."""
        rest = maps.shape[1:]
        flat = maps.reshape(-1, self.keys, int(math.prod(rest)))
        return torch.einsum("nk,ekr->ner", turn, flat).reshape(turn.shape[0], flat.shape[0], *rest)

    def _flows(self, turn: Tensor | None) -> Tensor:
        """Per-expression flows as each face's blend of its pose keys, [N,E,2,S,S] (`_turned` without tilt keys): the
        turn keys' flows at each tilt blended first, so the model file holds them keyed by turn alone, as it holds
        the maps (``export.mirrored_keys`` stores one side's)."""
        if turn is None or self.tilts == 1:
            return self._turned(self.flow, turn)
        pose = turn.reshape(-1, self.keys, self.tilts)
        size = self.flow.shape[-1]
        per_tilt = self._blend(self.flow.reshape(-1, self.tilts * 2, size, size), pose.sum(2))
        per_tilt = per_tilt.reshape(*per_tilt.shape[:2], self.tilts, 2, size, size)
        return torch.einsum("nt,netcij->necij", pose.sum(1), per_tilt)

    def _mixed_maps(self, moved: Tensor, expression: Tensor, turn: Tensor | None) -> Tensor:
        out = _mix(expression, self._turned(self.bias, turn))
        views = shifted_views(moved, self.radius)
        for tap, view in enumerate(views):
            out = out + view * _mix(expression, self._turned(self.weight[:, :, tap], turn))
        if self.colour_delta is not None:
            own = expression[:, list(self.own_colour)]
            out = _after_first_colour(out, _colour_differences(
                [view[:, 1:] for view in views], self.colour_delta, lambda maps: _mix(own, self._turned(maps, turn))))
        return self.region_of(expression, turn) * (out - moved)

    def _carried(self, x: Tensor, expression: Tensor, alpha: Tensor | float, mixed: Tensor, turn: Tensor | None
                 ) -> Tensor:
        # without keys the maps broadcast over [N,E,...] as they are: an indexed copy would be stored in the model
        # file twice
        n, channels, size, _ = x.shape
        count = expression.shape[1]
        own = (self._flows(turn) * (alpha if isinstance(alpha, float) else alpha[..., None])
               ).expand(n, -1, -1, -1, -1)
        inputs = x[:, None].expand(-1, count, -1, -1, -1).reshape(n * count, channels, size, size)
        moved = warp(inputs, own.reshape(n * count, 2, size, size), self.grid, self.warp_mode)
        painted = self._turned(self.bias, turn)
        views = [view.reshape(n, count, channels, size, size) for view in shifted_views(moved, self.radius)]
        for tap, view in enumerate(views):
            painted = painted + view * self._turned(self.weight[:, :, tap], turn)
        painted = self._with_own_colours(painted, views, turn)
        paint = self._turned(self.region, turn) * (painted - moved.reshape(n, count, channels, size, size))
        carry = (mixed[:, None] - own).reshape(n * count, 2, size, size)
        carried = warp(paint.reshape(n * count, channels, size, size), carry, self.grid, self.warp_mode)
        return torch.einsum("ne,nechw->nchw", expression, carried.reshape(n, count, channels, size, size))

    def _with_own_colours(self, painted: Tensor, views: list[Tensor], turn: Tensor | None) -> Tensor:
        """Each expression's paint [N,E,C,S,S] with the colour differences of those whose colours have weights of
        their own (``colour_delta``) added; the others' as they are. Only those expressions' maps are read, so a model
        whose other expressions share their weights costs little more than one whose every expression does."""
        if self.colour_delta is None:
            return painted
        own = list(self.own_colour)
        extra = _colour_differences([view[:, own, 1:] for view in views], self.colour_delta,
                                    lambda maps: self._turned(maps, turn))
        pieces = [_after_first_colour(painted[:, e : e + 1], extra[:, own.index(e) : own.index(e) + 1]) if e in own
                  else painted[:, e : e + 1] for e in range(painted.shape[1])]
        return torch.cat(pieces, dim=1)

    def motion(self, expression: Tensor, alpha: Tensor | float = 1.0, turn: Tensor | None = None) -> Tensor:
        """[N,2,S,S] (grid units): the flow that moves the input before the ridge, scaled by the intensity."""
        return alpha * _mix(expression, self._flows(turn))

    def region_of(self, expression: Tensor, turn: Tensor | None = None) -> Tensor:
        """[N,1,S,S]: where the expression mix may change the face."""
        return _mix(expression, self._turned(self.region, turn))

    @torch.no_grad()
    def set_expression(self, index: int, weight: Tensor, bias: Tensor) -> None:
        """Install a ridge fit ([C, r*r, S, S], [C, S, S]) for expression `index`."""
        self.weight[index].copy_(weight)
        self.bias[index].copy_(bias)

    @torch.no_grad()
    def share_colour(self) -> bool:
        """Keep one set of neighbourhood weights for every channel where they are all equal (a shared-colour ridge,
        `ridge_solve`): the same output from a third of the maps. Where only some expressions' are (a recipe's
        `ridge_shared_colour` for some alone), the others keep each later colour's difference from the first in
        ``colour_delta`` (`_with_own_colours`). Whether any weights were stored once."""
        weight = self.weight
        if weight.shape[1] == 1 or self.colour_delta is not None:
            return False
        per_expression = weight.reshape(-1, self.keys, *weight.shape[1:])  # [E, keys, C, r*r, S, S]
        alike = [bool(torch.equal(rows, rows[:, :1].expand_as(rows))) for rows in per_expression]
        if not any(alike):
            return False
        own = [e for e, same in enumerate(alike) if not same]
        if own:
            rows = per_expression[own]
            delta = rows[:, :, 1:] - rows[:, :, :1]
            self.colour_delta = nn.Parameter(delta.reshape(-1, *delta.shape[2:]).clone(),
                                             requires_grad=weight.requires_grad)
            self.own_colour = tuple(own)
        self.weight = nn.Parameter(weight[:, :1].clone(), requires_grad=weight.requires_grad)
        return True

    @torch.no_grad()
    def mirror_keys(self) -> None:
        """Give each key turned one way (the first half) the mirror image of the key turned as far the other way:
        flipped left to right, its neighbourhood too, its flow's x negated. A face turned at least as far as the first
        key off the centre and its mirror image then take mirror-image edits (the key facing the camera is left as
        fitted), and a model file stores the turned keys of one side alone (``export.mirrored_keys``).
        Keys must be symmetric about the camera (`reggan_plugin.faces.turn.symmetric_keys`)."""
        for own, mirrored in self._turned_halves():
            own.copy_(mirrored)

    @torch.no_grad()
    def keys_mirrored(self) -> bool:
        """Whether every key turned one way is exactly the mirror image of the key turned as far the other way."""
        return self.keys > 1 and all(torch.equal(own, mirrored) for own, mirrored in self._turned_halves())

    def _turned_halves(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Per map (weights, biases, flows, regions, the own colours' differences): the keys turned one way, as views,
        and the mirror images of the keys turned as far the other way, in the same order."""
        half = self.keys // 2
        maps = [(self.weight, self._mirrored_taps(self.weight), 1), (self.bias, self.bias.flip(-1), 1),
                (self.flow, mirror_flow(self.flow), self.tilts), (self.region, self.region.flip(-1), 1)]
        if self.colour_delta is not None:
            maps.append((self.colour_delta, self._mirrored_taps(self.colour_delta), 1))
        for tensor, mirrored, per_key in maps:  # a flow per tilt key
            shape = (-1, self.keys, per_key, *tensor.shape[1:])
            yield tensor.view(shape)[:, :half], mirrored.reshape(shape)[:, self.keys - half :].flip(1)

    def _mirrored_taps(self, weight: Tensor) -> Tensor:
        """[.., r*r, S, S] weights flipped left to right, over the neighbourhood's columns too."""
        r = self.radius
        return weight.reshape(*weight.shape[:-3], r, r, *weight.shape[-2:]).flip(-3, -1).reshape(weight.shape)

    @torch.no_grad()
    def set_motion(self, index: int, flow: Tensor, region: Tensor) -> None:
        """Install expression `index`'s mean flow [2, S, S] (with tilt keys [tilts, 2, S, S]; one flow is every
        tilt's) and region [1, S, S] (its ridge maps are fitted on inputs moved by the same flow, `apply_flow`)."""
        self.flow.view(-1, self.tilts, *self.flow.shape[1:])[index].copy_(flow)
        self.region[index].copy_(region)


def mirror_flow(flow: Tensor) -> Tensor:
    """Flows [..., 2, S, S] (grid units, x first) of the mirror image: flipped left to right, x negated."""
    return flow.flip(-1) * torch.tensor([-1.0, 1.0], dtype=flow.dtype, device=flow.device)[:, None, None]


@torch.no_grad()
def apply_flow(x: Tensor, flow: Tensor, mode: str = "bilinear", chunk: int = 256, tilts: Tensor | None = None
               ) -> Tensor:
    """x [n,C,S,S] moved by one expression's flow [2,S,S] and ``mode``, as the forward pass moves it (the ridge's
    inputs); with ``tilts`` [n, T], its flows at the tilt keys [T, 2, S, S], each face by its blend (`tilted_flows`)."""
    grid = identity_grid(x.shape[-1]).to(x.device)
    if not len(x):
        return x
    if tilts is None:
        return torch.cat([warp(part, flow[None].expand(len(part), -1, -1, -1), grid, mode) for part in x.split(chunk)])
    return torch.cat([warp(part, tilted_flows(flow, t.to(x.device)), grid, mode)
                      for part, t in zip(x.split(chunk), tilts.split(chunk))])


def ellipse_region(size: int, ellipse: tuple[float, ...]) -> Tensor:
    """[1,S,S] soft ellipse mask (`reggan_plugin.edit.calibration.ellipse_region`, the one the runtime's gains bound an edit
    to): centre (cx, cy) and radii (rx, ry) as fractions of the crop."""
    return torch.from_numpy(calibration.ellipse_region(size, ellipse))[None]


def fit_mean_flow(neutral: Tensor, target: Tensor, grid_points: int = 16, steps: int = 300, batch: int = 64,
                  lr: float = 3e-3, seed: int = 0, mode: str = "bilinear",
                  points: tuple[Tensor, Tensor] | None = None, points_weight: float = 0.0,
                  weights: Tensor | None = None, tilts: Tensor | None = None) -> Tensor:
    """The one smooth flow [2, S, S] (grid units) that best warps every neutral face onto its target (mean
    L1): a grid_points x grid_points control grid, bicubic to full size, fitted by Adam on random batches.
    Smooth and shared by all faces, so it learns the expression's motion, not any one person's.

    ``points``: the pairs' landmarks (neutral, target) [n,K,2] in grid units, where the face model's renders give
    them; with ``points_weight`` the flow at each target point must also reach back to its neutral point (mean L1,
    grid units, times the weight). A large motion of plain skin (a dropped jaw) shows the pictures' L1 nothing to
    follow but the edges it moves: alone, the fit pulls the chin's edge down and leaves the jaw's sides.
    ``weights`` [n]: batches draw each pair in proportion to its weight (else alike). ``tilts`` [n, T]: each pair's
    weights over T tilt keys (`reggan_plugin.faces.turn.tilt_weights`): a flow per key [T, 2, S, S], each pair moved
    by its blend of them (`tilted_flows`), so a tilt between two keys takes the flow between theirs; held to its
    landmarks, each pair's blend reaches back from its own target points to its neutral ones, in each batch."""
    size = neutral.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    grid = identity_grid(size).to(neutral.device)
    control = torch.zeros(1 if tilts is None else tilts.shape[1], 2, grid_points, grid_points, device=neutral.device,
                          requires_grad=True)
    optimiser = torch.optim.Adam([control], lr)
    anchors = paired = None
    if points is not None and points_weight > 0 and tilts is None:
        src, dst = (p.reshape(-1, 2).to(neutral.device, torch.float32) for p in points)
        known = torch.isfinite(src).all(1) & torch.isfinite(dst).all(1)
        anchors = (src[known], dst[known]) if bool(known.any()) else None
    elif points is not None and points_weight > 0:
        # per pair, each moved by its own blend of the tilt keys' flows; a pair without landmarks (a mirror image)
        # counts for nothing here
        src, dst = (p.to(neutral.device, torch.float32) for p in points)
        known = torch.isfinite(src).all(-1) & torch.isfinite(dst).all(-1)
        paired = (torch.nan_to_num(src), torch.nan_to_num(dst), known) if bool(known.any()) else None
    with torch.enable_grad():
        for _ in range(steps):
            count = min(batch, len(neutral))
            idx = (torch.randint(len(neutral), (count,), generator=gen) if weights is None else
                   torch.multinomial(weights.double(), count, replacement=True, generator=gen)).to(neutral.device)
            flow = F.interpolate(control, size=size, mode="bicubic", align_corners=False)
            each = (flow.expand(len(idx), -1, -1, -1) if tilts is None
                    else tilted_flows(flow, tilts.to(neutral.device)[idx]))
            loss = (warp(neutral[idx], each, grid, mode) - target[idx]).abs().mean()
            if anchors is not None:
                src, dst = anchors
                reached = F.grid_sample(flow, dst[None, None], align_corners=False)[0, :, 0].T  # [K,2]
                loss = loss + points_weight * (reached - (src - dst)).abs().mean()
            if paired is not None:
                src, dst, known = (p[idx] for p in paired)
                reached = F.grid_sample(each, dst[:, None], align_corners=False)[:, :, 0].transpose(1, 2)  # [B,K,2]
                miss = (reached - (src - dst)).abs().sum(-1) * known
                loss = loss + points_weight * miss.sum() / (2 * known.sum().clamp(min=1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    flows = F.interpolate(control.detach(), size=size, mode="bicubic", align_corners=False)
    return flows[0] if tilts is None else flows


def tilted_flows(flows: Tensor, tilts: Tensor) -> Tensor:
    """[n, 2, S, S]: each of n faces' blend of the flows at the tilt keys [T, 2, S, S] by its weights [n, T]."""
    return torch.einsum("nt,tchw->nchw", tilts.to(flows), flows)


@torch.no_grad()
def identity_prior(taps: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[taps]: the solution that copies the pixel (centre tap 1, the others and the bias 0). Shrinking toward it
    rather than toward 0 keeps a fit on a few pairs from darkening the face: few pairs, little evidence of change."""
    prior = torch.zeros(taps, dtype=dtype, device=device)
    prior[(taps - 1) // 2] = 1.0
    return prior


def ridge_normal_equations(neutral: Tensor, target: Tensor, radius: int, chunk: int = 64,
                           weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(X^T W X [C,H,W,k,k], X^T W t [C,H,W,k]) float64, k = r*r + 1: the design of `fit_ridge`
    (r x r same-channel neighbourhood, replicate padding, then a constant 1), each pair's rows weighted by
    ``weights`` [n] (else 1)."""
    _, channels, height, width = neutral.shape
    taps = radius * radius + 1
    gram = torch.zeros(channels, height, width, taps, taps, dtype=torch.float64, device=neutral.device)
    moment = torch.zeros(channels, height, width, taps, dtype=torch.float64, device=neutral.device)
    for start in range(0, neutral.shape[0], chunk):
        x = neutral[start : start + chunk].double()
        t = target[start : start + chunk].double()
        design = torch.stack([*shifted_views(x, radius), torch.ones_like(x)], dim=-1)
        if weights is not None:
            t = t * weights[start : start + chunk].to(t)[:, None, None, None]
            weighted = design * weights[start : start + chunk].to(design)[:, None, None, None, None]
        else:
            weighted = design
        gram += torch.einsum("nchwi,nchwj->chwij", weighted, design)
        moment += torch.einsum("nchwi,nchw->chwi", design, t)
    return gram, moment


@torch.no_grad()
def ridge_solve(gram: Tensor, moment: Tensor, lam: float, toward_identity: bool = False, shared_colour: bool = False,
                colour_tie: float = 0.0) -> tuple[Tensor, Tensor]:
    """Solve (X^T X + lam I) w = X^T t + lam w0 -> (weight [C, r*r, H, W], bias [C, H, W]) float32; w0 is 0, or
    with ``toward_identity`` the map that copies its input (`identity_prior`). ``shared_colour``: one set of
    neighbourhood weights for every channel (each its own bias), fitted on all channels' rows: a filter that answers
    an edge alike in red, green and blue, so an edge sharper than the training renders' cannot come apart into
    colour fringes. ``colour_tie`` (without ``shared_colour``): each channel's weights its own but drawn toward the
    channels' mean (`_colour_tied_solve`), between the two."""
    if shared_colour:
        return _shared_colour_solve(gram, moment, lam, toward_identity)
    if colour_tie > 0:
        return _colour_tied_solve(gram, moment, lam, toward_identity, colour_tie)
    taps = gram.shape[-1]
    eye = torch.eye(taps, dtype=gram.dtype, device=gram.device)
    if toward_identity:
        moment = moment + lam * identity_prior(taps, gram.dtype, gram.device)
    solution = torch.linalg.solve(gram + lam * eye, moment.unsqueeze(-1)).squeeze(-1)
    return solution[..., :-1].permute(0, 3, 1, 2).float().contiguous(), solution[..., -1].float().contiguous()


def _shared_colour_solve(gram: Tensor, moment: Tensor, lam: float, toward_identity: bool) -> tuple[Tensor, Tensor]:
    """`ridge_solve` with the neighbourhood weights shared by the C channels: the per-channel systems summed over
    the channels, with a bias column per channel."""
    channels, taps = gram.shape[0], gram.shape[-1] - 1
    size = taps + channels
    shared = gram.new_zeros(*gram.shape[1:-2], size, size)
    rhs = moment.new_zeros(*moment.shape[1:-1], size)
    shared[..., :taps, :taps] = gram[..., :taps, :taps].sum(0)
    rhs[..., :taps] = moment[..., :taps].sum(0)
    for c in range(channels):
        shared[..., :taps, taps + c] = gram[c, ..., :taps, taps]
        shared[..., taps + c, :taps] = gram[c, ..., taps, :taps]
        shared[..., taps + c, taps + c] = gram[c, ..., taps, taps]
        rhs[..., taps + c] = moment[c, ..., taps]
    if toward_identity:
        rhs[..., :taps] += lam * identity_prior(taps + 1, gram.dtype, gram.device)[:taps]
    eye = torch.eye(size, dtype=gram.dtype, device=gram.device)
    solution = torch.linalg.solve(shared + lam * eye, rhs.unsqueeze(-1)).squeeze(-1)
    weight = solution[..., :taps].permute(2, 0, 1).unsqueeze(0).expand(channels, -1, -1, -1)
    return weight.float().contiguous(), solution[..., taps:].permute(2, 0, 1).float().contiguous()


def _colour_tied_solve(gram: Tensor, moment: Tensor, lam: float, toward_identity: bool, tie: float
                       ) -> tuple[Tensor, Tensor]:
    """`ridge_solve` with mu * sum_c ||w_c - mean_c w_c||^2 added: the channels' systems solved together, each with
    its own weights and bias. mu is ``tie`` times the pixel's mean diagonal of X^T X over its weight taps, so the tie is
    the same share of the data's own weight at every pixel and for any number of pairs: 0 gives each channel its own
    filter, a large tie one filter for all (`_shared_colour_solve`). A filter per colour moves the lips' colour off the
    teeth, one shared carries it into them; where edges sharper than the training pairs' meet channels whose filters
    differ, they come apart into colour fringes, which the tie holds back."""
    channels, taps = gram.shape[0], gram.shape[-1]
    weights = taps - 1
    size = channels * taps
    joint = gram.new_zeros(*gram.shape[1:-2], size, size)
    rhs = torch.cat(list(moment), dim=-1)
    eye = torch.eye(taps, dtype=gram.dtype, device=gram.device)
    tap_eye = torch.eye(weights, dtype=gram.dtype, device=gram.device)
    mu = tie * torch.diagonal(gram[..., :weights, :weights], dim1=-2, dim2=-1).mean(dim=(0, -1))[..., None, None]
    for c in range(channels):
        block = slice(c * taps, (c + 1) * taps)
        joint[..., block, block] = gram[c] + lam * eye
        if toward_identity:
            rhs[..., block] += lam * identity_prior(taps, gram.dtype, gram.device)
        for d in range(channels):
            share = (1.0 if c == d else 0.0) - 1.0 / channels
            joint[..., c * taps : c * taps + weights, d * taps : d * taps + weights] += share * mu * tap_eye
    solution = torch.linalg.solve(joint, rhs.unsqueeze(-1)).squeeze(-1).unflatten(-1, (channels, taps))
    solution = solution.permute(2, 0, 1, 3)
    return solution[..., :-1].permute(0, 3, 1, 2).float().contiguous(), solution[..., -1].float().contiguous()


@torch.no_grad()
def fit_ridge(
    neutral: Tensor, target: Tensor, radius: int = 3, lam: float = 0.4, chunk: int = 64, toward_identity: bool = False,
    shared_colour: bool = False, weights: Tensor | None = None, colour_tie: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Closed-form per-pixel ridge regression from neutral to target faces.

    neutral, target: [n, C, S, S] aligned pairs (network range). Returns (weight [C, r*r, S, S],
    bias [C, S, S]) minimising sum ||X w - t||^2 + lam ||w||^2 for each pixel and channel, where the
    design row X is the pixel's r x r neighbourhood followed by a constant 1 (the bias is regularised
    too, as in the formula). Accumulates X^T X in float64 over chunks so n can be large. ``toward_identity``:
    lam ||w - w0||^2 instead, w0 the map that copies its input (`identity_prior`); ``shared_colour``, ``colour_tie``:
    see `ridge_solve`; ``weights`` [n]: each pair's rows count that much (a weighted least squares).
    """
    if neutral.shape != target.shape or neutral.dim() != 4:
        raise ValueError(f"neutral and target must be equal [n,C,S,S] tensors, got {tuple(neutral.shape)} and {tuple(target.shape)}")
    return ridge_solve(*ridge_normal_equations(neutral, target, radius, chunk, weights), lam, toward_identity,
                       shared_colour, colour_tie)
