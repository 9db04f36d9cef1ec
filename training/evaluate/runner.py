"""One evaluation run: every method ("row") on every case, judged side by side.

Rows (``ROWS``):
- ``copy``: the output is the input (the neutral photo unchanged);
- ``stage1``: the regression stage alone, the model's ``stage1`` output through the real render pipeline
  (``ExpressionRenderer(InferenceConfig(stage="regression"))``);
- ``reggan``: the full model through the same pipeline;
- ``real``: the true target itself (with ``reference_real``): what the judges say about real
  expressions of the same people, the yardstick for the numbers above.

Each model row runs on the WHOLE picture (the runtime aligns the face from the 5 points, runs the network
and pastes the result back with its feathered mask); every row is then cut with the neutral's transform
(``cases.Cropper``) and judged on that crop. Per case: L1 / PSNR / SSIM against the real target crop,
P(target expression) and top-1 from the expression judge, identity distance to the person's own neutral
crop from the identity judge, and ``change``, the L1 distance to the input crop (how much the method
changed the picture; 0 for the copy baseline). Per expression and row: the means, and the Frechet
identity-embedding distance between the row's embeddings and the real targets' (not FID; ``frechet.py``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reggan_plugin.config import BackendName, InferenceConfig, Subject
from reggan_plugin.renderer import ExpressionRenderer

from . import metrics, realism
from .cases import Cropper, EvalCase, Locate, SplitChoice, given_face, limit_cases, read_rgb, scan_cases
from .expression_judge import ExpressionJudge
from .frechet import frechet_distance
from .identity_judge import IdentityJudge
from .mouth_shape import INNER, MouthShapeJudge, lips_error

log = logging.getLogger(__name__)

ROWS: tuple[str, ...] = ("copy", "stage1", "reggan", "real")
ROW_TITLES = {"copy": "copy (output = input)", "stage1": "stage 1 (regression alone)", "reggan": "RegGAN (full)",
              "real": "real target (reference)"}
GRID_COLUMNS = ("copy", "stage1", "reggan", "real")  # input | stage 1 | RegGAN | target

Progress = Callable[[int, int], None]


class RuntimeOptions(Protocol):
    """The runtime options an evaluation sets (`EvalConfig`, `RobustnessConfig`)."""

    @property
    def model(self) -> Path | None: ...
    @property
    def backend(self) -> BackendName: ...
    @property
    def lip_split(self) -> bool: ...
    @property
    def subject(self) -> Subject: ...


def inference_config(config: RuntimeOptions, **extra: Any) -> InferenceConfig:
    """The runtime's config for an evaluation's options, plus ``extra`` fields (batch, stage)."""
    return InferenceConfig(model=config.model, backend=config.backend, lip_split=config.lip_split, subject=config.subject,
                           **extra)


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how. Built by the CLI (``cli.py``) or a caller."""

    data: Path
    out: Path
    model: Path | None = None  # None: the bundled default model
    backend: BackendName = "auto"
    batch: int = 8
    lip_split: bool = InferenceConfig.lip_split
    subject: Subject = InferenceConfig.subject
    intensity: float = 1.0
    expressions: tuple[str, ...] | None = None  # None: every non-neutral expression of the model
    split: SplitChoice = "all"
    limit: int | None = None  # cases per expression
    reference_real: bool = False
    crop_size: int = 256
    grid_rows: int = 6
    locate: Locate = "landmarks"


@dataclass
class CaseResult:
    identity: str
    expression: str
    target_alignment: str
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # row -> metric -> value


@dataclass
class EvalResult:
    config: EvalConfig
    rows: tuple[str, ...]
    layout: str
    model_path: str
    model_sha256: str
    model_expressions: tuple[str, ...]
    backend: str  # the backend that ran, as described by it
    cases: list[CaseResult]
    summary: dict[str, dict[str, dict[str, float | None]]]  # expression -> row -> metric -> value
    grids: dict[str, list[dict[str, np.ndarray]]]  # expression -> up to grid_rows {row: crop}
    judges: dict[str, str]
    skipped: list[str]


def _case_values(crop: np.ndarray, source: np.ndarray, target: np.ndarray, probs: np.ndarray, expr_index: int,
                 distance: float, mouth_shape: float, target_inner_lips: np.ndarray) -> dict[str, float]:
    """One row's measures of one case; ``teeth`` is NaN where the target's mouth is closed (`summarise` leaves it
    out)."""
    teeth = realism.teeth_colour(crop, target, target_inner_lips)
    return {
        "detail": realism.detail_kept(source, crop, realism.skin_region(crop.shape[0])),
        "mouth_shape": mouth_shape,
        "mouth_light": realism.mouth_light(crop),
        "mouth_tint": realism.mouth_tint(crop),
        "teeth": float("nan") if teeth is None else teeth,
        "change": metrics.l1(crop, source),
        "l1": metrics.l1(crop, target),
        "psnr": metrics.psnr(crop, target),
        "ssim": metrics.ssim(crop, target),
        "p_target": float(probs[expr_index]),
        "top1": float(int(np.argmax(probs)) == expr_index),
        "identity": float(distance),
    }


