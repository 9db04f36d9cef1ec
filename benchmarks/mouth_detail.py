"""Does the edit keep a large mouth sharp? High-frequency energy of the mouth before and after, at production size.

Each portrait (neutral photos or renders, one face each) is scaled into a 1080p frame (``--side``: faces of 500-800
px), the runtime finds the face and gives it each expression (default options, CPU), and the variance of the
Laplacian of the luma is compared inside three boxes placed by the detected landmarks: the mouth (1.4 x 0.7 eye
distances), a cheek and the eyes. A ratio below 1 means detail was lost (an upscaled, blurred mouth scores far
below 1); above 1, detail was added (creases, or speckle). Where the same face has the expression (a render of it,
or a photo of the same name in a folder named after it beside the portraits'), that true target is scored against
the neutral too, in boxes placed by its own landmarks: what a real expression keeps; the true target resampled into
the face model's crop and one of four times its side, and back (`through_crop`): what a paint at those crops'
resolution keeps, however right it is; and the edit's PSNR against it over the mouth and its reach. Writes
docs/MOUTH_DETAIL.md, and with ``--picture`` the render folders' mouths: photos never go into a picture, so
third-party photos can be measured without being redistributed.

    python benchmarks/mouth_detail.py --photos ../shared/data/london-faces/neutral --limit 20 --out docs
    python benchmarks/mouth_detail.py --photos PHOTOS --side 1560 --photos RENDERS --side 1080 --expression happy,sad
"""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from reggan_plugin.config import SUBJECTS, InferenceConfig
from reggan_plugin.geometry.align import Matrix
from reggan_plugin.geometry.resample import warp_from_crop, warp_to_crop
from reggan_plugin.imaging.tone import luma
from training.evaluate.metrics import psnr

FRAME = (1920, 1080)
REGIONS = ("mouth", "cheek", "eyes")
MOUTH_VIEW = (300, 180)  # frame px (w, h) of each mouth in --picture
PICTURE_FACES = 2
FINE_CROP = 4  # a crop this many times the face model's side, over the same area: about the frame's scale at 500 px


def laplacian_variance(grey: np.ndarray) -> float:
    lap = -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    return float(lap.var())


def shown_input(path: Path) -> str:
    """An input ``path`` as a report's command shows it: as given inside the repository, by its folder and name outside
    it (a report names no place on one machine)."""
    return f"{path.parent.name}/{path.name}" if path.is_absolute() or ".." in path.parts else path.as_posix()


def portrait_offset(side: int) -> tuple[int, int]:
    """(x, y) frame px of the top-left corner of a portrait scaled to `side` x `side` in `portrait_frame`."""
    width, height = FRAME
    return (width - side) // 2, -((side - height) // 2)


def portrait_frame(photo: Path, side: int) -> np.ndarray:
    """The photo scaled to `side` x `side` and centred in a grey 1080p frame (cropped to its height)."""
    with Image.open(photo) as src:
        big = np.asarray(src.convert("RGB").resize((side, side), Image.Resampling.LANCZOS))
    width, height = FRAME
    frame = np.full((height, width, 3), 90, np.uint8)
    left, y = portrait_offset(side)
    if y <= 0:
        frame[:, left : left + side] = big[-y : -y + height]
    else:  # a portrait shorter than the frame: in its middle
        frame[y : y + side, left : left + side] = big
    return frame


def region_boxes(landmarks: np.ndarray) -> dict[str, tuple[slice, slice]]:
    """The mouth, cheek and eye boxes, frame px (rows, cols), placed by a face's five landmarks."""
    iod = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    boxes = {"mouth": ((landmarks[3] + landmarks[4]) / 2, (0.7, 0.35)),
             "cheek": (landmarks[3] + np.array([-0.35 * iod, -0.4 * iod]), (0.2, 0.2)),
             "eyes": ((landmarks[0] + landmarks[1]) / 2, (0.8, 0.2))}
    cuts = {}
    for name, (centre, (hw, hh)) in boxes.items():
        x, y, w, h = int(centre[0]), int(centre[1]), int(hw * iod), int(hh * iod)
        cuts[name] = (slice(y - h, y + h), slice(x - w, x + w))
    return cuts


