"""The torch networks: the exact ridge fit, intensity semantics, shapes."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is needed for training code (pip install .[train])")

from training.config import TINY, ModelConfig  # noqa: E402
from training.models import (  # noqa: E402
    Discriminator,
    LocalRegression,
    RegGAN,
    apply_flow,
    ellipse_region,
    fit_mean_flow,
    fit_ridge,
)


def _design_row(x: np.ndarray, c: int, y: int, xx: int, r: int) -> np.ndarray:
    """The r x r replicate-padded neighbourhood of pixel (y, xx) in channel c, then a 1."""
    pad = r // 2
    padded = np.pad(x[c], pad, mode="edge")
    return np.append(padded[y : y + r, xx : xx + r].ravel(), 1.0)


def test_fit_ridge_matches_numpy_solve():
    rng = np.random.default_rng(0)
    n, c, s, r, lam = 7, 2, 5, 3, 0.4
    neutral = rng.uniform(-1, 1, (n, c, s, s))
    target = rng.uniform(-1, 1, (n, c, s, s))
    weight, bias = fit_ridge(torch.tensor(neutral), torch.tensor(target), radius=r, lam=lam, chunk=3)
    for ch, y, x in [(0, 0, 0), (1, 2, 3), (0, 4, 4), (1, 0, 4)]:
        design = np.stack([_design_row(neutral[i], ch, y, x, r) for i in range(n)])
        expected = np.linalg.solve(design.T @ design + lam * np.eye(r * r + 1), design.T @ target[:, ch, y, x])
        got = np.append(weight[ch, :, y, x].numpy(), bias[ch, y, x].item())
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_ridge_shared_by_the_colours_matches_numpy_solve_on_every_channels_rows():
    """``shared_colour``: one set of neighbourhood weights fitted on the rows of all channels, a bias per channel
    (one-hot columns), the same for every channel; shrunk toward copying with ``toward_identity``."""
    rng = np.random.default_rng(2)
    n, c, s, r, lam = 9, 3, 5, 3, 0.3
    neutral = rng.uniform(-1, 1, (n, c, s, s))
    target = rng.uniform(-1, 1, (n, c, s, s))
    for toward_identity in (False, True):
        weight, bias = fit_ridge(torch.tensor(neutral), torch.tensor(target), radius=r, lam=lam,
                                 toward_identity=toward_identity, shared_colour=True)
        assert torch.equal(weight[0], weight[1]) and torch.equal(weight[1], weight[2])
        for y, x in [(0, 0), (2, 3), (4, 4)]:
            rows, values = [], []
            for ch in range(c):
                for i in range(n):
                    row = _design_row(neutral[i], ch, y, x, r)[:-1]
                    rows.append(np.concatenate([row, np.eye(c)[ch]]))
                    values.append(target[i, ch, y, x])
            design, taps = np.array(rows), r * r
            prior = np.zeros(taps + c)
            prior[taps // 2] = 1.0 if toward_identity else 0.0
            expected = np.linalg.solve(design.T @ design + lam * np.eye(taps + c), design.T @ np.array(values)
                                       + lam * prior)
            got = np.concatenate([weight[0, :, y, x].numpy(), bias[:, y, x].numpy()])
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_colour_tied_ridge_is_the_least_squares_of_its_rows_and_the_tie_and_reaches_the_shared_fit():
    """``colour_tie``: every channel's own weights and bias, with mu * sum_c ||w_c - mean w||^2 (mu the tie times the
    pixel's mean diagonal of X^T X over the weight taps): the least squares of the channels' rows, the ridge's rows and
    sqrt(mu) times the projection off the channels' mean; a tie near 0 gives each channel's own fit, a large one the
    shared fit."""
    rng = np.random.default_rng(3)
    n, c, s, r, lam, tie = 12, 3, 5, 3, 0.3, 0.2
    neutral = rng.uniform(-1, 1, (n, c, s, s))
    target = rng.uniform(-1, 1, (n, c, s, s))
    x, t = torch.tensor(neutral), torch.tensor(target)
    weight, bias = fit_ridge(x, t, radius=r, lam=lam, colour_tie=tie)
    taps = r * r + 1
    for y, xx in [(0, 0), (2, 3), (4, 4)]:
        blocks = [np.stack([_design_row(neutral[i], ch, y, xx, r) for i in range(n)]) for ch in range(c)]
        mu = tie * np.mean([np.mean(np.sum(b[:, :-1] ** 2, axis=0)) for b in blocks])
        design = np.zeros((c * n, c * taps))
        for ch, block in enumerate(blocks):
            design[ch * n : (ch + 1) * n, ch * taps : (ch + 1) * taps] = block
        off_mean = np.kron(np.eye(c) - np.full((c, c), 1 / c), np.eye(taps)[:-1])
        rows = np.vstack([design, np.sqrt(lam) * np.eye(c * taps), np.sqrt(mu) * off_mean])
        values = np.concatenate([target[:, :, y, xx].T.ravel(), np.zeros(c * taps + len(off_mean))])
        expected = np.linalg.lstsq(rows, values, rcond=None)[0].reshape(c, taps)
        got = np.concatenate([weight[:, :, y, xx].numpy(), bias[:, y, xx].numpy()[:, None]], axis=1)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # (tied, the channels' weights are shrunk c times over: lambda near 0 for the limit)
    lam = 1e-6
    own, shared = fit_ridge(x, t, radius=r, lam=lam), fit_ridge(x, t, radius=r, lam=lam, shared_colour=True)
    for tie, reference in ((1e-9, own), (1e6, shared)):
        got = fit_ridge(x, t, radius=r, lam=lam, colour_tie=tie)
        for a, b in zip(got, reference):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_fitted_layer_reproduces_a_linear_map_exactly():
    """Targets made by a known local linear map are recovered (lambda -> 0) and applied identically."""
    gen = torch.Generator().manual_seed(1)
    neutral = torch.rand(40, 3, 8, 8, generator=gen) * 2 - 1
    true = LocalRegression(1, 3, 8, 3)
    with torch.no_grad():
        true.weight.normal_(0, 0.3, generator=gen)
        true.bias.normal_(0, 0.1, generator=gen)
        onehot = torch.ones(40, 1)
        target = true(neutral, onehot)
    weight, bias = fit_ridge(neutral, target, radius=3, lam=1e-9)
    layer = LocalRegression(2, 3, 8, 3)
    layer.set_expression(1, weight, bias)
    out = layer(neutral, torch.tensor([[0.0, 1.0]]).expand(40, 2))
    assert torch.allclose(out, target, atol=1e-4)
    # expression 0 kept its identity initialisation
    assert torch.equal(layer(neutral, torch.tensor([[1.0, 0.0]]).expand(40, 2)), neutral)


def test_intensity_zero_returns_input_exactly_and_one_differs():
    torch.manual_seed(0)
    model = RegGAN(TINY).eval()
    image = torch.rand(3, 3, 32, 32) * 2 - 1
    expression = torch.eye(len(TINY.expressions))[[1, 2, 3]]
    with torch.no_grad():
        out0, s1_0 = model(image, expression, torch.zeros(3))
        out1, _ = model(image, expression, torch.ones(3))
    assert torch.equal(out0, image) and torch.equal(s1_0, image)
    assert (out1 - image).abs().max() > 1e-3
    assert out1.min() >= -1 and out1.max() <= 1


def test_an_exposure_normalising_model_edits_a_darker_face_as_it_edits_the_clean_one():
    """With an exposure_reference, a crop one stop under reaches stage 1 and the refiner as the clean crop does:
    its edit, brought one stop up, is the clean edit; a model without one paints its bias into both alike."""
    torch.manual_seed(0)
    normalising = RegGAN(dataclasses.replace(TINY, exposure_reference=0.2)).eval()
    with torch.no_grad():
        normalising.stage1.bias.normal_(0.0, 0.1)
    plain = RegGAN(TINY).eval()
    plain.load_state_dict(normalising.state_dict())
    image = torch.rand(3, 3, 32, 32) * 1.2 - 1  # darker than the reference: nothing clips on the way back
    up = 2.0 ** (1 / 2.2)  # one stop, on sRGB levels (linear light = sRGB ** 2.2)
    darker = (image + 1) / up - 1
    expression = torch.eye(len(TINY.expressions))[[1, 2, 3]]
    with torch.no_grad():
        for model, equivariant in ((normalising, True), (plain, False)):
            clean, clean_s1 = model(image, expression, torch.ones(3))
            dark, dark_s1 = model(darker, expression, torch.ones(3))
            error = max(float(((dark + 1) * up - 1 - clean).abs().max()), float(((dark_s1 + 1) * up - 1 - clean_s1).abs().max()))
            assert (error < 1e-5) == equivariant, (equivariant, error)
        out0, s1_0 = normalising(image, expression, torch.zeros(3))
    assert torch.equal(out0, image) and torch.equal(s1_0, image)


def _uniform_heads(model: RegGAN, shift_px: float, mask_logit: float) -> None:
    """Make the refiner output one constant flow (x shift of ``shift_px`` pixels) and mask everywhere."""
    head, size = model.refiner.head, model.config.image_size
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[0] = math.atanh(shift_px * 2 / size / model.refiner.max_flow)
        head.bias[2] = mask_logit


@pytest.mark.parametrize(("mode", "mix"), [("bilinear", "carried"), ("bicubic", "carried"), ("bicubic", "maps")])
def test_one_expression_is_its_fitted_map_on_the_input_moved_by_its_flow(mode, mix):
    """moved = x at p + alpha flow_e; s1 = moved + alpha region_e (R_e(moved) - moved), R_e as it was fitted."""
    from training.losses import apply_ridge

    gen = torch.Generator().manual_seed(3)
    layer = LocalRegression(3, 3, 24, 3, mode, mix)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) * 0.3)
        layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) - 0.5)
        layer.flow.copy_((torch.rand(layer.flow.shape, generator=gen) - 0.5) * 0.2)
        layer.region.copy_(torch.rand(layer.region.shape, generator=gen))
    x = torch.rand(3, 3, 24, 24, generator=gen) * 2 - 1
    alpha = torch.tensor([1.0, 0.5, 0.25])
    with torch.no_grad():
        out = layer(x, torch.eye(3), alpha)
        for e in range(3):
            moved = apply_flow(x[e : e + 1], alpha[e] * layer.flow[e], mode)
            painted = apply_ridge(moved, layer.weight[e], layer.bias[e], 3)
            expected = moved + alpha[e] * layer.region[e] * (painted - moved)
            assert torch.allclose(out[e : e + 1], expected, atol=1e-5)


@pytest.mark.parametrize("mix", ["carried", "maps"])
def test_a_face_between_two_turn_keys_takes_their_maps_blended(mix):
    """A stage 1 with turn keys paints a face with its turn's blend of each expression's keys: at a key, that key's
    fit; halfway, the fit whose maps and motion are the two keys' mean."""
    gen = torch.Generator().manual_seed(6)
    keyed = LocalRegression(3, 3, 24, 3, "bicubic", mix, keys=2)
    with torch.no_grad():
        for tensor in (keyed.weight, keyed.bias, keyed.flow, keyed.region):
            tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.2)
    x = torch.rand(2, 3, 24, 24, generator=gen) * 2 - 1
    expression, alpha = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.5, 0.3]]), torch.tensor([1.0, 0.6])
    for turn, share in (([1.0, 0.0], 0.0), ([0.0, 1.0], 1.0), ([0.5, 0.5], 0.5)):
        plain = LocalRegression(3, 3, 24, 3, "bicubic", mix)
        with torch.no_grad():
            for mine, theirs in ((plain.weight, keyed.weight), (plain.bias, keyed.bias), (plain.flow, keyed.flow),
                                 (plain.region, keyed.region)):
                per_key = theirs.reshape(3, 2, *theirs.shape[1:])
                mine.copy_((1 - share) * per_key[:, 0] + share * per_key[:, 1])
            got = keyed(x, expression, alpha, torch.tensor([turn, turn]))
            assert torch.allclose(got, plain(x, expression, alpha), atol=1e-5)


