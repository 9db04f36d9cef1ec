"""Training: data layouts, one-transform pair crops, registration, split by identity, cache, augmentation,
closed-form stage 1 selection, exact resume, a tiny overfit, torchrun DDP with 2 processes, the CLI.

Fixture data is drawn here (procedural cartoon faces with exact landmarks); only the London test reads
../shared/data, and only three of its subjects.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

torch = pytest.importorskip("torch", reason="training needs torch (pip install .[train])")

from reggan_plugin.errors import InputError  # noqa: E402
from reggan_plugin.geometry.align import CANONICAL_5PT, apply_affine, units_to_crop_px  # noqa: E402
from reggan_plugin.geometry.resample import warp_to_crop  # noqa: E402
from training.config import TINY  # noqa: E402
from training.data import (  # noqa: E402
    CropGeometry,
    PairedFaces,
    cached_pairs,
    crop_pair,
    expression_from_name,
    find_five_points,
    load_datasets,
    load_rgb,
    scan_dataset,
    split_of,
)
from training.data.augment import augment_pairs  # noqa: E402
from training.data.cache import cache_path  # noqa: E402
from training.train_config import AugmentConfig, TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXPR3 = ("neutral", "happy", "sad")


# ---------------------------------------------------------------------------------------------------
# fixture writers


def draw_face(size: int, rng: np.random.Generator, expression: str, ident: dict, shift=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A cartoon face (RGB uint8) and its 68 landmarks. Only the points the 5-point reduction uses are
    meaningful: eyes 36-47, nose tip 30, mouth corners 48 and 54."""
    s, (cx, cy) = ident["scale"] * size / 64, (ident["centre"][0] + shift[0], ident["centre"][1] + shift[1])
    img = Image.fromarray(ident["background"])
    d = ImageDraw.Draw(img)
    d.ellipse((cx - 20 * s, cy - 26 * s, cx + 20 * s, cy + 26 * s), fill=ident["skin"])
    tex = ident["texture"]  # freckles: texture for registration
    for (u, v), r in zip(tex[:, :2], tex[:, 2]):
        x, y = cx + u * 16 * s, cy - 22 * s + v * 18 * s
        d.ellipse((x - r * s, y - r * s, x + r * s, y + r * s), fill=(90, 60, 40))
    eyes = np.array([[cx - 9 * s, cy - 6 * s], [cx + 9 * s, cy - 6 * s]])
    for ex, ey in eyes:
        d.ellipse((ex - 3 * s, ey - 2 * s, ex + 3 * s, ey + 2 * s), fill=(30, 30, 40))
    nose = np.array([cx, cy + 3 * s])
    d.polygon([(cx, cy - 2 * s), (cx - 3 * s, cy + 4 * s), (cx + 3 * s, cy + 4 * s)], fill=(170, 110, 90))
    lift = {"neutral": 0.0, "happy": -4.0, "sad": 4.0}[expression]
    width = 9.0 if expression == "happy" else 8.0
    mouth = np.array([[cx - width * s, cy + 13 * s + lift * s], [cx + width * s, cy + 13 * s + lift * s]])
    d.line([tuple(mouth[0]), (cx, cy + 14 * s), tuple(mouth[1])], fill=(150, 30, 40), width=max(1, int(2 * s)))
    lm = np.tile([[cx, cy]], (68, 1)).astype(np.float64)
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = eyes[0], eyes[1], nose, mouth[0], mouth[1]
    rgb = np.asarray(img, dtype=np.float64) + rng.normal(0, 2, (size, size, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), lm


def new_identity(rng: np.random.Generator, size: int) -> dict:
    return {
        "scale": rng.uniform(0.9, 1.1), "centre": (size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-2, 2)),
        "skin": tuple(int(v) for v in rng.integers(150, 230, 3)),
        "background": np.full((size, size, 3), rng.integers(40, 220, 3), np.uint8),
        "texture": np.column_stack([rng.uniform(-1, 1, 14), rng.uniform(0, 1, 14), rng.uniform(0.6, 1.3, 14)]),
    }


def write_synthetic(root: Path, n_ids: int = 8, size: int = 64, seed: int = 0) -> Path:
    """The renderer's layout: manifest.json, <id>/<stem>.png RGBA + <stem>.landmarks.json."""
    rng = np.random.default_rng(seed)
    identities = {}
    for i in range(n_ids):
        name = f"id{i:05d}"
        ident = new_identity(rng, size)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        images = {}
        for stem, expr in [("neutral", "neutral"), ("happy", "happy"), ("sad", "sad"), ("happy_050", "happy")]:
            rgb, lm = draw_face(size, rng, expr, ident)
            rgba = np.dstack([rgb, np.full((size, size), 255, np.uint8)])
            Image.fromarray(rgba, "RGBA").save(folder / f"{stem}.png")
            (folder / f"{stem}.landmarks.json").write_text(json.dumps({"points": lm.round(3).tolist(), "size": size}))
            images[stem] = {"expression": expr, "intensity": 0.5 if stem.endswith("050") else 1.0}
        identities[name] = {"images": images}
    (root / "manifest.json").write_text(json.dumps({"format": 1, "expressions": list(EXPR3), "identities": identities}))
    return root


def write_plain(root: Path, n_ids: int = 4, size: int = 96, seed: int = 1, shift=(4.0, -3.0)) -> Path:
    """neutral/NNN.png (+ .landmarks.txt, 68 lines) and happy/NNN.png with the head moved by ``shift``."""
    rng = np.random.default_rng(seed)
    for sub in ("neutral", "happy"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_ids):
        ident = new_identity(rng, size)
        rgb, lm = draw_face(size, rng, "neutral", ident)
        Image.fromarray(rgb).save(root / "neutral" / f"{i:03d}.png")
        np.savetxt(root / "neutral" / f"{i:03d}.landmarks.txt", lm, fmt="%.3f")
        rgb, _ = draw_face(size, rng, "happy", ident, shift=shift)
        Image.fromarray(rgb).save(root / "happy" / f"{i:03d}.png")
    return root


