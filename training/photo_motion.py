"""What people's own expressions move beyond the rendered one: a flow fitted on paired photographs, carried as the
``flow`` of a model's gains for photographs (`reggan_plugin.edit.calibration`).

On a photograph the model's motion is all that moves (its paint is left out), and it is the renders' motion: a
rendered smile bends closed lips into a U where people widen theirs and raise the corners. Fitted here, per
expression: the one smooth flow on the lower face that, added to the model's own motion, carries each pair's neutral
landmarks to where the same person's expression puts them (dlib's 68 points, which no judge of the evaluation uses),
on a G x G control grid bicubic to the crop as the runtime makes it (`calibration.flow_field`), smoothed and held
small. Only the pairs whose lips stay closed count: where a person parts the lips the photograph has no teeth to move
into the gap, and a flow that opens the mouth shows the model's paint there as a milky smear.

A recipe's ``[photo_motion]`` (`SETTINGS`) fits it on its ``photos`` (the choosing half) with the model its phases
made; the result is kept in ``<runs>/photo_motion.json`` and reused while the model and the settings are the same.
The bundled recipe has none: the fitted smile comes closer to people's lips by the landmarks, but by eye its corners
hook upward and its lips bulge (docs/experiments/PHOTO_MOTION.md).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reggan_plugin.errors import BackendUnavailable, UsageError

SETTINGS: dict[str, Any] = {
    "expressions": ["happy"],  # those the photos hold pairs of
    "grid": 16,  # control points a side: stage 1's own mean flow's
    # the widest inner-lip gap of a pair that counts, of the crop's side: on the London smiles the lips part by 1.7-7 px
    # of a 128 px crop or by 1.1 px and less (closed, as dlib places a closed mouth's inner lips)
    "closed_lips": 0.01,
    "smoothness": 0.1,  # weight of the control grid's squared differences against the points' mean L1 (px)
    # weight of the control grid's mean square: no motion where no landmark asks for one (at 0.01 the flow reached
    # the cheeks, moved them by a fraction of a pixel, and softened their pores: skin detail 0.96 against 0.99 on the
    # chosen half)
    "shrink": 0.3,
    "steps": 1500,
}
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"  # face_recognition_models' (dlib's iBUG 300-W predictor)
LANDMARKS = tuple(range(17, 68))  # brows, eyes, nose and mouth of dlib's 68: not the jaw line, which a smile hides
UPPER_INNER, LOWER_INNER = (61, 62, 63), (67, 66, 65)  # the inner lips' middle points, upper and lower (dlib 68)


@dataclass(frozen=True)
class PairPoints:
    """One photographed pair in the model's crop: the model's motion of the neutral [S,S,2], the neutral's landmarks
    and the expression's (registered onto the neutral crop) [68,2], crop px."""

    motion: np.ndarray
    neutral: np.ndarray
    target: np.ndarray

    @property
    def lips_gap(self) -> float:
        """The expression's inner-lip gap, crop px."""
        return float(self.target[list(LOWER_INNER), 1].mean() - self.target[list(UPPER_INNER), 1].mean())