def test_a_keyed_models_input_gives_back_the_mix_and_the_turn():
    """The runtime's input (the mix times the face's turn weights, expression-major) splits into both; one weight per
    expression takes the key facing the camera."""
    model = RegGAN(dataclasses.replace(TINY, turn_keys=(-0.3, 0.0, 0.3)))
    mix, turn = torch.tensor([[0.0, 0.25, 0.75, 0, 0, 0, 0]]), torch.tensor([[0.0, 0.4, 0.6]])
    got_mix, got_turn = model.split_turn((mix[:, :, None] * turn[:, None]).reshape(1, -1))
    assert torch.allclose(got_mix, mix) and torch.allclose(got_turn, turn)
    assert torch.equal(model.split_turn(mix)[1], torch.tensor([[0.0, 1.0, 0.0]]))
    assert RegGAN(TINY).split_turn(mix)[1] is None


@pytest.mark.parametrize("mix", ["carried", "maps"])
def test_weights_every_colour_shares_are_kept_once_and_paint_the_same(mix):
    """A shared-colour fit's maps stored once for the three channels give the same output; maps that differ by channel
    stay as they are."""
    gen = torch.Generator().manual_seed(4)
    layer = LocalRegression(3, 3, 24, 3, "bicubic", mix)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(3, 1, 9, 24, 24, generator=gen) * 0.3).expand(-1, 3, -1, -1, -1))
        layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) - 0.5)
        layer.flow.copy_((torch.rand(layer.flow.shape, generator=gen) - 0.5) * 0.2)
    x = torch.rand(2, 3, 24, 24, generator=gen) * 2 - 1
    expression, alpha = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.4, 0.6]]), torch.tensor([1.0, 0.7])
    with torch.no_grad():
        before = layer(x, expression, alpha)
        assert layer.share_colour()
        assert layer.weight.shape == (3, 1, 9, 24, 24)
        assert torch.allclose(layer(x, expression, alpha), before, atol=1e-6)
    apart = LocalRegression(3, 3, 24, 3, "bicubic", mix)
    with torch.no_grad():
        apart.weight[:, 2, 4] += 0.1
    assert not apart.share_colour() and apart.weight.shape == (3, 3, 9, 24, 24)