def write_cfee(root: Path, size: int = 64, seed: int = 2) -> Path:
    rng = np.random.default_rng(seed)
    for subject in ("S001", "S002"):
        ident = new_identity(rng, size)
        folder = root / subject
        folder.mkdir(parents=True)
        for stem, expr in [(f"{subject}_01", "neutral"), (f"{subject}_02", "happy"), (f"{subject}-sad", "sad"),
                           (f"{subject}_09", "happy")]:  # 09: a compound CFEE category, skipped
            rgb, lm = draw_face(size, rng, expr, ident)
            Image.fromarray(rgb).save(folder / f"{stem}.png")
            if expr == "neutral":
                (folder / f"{stem}.landmarks.json").write_text(json.dumps(lm.tolist()))
    return root


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synth") / "renders")


# ---------------------------------------------------------------------------------------------------
# layouts, landmarks, split


def test_expression_codes_in_file_names():
    assert expression_from_name("S001_happy") == "happy"
    assert expression_from_name("007_02") == "happy"  # CFEE code 2
    assert expression_from_name("007_04") == "fearful"
    assert expression_from_name("ann-NE") == "neutral"
    assert expression_from_name("x_12") is None  # compound category
    assert expression_from_name("happy_1") == "happy"  # a name beats a trailing number
    assert expression_from_name("portrait") is None


def test_scan_layouts(tmp_path, synth):
    s = scan_dataset(synth, EXPR3)
    assert (s.layout, s.pixel_aligned, len(s.pairs)) == ("synthetic", True, 16)  # 8 ids x (happy, sad); happy_050 skipped
    assert all(p.target.stem in ("happy", "sad") for p in s.pairs)
    p = scan_dataset(write_plain(tmp_path / "plain"), EXPR3)
    assert (p.layout, p.pixel_aligned, len(p.pairs)) == ("plain", False, 4)
    assert {x.identity for x in p.pairs} == {f"plain/{i:03d}" for i in range(4)}
    c = scan_dataset(write_cfee(tmp_path / "cfee"), EXPR3)
    assert c.layout == "cfee"
    assert sorted((x.identity, x.expression) for x in c.pairs) == [
        ("cfee/S001", "happy"), ("cfee/S001", "sad"), ("cfee/S002", "happy"), ("cfee/S002", "sad")]
    assert all(x.neutral.stem.endswith("_01") for x in c.pairs)
    assert any("no expression code" in why for why in c.skipped)


def test_a_partial_intensity_is_judged_against_the_renders_at_it(tmp_path, synth):
    half = scan_dataset(synth, EXPR3, intensity=0.5)
    assert len(half.pairs) == 8 and all(p.target.stem == "happy_050" and p.expression == "happy" for p in half.pairs)
    with pytest.raises(InputError, match="no usable"):
        scan_dataset(synth, EXPR3, intensity=0.25)  # none rendered at it
    with pytest.raises(InputError, match="only rendered folders"):
        scan_dataset(write_plain(tmp_path / "plain"), EXPR3, intensity=0.5)  # a photo has no half smile


def test_a_key_of_an_expression_takes_the_renders_at_its_weight(synth):
    keyed = scan_dataset(synth, (*EXPR3, "happy@0.5"))
    by_expression = {e: sorted(p.target.stem for p in keyed.pairs if p.expression == e) for e in ("happy", "happy@0.5")}
    assert by_expression == {"happy": ["happy"] * 8, "happy@0.5": ["happy_050"] * 8}


def test_split_is_by_identity_and_deterministic():
    names = [f"set/{i:04d}" for i in range(2000)]
    splits = [split_of(n, 0.1, 0.2) for n in names]
    assert splits == [split_of(n, 0.1, 0.2) for n in names]
    frac = {k: splits.count(k) / len(names) for k in ("train", "val", "test")}
    assert abs(frac["test"] - 0.2) < 0.04 and abs(frac["val"] - 0.1) < 0.03


def test_datasets_share_no_identity_across_splits(tmp_path):
    root = write_synthetic(tmp_path / "many", n_ids=30, size=48)
    sets = load_datasets([root], 32, EXPR3, tmp_path / "cache")
    parts = {sp: PairedFaces(sets, EXPR3, sp, val_fraction=0.3, test_fraction=0.3) for sp in ("train", "val", "test")}
    ids = {sp: set(d.identities) for sp, d in parts.items()}
    assert all(ids.values())
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert sum(len(d) for d in parts.values()) == 60
    x, t, c = parts["train"][0]
    assert x.shape == t.shape == (3, 32, 32) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert EXPR3[c] in ("happy", "sad")


# ---------------------------------------------------------------------------------------------------
# alignment, registration, cache


