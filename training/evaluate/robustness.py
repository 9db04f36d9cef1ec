"""`evaluate --perturb`: the same edit under every perturbation users bring, beside the clean condition and the
copy baseline, per expression (``perturbations.py`` says how each condition is built and scored).

Every condition runs through the runtime's real path (``ExpressionRenderer.apply_array`` on the whole picture,
with the face as the condition gives it: a box alone goes through the runtime's box handling), and is judged on
the central face (the box around the true landmarks): PSNR and SSIM against the true target, the expression
judge's P(target expression) and the identity judge's distance to the neutral, on the canonical crop, and the
colour speckle of the edit where the target does not change. Extra data folders (other render looks) are
conditions of their own, clean. Re-render folders (``rerenders``: the first folder's neutrals rendered again with
fewer samples and no denoiser) give real render noise, scored like the Gaussian kind.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from reggan_plugin.atomic import write_bytes
from reggan_plugin.config import BackendName, InferenceConfig, Subject
from reggan_plugin.errors import InputError
from reggan_plugin.faces import box_from_landmarks
from reggan_plugin.renderer import ExpressionRenderer

from . import metrics, realism
from .cases import Cropper, EvalCase, SplitChoice, given_face, limit_cases, read_rgb, scan_cases
from .expression_judge import ExpressionJudge
from .identity_judge import IdentityJudge
from .perturbations import PERTURBATIONS, Perturbation, Perturbed, chroma_speckle, clean, rerendered
from .report import json_value, options_note, shown_path
from .runner import inference_config

Progress = Callable[[int, int], None]
WITHIN_CLEAN_DB = 1.0  # the acceptance: within 1 dB of the clean edit ...
ABOVE_COPY_DB = 2.0  # ... and at least 2 dB above doing nothing
METRICS = ("psnr", "copy_psnr", "ssim", "p_target", "identity", "speckle", "detail", "spill", "spill_large",
           "spill_far", "spill_far_large")


@dataclass(frozen=True)
class RobustnessConfig:
    data: tuple[Path, ...]  # the first folder gets every perturbation; the others (other looks) are clean conditions
    out: Path
    model: Path | None = None
    backend: BackendName = "auto"
    lip_split: bool = InferenceConfig.lip_split
    subject: Subject = InferenceConfig.subject
    split: SplitChoice = "test"  # of the first folder; the other folders are used whole (held-out looks)
    limit: int = 6  # cases per expression and folder
    expressions: tuple[str, ...] | None = None
    intensity: float = 1.0  # the edit's, and the renders' it is judged against (`scan_dataset`)
    conditions: tuple[str, ...] | None = None  # None: every one of PERTURBATIONS
    rerenders: tuple[Path, ...] = ()  # the first folder's neutrals rendered again another way: a condition each
    seed: int = 0
    crop_size: int = 128  # the judges' canonical crop
    grid_rows: int = 6


@dataclass
class RobustnessResult:
    config: RobustnessConfig
    model_path: str
    model_sha256: str
    conditions: list[str]
    expressions: list[str]
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # condition -> expr -> metric
    grids: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)  # condition -> rows of cells
    cases: list[dict] = field(default_factory=list)  # one per condition and case: its names and its values


def _region(points: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, slice]:
    x, y, w, h = box_from_landmarks(points)
    return (slice(max(int(y), 0), min(int(np.ceil(y + h)), shape[0])),
            slice(max(int(x), 0), min(int(np.ceil(x + w)), shape[1])))


def run_case(renderer: ExpressionRenderer, p: Perturbed, expression: str, intensity: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the scored picture, the copy baseline's, the runtime's output as the user gets it) for one perturbed case,
    HxWx3 uint8, scored against ``scored_target(p)``. Under flaws on the input the first two are the clean picture
    with and without the edit; under a light change, output and input taken back through ``p.undo``."""
    out = renderer.apply_array(p.pixels, faces=[] if p.face is None else [p.face], expression=expression,
                               intensity=intensity)
    if p.undo is not None:
        return _u8(p.undo(out.astype(np.float64))), _u8(p.undo(p.pixels.astype(np.float64))), out
    if p.clean is None:
        return out, p.pixels, out
    return _u8(p.clean + (out.astype(np.float64) - p.pixels)), p.clean, out