@pytest.mark.parametrize("mix", ["carried", "maps"])
@pytest.mark.parametrize("keys", [1, 3])
def test_an_expression_with_weights_of_its_own_per_colour_keeps_them_beside_the_shared_ones(mix, keys):
    """Where one expression's colours have weights of their own and the others' are alike, the others' are kept once
    and that expression's as differences from its first colour: the same output, mixes and turn keys too."""
    gen = torch.Generator().manual_seed(5)
    layer = LocalRegression(3, 3, 24, 3, "bicubic", mix, keys=keys)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(3 * keys, 1, 9, 24, 24, generator=gen) * 0.3).expand(-1, 3, -1, -1, -1))
        layer.weight[keys : 2 * keys, 2] += torch.rand(keys, 9, 24, 24, generator=gen) * 0.1  # expression 1's blue
        layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) - 0.5)
        layer.flow.copy_((torch.rand(layer.flow.shape, generator=gen) - 0.5) * 0.2)
    x = torch.rand(2, 3, 24, 24, generator=gen) * 2 - 1
    expression, alpha = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.4, 0.6]]), torch.tensor([1.0, 0.7])
    turn = torch.tensor([[0.3, 0.7, 0.0], [0.0, 0.5, 0.5]])[:, :keys] if keys > 1 else None
    with torch.no_grad():
        before = layer(x, expression, alpha, turn)
        assert layer.share_colour() and layer.own_colour == (1,)
        assert layer.weight.shape == (3 * keys, 1, 9, 24, 24) and layer.colour_delta is not None
        assert layer.colour_delta.shape == (keys, 2, 9, 24, 24)  # the colours after the first
        assert torch.allclose(layer(x, expression, alpha, turn), before, atol=1e-6)
        assert not layer.share_colour()  # once


