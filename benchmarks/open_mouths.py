"""An edit's open mouth against real ones (`realism.opening`): the colour of the opening's darkest tenth (luma and
redness over the skin's median luma), how much of the crop it takes, its detail (the edges of teeth and tongue) and its
glow (the redness of its lightest tenth: teeth and tongue in the mouth's shade, or lit coral), on photographs and on
renders.

Photographs (paired, as the London set: ``neutral/`` + ``happy/``): each person's neutral edited into each expression
(``render`` defaults, faces found by the runtime's detector); the reference is the people's own smiles that open, the
only real open mouths such a set has (a wide-open mouth shows more of its dark than a smile's gaps, so a surprised
opening may sit at the darker end). Renders (a ``dataset render`` folder): the edit against the true render of the
same face. Per expression: how many mouths open, the median and 5th-95th percentiles of the opening's dark and
detail, its median size and detail over the reference's, the share inside the reference's 5th-95th percentile box of
dark and red, the share darker than its 5th percentile, the share softer than its 5th percentile (a dark blot is
both: near black and featureless) and the share glowing more than its 95th percentile. Writes
docs/OPEN_MOUTHS.md; ``--grids DIR`` writes neutral | edits | reference crops for a person to judge (photos never go
into the docs).

    python benchmarks/open_mouths.py --photos ../shared/data/london-faces --renders data/card_frontal --out docs
"""
from __future__ import annotations

import argparse
import datetime
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reggan_plugin.artifact import load_artifact
from reggan_plugin.atomic import write_text
from reggan_plugin.config import InferenceConfig
from reggan_plugin.renderer import ExpressionRenderer
from training.evaluate.cases import Cropper, given_face, read_rgb, scan_cases
from training.evaluate.mouth_shape import MouthShapeJudge
from training.evaluate.realism import OPENING_LEAST, Opening, opening

OPEN = ("surprised", "fearful", "happy")
SIZE = 256


@dataclass(frozen=True)
class Openings:
    """One set of mouths' openings (share, dark, red, detail, glow per open mouth) out of ``total``."""

    values: np.ndarray
    total: int

    def cells(self, reference: Openings) -> str:
        if len(self.values) == 0:
            return f"0 of {self.total} | - | - | - | - | - | - | - | - | -"
        low, high = np.percentile(reference.values, 5, axis=0), np.percentile(reference.values, 95, axis=0)
        share, dark, red, detail, glow = self.values.T
        spread = [f"{np.median(v):.2f} [{np.percentile(v, 5):.2f}, {np.percentile(v, 95):.2f}]"
                  for v in (dark, detail, glow)]
        size_ratio = np.median(share) / np.median(reference.values[:, 0])
        detail_ratio = np.median(detail) / np.median(reference.values[:, 3])
        colour = self.values[:, 1:3]
        within = np.mean(np.all((colour >= low[1:3]) & (colour <= high[1:3]), axis=1))
        return (f"{len(self.values)} of {self.total} | {spread[0]} | {np.median(red):.2f} | {spread[1]} | "
                f"{size_ratio:.2f} / {detail_ratio:.2f} | {100 * within:.0f}% | {100 * np.mean(dark < low[1]):.0f}% | "
                f"{100 * np.mean(detail < low[3]):.0f}% | {spread[2]} | {100 * np.mean(glow > high[4]):.0f}%")


def openings(found: list[Opening | None]) -> Openings:
    values = [(o.share, o.dark, o.red, o.detail, o.glow) for o in found if o is not None]
    return Openings(np.array(values, np.float64).reshape(-1, 5), len(found))


