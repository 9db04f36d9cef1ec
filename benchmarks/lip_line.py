"""Where the runtime finds the line between the lips of a large face, against the face's own landmarks.

The lips are split at that line where an edit opens the mouth (``reggan_plugin.edit.lips``): a line a crop pixel or
more off moves a sliver of one lip with the other. Each portrait is scaled into a 1080p frame as
benchmarks/mouth_detail.py does, the runtime's detector finds the face, the face model's crop is cut as the renderer
cuts it, and ``lips.lip_line`` runs on it. The face's own line comes from its landmarks, mapped into the crop: a
render's 68 points (``NAME.landmarks.json`` of ``dataset render``: the inner lips' corners, 60 and 64, and the
middle of each upper and lower pair between them) or a photo's 189-point template (``NNN.landmarks189.txt``, the
London set's: 94-103, along the closed lips). Compared at the crop's columns between the landmarks' ends, crop px,
positive where the line found lies below the face's. Photos are reported in the two halves of
``training.data.split.identity_unit`` (below 0.5: the half the finder's form and ``tuning.DARK`` were chosen on).
Writes docs/LIP_LINE.md.

    python benchmarks/lip_line.py --photos ../shared/data/london-faces/neutral --side 1560 \\
        --photos data/heldout_19k_1080 --side 1080 --photos data/heldout_23k_1080 --side 1080
"""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from benchmarks.mouth_detail import portrait_frame, portrait_offset, portraits, shown_input
from reggan_plugin.edit.lips import lip_line
from reggan_plugin.geometry.align import apply_affine
from reggan_plugin.geometry.resample import warp_to_crop
from training.data.split import identity_unit

INNER_LIPS_68 = ((60, 60), (61, 67), (62, 66), (63, 65), (64, 64))  # pairs averaged: the line between the lips
CLOSED_LIPS_189 = tuple(range(94, 104))


def face_line(portrait: Path) -> np.ndarray | None:
    """(N, 2) points along the portrait's own line between the lips, in its pixels; None without landmarks."""
    render = portrait.with_name(f"{portrait.stem}.landmarks.json")
    if render.is_file():
        points = np.asarray(json.loads(render.read_text())["points"], np.float64)
        return np.array([(points[a] + points[b]) / 2 for a, b in INNER_LIPS_68])
    template = portrait.with_name(f"{portrait.stem}.landmarks189.txt")
    if template.is_file():
        return np.loadtxt(template)[list(CLOSED_LIPS_189)]
    return None


def in_frame(points: np.ndarray, size: tuple[int, int], side: int) -> np.ndarray:
    """Portrait px -> the frame px of ``portrait_frame(portrait, side)`` (the portrait scaled to side x side,
    centred, cropped to the frame's height); pixel centres at integer coordinates in both."""
    scale = np.array([side / size[0], side / size[1]])
    return (points + 0.5) * scale - 0.5 + np.array(portrait_offset(side))


def line_offsets(found_columns: np.ndarray, found_rows: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The line found less the face's (crop px, positive below) at the found columns between the truth's ends."""
    order = np.argsort(truth[:, 0])
    xs, ys = truth[order, 0], truth[order, 1]
    between = (found_columns > xs[0]) & (found_columns < xs[-1])
    return found_rows[between] - np.interp(found_columns[between], xs, ys)


def measure(folder: Path, side: int, renderer, detector) -> list[tuple[str, float, float]]:
    """(name, mean offset, largest distance) of each portrait of ``folder`` with landmarks and a face found."""
    from PIL import Image

    out = []
    for portrait in portraits(folder):
        truth = face_line(portrait)
        if truth is None:
            continue
        frame = portrait_frame(portrait, side)
        faces = detector.detect(frame)
        if not faces:
            continue
        with Image.open(portrait) as image:
            size = image.size
        m = renderer.crop_matrix(faces[0], frame.shape)
        crop = warp_to_crop(frame.astype(np.float32) / 255, m, renderer.size)
        columns, rows = lip_line(crop, renderer.lip_corners)
        offsets = line_offsets(columns, rows, apply_affine(m, in_frame(truth, size, side)))
        name = portrait.parent.name if portrait.name == "neutral.png" else portrait.stem
        out.append((name, float(offsets.mean()), float(np.abs(offsets).max())))
    return out


def table_rows(label: str, measured: list[tuple[str, float, float]]) -> str:
    means = np.array([m for _, m, _ in measured])
    worst = max(measured, key=lambda r: abs(r[1]))
    return (f"| {label} | {len(measured)} | {means.mean():+.2f} | {np.abs(means).mean():.2f} | "
            f"{int((np.abs(means) > 1).sum())} | {worst[0]}: {worst[1]:+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, action="append", required=True,
                        help="A folder of portraits with landmarks (photos, or a render folder).")
    parser.add_argument("--side", type=int, action="append", help="Each --photos folder's portrait side in the frame.")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    sides = args.side or [1080] * len(args.photos)
    if len(sides) != len(args.photos):
        parser.error("give one --side per --photos, or none")

    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces.detector import FaceDetector
    from reggan_plugin.renderer import ExpressionRenderer

    renderer, detector = ExpressionRenderer(InferenceConfig(backend="cpu")), FaceDetector()
    lines = ["# The line between the lips on large faces", "",
             f"Generated {datetime.date.today()} by `python benchmarks/lip_line.py "
             + " ".join(f"--photos {shown_input(p)} "
                        f"--side {s}" for p, s in zip(args.photos, sides))
             + "`; do not edit by hand. Method: the module docstring. Where `reggan_plugin.edit.lips.lip_line` finds the "
             "line between the lips in the face model's crop (128 px) against the face's own landmarks, crop px "
             "(positive: below); per face the mean over the mouth's columns.", "",
             "| portraits | faces | mean | mean distance | faces more than 1 px off | farthest (mean) |",
             "|---|---|---|---|---|---|"]
    for folder, side in zip(args.photos, sides):
        measured = measure(folder, side, renderer, detector)
        if not measured:
            continue
        if (folder / "manifest.json").is_file():
            lines.append(table_rows(f"`{folder.name}` at {side}", measured))
            continue
        halves: dict[str, list[tuple[str, float, float]]] = {"chosen on": [], "not chosen on": []}
        for row in measured:
            chosen = identity_unit(f"{folder.parent.name}/{row[0]}") < 0.5
            halves["chosen on" if chosen else "not chosen on"].append(row)
        lines += [table_rows(f"`{folder.parent.name}` at {side}, the half {half}", rows)
                  for half, rows in halves.items() if rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "LIP_LINE.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