def test_pair_is_cut_with_the_neutrals_transform(synth):
    folder = synth / "id00000"
    neutral, happy = load_rgb(folder / "neutral.png"), load_rgb(folder / "happy.png")
    pts = find_five_points(folder / "neutral.png")
    geo = CropGeometry(32)
    _n_crop, t_crop, reg = crop_pair(neutral, happy, pts, geo, pixel_aligned=True,
                                    target_pts=find_five_points(folder / "happy.png"))
    assert reg is None
    m = geo.matrix(pts)
    expect = np.clip(warp_to_crop(happy.astype(np.float32), m[:2], geo.total) + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(t_crop, expect)  # the target's own landmarks (moved mouth) are NOT used
    # the central S x S is the runtime's crop: the neutral's 5 points land on the template
    placed = apply_affine(m[:2], pts) - geo.margin
    assert np.abs(placed - units_to_crop_px(CANONICAL_5PT, 32)).max() < 1.0
    # same image as target -> identical crops
    a, b, _ = crop_pair(neutral, neutral, pts, geo, pixel_aligned=True)
    assert np.array_equal(a, b)


def test_the_crops_carry_each_renders_68_landmarks_and_a_photographed_pair_none(synth, tmp_path):
    """A render's points, moved by the crop's transform, are where its crop shows them; a registered photo's are not
    known (NaN); `PairedFaces.points` gives them in the central crop's grid units."""
    geo = CropGeometry(32)
    built = cached_pairs(scan_dataset(synth, EXPR3), geo, tmp_path / "cache")
    again = cached_pairs(scan_dataset(synth, EXPR3), geo, tmp_path / "cache")  # from the .npz
    assert np.array_equal(again.target_points, built.target_points, equal_nan=True)
    assert built.neutral_points.shape == (len(built.identities), 68, 2) and built.target_points.shape == (len(built), 68, 2)
    first = int(np.flatnonzero(built.pair_expression == "happy")[0])
    folder = synth / str(built.identities[built.pair_identity[first]]).split("/")[-1]
    m = geo.matrix(find_five_points(folder / "neutral.png"))
    own = np.asarray(json.loads((folder / "happy.landmarks.json").read_text())["points"])
    assert np.abs(built.target_points[first] - apply_affine(m[:2], own)).max() < 1e-3
    plain = cached_pairs(scan_dataset(write_plain(tmp_path / "plain", n_ids=2), EXPR3), CropGeometry(64), None)
    assert np.isnan(plain.target_points).all()
    data = PairedFaces([built], EXPR3, split=None)
    src, dst = data.points(torch.tensor([first]))
    px = (dst[0].numpy() + 1) * 32 / 2 - 0.5 + geo.margin  # grid units -> cache px
    assert np.abs(px - built.target_points[first]).max() < 1e-4 and src.shape == (1, 68, 2)


def test_registration_undoes_head_motion(tmp_path):
    root = write_plain(tmp_path / "plain", n_ids=3, shift=(4.0, -3.0))
    geo = CropGeometry(64)
    for i in range(3):
        neutral = load_rgb(root / "neutral" / f"{i:03d}.png")
        happy = load_rgb(root / "happy" / f"{i:03d}.png")
        pts = find_five_points(root / "neutral" / f"{i:03d}.png")
        n0, t0, _ = crop_pair(neutral, happy, pts, geo, pixel_aligned=True)
        n1, t1, reg = crop_pair(neutral, happy, pts, geo, pixel_aligned=False)
        upper = (slice(geo.margin + 8, geo.margin + 30), slice(geo.margin + 14, geo.margin + 50))  # brows, eyes, freckles
        err_before = np.abs(n0[upper].astype(float) - t0[upper]).mean()
        err_after = np.abs(n1[upper].astype(float) - t1[upper]).mean()
        assert reg.ncc_after > reg.ncc_before
        assert err_after < 0.5 * err_before, (err_before, err_after)


def test_london_pairs_align_and_cache(london_faces, tmp_path):
    root = tmp_path / "london3"
    for sub in ("neutral", "happy"):
        (root / sub).mkdir(parents=True)
    for s in ("001", "002", "003"):
        for f in (f"neutral/{s}.jpg", f"neutral/{s}.landmarks189.txt", f"happy/{s}.jpg"):
            shutil.copy(london_faces / f, root / f)
    pts = find_five_points(root / "neutral" / "001.jpg")
    assert pts[0, 0] < pts[1, 0] and pts[2, 1] > pts[0, 1] and pts[3, 1] > pts[2, 1] and pts[3, 0] < pts[4, 0]
    scan = scan_dataset(root, EXPR3)
    geo = CropGeometry(64)
    built = cached_pairs(scan, geo, tmp_path / "cache")
    assert len(built) == 3 and not built.skipped
    assert built.neutral.shape == (3, geo.total, geo.total, 3) and built.neutral.dtype == np.uint8
    again = cached_pairs(scan, geo, tmp_path / "cache")  # from the .npz
    assert np.array_equal(again.target, built.target) and list(again.identities) == list(built.identities)
    # registration: the smile photo's eye region matches the neutral's far better than with one transform
    for k in range(3):
        neutral, happy = load_rgb(root / "neutral" / f"00{k + 1}.jpg"), load_rgb(root / "happy" / f"00{k + 1}.jpg")
        p = find_five_points(root / "neutral" / f"00{k + 1}.jpg")
        _, _, reg = crop_pair(neutral, happy, p, geo, pixel_aligned=False)
        assert reg.ncc_after > max(reg.ncc_before, 0.9)
    # a changed file gives a new cache key
    before = cache_path(scan, geo, tmp_path / "cache")
    os.utime(root / "happy" / "001.jpg", ns=(1, 1))
    assert cache_path(scan, geo, tmp_path / "cache") != before


def test_augmentation_is_identical_for_both_images_of_a_pair():
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(5, 3, 40, 40)
    cfg = AugmentConfig(blur_prob=0.5)
    a, b = augment_pairs(img, img.clone(), cfg, 32, gen)
    assert a.shape == (5, 3, 32, 32)
    assert torch.equal(a, b)
    a2, _ = augment_pairs(img, img.clone(), cfg, 32, torch.Generator().manual_seed(1))
    assert not torch.allclose(a, a2)  # it does change things
    c, _ = augment_pairs(img, img, AugmentConfig.off(), 32, gen)
    assert torch.equal(c, img[..., 4:36, 4:36])


# ---------------------------------------------------------------------------------------------------
# stage 1


def test_ridge_normal_equations_solve_like_fit_ridge():
    from training.losses import apply_ridge
    from training.models import LocalRegression, fit_ridge
    from training.models.stage1 import ridge_normal_equations, ridge_solve

    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 8, 8, generator=g) * 2 - 1
    t = 0.5 * x.roll(1, dims=-1) + 0.1 * torch.rand(12, 3, 8, 8, generator=g)
    w_ref, b_ref = fit_ridge(x, t, 3, 0.4)
    w, b = ridge_solve(*ridge_normal_equations(x, t, 3, chunk=5), 0.4)
    assert torch.allclose(w, w_ref, atol=1e-6) and torch.allclose(b, b_ref, atol=1e-6)
    layer = LocalRegression(1, 3, 8, 3)
    layer.set_expression(0, w, b)
    assert torch.allclose(apply_ridge(x, w, b, 3), layer(x, torch.ones(12, 1)), atol=1e-5)


