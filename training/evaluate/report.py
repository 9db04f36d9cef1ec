"""Write an evaluation: ``report.md`` (tables), ``report.json`` (everything, per case too) and one image grid
per expression, ``grid_<expression>.png`` (columns input | stage 1 | RegGAN | target, one case per row).

Grids of the London photos (or any other third-party photos) are pictures made from them: they are
written where the caller asks, on demand, and must not be committed.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from reggan_plugin.atomic import write_bytes
from reggan_plugin.config import InferenceConfig, field_default

from .runner import GRID_COLUMNS, ROW_TITLES, EvalResult, RuntimeOptions

# What an edit of real photos (neutral -> happy) must reach, judged against the same run's real smiles where it has
# them (--reference-real): at least their P(happy) (a judge fooled by a pasted white band scores above them), an
# identity distance at most ACCEPT_IDENTITY, skin detail kept at least ACCEPT_DETAIL, the mouth no brighter against the
# skin than ACCEPT_MOUTH_LIGHT times theirs, the lips nearer the real smile's than ACCEPT_LIPS of the neutral's.
ACCEPT_IDENTITY = 0.30
ACCEPT_DETAIL = 0.90
ACCEPT_MOUTH_LIGHT = 2.5
ACCEPT_LIPS = 0.9
GRID_TITLES = {"copy": "input", "stage1": "stage 1", "reggan": "RegGAN", "real": "target"}

COLUMNS = (
    ("n", "n", "{:.0f}"),
    ("change", "L1 to input", "{:.4f}"),
    ("l1", "L1 ↓", "{:.4f}"),
    ("psnr", "PSNR dB ↑", "{:.2f}"),
    ("ssim", "SSIM ↑", "{:.3f}"),
    ("p_target", "P(expr) ↑", "{:.3f}"),
    ("top1", "top-1 ↑", "{:.2f}"),
    ("identity", "id dist ↓", "{:.3f}"),
    ("frechet_identity", "Frechet id-emb ↓", "{:.3f}"),
)
SEEN_COLUMNS = (  # what a person sees at 1:1 (training/evaluate/realism.py, mouth_shape.py; docs/EVALUATION.md)
    ("detail", "skin detail kept", "{:.2f}"),
    ("mouth_light", "mouth light", "{:.1f}"),
    ("mouth_tint", "mouth tint", "{:.1f}"),
    ("mouth_shape", "lips to real ↓", "{:.2f}"),
    ("teeth", "teeth colour to real ↓", "{:.1f}"),
)


def json_value(value: object) -> object:
    """A config value as JSON holds it: paths (alone or in a tuple) as strings."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple) and any(isinstance(v, Path) for v in value):
        return [str(v) for v in value]
    return value


def shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it (a report names the model by its place in
    the repository, not on one machine)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def options_note(config: RuntimeOptions) -> str:
    """The runtime options an evaluation sets other than their defaults, said in its report (reports reproduce their
    command): how the paint was pasted, the subject's gains and the lips' split."""
    notes = []
    if config.subject != field_default(InferenceConfig, "subject"):
        notes.append(f"subject `{config.subject}`")
    if not config.lip_split:
        notes.append("no lip split")
    return "".join(f", {note}" for note in notes)


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def photo_checks(rows: dict[str, dict]) -> list[str]:
    """Real photos, neutral -> happy: each acceptance the run can answer (the real row's, with --reference-real), as
    Markdown bullet lines."""
    r, copy, real = rows["reggan"], rows["copy"], rows.get("real")

    def line(what: str, value: float | None, bound: float | None, at_least: bool) -> str:
        if value is None or bound is None:
            return f"- {what}: n/a"
        ok = value >= bound if at_least else value <= bound
        return f"- {what}: {value:.3f} ({'>=' if at_least else '<='} {bound:.3f}): **{'met' if ok else 'NOT met'}**"

    def scaled(row: dict | None, key: str, factor: float) -> float | None:
        return None if row is None or row.get(key) is None else factor * row[key]

    return [
        line("P(happy), at least the real smiles'", r["p_target"], scaled(real, "p_target", 1.0), True),
        line("identity distance", r["identity"], ACCEPT_IDENTITY, False),
        line("skin detail kept", r["detail"], ACCEPT_DETAIL, True),
        line(f"mouth light, at most {ACCEPT_MOUTH_LIGHT} of the real smiles'", r["mouth_light"],
             scaled(real, "mouth_light", ACCEPT_MOUTH_LIGHT), False),
        line(f"lips to the real smile's, at most {ACCEPT_LIPS} of the neutral's", r["mouth_shape"],
             scaled(copy, "mouth_shape", ACCEPT_LIPS), False),
    ]


def checks(result: EvalResult) -> list[str]:
    """The acceptance checks that this run can answer, as Markdown bullet lines."""
    lines = []
    s = result.summary
    if result.layout == "plain" and "happy" in s:
        lines += photo_checks(s["happy"])
    if result.layout == "synthetic":
        for expr, rows in s.items():
            if expr == "all":
                continue
            beats = (rows["reggan"]["psnr"] or 0.0) > max(rows["copy"]["psnr"] or 0.0, rows["stage1"]["psnr"] or 0.0)
            lines.append(f"- {expr}: RegGAN PSNR {rows['reggan']['psnr']:.2f} dB vs copy {rows['copy']['psnr']:.2f}, "
                         f"stage 1 {rows['stage1']['psnr']:.2f}: **{'beats both' if beats else 'does NOT beat both'}**.")
    return lines


