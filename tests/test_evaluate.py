"""training.evaluate: metrics, Frechet distance, the two judges, an end-to-end run."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from imagegen import synthetic_frame
from PIL import Image

from training.evaluate import judges_unavailable
from training.evaluate.frechet import frechet_distance, frechet_distance_gaussians
from training.evaluate.metrics import gaussian_window, l1, psnr, ssim

LONDON_IDS = ("001", "002", "003", "004")


@pytest.fixture(scope="module")
def judges():
    reason = judges_unavailable()
    if reason:
        pytest.skip(f"evaluation judges not installed ({reason}); pip install '.[evaluate]'")
    from training.evaluate.expression_judge import ExpressionJudge
    from training.evaluate.identity_judge import IdentityJudge

    return ExpressionJudge(), IdentityJudge()


# -- metrics ----------------------------------------------------------------------------------------

def test_l1_and_psnr_known_values():
    a = np.zeros((16, 16, 3))
    b = np.full((16, 16, 3), 0.1)
    assert l1(a, b) == pytest.approx(0.1)
    assert psnr(a, b) == pytest.approx(20.0)  # mse 0.01
    assert psnr(np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)) == pytest.approx(0.0)
    assert psnr(b, b) == 100.0  # identical: the cap, not inf
    with pytest.raises(ValueError):
        l1(a, b[:8])


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = np.full((20, 20, 1), 0.5), np.full((20, 20, 1), 0.25)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.5 * 0.25 + c1) / (0.5**2 + 0.25**2 + c1))
    assert ssim(a, a) == pytest.approx(1.0)


def _ssim_brute_force(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM with explicit 2-D weighted windows (the definition), one channel."""
    w1 = gaussian_window()
    w = np.outer(w1, w1)
    k = len(w1)
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(x.shape[0] - k + 1):
        for j in range(x.shape[1] - k + 1):
            px, py = x[i : i + k, j : j + k], y[i : i + k, j : j + k]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_the_definition_and_falls_with_noise():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (18, 17))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    assert ssim(x, y) == pytest.approx(_ssim_brute_force(x, y), abs=1e-9)
    assert ssim(x, y) == pytest.approx(ssim(y, x))
    noisier = np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1)
    assert ssim(x, noisier) < ssim(x, y) < 1.0
    with pytest.raises(ValueError):
        ssim(x[:10], y[:10])


# -- Frechet distance -------------------------------------------------------------------------------

def test_frechet_distance_of_known_gaussians():
    d = 4
    mu = np.array([1.0, 2.0, 0.0, -1.0])
    assert frechet_distance_gaussians(np.zeros(d), np.eye(d), mu, np.eye(d)) == pytest.approx(float(mu @ mu))
    # isotropic: d (a - b)^2
    assert frechet_distance_gaussians(np.zeros(d), 4 * np.eye(d), np.zeros(d), np.eye(d)) == pytest.approx(d * 1.0)
    # diagonal: sum (sigma1 - sigma2)^2 + |mu1 - mu2|^2
    s1, s2 = np.array([1.0, 2.0, 3.0, 0.5]), np.array([2.0, 2.0, 1.0, 0.5])
    expected = float(((s1 - s2) ** 2).sum() + mu @ mu)
    assert frechet_distance_gaussians(mu, np.diag(s1**2), np.zeros(d), np.diag(s2**2)) == pytest.approx(expected)
    # a rotated covariance: the distance does not depend on the basis
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(d, d)))
    assert frechet_distance_gaussians(q @ mu, q @ np.diag(s1**2) @ q.T, np.zeros(d), q @ np.diag(s2**2) @ q.T) == pytest.approx(expected)