def test_a_ridge_toward_identity_copies_where_the_pairs_say_little():
    """Two pairs that change nothing: the ridge toward 0 darkens the copy by its shrinkage, the one toward the identity
    copies; both solvers agree."""
    from training.losses import apply_ridge
    from training.models import fit_ridge
    from training.models.stage1 import ridge_normal_equations, ridge_solve

    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1)) * 2 - 1
    towards_zero = apply_ridge(x, *fit_ridge(x, x, 3, 1.0), 3)
    w, b = fit_ridge(x, x, 3, 1.0, toward_identity=True)
    w2, b2 = ridge_solve(*ridge_normal_equations(x, x, 3), 1.0, toward_identity=True)
    assert torch.allclose(w, w2, atol=1e-6) and torch.allclose(b, b2, atol=1e-6)
    assert float((apply_ridge(x, w, b, 3) - x).abs().max()) < 1e-5
    assert float((towards_zero - x).abs().mean()) > 0.05


def test_select_ridge_prefers_a_field_that_reaches_the_motion():
    from training.losses import ridge_table_markdown, select_ridge

    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(80, 3, 18, 18, generator=g), 3, 1)  # smooth-ish 16 px images
    x = base[..., :, :] * 2 - 1
    t = torch.roll(x, shifts=1, dims=-1)  # the "expression" moves everything one pixel right
    radius, lambdas, rows = select_ridge({"happy": (x[:60], t[:60])}, {"happy": (x[60:], t[60:])}, (1, 3), (0.01, 1.0))
    assert radius == 3 and lambdas == {"happy": 0.01}
    assert len(rows) == 4 and "**yes**" in ridge_table_markdown(rows, radius, lambdas)


# ---------------------------------------------------------------------------------------------------
# stage 2: exact resume, overfit


def _tiny_solver(synth: Path, run: Path, cache: Path, cfg: TrainConfig):
    from training.solver import Solver, fit_stage1

    sets = load_datasets([synth], 32, TINY.expressions, cache)
    train = PairedFaces(sets, TINY.expressions, "train", 0.0, 0.0, augment=cfg.augment, seed=cfg.seed)
    run.mkdir(parents=True, exist_ok=True)
    model, report = fit_stage1(TINY, cfg, train, None, run)
    return Solver(model, cfg, train, None, run, torch.device("cpu"), meta={"stage1": {"radius": report["radius"]}})


TEST_CFG = TrainConfig(iterations=4, batch_size=3, warmup_iterations=1, n_critic=2, log_every=1, sample_every=0,
                       checkpoint_every=2, augment=AugmentConfig(blur_prob=0.5), stage1_flow_steps=20)


def test_resume_is_exact(synth, tmp_path):
    torch.set_num_threads(1)
    straight = _tiny_solver(synth, tmp_path / "a", tmp_path / "cache", TEST_CFG)
    straight.train(progress=False)
    first = _tiny_solver(synth, tmp_path / "b", tmp_path / "cache", replace(TEST_CFG, iterations=2))
    first.train(progress=False)
    resumed = _tiny_solver(synth, tmp_path / "b", tmp_path / "cache", TEST_CFG)
    assert resumed.resume() == 2
    resumed.train(progress=False)
    for a, b in [(straight.G, resumed.G), (straight.D, resumed.D)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), [k for k in sa if not torch.equal(sa[k], sb[k])]
    for oa, ob in [(straight.opt_g, resumed.opt_g), (straight.opt_d, resumed.opt_d)]:
        sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
        assert sorted(sa) == sorted(sb)
        assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    # the CSV log of the resumed run has one row per iteration, no duplicates
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4]
    # the generator checkpoint alone is a normal, exportable one
    from training.checkpoint import load_generator

    _g, info = load_generator(tmp_path / "b" / "checkpoints" / "0000004-G")
    assert info["iteration"] == 4


def test_tiny_overfit_lowers_l1_to_target(synth, tmp_path):
    from training.solver import evaluate_pairs

    torch.set_num_threads(1)
    # a randomly initialised refiner output, so that the drop is large and plain to see
    cfg = replace(TEST_CFG, iterations=30, batch_size=4, n_critic=1, g_lr=1e-3, d_lr=1e-3, checkpoint_every=0,
                  augment=AugmentConfig.off(), zero_init_output=False)
    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", cfg)
    before = evaluate_pairs(solver.G, solver.train_data, torch.device("cpu"))
    solver.train(progress=False)
    after = evaluate_pairs(solver.G, solver.train_data, torch.device("cpu"))
    for expr in ("happy", "sad"):
        assert after[expr]["reggan_l1"] < 0.8 * before[expr]["reggan_l1"], (before[expr], after[expr])
        assert after[expr]["stage1_l1"] == before[expr]["stage1_l1"]  # stage 1 is frozen