def markdown(result: EvalResult) -> str:
    c = result.config
    alignments: dict[str, int] = {}
    for case in result.cases:
        alignments[case.target_alignment] = alignments.get(case.target_alignment, 0) + 1
    lines = [
        "# Evaluation report",
        "",
        f"- Model: `{shown_path(result.model_path)}` (sha256 {result.model_sha256[:16]}...), backend {result.backend}"
        + options_note(c),
        f"- Data: `{c.data}` ({result.layout} layout, split {c.split}, {len(result.cases)} pairs"
        + (f", at most {c.limit} per expression" if c.limit else "") + f"), intensity {c.intensity}",
        f"- Faces: 5 points from {'landmark files (detector where missing)' if c.locate == 'landmarks' else 'the runtime detector'}; "
        f"models run on the whole picture through the render pipeline; every row cut with the neutral's "
        f"transform to {c.crop_size} px crops. Targets: "
        + ", ".join(f"{n} {k}" for k, n in sorted(alignments.items())) + ".",
        f"- Expression judge: {result.judges['expression']}. Identity judge: {result.judges['identity']}. "
        f"Mouth-shape judge: {result.judges['mouth shape']}.",
        "- P(expr): the expression judge's probability of the target expression; top-1: how often it is the judge's "
        "first choice. id dist: Euclidean distance of identity embeddings to the same person's neutral input "
        "(dlib: same person < 0.6). Frechet id-emb: Frechet distance between Gaussians fitted to the row's and "
        "the real targets' identity embeddings (not FID). Lips to real: mean distance of the lips' 40 points to the "
        "real target's, % of the crop (the copy row: how far the neutral mouth is from it). "
        "L1 to input: how much the row changed the input crop. "
        "L1/PSNR/SSIM: against the real target crop, "
        "values in [0, 1], SSIM Gaussian 11x11 (numpy, training/evaluate/metrics.py).",
        "",
    ]
    check_lines = checks(result)
    if check_lines:
        lines += ["## Checks", "", *check_lines, ""]
    lines += ["## Results", "", *_table(result, COLUMNS), "", "## What a person sees", "",
              "Skin detail kept away from the mouth and eyes (output over input), the mouth's light and tint against "
              "the skin (levels; the real row is the yardstick), the lips' distance to the real target's, and the colour "
              "of the lightest third inside the real target's open mouth (its teeth) against the target's (CIELAB a*b*; "
              "n/a where every target's mouth is closed).", "",
              *_table(result, SEEN_COLUMNS)]
    grids = [f"`grid_{e}.png`" for e, g in result.grids.items() if g]
    lines += ["", f"Grids (input | stage 1 | RegGAN | target): {', '.join(grids) or 'none'}."]
    if result.layout != "synthetic":
        lines.append("Pictures made from third-party photos: produced on demand, do not commit them.")
    if result.skipped:
        lines += ["", f"{len(result.skipped)} file(s) skipped while scanning, first: {result.skipped[0]}"]
    return "\n".join(lines) + "\n"


def _table(result: EvalResult, columns: tuple[tuple[str, str, str], ...]) -> list[str]:
    """The summary's rows under ``columns`` (key, title, format), as markdown lines."""
    lines = ["| expression | row | " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "---|" * (len(columns) + 2)]
    for expr, rows in result.summary.items():
        for row in result.rows:
            cells = " | ".join(_fmt(rows[row].get(key), pattern) for key, _, pattern in columns)
            lines.append(f"| {expr} | {ROW_TITLES[row]} | {cells} |")
    return lines


def as_json(result: EvalResult) -> dict:
    config = {k: json_value(v) for k, v in dataclasses.asdict(result.config).items()}
    return {
        "config": config,
        "model": {"path": shown_path(result.model_path), "sha256": result.model_sha256, "expressions": list(result.model_expressions)},
        "backend": result.backend,
        "layout": result.layout,
        "rows": {r: ROW_TITLES[r] for r in result.rows},
        "judges": result.judges,
        "summary": result.summary,
        "checks": checks(result),
        "cases": [_without_nan(dataclasses.asdict(c)) for c in result.cases],
        "skipped": result.skipped,
    }


def _without_nan(case: dict) -> dict:
    """A case as JSON holds it: a measure it could not take (NaN, `runner._case_values`) as null."""
    values = {row: {k: None if isinstance(v, float) and math.isnan(v) else v
                        for k, v in measures.items()} for row, measures in case["values"].items()}
    return {**case, "values": values}


def grid_image(cells: list[dict[str, np.ndarray]], label_height: int = 18) -> Image.Image:
    """Rows of {column: SxSx3 uint8} -> one picture, columns GRID_COLUMNS with a title strip on top."""
    size = cells[0][GRID_COLUMNS[0]].shape[0]
    width, height = size * len(GRID_COLUMNS), label_height + size * len(cells)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, col in enumerate(GRID_COLUMNS):
        draw.text((j * size + 4, 3), GRID_TITLES[col], fill=(0, 0, 0))
        for i, row in enumerate(cells):
            canvas.paste(Image.fromarray(row[col]), (j * size, label_height + i * size))
    return canvas




def write_report(result: EvalResult, out: Path) -> list[Path]:
    """Write report.md, report.json and grid_<expression>.png into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    md, js = out / "report.md", out / "report.json"
    write_bytes(md, markdown(result).encode())
    write_bytes(js, (json.dumps(as_json(result), indent=1) + "\n").encode())
    written += [md, js]
    for expr, cells in result.grids.items():
        if cells:
            path = out / f"grid_{expr}.png"
            buffer = io.BytesIO()
            grid_image(cells).save(buffer, format="PNG")
            write_bytes(path, buffer.getvalue())
            written.append(path)
    return written