@pytest.mark.parametrize("mix", ["carried", "maps"])
def test_a_carried_mix_paints_on_the_moved_features_and_mixed_maps_where_each_expression_alone_would(mix):
    """An expression that moves a bright column 8 px left and paints on it where it lands: at half weight (the rest
    neutral) the column moves 4 px and a carried mix's paint goes with it; mixed maps paint where the expression alone
    puts it."""
    size = 32
    layer = LocalRegression(2, 1, size, 1, "bilinear", mix)  # neutral (no flow, identity map) and one expression
    with torch.no_grad():
        layer.flow[1, 0] = 8 * 2 / size  # output(p) = input(p + 8 px)
        layer.bias[1, 0, :, 12] = 1.0  # the column lands at 20 - 8 = 12; paint there
    x = torch.zeros(1, 1, size, size)
    x[..., 20] = 1.0
    with torch.no_grad():
        alone = layer(x, torch.tensor([[0.0, 1.0]]))
        half = layer(x, torch.tensor([[0.5, 0.5]]))
    assert alone[0, 0, 5].argmax() == 12 and float(alone[0, 0, 5, 12]) == pytest.approx(2.0)
    expected = torch.zeros(size)
    expected[16] = 1.0  # the column moved half as far
    expected[16 if mix == "carried" else 12] += 0.5  # half the paint: on it, or where the expression alone puts it
    assert torch.allclose(half[0, 0, 5], expected, atol=1e-5)