def test_warmup_trains_the_refiner_every_iteration_and_leaves_d_alone(synth, tmp_path):
    torch.set_num_threads(1)
    cfg = replace(TEST_CFG, iterations=3, warmup_iterations=2, checkpoint_every=0)
    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", cfg)
    d0 = {k: v.clone() for k, v in solver.D.state_dict().items()}
    g_states = []
    for it in range(3):
        g_states.append({k: v.clone() for k, v in solver.G.refiner.state_dict().items()})
        out = solver.step(solver.G, solver.D, it)
        d_same = all(torch.equal(d0[k], v) for k, v in solver.D.state_dict().items())
        if it < 2:  # warm-up: G stepped (n_critic does not apply), D untouched, no adversarial terms
            assert d_same and "D/loss" not in out and out["G/adv"] == 0.0
            assert any(not torch.equal(g_states[-1][k], v) for k, v in solver.G.refiner.state_dict().items())
        else:  # first adversarial iteration: D steps; G waits for n_critic
            assert not d_same and "D/loss" in out and "G/loss" not in out


def test_head_lr_scale_slows_only_the_refiners_output_conv(synth, tmp_path):
    torch.set_num_threads(1)
    cfg = replace(TEST_CFG, iterations=2, warmup_iterations=2, head_lr_scale=0.01, g_lr=1e-3, checkpoint_every=0)
    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", cfg)
    head, first = solver.G.refiner.head.weight, solver.G.refiner.net[0][0].weight
    h0 = head.detach().clone()
    solver.step(solver.G, solver.D, 0)  # the zero head passes no gradient to the body yet: only the head moves
    assert 0 < float((head.detach() - h0).abs().max()) < 2e-5
    f1 = first.detach().clone()
    solver.step(solver.G, solver.D, 1)  # the body's first Adam step is ~g_lr
    assert 3e-4 < float((first.detach() - f1).abs().max()) < 2e-3


def test_refit_stage1_installs_the_closed_form_fit_again(synth, tmp_path):
    from training.solver import refit_stage1

    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", TEST_CFG)
    stage1 = solver.G.stage1
    fitted, flow = stage1.weight.detach().clone(), stage1.flow.clone()
    with torch.no_grad():
        stage1.weight.zero_(), stage1.flow.zero_(), stage1.region.fill_(1.0)
    meta = refit_stage1(solver.G, solver.train_data, None, {"radius": 3, "fitted": {"happy": {"lambda": 0.4}}}, 7, TEST_CFG)
    happy = TINY.expressions.index("happy")
    assert torch.allclose(stage1.weight[happy], fitted[happy], atol=1e-5)
    assert flow.abs().max() > 0 and torch.allclose(stage1.flow, flow, atol=1e-6)
    assert stage1.region[happy].min() < 0.01 and stage1.region[TINY.expressions.index("sad")].min() == 1.0
    assert meta["refit_at_iteration"] == 7 and meta["fitted"]["happy"]["lambda"] == 0.4
    assert meta["fitted"]["sad"]["lambda"] == 0.4  # no lambda chosen for sad: the others' median

    # with validation pairs (here the training pairs again) the lambdas are chosen again, at the model's radius
    grid = (0.001, 1000.0)
    meta = refit_stage1(solver.G, solver.train_data, solver.train_data, meta, 8, replace(TEST_CFG, ridge_lambdas=grid),
                        tmp_path / "run")
    assert {v["lambda"] for v in meta["fitted"].values()} <= set(grid) and meta["refit_at_iteration"] == 8
    report = (tmp_path / "run" / "stage1_selection.md").read_text()
    assert "chosen radius r = 3" in report and "| 1000 |" in report



def test_a_group_of_expressions_fits_its_colours_apart_where_the_rest_share_them(synth, tmp_path):
    """`ridge_shared_colour` given over the rest for one expression (`stage1_by_expression`): its neighbourhood weights
    are each colour's own, the others' alike in every colour; with its own `ridge_colour_tie` too, its colours' weights
    differ less."""
    from training.solver import refit_stage1

    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", TEST_CFG)
    meta = {"radius": 3, "fitted": {"happy": {"lambda": 0.4}}}

    def happy_and_sad(*settings: str) -> tuple[torch.Tensor, torch.Tensor]:
        groups = {"happy": ("ridge_shared_colour=false", *settings)}
        refit_stage1(solver.G, solver.train_data, None, meta, 1,
                     replace(TEST_CFG, ridge_shared_colour=True, stage1_by_expression=groups))
        weight = solver.G.stage1.weight.detach().clone()
        return weight[TINY.expressions.index("happy")], weight[TINY.expressions.index("sad")]

    happy, sad = happy_and_sad()
    assert torch.equal(sad[0], sad[1]) and torch.equal(sad[0], sad[2])
    apart = float((happy[0] - happy[2]).abs().mean())
    assert float((happy[0] - happy[2]).abs().max()) > 1e-3
    tied, _ = happy_and_sad("ridge_colour_tie=1")
    assert 0 < float((tied[0] - tied[2]).abs().mean()) < 0.8 * apart


def test_a_fit_on_normalised_faces_brings_them_to_the_training_neutrals_median(synth, tmp_path):
    from training.models.exposure import exposure_level
    from training.solver import refit_stage1

    cfg = replace(TEST_CFG, stage1_normalise_exposure=True)
    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", cfg)
    data = solver.train_data
    neutrals = data.batch(torch.nonzero(data.pair_expression != 0).flatten())[0]
    reference = solver.G.config.exposure_reference
    assert 0 < reference < 1 and reference == pytest.approx(float(exposure_level(neutrals).median()), abs=1e-4)
    assert json.loads((tmp_path / "run" / "stage1_selection.json").read_text())["exposure_reference"] == reference
    # a refit keeps the model's reference (what its maps were fitted at)
    refit_stage1(solver.G, data, None, {"radius": 3}, 5, TEST_CFG)
    assert solver.G.config.exposure_reference == reference