def summarise(cases: list[CaseResult], embeddings: dict[tuple[str, str], list[np.ndarray]], rows: tuple[str, ...],
              expressions: tuple[str, ...]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Means per expression and row (and over all expressions, key ``all``, when there are several), plus the
    Frechet identity-embedding distance of each row to the real targets."""
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    for expr in (*expressions, "all") if len(expressions) > 1 else expressions:
        chosen = [c for c in cases if expr in ("all", c.expression)]
        if not chosen:
            continue
        summary[expr] = {}
        real = [e for x in expressions if expr in ("all", x) for e in embeddings.get(("real", x), [])]
        for row in rows:
            stats: dict[str, float | None] = {"n": float(len(chosen))}
            for key in chosen[0].values[row]:
                known = [c.values[row][key] for c in chosen if not np.isnan(c.values[row][key])]
                stats[key] = float(np.mean(known)) if known else None  # NaN: not measured on that case
            mine = [e for x in expressions if expr in ("all", x) for e in embeddings.get((row, x), [])]
            stats["frechet_identity"] = (
                frechet_distance(np.array(mine), np.array(real)) if len(mine) >= 2 and len(real) >= 2 else None
            )
            summary[expr][row] = stats
    return summary


def evaluate(config: EvalConfig, progress: Progress | None = None) -> EvalResult:
    """Run the evaluation described by ``config`` (no files written; see ``report.write_report``)."""
    expression_judge = ExpressionJudge()
    identity_judge = IdentityJudge()
    mouth_judge = MouthShapeJudge()
    inference = inference_config(config, batch=config.batch)
    full = ExpressionRenderer(inference)
    stage1 = ExpressionRenderer(replace(inference, stage="regression"))
    model_expressions = full.artifact.expressions
    wanted = config.expressions or tuple(e for e in model_expressions if e != "neutral")
    unknown = [e for e in wanted if e not in model_expressions]
    if unknown:
        from reggan_plugin.errors import UsageError

        raise UsageError(f"the model has no expression {', '.join(unknown)}; it knows {', '.join(model_expressions)}")
    scan, cases = scan_cases(config.data, wanted, config.split, intensity=config.intensity)
    cases = limit_cases(cases, config.limit)
    expressions = tuple(e for e in expression_judge.expressions if e in {c.expression for c in cases})
    rows = ROWS if config.reference_real else ROWS[:-1]
    cropper = Cropper(config.crop_size, scan.pixel_aligned, config.locate)

    by_identity: dict[str, list[EvalCase]] = {}
    for case in cases:
        by_identity.setdefault(case.identity, []).append(case)
    results: list[CaseResult] = []
    embeddings: dict[tuple[str, str], list[np.ndarray]] = {}
    grids: dict[str, list[dict[str, np.ndarray]]] = {e: [] for e in expressions}
    skipped = list(scan.skipped)
    done = 0
    for identity, group in sorted(by_identity.items()):
        neutral_rgb = read_rgb(group[0].neutral)
        points = cropper.neutral_points(group[0].neutral, neutral_rgb)
        face = [given_face(points)]
        input_crop = cropper.crop(neutral_rgb, points)
        input_probs = expression_judge.probabilities(input_crop[None])[0]
        input_embedding = identity_judge.embed(input_crop[None])[0]
        input_lips = mouth_judge.lips(input_crop)
        for case in sorted(group, key=lambda c: expressions.index(c.expression)):
            target_rgb = read_rgb(case.target)
            target_crop, how = cropper.target_crop(neutral_rgb, target_rgb, points, case.target)
            crops = {"copy": input_crop, "real": target_crop}
            for row, renderer in (("stage1", stage1), ("reggan", full)):
                out = renderer.apply_array(neutral_rgb, faces=face, expression=case.expression, intensity=config.intensity)
                crops[row] = cropper.crop(out, points)
            index = expression_judge.expressions.index(case.expression)
            result = CaseResult(identity, case.expression, how)
            lips = {"copy": input_lips, "real": mouth_judge.lips(target_crop)}
            for row in rows:
                if row == "copy":
                    probs, emb = input_probs, input_embedding
                else:
                    probs = expression_judge.probabilities(crops[row][None])[0]
                    emb = identity_judge.embed(crops[row][None])[0]
                distance = float(identity_judge.distance(emb, input_embedding))
                row_lips = lips[row] if row in lips else mouth_judge.lips(crops[row])
                shape = lips_error(row_lips, lips["real"])
                result.values[row] = _case_values(crops[row], input_crop, target_crop, probs, index, distance, shape,
                                                  lips["real"][INNER])
                embeddings.setdefault((row, case.expression), []).append(emb)
            if "real" not in rows:  # the Frechet reference is the real targets, judged or not
                embeddings.setdefault(("real", case.expression), []).append(identity_judge.embed(target_crop[None])[0])
            if len(grids[case.expression]) < config.grid_rows:
                grids[case.expression].append({k: crops[k] for k in GRID_COLUMNS})
            results.append(result)
            done += 1
            if progress:
                progress(done, len(cases))
    summary = summarise(results, embeddings, rows, expressions)
    judges = {"expression": expression_judge.name, "identity": identity_judge.name, "mouth shape": mouth_judge.name,
              "frechet": "Frechet distance between Gaussians fitted to the identity judge's embeddings "
                         "(row vs real targets); NOT FID"}
    return EvalResult(config, rows, scan.layout, str(full.artifact.path), full.artifact.sha256, model_expressions,
                      full.backend.description, results, summary, grids, judges, skipped)
