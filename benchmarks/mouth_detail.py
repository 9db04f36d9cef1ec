"""Does the edit keep a large mouth sharp? High-frequency energy of the mouth before and after, at production size.

Each portrait (neutral photos or renders, one face each) is scaled into a 1080p frame (``--side``: faces of 500-800
px), the runtime finds the face and gives it each expression (default options, CPU), and the variance of the
Laplacian of the luma is compared inside three boxes placed by the detected landmarks: the mouth (1.4 x 0.7 eye
distances), a cheek and the eyes. A ratio below 1 means detail was lost (an upscaled, blurred mouth scores far
below 1); above 1, detail was added (creases, or speckle). Writes docs/MOUTH_DETAIL.md: numbers only, no
pictures, so third-party photos can be measured without being redistributed.

    python benchmarks/mouth_detail.py --photos ../shared/data/london-faces/neutral --limit 20 --out docs
    python benchmarks/mouth_detail.py --photos PHOTOS --side 1560 --photos RENDERS --side 1080 --expression happy,sad
"""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from reggan_plugin.grain import luma

FRAME = (1920, 1080)
REGIONS = ("mouth", "cheek", "eyes")


def laplacian_variance(grey: np.ndarray) -> float:
    lap = -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    return float(lap.var())


def portrait_frame(photo: Path, side: int) -> np.ndarray:
    """The photo scaled to `side` x `side` and centred in a grey 1080p frame (cropped to its height)."""
    with Image.open(photo) as src:
        big = np.asarray(src.convert("RGB").resize((side, side), Image.Resampling.LANCZOS))
    width, height = FRAME
    frame = np.full((height, width, 3), 90, np.uint8)
    top, left = max(0, (side - height) // 2), (width - side) // 2
    frame[:, left : left + side] = big[top : top + height]
    return frame


def detail_ratios(frame: np.ndarray, renderer, detector, expression: str) -> tuple[float, dict[str, float]] | None:
    """(face height px, {region: output / input Laplacian variance}) or None when no face is found."""
    faces = detector.detect(frame)
    if not faces:
        return None
    face = faces[0]
    out = renderer.apply_array(frame, faces=[face], expression=expression)
    lm = face.landmarks
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    boxes = {"mouth": ((lm[3] + lm[4]) / 2, (0.7, 0.35)),
             "cheek": (lm[3] + np.array([-0.35 * iod, -0.4 * iod]), (0.2, 0.2)),
             "eyes": ((lm[0] + lm[1]) / 2, (0.8, 0.2))}
    before, after = luma(frame), luma(out)
    ratios = {}
    for name, (centre, (hw, hh)) in boxes.items():
        x, y, w, h = int(centre[0]), int(centre[1]), int(hw * iod), int(hh * iod)
        cut = (slice(y - h, y + h), slice(x - w, x + w))
        ratios[name] = laplacian_variance(after[cut]) / max(laplacian_variance(before[cut]), 1e-12)
    return face.box[3], ratios


def portraits(folder: Path) -> list[Path]:
    """A folder's portraits: its pictures, or for a render folder (`dataset render`, manifest.json) each identity's
    neutral render."""
    if (folder / "manifest.json").is_file():
        return sorted(folder.glob("*/neutral.png"))
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def table(name: str, side: int, expression: str, rows: list) -> list[str]:
    """One source and expression: the ratios' mean, lowest and highest per region."""
    mouth = np.array([r[2]["mouth"] for r in rows])
    lines = [f"`{name}` at side {side}, {expression}: {len(rows)} faces {min(r[1] for r in rows):.0f}-"
             f"{max(r[1] for r in rows):.0f} px tall; the mouth keeps at least 90% of its detail in "
             f"{int((mouth >= 0.9).sum())} of {len(rows)}.", "",
             "| region | mean | lowest | highest |", "|---|---|---|---|"]
    for region in REGIONS:
        values = np.array([r[2][region] for r in rows])
        lines.append(f"| {region} | {values.mean():.2f} | {values.min():.2f} | {values.max():.2f} |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, action="append", required=True,
                        help="A folder of portraits (*.jpg, *.png) or of renders (`dataset render`); repeatable.")
    parser.add_argument("--side", type=int, action="append",
                        help="Portrait side in the frame, one for every --photos or one for all (default 1560: a "
                             "512 px portrait's face at 500-600 px; a 1080 px render's face fills it at 1080).")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--expression", default="happy", help="Comma-separated expressions.")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    sides = args.side or [1560]
    if len(sides) not in (1, len(args.photos)):
        parser.error("give one --side, or one for every --photos")
    sides = sides * len(args.photos) if len(sides) == 1 else sides

    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces.detector import FaceDetector
    from reggan_plugin.renderer import ExpressionRenderer

    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    detector = FaceDetector()
    names = [f"{folder.parent.name}/{folder.name}" for folder in args.photos]
    command = " ".join(f"--photos {n} --side {s}" for n, s in zip(names, sides))
    lines = [
        "# Mouth detail at production size",
        "",
        f"Generated {datetime.date.today()} by `python benchmarks/mouth_detail.py {command} --limit {args.limit} "
        f"--expression {args.expression}`; do not edit by hand. Method: the module docstring. Model: the bundled one, "
        "CPU backend, default options. Faces in 1920x1080 frames: output / input Laplacian variance of the luma.",
        "",
    ]
    for folder, name, side in zip(args.photos, names, sides):
        frames = [(p, portrait_frame(p, side)) for p in portraits(folder)[: args.limit]]
        for expression in args.expression.split(","):
            rows = []
            for path, frame in frames:
                result = detail_ratios(frame, renderer, detector, expression)
                if result is not None:
                    rows.append((path.name, *result))
                    print(name, path.parent.name if path.name == "neutral.png" else path.name, expression,
                          f"face {result[0]:.0f} px", {k: round(v, 3) for k, v in result[1].items()}, flush=True)
            if not rows:
                raise SystemExit(f"{folder}: no face found in any portrait")
            lines += table(name, side, expression, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "MOUTH_DETAIL.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
