"""How the model's gains for photographs (``reggan_plugin.edit.calibration``) were chosen, and how they hold on people
they were not chosen on.

Paired photos (``neutral/`` + ``happy/``, as the London set) are split in two halves by person
(``training/data/split.py``'s ``identity_unit``: below 0.5 the half the gains were chosen on, the rest the half that
checks them). Each candidate's edit (the bundled model, ``render`` defaults with the candidate's gains, faces found
by the runtime's detector, as ``evaluate --locate detector``) is judged on each half and on everyone: P(happy) from
the expression judge, the distance to the person's own neutral from the identity judge and the lips' distance to
the person's own smile from the mouth-shape judge; the people's own smiles are judged the same way. The rule, the
realism acceptance's (``training/evaluate/report.py``'s ``photo_checks``) on the first half: of the candidates at
least as happy there as the people's own smiles, within ``IDENTITY_LIMIT`` and with the lips closer to the real
smile's than ``LIPS_LIMIT`` of the neutral's, the one that changes the person least (the lowest identity
distance): a bar a smile reaches by being as happy as a real one, not happier. Writes docs/PHOTO_GAINS.md; no
picture (third-party photos are measured, not redistributed).

    python benchmarks/photo_gains.py --data ../shared/data/london-faces --out docs
"""
from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reggan_plugin.artifact import load_artifact
from reggan_plugin.atomic import write_text
from reggan_plugin.config import InferenceConfig
from reggan_plugin.edit.calibration import Gains, model_gains
from reggan_plugin.renderer import ExpressionRenderer
from training.data.split import in_choosing_half
from training.evaluate.cases import Cropper, given_face, read_rgb, scan_cases
from training.evaluate.expression_judge import ExpressionJudge
from training.evaluate.identity_judge import IdentityJudge
from training.evaluate.mouth_shape import MouthShapeJudge, lips_error
from training.evaluate.report import ACCEPT_IDENTITY, ACCEPT_LIPS

EXPRESSION = "happy"
IDENTITY_LIMIT = ACCEPT_IDENTITY
LIPS_LIMIT = ACCEPT_LIPS  # of the neutral's distance to the real smile
# a smile kept to the lower face; then the upper face (a rendered smile's squint) at half and in full, each with
# half, three quarters or all of the motion's upward part, with the paint and without it (the photograph's own pixels
# moved)
LOWER = Gains(motion=(1.0, 0.5), upper=0.0)
CANDIDATES: tuple[tuple[str, Gains], ...] = (
    ("none (renders)", Gains()),
    ("lower face", LOWER),
    *((f"{'no paint, ' if paint == 0 else ''}upper {upper:g}, motion up {up:g}",
       Gains(motion=(1.0, up), paint=paint, upper=upper))
      for paint in (1.0, 0.0) for upper in (0.5, 1.0) for up in (0.5, 0.75, 1.0) if (paint, upper, up) != (1, 1, 1)),
)


@dataclass(frozen=True)
class Score:
    p: float
    identity: float
    lips: float  # the lips' distance to the person's own smile (% of the crop)


@dataclass(frozen=True)
class Row:
    name: str
    gains: Gains
    chosen_half: Score
    check_half: Score
    everyone: Score


@dataclass(frozen=True)
class References:
    """The unedited neutral photos and the people's own smiles, judged as the candidates are."""

    neutral: Row
    real: Row


def measure(data: Path, candidates: tuple[tuple[str, Gains], ...] = CANDIDATES,
            limit: int | None = None) -> tuple[list[Row], References]:
    """Each candidate judged on both halves of ``data``'s pairs (at most ``limit`` people per half), and the
    references."""
    expressions, identities, mouths = ExpressionJudge(), IdentityJudge(), MouthShapeJudge()
    renderer = ExpressionRenderer(InferenceConfig(subject="photo"))  # its gains replaced by each candidate's
    scan, cases = scan_cases(data, (EXPRESSION,), "all")
    cropper = Cropper(256, scan.pixel_aligned, "detector")
    people = sorted(cases, key=lambda c: c.identity)
    if limit is not None:
        people = ([c for c in people if in_choosing_half(c.identity)][:limit]
                  + [c for c in people if not in_choosing_half(c.identity)][:limit])
    half = np.array([in_choosing_half(c.identity) for c in people])
    column = expressions.expressions.index(EXPRESSION)

    def judged(crop: np.ndarray, own: np.ndarray, real_lips: np.ndarray) -> tuple[float, float, float]:
        p = float(expressions.probabilities(crop[None])[0][column])
        distance = float(identities.distance(identities.embed(crop[None])[0], own))
        return p, distance, lips_error(mouths.lips(crop), real_lips)

    def row(name: str, gains: Gains, judgements: list[tuple[float, float, float]]) -> Row:
        values = np.array(judgements)
        return Row(name, gains, *(Score(*map(float, values[where].mean(0))) for where in (half, ~half, half | ~half)))

    faces, neutral, real = [], [], []
    for case in people:
        rgb = read_rgb(case.neutral)
        points = cropper.neutral_points(case.neutral, rgb)
        crop = cropper.crop(rgb, points)
        own = identities.embed(crop[None])[0]
        smile, _ = cropper.target_crop(rgb, read_rgb(case.target), points, case.target)
        real_lips = mouths.lips(smile)
        faces.append((rgb, points, own, real_lips))
        neutral.append(judged(crop, own, real_lips))
        real.append(judged(smile, own, real_lips))
    rows = []
    for name, gains in candidates:
        renderer.gains = {EXPRESSION: gains}
        rows.append(row(name, gains, [
            judged(cropper.crop(renderer.apply_array(rgb, faces=[given_face(points)], expression=EXPRESSION), points),
                   own, real_lips) for rgb, points, own, real_lips in faces]))
    return rows, References(row("neutral (no edit)", Gains(), neutral), row("real smiles", Gains(), real))