@pytest.mark.parametrize("logit, start", [(6.0, "stage1"), (-3.0, "copy")])
def test_identity_initialised_refiner_starts_where_its_mask_logit_says(synth, tmp_path, logit, start):
    """No warp and a constant paint mask: training starts from stage 1's output (the default, logit 6) or from
    the input (logit -3), never from a random face."""
    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", replace(TEST_CFG, mask_init_logit=logit))
    x, _, c = solver.train_data.batch(torch.arange(len(solver.train_data)))
    with torch.no_grad():
        out, s1 = solver.G.eval()(x, torch.nn.functional.one_hot(c, len(TINY.expressions)).float(), torch.ones(len(x)))
    expected = s1 if start == "stage1" else x
    assert (out - expected).abs().mean() < 0.1 * (s1 - x).abs().mean()


# ---------------------------------------------------------------------------------------------------
# CLI and torchrun


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


@pytest.mark.slow  # six subprocesses that each import torch: about 25 s
def test_cli_train_resume_and_errors(synth, tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, "-m", "training.cli", "train", "--data", str(synth), "--out", str(run),
            "--config", "tiny", "--batch-size", "2", "--sample-every", "2", "--checkpoint-every", "2", "--no-progress",
            "--log-every", "1"]
    r = subprocess.run([*base, "--iterations", "2"], capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "refiner-only warm-up" in r.stderr  # the default warm-up (4000) outlasts 2 iterations: say so
    for f in ("model.onnx", "log.csv", "samples/0000002.png", "checkpoints/0000002-G.safetensors",
              "checkpoints/0000002-state.json", "stage1_selection.md", "summary.json", "latest.json"):
        assert (run / f).is_file(), f
    grid = Image.open(run / "samples" / "0000002.png")
    assert grid.size[0] == 4 * 32  # input | stage 1 | RegGAN | target
    again = subprocess.run([*base, "--iterations", "2"], capture_output=True, text=True, env=_env(), timeout=600)
    assert again.returncode == 2 and "--resume" in again.stderr
    r = subprocess.run([*base, "--iterations", "3", "--resume"], capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "latest.json").read_text())["iteration"] == 3
    r = subprocess.run([*base, "--iterations", "4", "--resume", "--refit-stage1"], capture_output=True, text=True,
                       env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["stage1"]["refit_at_iteration"] == 3
    from reggan_plugin.artifact import load_artifact

    art = load_artifact(run / "model.onnx")
    assert art.input_size == 32 and art.provenance["iterations"] == 4
    # what `train` wrote runs in `render` (the whole loop, on the preset of the `train --help` example)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, pair in enumerate(sorted(synth.glob("*/neutral.png"))[:2]):
        shutil.copyfile(pair, frames / f"f{i}.png")
    r = subprocess.run([sys.executable, "-m", "reggan_plugin.cli", "render", "--frames", str(frames), "--out",
                        str(tmp_path / "edited"), "--model", str(run / "model.onnx"), "--backend", "cpu",
                        "--whole-image"], capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "edited").iterdir()) == ["f0.png", "f1.png"]
    if not torch.cuda.is_available():
        gpu = [sys.executable, "-m", "training.cli", "train", "--data", str(synth), "--out",
               str(tmp_path / "gpu"), "--config", "tiny", "--device", "cuda", "--iterations", "1"]
        r = subprocess.run(gpu,
                           capture_output=True, text=True, env=_env(), timeout=600)
        assert r.returncode != 0 and "cuda" in r.stderr and "CPU" not in r.stdout


def test_set_overrides_parse_each_field_type_and_refuse_unknown_names():
    cfg = TrainConfig().with_overrides(["lambda_adv=0.1", "ridge_radii=3,5", "augment.flip=false", "batch_size=4"])
    assert (cfg.lambda_adv, cfg.ridge_radii, cfg.augment.flip, cfg.batch_size) == (0.1, (3, 5), False, 4)
    assert cfg.augment.rotate_deg == AugmentConfig().rotate_deg  # the rest of augment is kept
    for bad, message in (("nope=1", "unknown setting"), ("lambda_adv=x", "not a valid float"),
                         ("augment=1", "unknown setting"), ("lambda_adv", "NAME=VALUE"), ("ridge_radii=4", "odd"),
                         ("ridge_colour_tie=-0.1", "ridge_colour_tie must be >= 0")):
        with pytest.raises(ValueError, match=message):
            TrainConfig().with_overrides([bad])


def test_cli_defaults_come_from_train_config():
    from training.cli import train

    defaults = {p.name: p.default for p in train.params}
    cfg = TrainConfig()
    for name in ("iterations", "batch_size", "sample_every", "checkpoint_every", "log_every", "seed"):
        assert defaults[name] == getattr(cfg, name), name


@pytest.mark.slow
def test_torchrun_two_processes(synth, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not found")
    run = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "training.cli", "train",
           "--data", str(synth), "--out", str(run), "--config", "tiny", "--iterations", "4", "--batch-size", "2",
           "--checkpoint-every", "2", "--sample-every", "0", "--log-every", "1", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    for rank in (0, 1):
        assert f"rank {rank}/2" in r.stderr
    ranks = json.loads((run / "ranks.json").read_text())
    assert [x["rank"] for x in ranks] == [0, 1]
    assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]  # DDP kept the replicas identical
    rows = (run / "log.csv").read_text().splitlines()[1:]
    assert [int(x.split(",")[0]) for x in rows] == [1, 2, 3, 4]  # written once, by rank 0
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == sorted(f"{i:07d}-{k}" for i in (2, 4) for k in
                           ("G.json", "G.safetensors", "D.safetensors", "state.json", "state.safetensors"))
    assert json.loads((run / "train_config.json").read_text())["world_size"] == 2


