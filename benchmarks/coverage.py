"""Measure the coverage model against renders' own answers; prints a table, writes docs/COVERAGE.md.

    python benchmarks/coverage.py --renders data/card_turned --renders data/card_frontal [--model M] [--no-write]

Each render folder's neutral renders (training/synth layout: DIR/<identity>/neutral.png, RGBA, and its 68-point
landmark file) are cut as the runtime cuts them from their five points, 128 px. The head: the model's coverage
against the render's alpha, as the mean error within 3 px of the silhouette and the share of pixels on the wrong side
(at 0.5) away from it. The face layer: the model's against the head above the landmarks' jaw line
(`training.coverage.face_layer`), the share of pixels on the same side over the crop and over the band about 6 px
either side of the jaw line, where the neck begins. The model was fitted on seed 8181's identities 0-95 and seed
8282's 2000-2063 (`recipes/coverage.toml`); the sets here are other identities (each folder's seed, first identity and
pose range are listed).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reggan_plugin.atomic import write_text  # noqa: E402
from reggan_plugin.edit.coverage import COVERAGE_PATH, FACE, OUTPUT, FaceCoverage  # noqa: E402
from training.coverage import jaw_agreement, render_crop  # noqa: E402

SILHOUETTE_BAND = 3  # px either side of the silhouette where the head's error is a mean, not a side


@dataclass
class Scores:
    heads: int
    near: float  # mean |coverage - alpha| within SILHOUETTE_BAND of the silhouette
    away: float  # % of the pixels further away on the wrong side
    face: float  # % of the crop where the face layer is on the jaw line's side
    jaw: float  # % of the jaw band where it is
    worst_jaw: float  # the lowest head's


def score(session, folder: Path) -> Scores:
    near, away, whole, jaw = [], [], [], []
    for png in sorted(folder.glob("*/neutral.png")):
        crop, alpha, layer = render_crop(png, np.random.default_rng(0), 0.0)
        coverage, face = (out[0] for out in session.run([OUTPUT, FACE], {"crop": crop[None]}))
        soft = ((alpha > 0.02) & (alpha < 0.98)).astype(np.uint8)
        edge = cv2.dilate(soft, np.ones((2 * SILHOUETTE_BAND + 1,) * 2, np.uint8)) > 0
        near.append(float(np.abs(coverage - alpha)[edge].mean()))
        away.append(float(np.mean((coverage[~edge] > 0.5) != (alpha[~edge] > 0.5))))
        crop_share, band_share = jaw_agreement(face, alpha, layer)
        whole.append(crop_share)
        jaw.append(band_share)
    if not near:
        raise SystemExit(f"{folder}: no neutral renders with landmark files")
    return Scores(len(near), float(np.mean(near)), 100 * float(np.mean(away)), 100 * float(np.mean(whole)),
                  100 * float(np.mean(jaw)), 100 * min(jaw))


def rendered_as(folder: Path) -> str:
    """How a render folder was made, from its manifest: seed, first identity, turn and pitch."""
    manifest = json.loads((folder / "manifest.json").read_text())
    settings, first = manifest["settings"], min(e["index"] for e in manifest["identities"].values())
    turn = f", yaw {settings['yaw'][0]:g}-{settings['yaw'][1]:g}, pitch {settings['pitch']:g}" if settings.get("yaw") else ""
    return f"seed {settings['seed']}, from {first}{turn}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=Path, action="append", required=True, help="a render folder (repeatable)")
    parser.add_argument("--model", type=Path, default=COVERAGE_PATH)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    session = FaceCoverage(args.model).session
    rows = ["| renders | rendered | heads | head: error near the silhouette | head: wrong side away from it | face layer: crop "
            "| face layer: jaw band (worst head) |", "|---|---|---|---|---|---|---|"]
    for folder in args.renders:
        s = score(session, folder)
        rows.append(f"| `{folder.name}` | {rendered_as(folder)} | {s.heads} | {s.near:.3f} | {s.away:.2f}% | {s.face:.1f}% | "
                    f"{s.jaw:.1f}% ({s.worst_jaw:.1f}%) |")
    table = "\n".join(rows)
    print(table)
    if not args.no_write:
        command = "python benchmarks/coverage.py " + " ".join(f"--renders {f}" for f in args.renders)
        text = (f"# The coverage model against the renders' own answers\n\n`{command}`\n\n"
                + __doc__.split("\n\n", 2)[2].strip() + "\n\n" + table + "\n")
        write_text(REPO / "docs" / "COVERAGE.md", text)


if __name__ == "__main__":
    main()
