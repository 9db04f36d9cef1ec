"""evaluate --perturb: each perturbation, how it is scored, and a run end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reggan_plugin.faces import load_faces_json
from reggan_plugin.imageio import read_image
from training.evaluate.perturbations import PERTURBATIONS, Perturbed, chroma_speckle, detected, rerendered
from training.evaluate.robustness import run_case, scored_target

SAMPLE_POINTS = np.array([[90.0, 100.0], [150.0, 100.0], [120.0, 135.0], [97.0, 170.0], [143.0, 170.0]])
MOUTH = (170, 60, 60)  # the expression's change; like the picture, nothing an exposure of +1 stop clips


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = (rng.uniform(60, 160, (8, 8, 3))).repeat(32, 0).repeat(32, 1).astype(np.uint8)  # 256 px, blocky
    target = base.copy()
    target[160:180, 100:140] = MOUTH
    return base, target


class _Answering:
    """A stand-in for the renderer whose answers are known: ``perfect`` returns each perturbed case's target
    (plus the input's own noise, as a perfect edit would), ``copy`` returns the input."""

    def __init__(self, answers: dict[bytes, np.ndarray] | None = None) -> None:
        self.answers = answers

    def apply_array(self, pixels: np.ndarray, *, faces: list, expression: str, intensity: float = 1.0) -> np.ndarray:
        return pixels.copy() if self.answers is None else self.answers[pixels.tobytes()]


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_a_perfect_edit_scores_the_target_and_doing_nothing_scores_copy(name: str) -> None:
    img, tgt = _case()
    p: Perturbed = PERTURBATIONS[name](img, SAMPLE_POINTS, tgt, np.random.default_rng(1))
    assert p.pixels.dtype == np.uint8 and p.target.shape == p.pixels.shape
    if p.clean is None:  # moved, resampled or relit: the perfect edit of the changed picture is the target changed alike
        perfect = p.target.astype(np.int16)
    else:  # flaws on the input: the clean edit on the flawed picture
        perfect = p.pixels.astype(np.int16) + (p.target.astype(np.int16) - p.clean)
    scored, copy, out = run_case(_Answering({p.pixels.tobytes(): perfect}), p, "happy")  # type: ignore[arg-type]
    target = scored_target(p)
    assert np.array_equal(scored, target)  # a perfect model scores like the clean condition: its target exactly ...
    assert np.abs(target.astype(int) - (tgt if p.clean is not None or p.undo is not None else p.target)).max() <= 1
    # ... which is the clean target itself where the picture was not moved (to a level of rounding after a light change)
    assert np.array_equal(out, perfect)  # what the grid shows: the runtime's output as the user gets it
    scored, copy, out = run_case(_Answering(), p, "happy")  # type: ignore[arg-type]
    assert np.array_equal(scored, copy) and np.array_equal(out, p.pixels)
    reference = img if p.clean is not None or p.undo is not None else p.pixels
    assert np.abs(copy.astype(int) - reference).max() <= 1


def test_a_rerendered_picture_is_scored_as_an_edit_on_the_clean_one() -> None:
    img, tgt = _case()
    again = np.clip(img + np.random.default_rng(2).normal(0, 12, img.shape), 0, 255).astype(np.uint8)  # 4 samples
    p = rerendered(again)(img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
    assert p.pixels is again and p.clean is img and p.face.landmarks is not None
    perfect = again.astype(np.int16) + (tgt.astype(np.int16) - img)
    scored, copy, _ = run_case(_Answering({again.tobytes(): perfect}), p, "happy")  # type: ignore[arg-type]
    assert np.array_equal(scored, tgt) and np.array_equal(copy, img)
    with pytest.raises(ValueError, match="re-rendered"):
        rerendered(again[:128])(img, SAMPLE_POINTS, tgt, np.random.default_rng(0))


def test_highlights_clipped_by_an_exposure_change_cost_a_perfect_edit_nothing() -> None:
    img, tgt = _case()
    img[:40], tgt[:40] = 230, 245  # a highlight the expression brightens, both clipped to white by +1 stop
    p = PERTURBATIONS["exposure +1 stop"](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
    assert (p.pixels[:40] == 255).all() and (p.target[:40] == 255).all()
    scored, _, _ = run_case(_Answering({p.pixels.tobytes(): p.target}), p, "happy")  # type: ignore[arg-type]
    assert np.array_equal(scored, scored_target(p))  # no edit could tell 230 from 245 there: nor does the score


def test_box_conditions_give_a_box_alone_and_the_others_landmarks() -> None:
    img, tgt = _case()
    for name, make in PERTURBATIONS.items():
        p = make(img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
        if make is detected:  # no face in these blocks: nothing is edited
            assert p.face is None
            continue
        assert (p.face.landmarks is None) == ("box" in name), name
        if "box" in name:
            x, y, w, h = p.face.box
            centre = SAMPLE_POINTS.mean(axis=0)
            assert abs(x + w / 2 - centre[0]) < 0.6 * w and abs(y + h / 2 - centre[1]) < 0.6 * h


def test_with_no_face_given_the_runtimes_detector_locates_it() -> None:
    frames = Path(__file__).resolve().parents[1] / "samples"
    image = read_image(frames / "frames" / "shot_0004.png").pixels[..., :3]
    true = load_faces_json(frames / "faces.json").faces_for("shot_0004.png")[0].landmarks5()
    p = detected(image, true, image, np.random.default_rng(0))
    assert p.face is not None and p.face.source == "detector" and p.face.landmarks is not None
    assert np.abs(p.face.landmarks - true).max() < 0.1 * np.linalg.norm(true[1] - true[0])


def test_value_changes_are_scored_on_the_clean_picture_and_moves_move_the_target() -> None:
    img, tgt = _case()
    noisy = PERTURBATIONS["render noise sigma 6"](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
    assert 4.0 < float(np.std(noisy.pixels.astype(float) - img)) < 8.0
    for name in ("render noise sigma 6", "JPEG quality 50"):
        p = PERTURBATIONS[name](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
        assert p.clean is img and p.target is tgt and not np.array_equal(p.pixels, img), name
    for name in ("exposure +1 stop", "white balance warm"):
        p = PERTURBATIONS[name](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
        assert p.clean is None and not np.array_equal(p.target, tgt) and not np.array_equal(p.pixels, img), name
    rotated = PERTURBATIONS["rotated 10 deg"](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
    assert rotated.clean is None and not np.array_equal(rotated.target, tgt)
    bright = PERTURBATIONS["exposure +1 stop"](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
    assert bright.pixels.mean() > img.mean() * 1.2
    assert bright.undo is not None  # the inverse gains take the brighter picture back to the clean one
    assert np.abs(bright.undo(bright.pixels.astype(np.float64)) - img).max() < 1.0


def test_face_size_and_rotation_move_the_points_with_the_picture() -> None:
    from reggan_plugin.faces import box_from_landmarks

    img, tgt = _case()
    for pixels in (64, 300, 900):
        p = PERTURBATIONS[f"face {pixels} px"](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
        assert box_from_landmarks(p.points)[3] == pytest.approx(pixels, rel=0.02)
        # the mouth block sits where the scaled points say
        mouth = ((p.points[3] + p.points[4]) / 2).round().astype(int)
        assert tuple(p.target[mouth[1], mouth[0]]) == MOUTH
    p = PERTURBATIONS["rotated 10 deg"](img, SAMPLE_POINTS, tgt, np.random.default_rng(0))
    d0 = np.linalg.norm(SAMPLE_POINTS[1] - SAMPLE_POINTS[0])
    assert np.linalg.norm(p.points[1] - p.points[0]) == pytest.approx(d0)
    angle = np.degrees(np.arctan2(*(p.points[1] - p.points[0])[::-1]))
    assert abs(abs(angle) - 10.0) < 0.01


def test_chroma_speckle_sees_colour_noise_not_grey_or_smooth_edits() -> None:
    rng = np.random.default_rng(0)
    clean = np.full((64, 64, 3), 120.0)
    region = (slice(0, 64), slice(0, 64))
    grey = np.repeat(rng.normal(0, 5, (64, 64, 1)), 3, axis=2)
    smooth = np.zeros((64, 64, 3))
    smooth[..., 0] = np.linspace(0, 10, 64)[None, :]
    speckle = rng.normal(0, 5, (64, 64, 3))
    assert chroma_speckle(grey, clean, clean, region) < 1e-5  # float32 luma's rounding alone
    assert chroma_speckle(smooth, clean, clean, region) < 0.2
    assert chroma_speckle(speckle, clean, clean, region) > 3.0
    changed = clean.copy()
    changed[:] += 50  # the target changes everywhere: nothing to judge speckle on
    assert chroma_speckle(speckle, clean, changed, region) == 0.0


def test_every_condition_can_be_named_in_the_conditions_option_and_has_a_grid_of_its_own() -> None:
    """``--conditions`` is a comma-separated list: no condition name may hold a comma; and no two grid files share
    a name (exposure +1 and -1 stop)."""
    from training.evaluate.robustness import _slug

    assert all("," not in name and name == name.strip() for name in PERTURBATIONS)
    assert len({_slug(name) for name in PERTURBATIONS}) == len(PERTURBATIONS)
    assert _slug("head-sphere box (bone)") == "head_sphere_box_bone"


def test_the_report_names_the_single_cases_that_lost_the_most() -> None:
    """A mean within 1 dB can hide one failing face: the report lists cases by their loss against their own clean
    edit, worst first, and leaves out cases with no clean edit of their own (other looks)."""
    from training.evaluate.robustness import METRICS, RobustnessConfig, RobustnessResult, largest_losses, markdown

    result = RobustnessResult(RobustnessConfig(data=(Path("renders"),), out=Path("out")), "m.onnx", "0" * 64,
                              ["clean", "rotated 5 deg", "look: toon"], ["happy"])
    rows = [("clean", "renders/a", 30.0), ("clean", "renders/b", 28.0), ("rotated 5 deg", "renders/a", 29.5),
            ("rotated 5 deg", "renders/b", 25.0), ("look: toon", "toon/c", 10.0)]
    for condition, case, psnr in rows:
        result.cases.append({"condition": condition, "case": case, "expression": "happy", "psnr": psnr})
    worst = largest_losses(result)
    assert [(c["case"], c["loss"]) for c in worst] == [("renders/b", 3.0), ("renders/a", 0.5)]
    assert largest_losses(result, count=1) == worst[:1]
    result.values = {name: {"happy": {k: 1.0 for k in METRICS}} for name in result.conditions}
    assert "| rotated 5 deg | renders/b | happy | 25.00 | -3.00 |" in markdown(result)


@pytest.mark.slow
def test_perturb_end_to_end(tiny_model: Path, tmp_path: Path) -> None:
    from training.evaluate import judges_unavailable

    reason = judges_unavailable()
    if reason:
        pytest.skip(f"evaluation judges not installed ({reason}); pip install '.[evaluate]'")
    from click.testing import CliRunner

    from tests.test_evaluate import _write_synthetic_set
    from training.evaluate.cli import evaluate

    data = _write_synthetic_set(tmp_path / "synth")
    look = _write_synthetic_set(tmp_path / "other_look")
    out = tmp_path / "robust"
    conditions = "clean,render noise sigma 6,head-sphere box (bone),face 64 px"
    result = CliRunner().invoke(evaluate, ["--perturb", "--model", str(tiny_model), "--data", str(data), "--data",
                                           str(look), "--out", str(out), "--conditions", conditions, "--limit", "1",
                                           "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "robustness.json").read_text())
    assert set(report["values"]) == {*conditions.split(","), "look: other_look"}
    assert len(report["cases"]) == sum(len(per) for per in report["values"].values())  # --limit 1: a case each
    for name, per in report["values"].items():
        assert set(per) == {"happy", "sad"}, name
        for m in per.values():
            assert np.isfinite(m["psnr"]) and np.isfinite(m["copy_psnr"]) and 0 <= m["p_target"] <= 1
    md = (out / "robustness.md").read_text()
    assert "| clean |" in md and "| look: other_look |" in md and "no lip split" not in md  # the default goes unsaid
    assert (out / "grid_render_noise_sigma_6.png").is_file()
    again = tmp_path / "synth_4spp"  # the neutrals rendered again, noisier
    for neutral in data.glob("*/neutral.png"):
        (again / neutral.parent.name).mkdir(parents=True)
        pixels = np.asarray(Image.open(neutral), np.int16) + np.random.default_rng(0).integers(-20, 21, (96, 96, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(again / neutral.parent.name / "neutral.png")
    result = CliRunner().invoke(evaluate, ["--perturb", "--model", str(tiny_model), "--data", str(data), "--rerender",
                                           str(again), "--out", str(out), "--conditions", "clean", "--limit", "1",
                                           "--no-lip-split", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "robustness.json").read_text())["config"]["lip_split"] is False
    assert "no lip split" in (out / "robustness.md").read_text()
    values = json.loads((out / "robustness.json").read_text())["values"]
    assert set(values) == {"clean", "render: synth_4spp"}
    assert values["render: synth_4spp"]["happy"]["copy_psnr"] == values["clean"]["happy"]["copy_psnr"]  # on clean
    next(again.glob("*/neutral.png")).unlink()
    missing = CliRunner().invoke(evaluate, ["--perturb", "--model", str(tiny_model), "--data", str(data), "--rerender",
                                            str(again), "--out", str(out), "--conditions", "clean", "--no-progress"])
    assert missing.exit_code == 2 and "no re-render" in missing.output
    bad = CliRunner().invoke(evaluate, ["--perturb", "--model", str(tiny_model), "--data", str(data), "--out",
                                        str(out), "--conditions", "clean,sunburn", "--no-progress"])
    assert bad.exit_code == 2 and "sunburn" in bad.output