def test_sample_grid_rows_are_renders_when_photos_are_in_the_data(synth, tmp_path):
    """Sample grids go to docs/; pictures made from photo data sets must not, so renders are drawn first."""
    from training.models import RegGAN
    from training.solver import Solver

    plain = write_plain(tmp_path / "photos", n_ids=6, size=64)
    sets = load_datasets([synth, plain], 32, TINY.expressions, tmp_path / "cache")
    data = PairedFaces(sets, TINY.expressions, None)
    assert {s.layout for s in data.summaries} == {"synthetic", "plain"}
    solver = Solver(RegGAN(TINY), TrainConfig(n_samples=64), data, None, tmp_path / "run", torch.device("cpu"))
    (x, _, _), _ = solver._sample_batch()
    rendered = int((data.pair_set == 0).sum())
    assert len(x) == rendered  # every render row, no photo row
    x_all, _, _ = data.batch(torch.nonzero(data.pair_set == 0).flatten())
    assert torch.equal(x, x_all)


def test_progress_lines_give_the_time_left_in_minutes_then_hours():
    from training.solver import progress_line

    assert progress_line(500, 4000, 1.14) == "iteration 500/4000, 1.14 s each, about 67 min left"  # 3990 s
    assert progress_line(3999, 4000, 0.5) == "iteration 3999/4000, 0.50 s each, about 1 min left"
    assert progress_line(0, 10000, 1.0) == "iteration 0/10000, 1.00 s each, about 2.8 h left"
    assert progress_line(4000, 4000, 1.0).endswith("1.00 s each, done")