def measure(folder: Path, photos: bool, grids: Path | None) -> dict[str, tuple[Openings, Openings]]:
    """Per expression: (the edits' openings, the reference's)."""
    mouths, renderer = MouthShapeJudge(), ExpressionRenderer(InferenceConfig())
    wanted = ("happy",) if photos else OPEN
    scan, cases = scan_cases(folder, wanted, "all")
    cropper = Cropper(SIZE, scan.pixel_aligned, "detector" if photos else "landmarks")

    def measured(crop: np.ndarray) -> Opening | None:
        return opening(crop, mouths.inner_lips(crop))

    edits: dict[str, list] = {e: [] for e in OPEN}
    reference: dict[str, list] = {e: [] for e in OPEN}
    rows: list[np.ndarray] = []
    for case in sorted(cases, key=lambda c: (c.identity, c.expression)):
        rgb = read_rgb(case.neutral)
        points = cropper.neutral_points(case.neutral, rgb)
        real, _ = cropper.target_crop(rgb, read_rgb(case.target), points, case.target)
        for expression in OPEN if photos else (case.expression,):
            crop = cropper.crop(renderer.apply_array(rgb, faces=[given_face(points)], expression=expression), points)
            edits[expression].append(measured(crop))
            if not photos:
                reference[expression].append(measured(real))
            if grids is not None and len(rows) < 12 and (photos or expression == "surprised"):
                rows.append(np.concatenate([cropper.crop(rgb, points), crop, real], axis=1))
        if photos:
            reference["happy"].append(measured(real))
    if grids is not None and rows:
        grids.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).save(grids / f"open_mouths_{folder.name}.png")
    if photos:
        smiles = openings(reference["happy"])
        return {e: (openings(edits[e]), smiles) for e in OPEN}
    return {e: (openings(edits[e]), openings(reference[e])) for e in OPEN if edits[e]}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="paired photos: neutral/ and happy/")
    parser.add_argument("--renders", type=Path, help="a dataset render folder")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--grids", type=Path, default=None, help="write neutral | edit | reference crops here")
    args = parser.parse_args(argv)
    header = ("| expression | open | dark (luma / skin), median [5th, 95th] | red / skin | detail / skin, median "
              "[5th, 95th] | size / detail over the reference's | inside the reference's box | darker than the "
              "reference | softer than the reference | glow / skin, median [5th, 95th] | glowing more than the "
              "reference |")
    lines = [
        "# Open mouths: what an opening shows against real ones", "",
        f"`python benchmarks/open_mouths.py {' '.join(argv)}` ({datetime.date.today().isoformat()}), the bundled "
        f"model (sha256 {load_artifact(None).sha256[:16]}...), `render` defaults, {SIZE} px canonical crops. An "
        f"opening is the inside of the inner lip contour (MediaPipe Face Mesh) when it holds at least "
        f"{OPENING_LEAST:.1%} of the crop; its colour is the mean of its darkest tenth, luma and red (less the mean of "
        "green and blue) over the skin's median luma, its detail the standard deviation of the luma's Laplacian inside "
        "it over the same, its size the share of the crop inside it (medians over the reference's), its glow the "
        "redness of its lightest tenth over the skin's luma (teeth and tongue in the mouth's shade are near grey; a "
        "rendered inside lit brighter glows coral). The reference's box: its 5th to 95th percentiles of dark and red; "
        "darker or softer than the reference: below its 5th percentile (a dark blot is both); glowing more: above its "
        "95th.", ""]
    for folder, photos in ((args.photos, True), (args.renders, False)):
        if folder is None:
            continue
        what = ("the people's own smiles that open" if photos else "the true render of each edit")
        lines += [f"## {folder.name}: against {what}", "", header, "|---|---|---|---|---|---|---|---|---|---|---|"]
        results = measure(folder, photos, args.grids)
        for expression, (edit, reference) in results.items():
            lines.append(f"| {expression} | {edit.cells(reference)} |")
        if photos:
            real = next(iter(results.values()))[1]
            lines.append(f"| real smiles (reference) | {real.cells(real)} |")
        lines.append("")
    path = args.out / "OPEN_MOUTHS.md"
    write_text(path, "\n".join(lines))
    print(path.read_text())


if __name__ == "__main__":
    main()