def test_frechet_distance_from_samples():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, (20000, 3))
    b = rng.normal(0.0, 1.0, (20000, 3)) * [1.0, 1.0, 2.0] + [0.5, 0.0, 0.0]
    assert frechet_distance(a, b) == pytest.approx(0.25 + 1.0, abs=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


# -- judges on real photos --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def london_crops(london_faces):
    """Canonical 256 px crops of 4 people, neutral and happy, cut the evaluation's way."""
    from training.evaluate.cases import Cropper, read_rgb

    cropper = Cropper(256, pixel_aligned=False)
    neutral, happy = [], []
    for name in LONDON_IDS:
        n_path, h_path = london_faces / "neutral" / f"{name}.jpg", london_faces / "happy" / f"{name}.jpg"
        n_rgb, h_rgb = read_rgb(n_path), read_rgb(h_path)
        points = cropper.neutral_points(n_path, n_rgb)
        neutral.append(cropper.crop(n_rgb, points))
        crop, how = cropper.target_crop(n_rgb, h_rgb, points, h_path)
        assert how == "registered"
        happy.append(crop)
    return np.stack(neutral), np.stack(happy)


def test_expression_judge_sees_smiles(judges, london_crops):
    expression_judge, _ = judges
    neutral, happy = london_crops
    happy_index = expression_judge.expressions.index("happy")
    p_neutral = expression_judge.probabilities(neutral)
    p_happy = expression_judge.probabilities(happy)
    assert p_neutral.shape == (4, 7)
    assert np.allclose(p_neutral.sum(1), 1.0, atol=1e-3)
    assert p_happy[:, happy_index].mean() > p_neutral[:, happy_index].mean() + 0.3
    assert p_neutral[:, happy_index].max() < 0.2
    assert (p_neutral.argmax(1) == expression_judge.expressions.index("neutral")).sum() >= 3


def test_identity_judge_tells_people_apart(judges, london_crops):
    _, identity_judge = judges
    neutral, happy = london_crops
    e_neutral, e_happy = identity_judge.embed(neutral), identity_judge.embed(happy)
    assert e_neutral.shape == (4, 128)
    same = identity_judge.distance(e_neutral, e_happy)
    cross = np.linalg.norm(e_neutral[:, None] - e_happy[None], axis=2)[~np.eye(4, dtype=bool)]
    assert same.max() < 0.45  # London: same person ~0.23 on average
    assert cross.min() > 0.6  # different people ~0.84
    assert identity_judge.distance(e_neutral[0], identity_judge.embed(neutral[:1])[0]) == pytest.approx(0.0, abs=1e-6)


# -- end to end -------------------------------------------------------------------------------------

def _write_synthetic_set(root: Path, identities: int = 2) -> Path:
    """N identities x (neutral, happy, sad), 96 px, pixel-aligned, 5-point landmark files, a manifest."""
    root.mkdir(parents=True)
    points = [[38.4, 44.0], [57.6, 44.0], [48.0, 54.0], [40.0, 66.0], [56.0, 66.0]]
    manifest = {"format": 1, "expressions": ["neutral", "happy", "sad"], "identities": {}}
    for k in range(identities):
        name = f"id{k:05d}"
        folder = root / name
        folder.mkdir()
        base = synthetic_frame(96, 96, 3, seed=k)
        images = {}
        for j, expr in enumerate(("neutral", "happy", "sad")):
            img = base.copy()
            if expr != "neutral":  # a different 'mouth'
                img[62:70, 36 + 4 * j : 60 - 4 * j] = (200, 40 + 60 * j, 40)
            Image.fromarray(img).save(folder / f"{expr}.png")
            (folder / f"{expr}.landmarks.json").write_text(json.dumps({"points": points}))
            images[expr] = {"expression": expr, "intensity": 0.0 if expr == "neutral" else 1.0}
        manifest["identities"][name] = {"images": images}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_held_out_split_is_val_plus_test_and_never_train(tmp_path):
    from training.data.split import split_of
    from training.evaluate.cases import scan_cases

    data = _write_synthetic_set(tmp_path / "set", identities=12)
    people = {s: {c.identity for c in scan_cases(data, ("happy",), s)[1]} for s in ("all", "val", "test", "held-out")}
    assert people["held-out"] == people["val"] | people["test"]
    assert all(split_of(p) != "train" for p in people["held-out"]) and people["held-out"] < people["all"]


@pytest.mark.slow  # the whole evaluation with judges: the fast tier stays under 2 minutes
def test_evaluate_end_to_end(judges, tiny_model, tmp_path):
    from click.testing import CliRunner

    from training.evaluate.cli import evaluate

    data = _write_synthetic_set(tmp_path / "synth")
    out = tmp_path / "report"
    result = CliRunner().invoke(evaluate, ["--model", str(tiny_model), "--data", str(data), "--out", str(out),
                                           "--reference-real", "--crop-size", "64", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "synthetic"
    summary = report["summary"]
    assert set(summary) == {"happy", "sad", "all"}
    for expr in ("happy", "sad"):
        rows = summary[expr]
        assert set(rows) == {"copy", "stage1", "reggan", "real"}
        assert rows["copy"]["n"] == 2
        assert rows["copy"]["change"] == 0.0  # the copy baseline IS the input
        assert rows["copy"]["identity"] == 0.0
        assert rows["copy"]["l1"] > 0.0  # ... and differs from the target
        assert rows["real"]["l1"] == 0.0 and rows["real"]["frechet_identity"] == pytest.approx(0.0, abs=1e-6)
        assert rows["real"]["mouth_shape"] == 0.0 and rows["copy"]["mouth_shape"] > 0.0  # the lips against the real
        assert rows["reggan"]["change"] > 0.001 and rows["stage1"]["change"] > 0.001  # the model did something
        for row in rows.values():
            assert 0.0 <= row["p_target"] <= 1.0 and 0.0 <= row["ssim"] <= 1.0
    assert len(report["cases"]) == 4
    assert all(v["teeth"] is None or v["teeth"] >= 0 for c in report["cases"] for v in c["values"].values())
    assert {c["target_alignment"] for c in report["cases"]} == {"pixel-aligned"}
    md = (out / "report.md").read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "report.md").stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600
    assert "| happy | RegGAN (full) |" in md and "not FID" in md and "RegGAN PSNR" in md
    assert "## What a person sees" in md and "lips to real" in md and "teeth colour to real" in md
    assert "no lip split" not in md and report["config"]["lip_split"] is True  # the runtime's default, unsaid
    for expr in ("happy", "sad"):
        grid = Image.open(out / f"grid_{expr}.png")
        assert grid.size == (4 * 64, 18 + 2 * 64)  # input | stage 1 | RegGAN | target, 2 cases


def test_a_measure_some_cases_cannot_take_is_averaged_over_those_that_can():
    """``teeth`` is NaN where the target's mouth is closed: the mean leaves those cases out, and is None without any."""
    from training.evaluate.runner import CaseResult, summarise

    def case(identity: str, expression: str, teeth: float) -> CaseResult:
        return CaseResult(identity, expression, "pixel-aligned", {"reggan": {"psnr": 30.0, "teeth": teeth}})

    cases = [case("a", "happy", float("nan")), case("b", "happy", 4.0), case("c", "happy", 6.0),
             case("a", "sad", float("nan"))]
    summary = summarise(cases, {}, ("reggan",), ("happy", "sad"))
    assert summary["happy"]["reggan"]["teeth"] == 5.0 and summary["happy"]["reggan"]["psnr"] == 30.0
    assert summary["sad"]["reggan"]["teeth"] is None and summary["all"]["reggan"]["teeth"] == 5.0


def test_evaluate_rejects_an_unknown_expression(judges, tiny_model, tmp_path):
    from click.testing import CliRunner

    from training.evaluate.cli import evaluate

    data = _write_synthetic_set(tmp_path / "synth")
    result = CliRunner().invoke(evaluate, ["--model", str(tiny_model), "--data", str(data), "--out",
                                           str(tmp_path / "r"), "--expressions", "smug", "--no-progress"])
    assert result.exit_code == 2
    assert "smug" in result.output


def test_photo_checks_judge_the_edit_against_the_runs_own_real_smiles():
    """A smile that the expression judge rates above the people's real ones passes that line only by being as happy;
    a white band (mouth light 3x the real smiles') fails its line; without real rows the relative lines say n/a."""
    from training.evaluate.report import photo_checks

    row = {"p_target": 0.5, "identity": 0.25, "detail": 0.95, "mouth_light": 90.0, "mouth_shape": 1.0}
    rows = {"reggan": row, "copy": {**row, "mouth_shape": 1.5}, "real": {**row, "p_target": 0.45, "mouth_light": 30.0}}
    lines = photo_checks(rows)
    assert len(lines) == 5 and "P(happy)" in lines[0] and "**met**" in lines[0]
    assert "mouth light" in lines[3] and "**NOT met**" in lines[3]  # 90 > 2.5 x 30
    assert "**met**" in lines[4]  # 1.0 <= 0.9 x 1.5
    assert "**NOT met**" in photo_checks({**rows, "real": {**row, "p_target": 0.6}})[0]
    without_real = photo_checks({"reggan": row, "copy": rows["copy"]})
    assert without_real[0].endswith("n/a") and without_real[3].endswith("n/a") and "**met**" in without_real[1]