def test_turn_keys_fit_each_key_on_the_pairs_and_mirror_images_about_it(synth, tmp_path):
    """Every pair and its mirror image go to the keys about their turns, weighted by linear interpolation (a pair's
    weights sum to 1, its mirror's are its own reversed); the fit keeps a stage 1 per expression and key, a key
    turned one way the mirror image of the key turned as far the other."""
    from reggan_plugin.faces.turn import turn_weights
    from training.data.turn_keys import neutral_turns, turn_keyed

    keys = (-0.2, 0.0, 0.2)
    sets = load_datasets([synth], 32, TINY.expressions, tmp_path / "cache")
    data = PairedFaces(sets, TINY.expressions, "train", 0.0, 0.0)
    keyed = turn_keyed(data, keys)
    turns = neutral_turns(data)
    assert np.abs(turns).max() > 0.0
    assert len(keyed.neutral) == 2 * len(data.neutral) and keyed.expressions[3:6] == (
        "happy~turn0", "happy~turn1", "happy~turn2")
    for pair in range(len(data)):
        identity, expression = int(data.pair_neutral[pair]), int(data.pair_expression[pair])
        for mirrored, turn in ((0, turns[identity]), (1, -turns[identity])):
            mine = (keyed.pair_neutral == identity + mirrored * len(data.neutral)) & (
                keyed.pair_expression // len(keys) == expression)
            got = np.zeros(len(keys), np.float32)
            got[(keyed.pair_expression[mine] % len(keys)).numpy()] = keyed.pair_weight[mine].numpy()
            assert np.allclose(got, turn_weights(turn, keys), atol=1e-6)
            if mirrored:  # the mirror image's target is the pair's, flipped
                row = int(torch.nonzero(mine)[0])
                assert torch.equal(keyed.target[row], data.target[pair].flip(-1))

    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", replace(TEST_CFG, stage1_turn_keys=keys))
    model = solver.G
    assert model.config.turn_keys == keys and model.stage1.weight.shape[0] == len(TINY.expressions) * len(keys)
    happy = TINY.expressions.index("happy") * len(keys)
    assert not torch.allclose(model.stage1.bias[happy], model.stage1.bias[happy + 2])  # not left-right symmetric
    # fitted facing the camera and turned one way; the other way's key is the mirror image
    assert model.stage1.keys_mirrored() and torch.equal(model.stage1.bias[happy], model.stage1.bias[happy + 2].flip(-1))
    fitted = json.loads((tmp_path / "run" / "stage1_selection.json").read_text())["fitted"]
    assert fitted["happy~turn0"]["mirror_of"] == "happy~turn2" and "mirror_of" not in fitted["happy~turn1"]
    with pytest.raises(ValueError, match="turn and tilt keys"):
        from training.solver import refit_stage1

        refit_stage1(model, solver.train_data, None, {}, 1, TEST_CFG)


def test_tilt_keys_fit_a_flow_per_tilt_and_move_each_pair_by_its_own_blend(synth, tmp_path):
    """A mirror image tilts as far as its pair; each pair's tilt weights sum to 1; the fit keeps a flow per
    expression, turn key and tilt key (fitted apart where the pairs' tilts differ), and training feeds each pair its
    own pose weights, as the runtime gives a face."""
    from training.data.turn_keys import pair_tilt_weights, pair_turn_weights, turn_keyed

    keys = (-0.2, 0.0, 0.2)
    sets = load_datasets([synth], 32, TINY.expressions, tmp_path / "cache")
    data = PairedFaces(sets, TINY.expressions, "train", 0.0, 0.0)
    tilt = data.neutral_tilt.numpy()
    assert np.isfinite(tilt).all() and np.ptp(tilt) > 0.0
    tilts = (float(np.min(tilt)), float(np.max(tilt)))
    keyed = turn_keyed(data, keys)
    assert torch.equal(keyed.neutral_tilt, torch.cat([data.neutral_tilt, data.neutral_tilt]))
    weights = pair_tilt_weights(data, tilts)
    assert torch.allclose(weights.sum(1), torch.ones(len(data))) and float(weights[:, 0].std()) > 0.0

    cfg = replace(TEST_CFG, stage1_turn_keys=keys, stage1_tilt_keys=tilts, stage1_flow_steps=60)
    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", cfg)
    model = solver.G
    assert model.config.tilt_keys == tilts and model.stage1.keys_mirrored()
    flows = model.stage1.flow.view(len(TINY.expressions), len(keys), len(tilts), 2, 32, 32)
    sad = TINY.expressions.index("sad")  # the synthetic pairs: happy and sad
    assert float((flows[sad, 1, 0] - flows[sad, 1, 1]).abs().max()) > 1e-3  # fitted apart
    assert solver.turns is not None and torch.allclose(solver.turns, pair_turn_weights(data, keys, tilts))
    # a turn key whose few pairs lie between the tilt keys keeps one flow for every tilt: fitted at the keys, it would
    # extrapolate from their spread
    from training.solver import fit_motions

    between = torch.tensor([[0.6, 0.4], [0.3, 0.7]])
    x, t = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert fit_motions({"sad": (x, t)}, 32, cfg, tilts={"sad": between})["sad"][0].shape == (2, 32, 32)
    reached = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert fit_motions({"sad": (x, t)}, 32, cfg, tilts={"sad": reached})["sad"][0].shape == (2, 2, 32, 32)
    # held to landmarks as well (plain faces: nothing else to follow), each key's flow reaches its own pair's back
    src = torch.zeros(2, 68, 2)
    dst = src + torch.tensor([[[0.0, 0.1]], [[0.0, -0.1]]])
    plain = torch.zeros(2, 3, 32, 32)
    held = fit_motions({"sad": (plain, plain.clone())}, 32, replace(cfg, stage1_flow_landmarks=1.0),
                       points={"sad": (src, dst)}, tilts={"sad": reached})["sad"][0]
    at = torch.nn.functional.grid_sample(held, dst[:, :1, None], align_corners=False)[:, 1, 0, 0]  # at each's points
    assert float(at[0]) < -0.07 < 0.07 < float(at[1])


def test_without_validation_pairs_stage1_takes_a_radius_it_was_given(synth, tmp_path):
    """No validation pairs choose among ``ridge_radii``: the model's own radius where it is among them, else the first
    of them, never a radius the run was not given."""
    for radii, expected in (((5,), 5), ((1, 3), 3)):
        cfg = replace(TEST_CFG, ridge_radii=radii)
        assert _tiny_solver(synth, tmp_path / f"r{radii}", tmp_path / "cache", cfg).G.stage1.radius == expected


def test_a_keyed_model_trains_its_refiner_on_each_pair_at_its_own_turn(synth, tmp_path):
    """The refiner learns on the stage 1 the runtime gives a face: each pair's expression spread over the turn keys
    by its neutral's turn (`RegGAN.keyed`, which `split_turn` undoes), not the key facing the camera."""
    from reggan_plugin.faces.turn import turn_weights
    from training.data.turn_keys import neutral_turns
    from training.losses import psnr
    from training.solver import evaluate_pairs

    keys = (-0.2, 0.0, 0.2)
    cfg = replace(TEST_CFG, stage1_turn_keys=keys, iterations=2)
    solver = _tiny_solver(synth, tmp_path / "run", tmp_path / "cache", cfg)
    data, model = solver.train_data, solver.G
    turns = neutral_turns(data)[data.pair_neutral.numpy()]
    assert solver.turns is not None
    assert np.allclose(solver.turns.numpy(), np.stack([turn_weights(t, keys) for t in turns]), atol=1e-6)
    turned = int(np.argmax(np.abs(turns)))
    assert solver.turns[turned, 1] < 1.0  # a pair away from the camera's key

    c = torch.eye(len(TINY.expressions))[data.pair_expression[[turned]]]
    weights, turn = model.split_turn(model.keyed(c, solver.turns[[turned]]))
    assert torch.allclose(weights, c) and torch.allclose(turn, solver.turns[[turned]])
    x, _, _ = data.batch(torch.tensor([turned]))
    own = model(x, model.keyed(c, solver.turns[[turned]]), torch.ones(1))[1]
    frontal = model(x, c, torch.ones(1))[1]
    assert not torch.allclose(own, frontal)  # the keys paint differently: which one the refiner sees matters

    given = []  # the turn weights stage 1 paints each training batch with
    hook = model.stage1.register_forward_hook(lambda module, args, out: given.append(args[3]))
    solver.train(progress=False)
    hook.remove()
    assert solver.iteration == 2 and given
    allowed = {tuple(row.tolist()) for row in solver.turns}
    assert all(tuple(row.tolist()) in allowed for t in given for row in t)
    assert any(bool((t[:, 1] < 1.0).any()) for t in given)  # not every pair at the camera's key
    with pytest.raises(ValueError, match="flip"):
        _tiny_solver(synth, tmp_path / "flip", tmp_path / "cache", replace(cfg, augment=AugmentConfig(flip=True)))
    # the validation scores take each pair at its own turn too
    rows = torch.nonzero(data.pair_expression == data.pair_expression[turned]).flatten()
    x, t, c = data.batch(rows)
    s1 = model(x, model.keyed(torch.eye(len(TINY.expressions))[c], solver.turns[rows]), torch.ones(len(rows)))[1]
    expected = np.mean([psnr(s1[i], t[i]) for i in range(len(rows))])
    scores = evaluate_pairs(model, data, torch.device("cpu"))[TINY.expressions[int(c[0])]]
    assert scores["stage1_psnr"] == pytest.approx(expected, abs=1e-4)