def ratios(before: np.ndarray, after: np.ndarray, cuts: dict[str, tuple[slice, slice]],
           after_cuts: dict[str, tuple[slice, slice]] | None = None) -> dict[str, float]:
    """{region: Laplacian variance of ``after``'s luma / ``before``'s} over each box (``after``'s own boxes when
    given: a photo taken apart from the neutral)."""
    grey_before, grey_after = luma(before), luma(after)
    after_cuts = after_cuts or cuts
    return {name: laplacian_variance(grey_after[after_cuts[name]]) / max(laplacian_variance(grey_before[cut]), 1e-12)
            for name, cut in cuts.items()}


def through_crop(picture: np.ndarray, m: Matrix, size: int) -> np.ndarray:
    """HxWx3 ``picture`` (float) resampled into the size x size crop of map ``m`` (frame px -> crop px) and back, as
    paste-back warps a crop into the frame: inside the crop what a paint at the crop's resolution shows, the picture
    itself outside it (faded over the crop's outer two pixels, so its border draws no edge)."""
    crop = warp_to_crop(picture, m, size)
    inner = np.zeros((size, size, 1), np.float32)
    inner[2:-2, 2:-2] = 1.0
    roi, back = warp_from_crop(np.concatenate([crop * inner, inner], axis=2), m, picture.shape)
    out = np.array(picture, np.float32)
    out[roi] = out[roi] * (1.0 - back[..., 3:]) + back[..., :3]
    return out


def reach_box(landmarks: np.ndarray) -> tuple[slice, slice]:
    """Frame px (rows, cols) of the mouth and its reach (a smile's corners, a jaw drop), placed by the neutral's
    landmarks: where an edit of the mouth is scored against the true target."""
    iod = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    x, y = (landmarks[3] + landmarks[4]) / 2 + (0.0, 0.15 * iod)
    w, h = 0.8 * iod, 0.6 * iod
    return slice(int(y - h), int(y + h)), slice(int(x - w), int(x + w))


class FaceDetail(NamedTuple):
    """One face given one expression."""

    height: float  # face box, frame px
    edit: dict[str, float]  # {region: output / input Laplacian variance}
    truth: dict[str, float] | None  # the same for the true target, when there is one
    mouths: np.ndarray  # the input, output and target mouths side by side
    psnr: float | None = None  # the mouth's reach against the true target
    through: dict[str, float] | None = None  # {crop: the mouth's ratio for the true target resampled through it}


def detail_ratios(frame: np.ndarray, face, renderer, detector, expression: str, target: np.ndarray | None = None
                  ) -> FaceDetail:
    """The `FaceDetail` of ``face`` (detected in ``frame``); ``detector`` finds the true target's own landmarks. The
    true target's ratio is what a perfect edit keeps."""
    out = renderer.apply_array(frame, faces=[face], expression=expression)
    cuts = region_boxes(face.landmarks)
    half = np.array(MOUTH_VIEW) // 2
    centre = np.clip(((face.landmarks[3] + face.landmarks[4]) / 2).astype(int), half, np.array(FRAME) - half)
    view = (slice(centre[1] - half[1], centre[1] + half[1]), slice(centre[0] - half[0], centre[0] + half[0]))
    mouths = np.concatenate([frame[view], out[view]] + ([] if target is None else [target[view]]), axis=1)
    truth, score, through = None, None, None
    if target is not None:
        found = detector.detect(target)
        own = region_boxes(found[0].landmarks) if found else None
        truth = ratios(frame, target, cuts, own) if own else None
        reach = reach_box(face.landmarks)
        score = psnr(out[reach], target[reach])
        through = crop_ceilings(frame, target, face, renderer, own)
    return FaceDetail(face.box[3], ratios(frame, out, cuts), truth, mouths, score, through)