def choose(rows: list[Row], refs: References) -> Row | None:
    """The rule: on the chosen half, of the candidates at least as happy as the real smiles, within
    ``IDENTITY_LIMIT`` and with the lips within ``LIPS_LIMIT`` of the neutral's distance to the real smile, the
    lowest identity distance (None: no candidate is)."""
    real, neutral = refs.real.chosen_half, refs.neutral.chosen_half
    within = [r for r in rows if r.chosen_half.p >= real.p and r.chosen_half.identity <= IDENTITY_LIMIT
              and r.chosen_half.lips <= LIPS_LIMIT * neutral.lips]
    return min(within, key=lambda r: r.chosen_half.identity) if within else None


def write(rows: list[Row], refs: References, out: Path, data: Path) -> Path:
    chosen = choose(rows, refs)

    def cells(r: Row) -> str:
        halves = (r.chosen_half, r.check_half, r.everyone)
        return " | ".join(f"{s.p:.3f} / {s.identity:.3f} / {s.lips:.2f}" for s in halves)

    lines = [
        "# Gains for photographs: how they were chosen",
        "",
        f"`python benchmarks/photo_gains.py --data {data} --out {out}` ({datetime.date.today().isoformat()}), the "
        f"bundled model (sha256 {load_artifact(None).sha256[:16]}...), `render` defaults but for each candidate's "
        f"gains on {EXPRESSION}, faces found by the runtime's detector. P: the expression judge's P(happy); identity: "
        "the identity judge's distance to the person's own neutral; lips: the mouth-shape judge's distance of the "
        "lips to the person's own smile, % of the crop (all as `reggan-plugin evaluate`). The people are split in two "
        "halves by `identity_unit`: the gains are chosen on the first (of the candidates at least as happy there as "
        f"the people's own smiles, with identity at most {IDENTITY_LIMIT:g} and the lips at most {LIPS_LIMIT:g} of "
        "the neutral's distance to the real smile, the lowest identity distance), the second checks them. Upper face "
        "0 keeps the whole edit to the lower face, without a rendered smile's eye squint.",
        "",
        "| candidate | motion (sideways, up) | paint | upper face | P / identity / lips, chosen half | check half "
        "| everyone |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "**" if r is chosen else ""
        lines.append(f"| {mark}{r.name}{mark} | {r.gains.motion[0]:g}, {r.gains.motion[1]:g} | {r.gains.paint:g} "
                     f"| {r.gains.upper:g} | {cells(r)} |")
    for r in (refs.neutral, refs.real):
        lines.append(f"| {r.name} (reference) | | | | {cells(r)} |")
    carried = model_gains(load_artifact(None), "photo").get(EXPRESSION, Gains())
    carried_name = next((r.name for r in rows if r.gains == carried), str(carried))
    lines += ["", f"Chosen by the rule: **{chosen.name}**." if chosen else "No candidate meets the rule.", "",
              f"The bundled model carries **{carried_name}**: the gains of `[gains.photo.{EXPRESSION}]` in "
              "`recipes/default.toml`, written into it by `reggan-plugin recipe`."
              + (" Its paint left out was chosen by eye: [experiments/PAINT_FREE_PHOTOS.md]"
                 "(experiments/PAINT_FREE_PHOTOS.md)." if carried.paint < 1 else ""), ""]
    path = out / "PHOTO_GAINS.md"
    write_text(path, "\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="paired photos: neutral/ and happy/")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--limit", type=int, default=None, help="at most N people per half (a quick look)")
    args = parser.parse_args()
    rows, refs = measure(args.data, limit=args.limit)
    print(write(rows, refs, args.out, args.data).read_text())


if __name__ == "__main__":
    main()