def test_intensity_scales_the_motion_not_a_cross_fade():
    """alpha = 0.5 moves pixels half as far as alpha = 1 (half a smile, not two faces blended)."""
    model = RegGAN(TINY).eval()
    _uniform_heads(model, shift_px=2.0, mask_logit=-40.0)  # warp only, paint nothing
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    expression = torch.eye(len(TINY.expressions))[[1]]
    with torch.no_grad():
        full, _ = model(image, expression, torch.ones(1))
        half, _ = model(image, expression, torch.full((1,), 0.5))
    assert torch.allclose(full[..., :-2], image[..., 2:], atol=1e-5)  # sampled 2 px to the right
    assert torch.allclose(half[..., :-1], image[..., 1:], atol=1e-5)  # 1 px
    assert not torch.allclose(half, (image + full) / 2, atol=1e-2)


def test_mask_paints_stage1_plus_residual_over_the_warp():
    model = RegGAN(TINY).eval()
    _uniform_heads(model, shift_px=0.0, mask_logit=40.0)  # paint everywhere, residual tanh(0) = 0
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    expression = torch.eye(len(TINY.expressions))[[1, 4]]
    with torch.no_grad():
        out, s1 = model(image, expression, torch.ones(2))
    assert torch.allclose(out, s1, atol=1e-6)


@pytest.mark.parametrize("mask_logit", [-40.0, 40.0])
def test_motion_outputs_say_where_each_output_pixel_came_from(mask_logit):
    """The runtime moves frames by `motion` with its own sampler (resample.sample): it must reproduce what the
    graph did. Refiner warping (mask 0): the output's motion is the refiner's flow; painting (mask 1, intensity 1:
    below 1 the output cross-fades the two and the motion is their blend): stage 1's."""
    from reggan_plugin.geometry.resample import sample

    model = RegGAN(TINY).eval()
    _uniform_heads(model, shift_px=1.5, mask_logit=mask_logit)
    happy = TINY.expressions.index("happy")
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 2, 4, 4, generator=gen) - 0.5, size=32, mode="bicubic")[0]
    model.stage1.set_motion(happy, 0.2 * smooth, torch.ones(1, 32, 32))
    image = _smooth_faces(2)
    onehot = torch.eye(len(TINY.expressions))[[happy, happy]]
    with torch.no_grad():
        out = model.run(image, onehot, torch.tensor([1.0, 0.6 if mask_logit < 0 else 1.0]))
    assert float(out.stage1_motion.abs().max()) > 1.0  # pixels
    gy, gx = np.mgrid[0:32, 0:32]
    for picture, motion in ((out.output, out.motion), (out.stage1, out.stage1_motion)):
        for i in range(2):
            x = image[i].permute(1, 2, 0).numpy()
            f = motion[i].numpy()
            moved = sample(x, gx + f[0], gy + f[1])
            np.testing.assert_allclose(moved, picture[i].permute(1, 2, 0).numpy(), atol=2e-3)
    if mask_logit > 0:
        assert torch.allclose(out.motion, out.stage1_motion, atol=1e-4)