class Landmarks68:
    """dlib's 68 face landmarks (face_recognition_models' shape predictor) of the largest face dlib finds."""

    def __init__(self) -> None:
        from .evaluate.identity_judge import INSTALL_HINT, models_dir, unavailable_reason

        reason = unavailable_reason()
        folder = models_dir()
        if reason or folder is None or not (folder / SHAPE_68).is_file():
            raise BackendUnavailable(f"fitting a photo motion needs dlib's 68-point predictor: {INSTALL_HINT}")
        import dlib

        model = folder / SHAPE_68
        self._detect = dlib.get_frontal_face_detector()
        self._predict = dlib.shape_predictor(str(model))
        self._rect = dlib.rectangle

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        step = max(1, min(rgb.shape[:2]) // 320)  # dlib's detector on a small copy; the points at full size
        faces = self._detect(np.ascontiguousarray(rgb[::step, ::step]), 1)
        if not faces:
            return None
        f = max(faces, key=lambda r: r.area())
        shape = self._predict(rgb, self._rect(f.left() * step, f.top() * step, f.right() * step, f.bottom() * step))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def collect_pairs(model: Path, folder: Path, expression: str, log: Callable[[str], None] = print) -> list[PairPoints]:
    """The pairs of ``folder`` (``neutral/`` and ``expression``/, files of one stem a person) in ``model``'s crop:
    cropped as the runtime crops the neutral (its detector's 5 points), the expression registered onto it as
    training registers photographed pairs (`training.data.crop.crop_pair`). A pair without a face or a
    registration is left out, and said so."""
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.edit.face_level import lift_gains
    from reggan_plugin.faces import landmarks68_to_5
    from reggan_plugin.geometry.align import apply_affine
    from reggan_plugin.imageio import ImageData
    from reggan_plugin.renderer import ExpressionRenderer

    from .data.crop import CropGeometry, crop_pair, registered_target_matrix
    from .evaluate.cases import given_face, read_rgb, runtime_detector, scan_cases

    renderer = ExpressionRenderer(InferenceConfig(model=model, subject="render"))
    geometry = CropGeometry(renderer.size)
    detect, landmarks = runtime_detector(), Landmarks68()
    pairs = []
    for case in scan_cases(folder, (expression,), "all")[1]:
        neutral, target = read_rgb(case.neutral), read_rgb(case.target)
        five, ln, lt = detect(neutral), landmarks(neutral), landmarks(target)
        if five is None or ln is None or lt is None:
            log(f"photo motion: {case.neutral.name}: no face found, left out")
            continue
        try:
            _, _, reg = crop_pair(neutral, target, five, geometry, False, landmarks68_to_5(lt))
        except ValueError as exc:
            log(f"photo motion: {case.neutral.name}: {exc}, left out")
            continue
        assert reg is not None
        image = ImageData(pixels=neutral, path=case.neutral, format="png", linear=False, info={})
        prepared = renderer.prepare_image(image, [given_face(five)])
        edited = renderer.forward(prepared.crops, EditConfig(expression, 1.0), lift_gains(prepared.crops),
                                  list(prepared.poses))
        m_n, m_t = geometry.matrix(five), registered_target_matrix(five, geometry, reg)
        pairs.append(PairPoints(edited[0, ..., 3:].copy(), apply_affine(m_n[:2], ln) - geometry.margin,
                                apply_affine(m_t[:2], lt) - geometry.margin))
    return pairs


def upsampling(grid: int, size: int) -> np.ndarray:
    """[size, grid]: the runtime's bicubic resize of a control grid (`calibration.flow_field`) as a matrix, one axis
    (it is separable: a field is U @ grid @ U.T per component)."""
    return np.asarray(cv2.resize(np.eye(grid, dtype=np.float32), (grid, size), interpolation=cv2.INTER_CUBIC))


def fit_flow(pairs: Sequence[PairPoints], size: int, grid: int, smoothness: float, steps: int,
             shrink: float = 0.3, seed: int = 0) -> np.ndarray:
    """The G x G x 2 control grid (crop px) whose field on the lower face, added to each pair's motion, carries the
    target landmarks back onto the neutral ones (output p reads input p + motion(p)): mean L1 over `LANDMARKS`, plus
    ``smoothness`` times the grid's mean squared differences and ``shrink`` times its mean square, by Adam."""
    import torch
    import torch.nn.functional as F

    from reggan_plugin.edit.calibration import lower_face

    torch.manual_seed(seed)
    up = torch.tensor(upsampling(grid, size))
    lower = torch.tensor(lower_face(size))
    motion = torch.tensor(np.stack([p.motion for p in pairs])).permute(0, 3, 1, 2)
    keep = list(LANDMARKS)
    target = torch.tensor(np.stack([p.target[keep] for p in pairs]), dtype=torch.float32)
    want = torch.tensor(np.stack([p.neutral[keep] for p in pairs]), dtype=torch.float32) - target
    where = ((2 * target + 1) / size - 1)[:, None]  # grid_sample's units, pixel centres at half steps
    control = torch.zeros(2, grid, grid, requires_grad=True)
    optimiser = torch.optim.Adam([control], lr=0.02)
    with torch.enable_grad():
        for _ in range(steps):
            field = (up @ control @ up.T) * lower
            reached = F.grid_sample(motion + field, where, mode="bilinear", align_corners=False)[:, :, 0]
            loss = (reached.permute(0, 2, 1) - want).abs().mean()
            loss = loss + smoothness * ((control[:, :, 1:] - control[:, :, :-1]).pow(2).mean()
                                        + (control[:, 1:] - control[:, :-1]).pow(2).mean())
            loss = loss + shrink * control.pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return control.detach().permute(1, 2, 0).numpy().astype(np.float32)


def settings_of(options: dict[str, Any]) -> dict[str, Any]:
    """`SETTINGS` with a recipe's ``[photo_motion]`` over them; a `UsageError` names an unknown key."""
    unknown = sorted(set(options) - set(SETTINGS))
    if unknown:
        raise UsageError(f"unknown [photo_motion] key(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    return {**SETTINGS, **options}


def photo_flows(model: Path, photo_dirs: Sequence[Path], options: dict[str, Any], runs: Path,
                log: Callable[[str], None] = print) -> dict[str, list[Any]]:
    """Each of ``options``' expressions' flow (a G x G x 2 nested list), fitted on the closed-lipped pairs of
    ``photo_dirs`` with ``model``'s motion; kept in ``runs``/photo_motion.json and reused while the model and the
    settings are the same."""
    settings = settings_of(options)
    stamp = {"model": hashlib.sha256(model.read_bytes()).hexdigest(), "settings": settings,
             "photos": [str(d.name) for d in photo_dirs]}
    kept = runs / "photo_motion.json"
    if kept.is_file():
        done = json.loads(kept.read_text())
        if done.get("stamp") == stamp:
            log("photo motion: done")
            return dict(done["flows"])
    from reggan_plugin.artifact import load_artifact

    size = load_artifact(model).input_size
    flows: dict[str, list[Any]] = {}
    for expression in settings["expressions"]:
        pairs = [p for d in photo_dirs if (d / expression).is_dir() for p in collect_pairs(model, d, expression, log)]
        closed = [p for p in pairs if p.lips_gap < settings["closed_lips"] * size]
        if not closed:
            raise UsageError(f"[photo_motion]: no pair of {expression} photographs with closed lips in "
                             f"{', '.join(map(str, photo_dirs))}")
        log(f"photo motion: {expression}, {len(closed)} of {len(pairs)} pairs with closed lips")
        grid = fit_flow(closed, size, int(settings["grid"]), float(settings["smoothness"]), int(settings["steps"]),
                        float(settings["shrink"]))
        flows[expression] = np.round(grid.astype(np.float64), 4).tolist()
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps({"stamp": stamp, "flows": flows}))
    return flows