def _realism(renderer: ExpressionRenderer, scored: np.ndarray, copy: np.ndarray, target: np.ndarray,
             points: np.ndarray) -> dict[str, float]:
    """Skin detail kept away from the mouth and eyes, and spill over the whole picture (`realism`)."""
    face = given_face(points)
    m = renderer.crop_matrix(face, scored.shape)
    skin = realism.frame_region(realism.skin_region(renderer.size), m, scored.shape)
    large, share = realism.spill(scored, copy, target)
    far, far_share = realism.spill(scored, copy, target, margin=realism.SPILL_EDGE)
    return {"detail": realism.detail_kept(copy, scored, skin), "spill": large, "spill_large": share,
            "spill_far": far, "spill_far_large": far_share}


def scored_target(p: Perturbed) -> np.ndarray:
    """What ``run_case``'s pictures are scored against: the target, taken back through ``p.undo`` under a light
    change."""
    return p.target if p.undo is None else _u8(p.undo(p.target.astype(np.float64)))


def _u8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def evaluate_robustness(config: RobustnessConfig, progress: Progress | None = None) -> RobustnessResult:
    renderer = ExpressionRenderer(inference_config(config))
    expression_judge, identity_judge = ExpressionJudge(), IdentityJudge()
    wanted = config.expressions or tuple(e for e in renderer.artifact.expressions if e != "neutral")
    names = list(config.conditions or PERTURBATIONS)
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        from reggan_plugin.errors import UsageError

        raise UsageError(f"unknown perturbation(s) {', '.join(unknown)}; known: {', '.join(PERTURBATIONS)}")
    plan: list[tuple[str, list[EvalCase], Callable[[EvalCase], Perturbation]]] = []
    for k, folder in enumerate(config.data):
        _, cases = scan_cases(folder, wanted, config.split if k == 0 else "all", intensity=config.intensity)
        cases = limit_cases(cases, config.limit)
        if k == 0:
            plan += [(name, cases, _same(PERTURBATIONS[name])) for name in names]
            plan += [(f"render: {Path(again).name}", cases, partial(_rerendered, folder=folder, again=again))
                     for again in config.rerenders]
        else:
            plan.append((f"look: {Path(folder).name}", cases, _same(clean)))
    result = RobustnessResult(config, str(renderer.artifact.path), renderer.artifact.sha256,
                              [name for name, _, _ in plan], list(wanted))
    cropper = Cropper(config.crop_size, pixel_aligned=True)
    total, done = sum(len(c) for _, c, _ in plan), 0
    for c_index, (name, cases, perturbation) in enumerate(plan):
        for k, case in enumerate(cases):
            neutral, target = read_rgb(case.neutral), read_rgb(case.target)
            points = cropper.neutral_points(case.neutral, neutral)
            rng = np.random.default_rng([config.seed, c_index, k])
            p = perturbation(case)(neutral, points, target, rng)
            scored, copy, out = run_case(renderer, p, case.expression, config.intensity)
            target = scored_target(p)
            region = _region(p.points, scored.shape)
            crops = [cropper.crop(a, p.points) for a in (copy, scored, target)]
            probs = expression_judge.probabilities(crops[1][None])[0]
            emb = identity_judge.embed(np.stack(crops[:2]))
            values = {
                "psnr": metrics.psnr(scored[region], target[region]),
                "copy_psnr": metrics.psnr(copy[region], target[region]),
                "ssim": metrics.ssim(scored[region], target[region]),
                "p_target": float(probs[expression_judge.expressions.index(case.expression)]),
                "identity": float(identity_judge.distance(emb[1], emb[0])),
                "speckle": chroma_speckle(scored.astype(np.float64) - copy, copy, target, region),
                **_realism(renderer, scored, copy, target, p.points),
            }
            result.cases.append({"condition": name, "case": case.identity, "expression": case.expression,
                                 **{key: float(value) for key, value in values.items()}})
            rows = result.grids.setdefault(name, [])
            if len(rows) < config.grid_rows and not any(r[3] == case.expression for r in rows):
                # what the user gave and got (the noisy picture under noise), beside the true target as they would
                # have it (as bright as their picture under an exposure change)
                shown = [cropper.crop(a, p.points) for a in (p.pixels, out, p.target)]
                rows.append([*shown, case.expression])  # type: ignore[list-item]
            done += 1
            if progress:
                progress(done, total)
    result.values = mean_values(result.cases)
    return result