def _smooth_faces(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=gen) * 2 - 1, size=size, mode="bicubic",
                                           align_corners=False).clamp(-1, 1)


@pytest.mark.slow  # 300 steps of flow fitting (8 s): the fast tier stays under 2 minutes
def test_mean_flow_recovers_a_shared_motion_and_the_ridge_then_fits_the_rest():
    """Targets = every face moved 2 px left, then darkened: the flow takes the motion (a 3x3 field alone could
    not reach it), the ridge on the moved faces the rest."""
    x = _smooth_faces(64)
    t = torch.roll(x, 2, dims=-1) * 0.8 - 0.1
    flow = fit_mean_flow(x, t, grid_points=8, steps=300)
    inner = flow[:, 8:-8, 8:-8] * 16  # grid units -> pixels of a 32 px crop
    assert abs(float(inner[0].mean()) + 2) < 0.2 and float(inner[1].abs().mean()) < 0.3  # within a fraction of a pixel
    moved = apply_flow(x, flow)
    layer = LocalRegression(1, 3, 32, 3)
    onehot = torch.ones(len(x), 1)
    plain = fit_ridge(x, t, 3, 1e-3)
    layer.set_expression(0, *plain)
    with torch.no_grad():
        err_plain = float((layer(x, onehot) - t)[..., 4:-4].abs().mean())
        layer.set_motion(0, flow, torch.ones(1, 32, 32))
        layer.set_expression(0, *fit_ridge(moved, t, 3, 1e-3))
        err_moved = float((layer(x, onehot) - t)[..., 4:-4].abs().mean())
    assert err_moved < 0.01 < err_plain


def test_the_flow_follows_landmarks_where_the_pictures_show_no_motion():
    """Plain faces (no texture to follow): the pictures' L1 leaves the flow at rest; held to landmarks that moved 2 px
    down, it reaches them back."""
    x = torch.full((8, 3, 32, 32), 0.2)
    gen = torch.Generator().manual_seed(0)
    src = torch.rand(8, 68, 2, generator=gen) - 0.5  # grid units, about the crop's middle
    dst = src + torch.tensor([0.0, 2 / 16])  # 2 px of a 32 px crop, down
    alone = fit_mean_flow(x, x.clone(), grid_points=8, steps=150)
    held = fit_mean_flow(x, x.clone(), grid_points=8, steps=150, points=(src, dst), points_weight=1.0)
    assert float(alone.abs().max()) == 0.0
    inner = held[:, 12:-12, 12:-12] * 16  # px, well inside the points' spread
    assert abs(float(inner[1].mean()) + 2) < 0.3 and float(inner[0].abs().mean()) < 0.3


def test_flows_at_tilt_keys_follow_each_pairs_landmarks():
    """Plain faces at two tilt keys, the landmarks of one key's pairs 2 px down, the other's 2 px up: each key's flow
    reaches its own pairs' points back; pairs without landmarks (NaN, as mirror images) hold nothing."""
    x = torch.full((12, 3, 32, 32), 0.2)
    gen = torch.Generator().manual_seed(0)
    src = torch.rand(12, 68, 2, generator=gen) - 0.5
    down = torch.tensor([0.0, 2 / 16])
    dst = torch.cat([src[:4] + down, src[4:8] - down, src[8:]])
    src[8:], dst[8:] = float("nan"), float("nan")
    tilts = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4 + [[0.5, 0.5]] * 4)
    flows = fit_mean_flow(x, x.clone(), grid_points=8, steps=150, points=(src, dst), points_weight=1.0, tilts=tilts)
    inner = flows[:, :, 12:-12, 12:-12] * 16  # px, well inside the points' spread
    assert flows.shape == (2, 2, 32, 32)
    assert abs(float(inner[0, 1].mean()) + 2) < 0.3 and abs(float(inner[1, 1].mean()) - 2) < 0.3
    assert float(inner[:, 0].abs().mean()) < 0.3