def crop_ceilings(frame: np.ndarray, target: np.ndarray, face, renderer,
                  target_cuts: dict[str, tuple[slice, slice]] | None) -> dict[str, float]:
    """{crop: the mouth's ratio for the true target resampled through it}, in the true target's own boxes when given:
    the face model's crop, and one of `FINE_CROP` times its side over the same area, cut where the edit cuts them."""
    m = renderer.crop_matrix(face, frame.shape)
    crops: list[tuple[str, Matrix, int]] = [("the face model's crop", m, renderer.size),
                                            (f"a {FINE_CROP * renderer.size} px crop over the same area", FINE_CROP * m,
                                             FINE_CROP * renderer.size)]
    before, after = frame.astype(np.float32) / 255, target.astype(np.float32) / 255
    return {name: ratios(before, through_crop(after, crop_m, size), region_boxes(face.landmarks), target_cuts)["mouth"]
            for name, crop_m, size in crops}


def portraits(folder: Path) -> list[Path]:
    """A folder's portraits: its pictures, or for a render folder (`dataset render`, manifest.json) each identity's
    neutral render."""
    if (folder / "manifest.json").is_file():
        return sorted(folder.glob("*/neutral.png"))
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def true_target(folder: Path, portrait: Path, expression: str) -> Path | None:
    """The same face with ``expression``: a render folder's render of it, or a photo of the same name in the
    expression's folder beside the portraits' (london-faces/neutral/001.jpg: london-faces/happy/001.jpg)."""
    if portrait.name == "neutral.png":
        truth = portrait.with_name(f"{expression}.png")
    else:
        truth = folder.parent / expression / portrait.name
    return truth if truth.is_file() else None