def mean_values(cases: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """condition -> expression -> each metric's mean over the cases."""
    grouped: dict[str, dict[str, list[dict]]] = {}
    for c in cases:
        grouped.setdefault(c["condition"], {}).setdefault(c["expression"], []).append(c)
    return {name: {e: {key: float(np.mean([c[key] for c in group])) for key in METRICS} for e, group in per.items()}
            for name, per in grouped.items()}


def _same(perturbation: Perturbation) -> Callable[[EvalCase], Perturbation]:
    return lambda case: perturbation


def _rerendered(case: EvalCase, folder: Path, again: Path) -> Perturbation:
    """The re-rendered neutral of ``case`` (the same path under ``again`` as under ``folder``)."""
    path = Path(again) / Path(case.neutral).resolve().relative_to(Path(folder).resolve())
    if not path.is_file():
        raise InputError(path, f"no re-render of {case.neutral} here (render the neutrals of {folder} again)")
    try:
        return rerendered(read_rgb(path))
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


def verdicts(result: RobustnessResult) -> dict[str, dict[str, bool]]:
    """Per condition and expression: within ``WITHIN_CLEAN_DB`` of the clean edit and ``ABOVE_COPY_DB`` above copy
    (the looks against copy only: their clean condition is themselves)."""
    base = result.values.get("clean", {})
    out: dict[str, dict[str, bool]] = {}
    for name, per in result.values.items():
        out[name] = {}
        for e, m in per.items():
            above = m["psnr"] >= m["copy_psnr"] + ABOVE_COPY_DB
            near = name.startswith("look: ") or e not in base or m["psnr"] >= base[e]["psnr"] - WITHIN_CLEAN_DB
            out[name][e] = bool(above and near)
    return out


def largest_losses(result: RobustnessResult, count: int = 8) -> list[dict]:
    """The single cases that lost the most PSNR against their own clean edit (conditions of the first folder), worst
    first: a mean within ``WITHIN_CLEAN_DB`` can hide one face that fails. Each: the case's values plus ``loss``."""
    clean = {(c["case"], c["expression"]): c["psnr"] for c in result.cases if c["condition"] == "clean"}
    losses = [{**c, "loss": clean[key] - c["psnr"]} for c in result.cases
              if c["condition"] != "clean" and (key := (c["case"], c["expression"])) in clean]
    return sorted(losses, key=lambda c: -c["loss"])[:count]


def markdown(result: RobustnessResult) -> str:
    exprs = result.expressions
    ok = verdicts(result)
    base = result.values.get("clean", {})
    lines = [
        "# Robustness: the same edit under what users feed the runtime",
        "",
        f"Model `{Path(result.model_path).name}` (sha256 {result.model_sha256[:12]}), data "
        + ", ".join(f"`{Path(d).name}`" for d in result.config.data)
        + f"; split `{result.config.split}` of the first folder, at most {result.config.limit} cases per expression "
        + "and condition; seed " + str(result.config.seed)
        + (f"; intensity {result.config.intensity:g}" if result.config.intensity != 1.0 else "")
        + options_note(result.config) + ".",
        "",
        "PSNR (dB) of the edit on the central face against the true target; in brackets the difference to the clean "
        "condition, then to the copy baseline (output = input) under the same condition. **ok**: within "
        f"{WITHIN_CLEAN_DB:g} dB of clean and at least {ABOVE_COPY_DB:g} dB above copy. Render noise (Gaussian, or "
        "`render:` the neutral rendered again with fewer samples and no denoiser) and JPEG are scored "
        "as the edit added to the clean picture, against the clean target; exposure and white balance change the "
        "target alike, and output, input and target are taken back through the inverse gains before scoring; "
        "rotation and size move the target alike.",
        "",
        "| condition | " + " | ".join(exprs) + " | ok |",
        "|---|" + "---|" * (len(exprs) + 1),
    ]
    for name in result.conditions:
        per = result.values.get(name, {})
        cells = []
        for e in exprs:
            if e not in per:
                cells.append("-")
                continue
            m = per[e]
            d_clean = f"{m['psnr'] - base[e]['psnr']:+.1f}, " if e in base and not name.startswith("look: ") else ""
            cells.append(f"{m['psnr']:.2f} ({d_clean}{m['psnr'] - m['copy_psnr']:+.1f})")
        passed = sum(ok[name].values())
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {passed}/{len(ok[name])} |")
    lines += ["", "Means over expressions: SSIM, the expression judge's P(target), identity distance to the neutral "
              "(dlib; same person < 0.6), colour speckle of the edit where the target does not change (levels).", "",
              "| condition | SSIM | P(target) | identity | speckle |", "|---|---|---|---|---|"]
    for name in result.conditions:
        per = result.values.get(name, {})
        mean = {k: float(np.mean([m[k] for m in per.values()])) for k in METRICS} if per else {}
        if mean:
            lines.append(f"| {name} | {mean['ssim']:.3f} | {mean['p_target']:.2f} | {mean['identity']:.3f} | "
                         f"{mean['speckle']:.2f} |")
    lines += ["", "Spill: the edit's change where the true expression leaves the picture alone, 99.9th percentile "
              f"(levels) / percentage changed by more than {realism.SPILL_LARGE} levels; then the same more than "
              f"{realism.SPILL_EDGE} px from anything the truth changes, where an edge placed a pixel off no longer "
              "counts and what is left is the edit's own (a ghost at the silhouette, a jaw in the neck).", "",
              "| condition | " + " | ".join(exprs) + " |", "|---|" + "---|" * len(exprs)]
    for name in result.conditions:
        per = result.values.get(name, {})
        lines.append(f"| {name} | " + " | ".join(
            f"{per[e]['spill']:.0f} / {per[e]['spill_large']:.2f}; {per[e]['spill_far']:.0f} / "
            f"{per[e]['spill_far_large']:.2f}" if e in per else "-" for e in exprs) + " |")
    worst = largest_losses(result)
    if worst:
        lines += ["", "Single cases that lost the most against their own clean edit (PSNR dB; the table above averages "
                  "them per expression):", "", "| condition | case | expression | PSNR | against clean |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['condition']} | {c['case']} | {c['expression']} | {c['psnr']:.2f} | {-c['loss']:+.2f} |"
                  for c in worst]
    lines += ["", "Grids: `grid_<condition>.png`, input | output | target on the judges' canonical crop, one "
              "expression per row (the same first case of each expression in every condition): what the user gave "
              "and got (the noisy, brighter or JPEG'd picture), and the target as they would have it."]
    return "\n".join(lines) + "\n"


def _slug(name: str) -> str:
    signs = re.sub(r"-(?=\d)", " minus ", re.sub(r"\+(?=\d)", " plus ", name.lower()))  # +1 and -1 stop: two files
    return re.sub(r"[^a-z0-9]+", "_", signs).strip("_")


def write_robustness(result: RobustnessResult, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    md = out / "robustness.md"
    write_bytes(md, markdown(result).encode())
    config = {k: json_value(v) for k, v in asdict(result.config).items()}
    doc = {"config": config, "model": shown_path(result.model_path), "model_sha256": result.model_sha256,
           "values": result.values, "ok": verdicts(result), "cases": result.cases}
    js = out / "robustness.json"
    write_bytes(js, json.dumps(doc, indent=1).encode())
    written += [md, js]
    for name, rows in result.grids.items():
        if not rows:
            continue
        tile = rows[0][0].shape[0]
        sheet = np.zeros((tile * len(rows), tile * 3, 3), np.uint8)
        for r, row in enumerate(rows):
            for c in range(3):
                sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = row[c]
        path = out / f"grid_{_slug(name)}.png"
        buf = io.BytesIO()
        Image.fromarray(sheet).save(buf, "PNG", optimize=True)
        write_bytes(path, buf.getvalue())
        written.append(path)
    return written
