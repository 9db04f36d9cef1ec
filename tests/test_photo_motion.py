"""training.photo_motion: the flow for photographs fitted on paired landmarks, as the runtime applies it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from reggan_plugin.edit.calibration import flow_field, lower_face
from reggan_plugin.errors import UsageError
from reggan_plugin.geometry.resample import remap_points
from training.photo_motion import LANDMARKS, PairPoints, fit_flow, photo_flows, upsampling

S, G = 128, 16
LOWER = lower_face(S)


def _true_grid() -> np.ndarray:
    """A smooth flow: the lower face pulled sideways from the middle and up at the corners."""
    u = np.linspace(-1, 1, G, dtype=np.float32)
    return np.stack([5.0 * u[None].repeat(G, 0), -4.0 * np.abs(u)[None].repeat(G, 0)], -1)


def _pairs(field: np.ndarray, motion: tuple[float, float], n: int = 12) -> list[PairPoints]:
    """Pairs whose expression moved each landmark by ``field`` beyond a uniform model ``motion``: a neutral point is
    where the output's point reads from (output p reads input p + motion(p))."""
    rng = np.random.default_rng(3)
    pairs = []
    for _ in range(n):
        target = np.column_stack([rng.uniform(0.25, 0.75, 68), rng.uniform(0.55, 0.9, 68)]) * S
        moved = remap_points(field, target[:, 0], target[:, 1])
        pairs.append(PairPoints(np.broadcast_to(np.float32(motion), (S, S, 2)).copy(),
                                target + motion + moved, target))
    return pairs


def test_the_fit_upsamples_a_grid_as_the_runtime_does() -> None:
    grid = _true_grid()
    up = upsampling(G, S)
    mine = np.stack([up @ grid[..., c] @ up.T for c in range(2)], -1) * LOWER[..., None]
    assert np.allclose(mine, flow_field(grid, LOWER), atol=1e-4)


def test_the_fitted_flow_carries_the_expressions_landmarks_onto_the_neutrals() -> None:
    truth = flow_field(_true_grid(), LOWER)
    pairs = _pairs(truth, (0.5, -1.0))  # the model's own motion is taken as given
    fitted = flow_field(fit_flow(pairs, S, G, smoothness=0.1, steps=600), LOWER)
    points = np.concatenate([p.target[list(LANDMARKS)] for p in pairs])
    want = remap_points(truth, points[:, 0], points[:, 1])
    got = remap_points(fitted, points[:, 0], points[:, 1])
    assert np.abs(want).mean() > 0.5
    assert np.abs(got - want).mean() < 0.25 * np.abs(want).mean()
    assert np.abs(flow_field(fit_flow(_pairs(0 * truth, (0.5, -1.0)), S, G, 0.1, 300), LOWER)).max() < 0.1


def test_a_pairs_lip_gap_is_its_inner_lips_distance() -> None:
    points = np.zeros((68, 2))
    points[[61, 62, 63], 1], points[[65, 66, 67], 1] = 80.0, 83.5
    assert PairPoints(np.zeros((S, S, 2), np.float32), points, points).lips_gap == pytest.approx(3.5)


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown \[photo_motion\] key.*grids"):
        photo_flows(tmp_path / "m.onnx", [], {"grids": 8}, tmp_path)


@pytest.mark.slow  # dlib's landmarks and the bundled model on six photographs
def test_a_recipes_flow_is_fitted_on_its_photographs_and_kept(london_faces: Path, tmp_path: Path) -> None:
    """Three London pairs: each pair's points land in the model's crop (the neutral's mouth corners by the template's),
    the fit writes its flow and the settings it was made with, and a second call with them reuses it."""
    import json
    import shutil

    from reggan_plugin.artifact import default_model_path
    from reggan_plugin.geometry.align import CANONICAL_5PT
    from training.evaluate import identity_judge
    from training.photo_motion import collect_pairs

    if identity_judge.unavailable_reason():
        pytest.skip(identity_judge.unavailable_reason())
    folder = tmp_path / "pairs"
    for path in sorted((london_faces / "neutral").glob("*.jpg"))[:3]:
        for sub in ("neutral", "happy"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(london_faces / sub / path.name, folder / sub / path.name)
    model = default_model_path()
    pairs = collect_pairs(model, folder, "happy", log=lambda line: None)
    assert len(pairs) == 3
    for pair in pairs:
        corners = pair.neutral[[48, 54]] / S  # dlib's mouth corners, in crop units
        assert np.abs(corners - CANONICAL_5PT[3:5]).max() < 0.06, corners
        assert np.abs(pair.target[17:48] - pair.neutral[17:48]).mean() < 2.0  # registered on the upper face
    lines: list[str] = []
    flows = photo_flows(model, [folder], {"steps": 50, "closed_lips": 1.0}, tmp_path / "runs", lines.append)
    assert np.asarray(flows["happy"]).shape == (G, G, 2) and lines[-1].startswith("photo motion: happy, 3 of 3")
    kept = json.loads((tmp_path / "runs" / "photo_motion.json").read_text())
    assert kept["stamp"]["settings"]["steps"] == 50
    again: list[str] = []
    assert photo_flows(model, [folder], {"steps": 50, "closed_lips": 1.0}, tmp_path / "runs", again.append) == flows
    assert again == ["photo motion: done"]