def test_region_bounds_both_stages_and_intensity_zero_stays_exact():
    torch.manual_seed(0)
    model = RegGAN(TINY).eval()
    happy = TINY.expressions.index("happy")
    region = torch.zeros(1, 32, 32)
    region[..., 16:] = 1.0  # the right half only
    with torch.no_grad():
        model.stage1.set_motion(happy, torch.full((2, 32, 32), 0.05) * region, region)
        model.stage1.bias[happy].fill_(0.3)
        model.refiner.head.bias.normal_(0, 1.0)  # a refiner that changes everything
        image = torch.rand(2, 3, 32, 32) * 2 - 1
        onehot = torch.eye(len(TINY.expressions))[[happy, happy]]
        out, s1 = model(image, onehot, torch.ones(2))
        out0, s1_0 = model(image, onehot, torch.zeros(2))
    assert torch.allclose(out[..., :12], image[..., :12], atol=1e-6) and torch.allclose(s1[..., :12], image[..., :12], atol=1e-6)
    assert (out[..., 20:] - image[..., 20:]).abs().mean() > 0.05
    assert torch.equal(out0, image) and torch.equal(s1_0, image)


def test_ellipse_region_is_one_inside_and_zero_outside():
    region = ellipse_region(64, (0.5, 0.7, 0.35, 0.25))
    assert region.shape == (1, 64, 64)
    assert region[0, 45, 32] > 0.99 and region[0, 5, 32] < 0.01 and region[0, 45, 0] < 0.01


def test_discriminator_shapes():
    disc = Discriminator(7, conv_dim=8, n_layers=3)
    src, cls = disc(torch.zeros(2, 3, 32, 32))
    assert src.shape == (2, 1, 4, 4) and cls.shape == (2, 7)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="odd"):
        ModelConfig(radius=4)
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"image_size": 32, "bogus": 1})
    with pytest.raises(ValueError, match="exposure_reference"):
        ModelConfig(exposure_reference=-0.1)
    with pytest.raises(ValueError, match="mix must be one of maps, carried"):
        ModelConfig(mix="blend")


def test_a_saved_config_naming_the_face_crop_loads_and_another_crop_is_refused(tmp_path):
    """Models saved with a crop kind in their config (the bundled face model's says "face") still load; only face
    crops are made."""
    import json

    from benchmarks.network import load_shipped
    from reggan_plugin.artifact import default_model_path, load_artifact

    saved = json.loads(load_artifact(default_model_path()).provenance["model_config"])
    assert ModelConfig.from_dict(saved).warp == saved["warp"]
    with pytest.raises(ValueError, match="only face crops"):
        ModelConfig.from_dict({**saved, "crop": "mouth"})
    model, _, _ = load_shipped(default_model_path(), tmp_path)  # the benchmark's torch twin of the bundled model
    assert model.config.image_size == saved["image_size"]


def test_mirrored_turn_keys_edit_a_mirror_image_as_the_mirror_image_of_the_edit():
    """`mirror_keys` gives each key turned one way the mirror image of the key turned as far the other way: a face
    turned by t and its mirror image, turned by -t, get mirror-image stage-1 edits (beyond the key facing the camera,
    which is fitted as it is)."""
    from reggan_plugin.faces.turn import turn_weights

    keys = (-0.4, -0.2, 0.0, 0.2, 0.4)
    gen = torch.Generator().manual_seed(3)
    layer = LocalRegression(3, 3, 24, 3, "bicubic", "carried", keys=len(keys))
    with torch.no_grad():
        for tensor in (layer.weight, layer.bias, layer.flow, layer.region):
            tensor.add_(torch.rand(tensor.shape, generator=gen) * 0.1)
    x = torch.rand(1, 3, 24, 24, generator=gen) * 2 - 1
    mix, alpha = torch.tensor([[0.2, 0.8, 0.0]]), torch.tensor([0.9])

    def edit(image, turn):
        with torch.no_grad():
            return layer(image, mix, alpha, torch.from_numpy(turn_weights(turn, keys))[None])

    assert not layer.keys_mirrored()
    assert not torch.allclose(edit(x.flip(-1), -0.3), edit(x, 0.3).flip(-1), atol=1e-3)
    layer.mirror_keys()
    assert layer.keys_mirrored()
    for turn in (0.2, 0.3, 0.4, 0.5):
        assert torch.allclose(edit(x.flip(-1), -turn), edit(x, turn).flip(-1), atol=1e-5)
