"""Stage 1 fitted on perturbed copies of its pairs, and a refiner started from an exported model."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (pip install .[train])")

from training.config import TINY  # noqa: E402
from training.data.augment import degrade_inputs, photometric  # noqa: E402
from training.models import RegGAN, fit_ridge  # noqa: E402
from training.models.stage1 import shifted_views  # noqa: E402
from training.train_config import STAGE1_AUGMENT, AugmentConfig, TrainConfig  # noqa: E402


def _smooth_faces(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """[n,3,S,S] in [-1,1]: low-frequency random pictures (what a ridge sees of faces, roughly)."""
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1


def _apply(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, radius: int) -> torch.Tensor:
    out = bias.expand_as(x).clone()
    for tap, view in enumerate(shifted_views(x, radius)):
        out = out + view * weight[:, tap]
    return out


def test_a_ridge_fitted_on_noisy_copies_keeps_noise_out_of_the_edit() -> None:
    """The edit (output - input) of a map fitted on clean pairs carries input noise (the colour speckle of
    noisy renders); fitted on copies with noise shared by input and target, it carries much less."""
    gen = torch.Generator().manual_seed(0)
    size, radius = 32, 3
    x = _smooth_faces(256, size, gen)
    t = x.roll(1, dims=-1) * 0.8 + 0.05  # an "expression": a shift and a tone change the map must paint
    noise = torch.randn(2, *x.shape, generator=gen) * 0.06
    clean_fit = fit_ridge(x, t, radius, 1e-3)
    noisy_fit = fit_ridge(torch.cat([x, x + noise[0], x + noise[1]]), torch.cat([t, t + noise[0], t + noise[1]]), radius, 1e-3)

    probe = _smooth_faces(32, size, gen)
    probe_noise = torch.randn(probe.shape, generator=gen) * 0.06

    def edit_noise(fit: tuple[torch.Tensor, torch.Tensor]) -> float:
        clean_edit = _apply(probe, *fit, radius) - probe
        noisy_edit = _apply(probe + probe_noise, *fit, radius) - (probe + probe_noise)
        return float((noisy_edit - clean_edit).pow(2).mean().sqrt())

    assert edit_noise(noisy_fit) < 0.5 * edit_noise(clean_fit)
    # and it still paints the expression on clean inputs
    target = probe.roll(1, dims=-1) * 0.8 + 0.05
    copy_error = float((probe - target).abs().mean())
    assert float((_apply(probe, *noisy_fit, radius) - target).abs().mean()) < 0.5 * copy_error


def test_stage1_pairs_get_perturbed_copies(tmp_path) -> None:
    from tests.test_training import write_synthetic
    from training.data.dataset import PairedFaces, load_datasets
    from training.solver import _pairs_by_expression, _with_perturbed_copies

    root = write_synthetic(tmp_path / "synth", n_ids=6, size=64)
    sets = load_datasets([root], 32, TINY.expressions, tmp_path / "cache")
    data = PairedFaces(sets, TINY.expressions, None)
    plain = _pairs_by_expression(data)
    cfg = TrainConfig(stage1_augment_copies=2)
    perturbed = _with_perturbed_copies(data, plain, cfg)
    again = _with_perturbed_copies(data, plain, cfg)
    for expr, (x, t) in plain.items():
        px, pt = perturbed[expr]
        n = len(x)
        assert px.shape[0] == pt.shape[0] == 3 * n
        assert torch.equal(px[:n], x) and torch.equal(pt[:n], t)  # the clean pairs come first, unchanged
        assert float((px[n:2 * n] - x).abs().mean()) > 0.01  # the copies are perturbed ...
        assert torch.equal(px, again[expr][0])  # ... reproducibly (seeded)
    assert _with_perturbed_copies(data, plain, dataclasses.replace(cfg, stage1_augment_copies=0)) is plain
    some = _with_perturbed_copies(data, plain, dataclasses.replace(cfg, stage1_augment_expressions=("sad",)))
    for expr, (x, _) in plain.items():
        assert len(some[expr][0]) == (3 if expr == "sad" else 1) * len(x)  # only the listed expressions get copies
    flawed = dataclasses.replace(cfg, stage1_degrade_copies=1,
                                 stage1_augment=dataclasses.replace(cfg.stage1_augment, input_noise=0.05))
    both = _with_perturbed_copies(data, plain, flawed)
    for expr, (x, t) in plain.items():
        bx, bt = both[expr]
        n = len(x)
        assert torch.equal(bx[:3 * n], perturbed[expr][0])  # the moved copies carry no input flaw ...
        assert float((bx[3 * n:] - x).abs().mean()) > 1e-3  # ... the degraded copy does, on the canonical crop,
        assert torch.allclose(bt[3 * n:] - bx[3 * n:], t - x, atol=1e-5)  # and keeps the clean pair's edit
    realigned = _with_perturbed_copies(data, plain, dataclasses.replace(cfg, stage1_detector_copies=True))
    for expr, (x, _) in plain.items():
        assert len(realigned[expr][0]) == 4 * len(x)  # the moved copies, then one cropped as the runtime crops


def test_exposure_and_white_balance_are_shared_by_the_pair() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(8, 3, 16, 16, generator=gen)
    cfg = AugmentConfig(brightness=0, contrast=0, saturation=0, hue_deg=0, gamma=0, blur_prob=0,
                        exposure=1.0, white_balance=0.2)
    a, b = photometric([x, x.clone()], cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    ratio = (a.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3)))
    assert float(ratio.max() - ratio.min()) > 0.3  # exposures differ between pairs
    assert STAGE1_AUGMENT.exposure >= 1.0 and STAGE1_AUGMENT.noise > 0


def test_input_flaws_change_the_input_and_keep_the_pairs_edit() -> None:
    """Noise (seen through the runtime's degrain) and JPEG on the input alone; the target moves with the input, so
    the pair still shows the clean edit."""
    gen = torch.Generator().manual_seed(0)
    x = 0.3 + 0.2 * (_smooth_faces(6, 64, gen) + 1)  # [0.3, 0.7]: a face's contrast, not a test card's
    t = (x + 0.1 * torch.rand(6, 3, 1, 1, generator=gen)).clamp(0, 1)
    noisy = AugmentConfig(input_noise=0.05)
    xd, td = degrade_inputs(x, t, noisy, torch.Generator().manual_seed(1))
    assert torch.equal(xd, degrade_inputs(x, t, noisy, torch.Generator().manual_seed(1))[0])  # seeded
    assert torch.allclose(td - xd, t - x, atol=1e-6)  # the edit is the clean pair's
    changed = (xd - x).abs().mean(dim=(1, 2, 3))
    assert bool((changed > 5e-4).all())  # every input carries noise ...
    assert float(changed.max()) < 0.02  # ... less than it was given (sigma up to 0.05: 0.04 on average): degrained
    blocky = AugmentConfig(input_noise=0.05, input_jpeg_prob=1.0, input_jpeg_quality=(20, 20))
    xj, tj = degrade_inputs(x, t, blocky, torch.Generator().manual_seed(1))
    assert torch.allclose(tj - xj, t - x, atol=1e-6)
    assert float((xj - xd).abs().mean()) > 2e-3  # the JPEG round trip changes the input again
    assert degrade_inputs(x, t, AugmentConfig(), gen) == (x, t)  # off by default


def test_a_sharpened_input_keeps_the_pairs_edit_and_gains_fine_contrast() -> None:
    """A photograph's sharper detail on the input alone: more Laplacian energy, the same edit to learn."""
    gen = torch.Generator().manual_seed(0)
    x = 0.3 + 0.2 * (_smooth_faces(6, 64, gen) + 1)
    x = (x + 0.03 * torch.randn(x.shape, generator=gen)).clamp(0, 1)  # some texture to sharpen
    t = (x + 0.1 * torch.rand(6, 3, 1, 1, generator=gen)).clamp(0, 1)
    xs, ts = degrade_inputs(x, t, AugmentConfig(input_sharpen=1.0), torch.Generator().manual_seed(1))
    assert torch.allclose(ts - xs, t - x, atol=1e-6)

    def fine(img: torch.Tensor) -> torch.Tensor:
        return (img[..., 1:, :] - img[..., :-1, :]).abs().mean(dim=(1, 2, 3))

    assert bool((fine(xs) >= fine(x)).all()) and float((fine(xs) / fine(x)).max()) > 1.2


def test_overrides_reach_the_stage1_perturbations() -> None:
    cfg = TrainConfig().with_overrides(["stage1_augment.noise=0.01", "stage1_augment_copies=1", "augment.flip=true"])
    assert cfg.stage1_augment.noise == 0.01 and cfg.stage1_augment_copies == 1 and cfg.augment.flip
    assert cfg.stage1_augment.exposure == STAGE1_AUGMENT.exposure  # the rest stays
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig().with_overrides(["stage1_augment.nope=1"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    jpeg = TrainConfig().with_overrides(["stage1_augment.input_jpeg_quality=30,60"])
    assert jpeg.stage1_augment.input_jpeg_quality == (30, 60)
    assert TrainConfig.from_dict(json.loads(json.dumps(jpeg.to_dict()))) == jpeg  # as a run's JSON gives it back


def test_refiner_starts_from_an_exported_model(tmp_path) -> None:
    from export.onnx_export import export_model
    from training.checkpoint import load_refiner_from_onnx
    from training.config import ModelConfig

    torch.manual_seed(0)
    source = RegGAN(ModelConfig(image_size=64))  # the default width: its large convolutions are stored in half precision
    with torch.no_grad():
        for p in source.refiner.parameters():
            p.normal_(0, 0.1)
    path = export_model(source, tmp_path / "m.onnx", provenance={"training": "test", "iterations": 0})
    fresh = RegGAN(ModelConfig(image_size=64))
    assert load_refiner_from_onnx(fresh, path) == len(fresh.refiner.state_dict())
    for name, value in source.refiner.state_dict().items():
        assert torch.allclose(fresh.refiner.state_dict()[name], value, atol=1e-3), name  # half precision: 3 digits
    wider = RegGAN(ModelConfig(image_size=64, conv_dim=16))
    with pytest.raises(ValueError, match="does not match"):
        load_refiner_from_onnx(wider, path)


def test_refiner_starts_from_a_runs_last_checkpoint_exactly(tmp_path) -> None:
    """A recipe's phase that starts a new run from an earlier one's refiner reads that run's checkpoint: the weights as
    trained, not an export's (whose large tensors are half precision and whose equal tensors may be shared)."""
    from training.checkpoint import load_refiner_from_run
    from training.config import ModelConfig
    from training.run_state import save_run_checkpoint

    torch.manual_seed(1)
    source = RegGAN(ModelConfig(image_size=64))
    with torch.no_grad():
        for p in source.refiner.parameters():
            p.normal_(0, 0.1)
    d = torch.nn.Linear(1, 1)
    opt = torch.optim.Adam(d.parameters())
    save_run_checkpoint(tmp_path / "run", 7, source, d, opt, opt, {})
    fresh = RegGAN(ModelConfig(image_size=64))
    assert load_refiner_from_run(fresh, tmp_path / "run") == len(fresh.refiner.state_dict())
    for name, value in source.refiner.state_dict().items():
        assert torch.equal(fresh.refiner.state_dict()[name], value), name
    with pytest.raises(ValueError, match=r"no latest\.json"):
        load_refiner_from_run(fresh, tmp_path)


def test_detector_copies_are_cropped_on_the_points_found_in_the_neutral(tmp_path) -> None:
    from reggan_plugin.geometry.align import CANONICAL_5PT, units_to_crop_px
    from tests.test_training import write_synthetic
    from training.data.dataset import PairedFaces, load_datasets
    from training.data.realign import detector_aligned

    root = write_synthetic(tmp_path / "synth", n_ids=3, size=64)
    sets = load_datasets([root], 32, TINY.expressions, tmp_path / "cache")
    data = PairedFaces(sets, TINY.expressions, None)
    margin = (data.neutral.shape[-1] - data.size) // 2
    canonical = units_to_crop_px(CANONICAL_5PT, data.size) + margin  # the cache crop's own alignment
    idx = torch.arange(len(data))
    x, t, _ = data.batch(idx)
    calls: list[tuple[int, ...]] = []

    def found(shift: float):
        def detect(rgb):
            calls.append(rgb.shape)
            return canonical + np.array([shift, 0.0])
        return detect

    same_x, same_t = detector_aligned(data, idx, found(0.0))
    assert torch.allclose(same_x, x, atol=1e-5) and torch.allclose(same_t, t, atol=1e-5)
    assert len(calls) == len(set(data.pair_neutral.tolist()))  # once per neutral, on its cached crop
    moved_x, moved_t = detector_aligned(data, idx, found(2.0))  # the face found 2 px right: the crop follows it
    cache_x = data.neutral[data.pair_neutral].float() / 127.5 - 1
    cache_t = data.target.float() / 127.5 - 1
    s = data.size
    assert torch.allclose(moved_x, cache_x[..., margin:margin + s, margin + 2:margin + 2 + s], atol=1e-5)
    assert torch.allclose(moved_t, cache_t[..., margin:margin + s, margin + 2:margin + 2 + s], atol=1e-5)
    none_x, none_t = detector_aligned(data, idx, lambda rgb: None)  # no face found: the central crop
    assert torch.equal(none_x, x) and torch.equal(none_t, t)
