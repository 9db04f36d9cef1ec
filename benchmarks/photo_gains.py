"""How the model's gains for photographs (``reggan_plugin.edit.calibration``) were chosen, and how they hold on people they
were not chosen on.

Paired photos (``neutral/`` + ``happy/``, as the London set) are split in two halves by person
(``training/data/split.py``'s ``identity_unit``: below 0.5 the half the gains were chosen on, the rest the half that
checks them). Each candidate's edit (the bundled model, ``render`` defaults with the candidate's gains, faces found
by the runtime's detector, as ``evaluate --locate detector``) is judged on each half and on everyone: P(happy) from
the expression judge and the distance to the person's own neutral from the identity judge. The rule: the candidate
with the highest P(happy) on the first half whose identity distance there is at most ``IDENTITY_LIMIT`` (the second
half sat a little further from its people than the first under every candidate tried). Writes
docs/PHOTO_GAINS.md; no picture (third-party photos are measured, not redistributed).

    python benchmarks/photo_gains.py --data ../shared/data/london-faces --out docs
"""
from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reggan_plugin.atomic import write_text
from reggan_plugin.config import InferenceConfig
from reggan_plugin.edit.calibration import Gains
from reggan_plugin.renderer import ExpressionRenderer
from training.data.split import identity_unit
from training.evaluate.cases import Cropper, read_rgb, scan_cases
from training.evaluate.expression_judge import ExpressionJudge
from training.evaluate.identity_judge import IdentityJudge
from training.evaluate.runner import _face

EXPRESSION = "happy"
IDENTITY_LIMIT = 0.27
CENTRE = Gains(motion=(0.5, 0.5), rest_paint=0.7, upper=0.0)
CANDIDATES: tuple[tuple[str, Gains], ...] = (
    ("none (renders)", Gains()),
    ("motion alone", Gains(motion=CENTRE.motion)),
    ("rest of the paint alone", Gains(rest_paint=CENTRE.rest_paint)),
    ("upper face alone", Gains(upper=CENTRE.upper)),
    ("centre", CENTRE),
    ("motion 0.5, 0.4", replace(CENTRE, motion=(0.5, 0.4))),
    ("motion 0.5, 0.6", replace(CENTRE, motion=(0.5, 0.6))),
    ("motion 1, 0.5", replace(CENTRE, motion=(1.0, 0.5))),
    ("rest of the paint 0.5", replace(CENTRE, rest_paint=0.5)),
    ("rest of the paint 1", replace(CENTRE, rest_paint=1.0)),
    ("upper face 1", replace(CENTRE, upper=1.0)),
)


@dataclass(frozen=True)
class Score:
    p: float
    identity: float


@dataclass(frozen=True)
class Row:
    name: str
    gains: Gains
    chosen_half: Score
    check_half: Score
    everyone: Score


def chosen_half(identity: str) -> bool:
    """Whether a person is in the half the gains are chosen on."""
    return identity_unit(identity) < 0.5


def measure(data: Path, candidates: tuple[tuple[str, Gains], ...] = CANDIDATES, limit: int | None = None) -> list[Row]:
    """Each candidate judged on both halves of ``data``'s pairs (at most ``limit`` people per half)."""
    expressions, identities = ExpressionJudge(), IdentityJudge()
    renderer = ExpressionRenderer(InferenceConfig(subject="photo"))  # its gains replaced by each candidate's
    scan, cases = scan_cases(data, (EXPRESSION,), "all")
    cropper = Cropper(256, scan.pixel_aligned, "detector")
    people = sorted(cases, key=lambda c: c.identity)
    if limit is not None:
        people = ([c for c in people if chosen_half(c.identity)][:limit]
                  + [c for c in people if not chosen_half(c.identity)][:limit])
    faces = []
    for case in people:
        rgb = read_rgb(case.neutral)
        points = cropper.neutral_points(case.neutral, rgb)
        faces.append((rgb, points, identities.embed(cropper.crop(rgb, points)[None])[0]))
    half = np.array([chosen_half(c.identity) for c in people])
    column = expressions.expressions.index(EXPRESSION)
    rows = []
    for name, gains in candidates:
        renderer.gains = {EXPRESSION: gains}
        p, d = [], []
        for rgb, points, own in faces:
            crop = cropper.crop(renderer.apply_array(rgb, faces=[_face(points)], expression=EXPRESSION), points)[None]
            p.append(expressions.probabilities(crop)[0][column])
            d.append(identities.distance(identities.embed(crop)[0], own))
        ps, ds = np.array(p), np.array(d)
        scores = [Score(float(ps[where].mean()), float(ds[where].mean())) for where in (half, ~half, half | ~half)]
        rows.append(Row(name, gains, *scores))
    return rows


def choose(rows: list[Row]) -> Row | None:
    """The rule: the highest P(happy) on the chosen half within ``IDENTITY_LIMIT`` there (None: no candidate is)."""
    within = [r for r in rows if r.chosen_half.identity <= IDENTITY_LIMIT]
    return max(within, key=lambda r: r.chosen_half.p) if within else None


def write(rows: list[Row], out: Path, data: Path) -> Path:
    chosen = choose(rows)
    lines = [
        "# Gains for photographs: how they were chosen",
        "",
        f"`python benchmarks/photo_gains.py --data {data} --out {out}` ({datetime.date.today().isoformat()}), the "
        f"bundled model, `render` defaults but for each candidate's gains on {EXPRESSION}, faces found by the "
        "runtime's detector. P: the expression judge's P(happy); identity: the identity judge's distance to the "
        "person's own neutral (both as `reggan-plugin evaluate`). The people are split in two halves by "
        "`identity_unit`: the gains are chosen on the first (the highest P there with identity at most "
        f"{IDENTITY_LIMIT}), the second checks them. The candidates: a centre, each of its parts alone and its "
        "neighbours (upper face 0: the whole edit kept to the lower face, without a rendered smile's eye squint).",
        "",
        "| candidate | motion (sideways, up) | rest of the paint | upper face | P / identity, chosen half | "
        "P / identity, check half | P / identity, everyone |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "**" if r is chosen else ""
        lines.append(f"| {mark}{r.name}{mark} | {r.gains.motion[0]:g}, {r.gains.motion[1]:g} | {r.gains.rest_paint:g} "
                     f"| {r.gains.upper:g} | {r.chosen_half.p:.3f} / {r.chosen_half.identity:.3f} "
                     f"| {r.check_half.p:.3f} / {r.check_half.identity:.3f} "
                     f"| {r.everyone.p:.3f} / {r.everyone.identity:.3f} |")
    lines += ["", f"Chosen by the rule: **{chosen.name}**." if chosen else "No candidate meets the rule.", "",
              f"The bundled model carries the gains of `[gains.photo.{EXPRESSION}]` in `recipes/default.toml`, written "
              "into it by `reggan-plugin recipe`.", ""]
    path = out / "PHOTO_GAINS.md"
    write_text(path, "\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="paired photos: neutral/ and happy/")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--limit", type=int, default=None, help="at most N people per half (a quick look)")
    args = parser.parse_args()
    rows = measure(args.data, limit=args.limit)
    print(write(rows, args.out, args.data).read_text())


if __name__ == "__main__":
    main()
