"""Does the edit keep a large mouth sharp? High-frequency energy of the mouth before and after, at production size.

Each portrait (neutral photos or renders, one face each) is scaled so that the face fills a 1080p frame's height
at about 500-600 px, the runtime finds the face and smiles it (default options, CPU), and the variance of the
Laplacian of the luma is compared inside three boxes placed by the detected landmarks: the mouth (1.4 x 0.7 eye
distances), a cheek and the eyes. A ratio below 1 means detail was lost (an upscaled, blurred mouth scores far
below 1); above 1, detail was added (creases, or speckle). Writes docs/MOUTH_DETAIL.md: numbers only, no
pictures, so third-party photos can be measured without being redistributed.

    python benchmarks/mouth_detail.py --photos ../shared/data/london-faces/neutral --limit 20 --out docs
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="A folder of portraits (*.jpg, *.png).")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--side", type=int, default=1560, help="Portrait side in the frame (1560: faces of 500-600 px).")
    parser.add_argument("--expression", default="happy")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()

    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces.detector import FaceDetector
    from reggan_plugin.renderer import ExpressionRenderer

    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    detector = FaceDetector()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.limit]
    rows = []
    for photo in photos:
        result = detail_ratios(portrait_frame(photo, args.side), renderer, detector, args.expression)
        if result is not None:
            rows.append((photo.name, *result))
            print(photo.name, f"face {result[0]:.0f} px", {k: round(v, 3) for k, v in result[1].items()}, flush=True)
    if not rows:
        raise SystemExit(f"{args.photos}: no face found in any portrait")
    mouth = np.array([r[2]["mouth"] for r in rows])
    lines = [
        "# Mouth detail at production size",
        "",
        f"Generated {datetime.date.today()} by `python benchmarks/mouth_detail.py --photos {args.photos.parent.name}/{args.photos.name} "
        f"--limit {args.limit} --side {args.side} --expression {args.expression}`; do not edit by hand. Method: the "
        "module docstring. Model: the bundled one, CPU backend, default options.",
        "",
        f"{len(rows)} portraits of `{args.photos.parent.name}/{args.photos.name}`, faces {min(r[1] for r in rows):.0f}-{max(r[1] for r in rows):.0f} px "
        f"tall in 1920x1080 frames, {args.expression}: output / input Laplacian variance of the luma.",
        "",
        "| region | mean | lowest | highest |",
        "|---|---|---|---|",
    ]
    for name in REGIONS:
        values = np.array([r[2][name] for r in rows])
        lines.append(f"| {name} | {values.mean():.2f} | {values.min():.2f} | {values.max():.2f} |")
    lines += ["", f"The mouth keeps at least 90% of its detail in {int((mouth >= 0.9).sum())} of {len(rows)} portraits."]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "MOUTH_DETAIL.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