def table(name: str, side: int, expression: str, rows: list[FaceDetail]) -> list[str]:
    """One source and expression: the ratios' mean, lowest and highest per region, beside the true targets' where
    every face has one."""
    mouth = np.array([r.edit["mouth"] for r in rows])
    truths = [r.truth for r in rows if r.truth is not None]
    truth = len(truths) == len(rows)
    lines = [f"`{name}` at side {side}, {expression}: {len(rows)} faces {min(r.height for r in rows):.0f}-"
             f"{max(r.height for r in rows):.0f} px tall; the mouth keeps at least 90% of its detail in "
             f"{int((mouth >= 0.9).sum())} of {len(rows)}"
             + (f", and at least 90% of what the true target keeps in "
                f"{int((mouth >= 0.9 * np.array([t['mouth'] for t in truths])).sum())} of {len(rows)}." if truth
                else "."), ""]
    if truth:
        lines += ["| region | mean | lowest | highest | true target: mean | lowest | highest |",
                  "|---|---|---|---|---|---|---|"]
    else:
        lines += ["| region | mean | lowest | highest |", "|---|---|---|---|"]
    for region in REGIONS:
        values = np.array([r.edit[region] for r in rows])
        line = f"| {region} | {values.mean():.2f} | {values.min():.2f} | {values.max():.2f} |"
        if truth:
            true = np.array([t[region] for t in truths])
            line += f" {true.mean():.2f} | {true.min():.2f} | {true.max():.2f} |"
        lines.append(line)
    throughs = [r.through for r in rows if r.through]
    if len(throughs) == len(rows):
        kept = [f"through {name} {np.mean([t[name] for t in throughs]):.2f} (lowest "
                f"{min(t[name] for t in throughs):.2f})" for name in throughs[0] if all(name in t for t in throughs)]
        lines += ["", f"The true target resampled into a crop and back (a paint at that crop's resolution, however "
                      f"right) keeps of the neutral's mouth detail: {', '.join(kept)}."]
    scores = [r.psnr for r in rows if r.psnr is not None]
    if len(scores) == len(rows):
        lines += ["", f"PSNR of the mouth's reach against the true target, mean: {np.mean(scores):.2f} dB."]
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
    parser.add_argument("--picture", help="File name under --out for the render folders' mouths (input, edit, true "
                                          "target); photos never go into it.")
    parser.add_argument("--no-lip-split", action="store_true",
                        help="Move the lips as the models' motion does (reggan_plugin.edit.lips), to compare.")
    parser.add_argument("--subject", choices=SUBJECTS, default=InferenceConfig.subject,
                        help="as `render --subject`: read each picture, or edit all as renders or photographs")
    args = parser.parse_args()
    sides = args.side or [1560]
    if len(sides) not in (1, len(args.photos)):
        parser.error("give one --side, or one for every --photos")
    sides = sides * len(args.photos) if len(sides) == 1 else sides

    from reggan_plugin.faces.detector import FaceDetector
    from reggan_plugin.renderer import ExpressionRenderer

    lip_split = not args.no_lip_split
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu", lip_split=lip_split, subject=args.subject))
    detector = FaceDetector()
    names = [f"{folder.parent.name}/{folder.name}" for folder in args.photos]
    picture_option = (f" --picture {args.picture}" if args.picture else "") + (
        " --no-lip-split" if not lip_split else "") + (
        f" --subject {args.subject}" if args.subject != InferenceConfig.subject else "")
    command = " ".join(f"--photos {n} --side {s}" for n, s in zip(names, sides))
    lines = [
        "# Mouth detail at production size",
        "",
        f"Generated {datetime.date.today()} by `python benchmarks/mouth_detail.py {command} --limit {args.limit} "
        f"--expression {args.expression}{picture_option}`; do not edit by hand. Method: the module docstring. Model: "
        f"the bundled face model, CPU backend, {'default options' if lip_split else 'default options but the lips moved as the motion moves them'}. Faces in 1920x1080 frames: output / input Laplacian variance of the luma.",
        "",
    ]
    picture: list[np.ndarray] = []
    for folder, name, side in zip(args.photos, names, sides):
        # each portrait's face found once, for every expression
        frames = [(p, frame, faces[0]) for p in portraits(folder)[: args.limit]
                  for frame in [portrait_frame(p, side)] for faces in [detector.detect(frame)] if faces]
        if not frames:
            raise SystemExit(f"{folder}: no face found in any portrait")
        for expression in args.expression.split(","):
            rows = []
            for path, frame, face in frames:
                truth = true_target(folder, path, expression)
                target = None if truth is None else portrait_frame(truth, side)
                result = detail_ratios(frame, face, renderer, detector, expression, target)
                rows.append(result)
                print(name, path.parent.name if path.name == "neutral.png" else path.name, expression,
                      f"face {result.height:.0f} px", {k: round(v, 3) for k, v in result.edit.items()},
                      "" if result.truth is None else f"true target: {result.truth['mouth']:.3f}",
                      "" if result.through is None else {k: round(v, 3) for k, v in result.through.items()},
                      "" if result.psnr is None else f"PSNR {result.psnr:.2f}", flush=True)
            lines += table(name, side, expression, rows)
            if args.picture and (folder / "manifest.json").is_file():  # only our own renders go into a picture
                picture.append(np.concatenate([r.mouths for r in rows[:PICTURE_FACES]], axis=1))
    args.out.mkdir(parents=True, exist_ok=True)
    if picture:
        widest = max(row.shape[1] for row in picture)
        sheet = np.concatenate([np.pad(row, ((0, 0), (0, widest - row.shape[1]), (0, 0))) for row in picture])
        Image.fromarray(sheet).save(args.out / args.picture, quality=85)
        lines.insert(4, f"[{args.picture}]({args.picture}): the mouths of the first {PICTURE_FACES} faces of each render "
                        "folder, a row per expression in the order of its tables, each as input, the edit and true "
                        "target (where rendered) at the frame's own pixels.\n")
    (args.out / "MOUTH_DETAIL.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
