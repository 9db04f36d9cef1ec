"""Temporal stability of the edit: mouth jitter on a slow pan and on a still shot with render noise.

    python benchmarks/temporal.py --face A.png --face B.jpg [--strip 0] [--frames 24] [--expression happy] [--out docs]
    # writes docs/TEMPORAL.md, and docs/temporal.png from the face given by --strip (never a photo that
    # may not be published)

A face photo is pasted into 1920x1080 frames. *Pan*: it moves by whole pixels (1 px a frame), so the ideal
output pans identically; *still + noise*: it stays put and each frame gets independent Gaussian noise
(sigma 3 levels, a low-sample render). Each frame goes through `render_sequence` in detector mode with the
default options (`--no-lip-split`: the lips moved as the model moves them, reggan_plugin.edit.lips). The edit of a
frame is output - input, shifted back by the pan; jitter is its temporal standard deviation over the frames,
averaged over the mouth region (the 5-point mouth corners of the first frame, grown by half their distance), as a
fraction of the mean absolute edit there. 0 is a perfectly steady edit.
"""
from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.mouth_detail import shown_input
from reggan_plugin.atomic import write_text
from reggan_plugin.config import SUBJECTS, EditConfig, InferenceConfig, SequenceConfig
from reggan_plugin.faces import FaceDetector
from reggan_plugin.imageio import ImageData, read_image, write_image
from reggan_plugin.pipeline import render_sequence
from reggan_plugin.renderer import ExpressionRenderer

WIDTH, HEIGHT = 1920, 1080


def pan_frames(face: np.ndarray, count: int, step: int = 1) -> tuple[list[np.ndarray], list[int]]:
    """Frames with `face` pasted at x0 + i * step; returns the frames and each frame's shift."""
    h, w = face.shape[:2]
    x0, y0 = (WIDTH - w) // 2 - count * step // 2, (HEIGHT - h) // 2
    frames, shifts = [], []
    for i in range(count):
        frame = np.full((HEIGHT, WIDTH, 3), 96, np.uint8)
        frame[y0 : y0 + h, x0 + i * step : x0 + i * step + w] = face
        frames.append(frame)
        shifts.append(i * step)
    return frames, shifts


def noisy_frames(face: np.ndarray, count: int, sigma: float = 3.0, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    rng = np.random.default_rng(seed)
    (frame,), _ = pan_frames(face, 1)
    frames = [np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8) for _ in range(count)]
    return frames, [0] * count


def mouth_region(frame: np.ndarray) -> tuple[slice, slice]:
    faces = FaceDetector().detect(frame)
    if not faces or faces[0].landmarks5() is None:
        raise SystemExit("no face detected in the first frame")
    points = faces[0].landmarks5()
    assert points is not None
    (lx, ly), (rx, ry) = points[3], points[4]
    half = 0.5 * float(np.hypot(rx - lx, ry - ly))
    cy = (ly + ry) / 2
    return slice(int(cy - half), int(cy + half)), slice(int(min(lx, rx) - half / 2), int(max(lx, rx) + half / 2))


def jitter(frames: list[np.ndarray], shifts: list[int], renderer: ExpressionRenderer, work: Path,
           smooth: float, expression: str = "happy") -> tuple[float, float, list[np.ndarray]]:
    """(jitter fraction, mean |edit| in levels, the edited frames) for one sequence."""
    src, out = work / "in", work / "out"
    src.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        write_image(src / f"f{i:04d}.png", ImageData(frame))
    summary = render_sequence(SequenceConfig(src, out, smooth=smooth), EditConfig(expression), renderer=renderer)
    if summary.failed or summary.no_face:
        raise SystemExit("\n".join(summary.lines()))
    rows, cols = mouth_region(frames[0])
    edits, edited = [], []
    for i, (frame, shift) in enumerate(zip(frames, shifts)):
        result = read_image(out / f"f{i:04d}.png").pixels[..., :3]
        edited.append(result)
        delta = result.astype(np.float32) - frame.astype(np.float32)
        edits.append(delta[rows, cols.start + shift : cols.stop + shift])
    stack = np.stack(edits)
    size = float(np.abs(stack).mean())
    return float(stack.std(axis=0).mean()) / max(size, 1e-6), size, edited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--face", type=Path, action="append", required=True, help="a neutral face (repeatable)")
    parser.add_argument("--face-px", type=int, default=640, help="the photo's size in the frame")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--expression", default="happy")
    parser.add_argument("--no-lip-split", action="store_true", help="the lips moved as the model moves them "
                                                                    "(reggan_plugin.edit.lips), to compare")
    parser.add_argument("--subject", choices=SUBJECTS, default=InferenceConfig.subject,
                        help="as `render --subject`: read each picture, or edit all as renders or photographs")
    parser.add_argument("--faces-from", default="", help="where the faces come from (written into the report)")
    parser.add_argument("--strip", type=int, default=None, help="index of the --face to show in docs/temporal.png")
    args = parser.parse_args(argv)
    renderer = ExpressionRenderer(InferenceConfig(model=args.model, backend="cpu", lip_split=not args.no_lip_split,
                                                  subject=args.subject))
    rows: list[tuple[str, str, float, float, float]] = []
    strip: list[np.ndarray] = []
    with tempfile.TemporaryDirectory() as tmp:
        for f, path in enumerate(args.face):
            face = np.asarray(Image.open(path).convert("RGB").resize((args.face_px, args.face_px), Image.Resampling.LANCZOS))
            for name, (frames, shifts) in (("slow pan, 1 px/frame", pan_frames(face, args.frames)),
                                           ("still, noise sigma 3", noisy_frames(face, args.frames))):
                for smooth in (0.0, 0.5, 1.0):
                    value, size, edited = jitter(frames, shifts, renderer, Path(tmp) / f"{len(rows)}", smooth,
                                                 args.expression)
                    rows.append((f"{path.parent.name}/{path.name}", name, smooth, value, size))
                    print(f"{path.parent.name}/{path.name} {name:24s} smooth {smooth:.1f}: jitter {value:.1%} of the edit ({size:.2f} levels)",
                          flush=True)
                    if f == args.strip and not strip and smooth == 0.5:
                        r, c = mouth_region(frames[0])
                        grow = r.stop - r.start
                        strip = [e[r.start - grow : r.stop + grow, c.start - grow + s : c.stop + grow + s]
                                 for e, s in list(zip(edited, shifts))[:6]]
    lines = ["# Temporal stability", "",
             f"Generated {datetime.date.today()} by `python benchmarks/temporal.py "
             + " ".join(f"--face {shown_input(p)}" for p in args.face)
             + f" --face-px {args.face_px} --frames {args.frames}"
             + (f" --strip {args.strip}" if args.strip is not None else "")
             + (f" --expression {args.expression}" if args.expression != "happy" else "")
             + (" --no-lip-split" if args.no_lip_split else "")
             + (f" --subject {args.subject}" if args.subject != InferenceConfig.subject else "") + "`; do not edit by hand. Method: the module docstring "
             "of benchmarks/temporal.py. Model: the bundled one; CPU backend; detector mode, default options but "
             "--smooth." + (f" Faces: {args.faces_from}" if args.faces_from else ""), "",
             "| face | sequence | --smooth | mouth jitter (temporal std / mean edit) | mean edit (levels) |",
             "|---|---|---|---|---|"]
    lines += [f"| {face} | {name} | {smooth:.1f} | {value:.1%} | {size:.2f} |" for face, name, smooth, value, size in rows]
    if strip:
        shown = args.face[args.strip]
        lines += ["", f"![the mouth of the first six frames of the pan of {shown.parent.name}/{shown.name}, --smooth 0.5]"
                  "(temporal.png)"]
    lines += [""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "TEMPORAL.md", "\n".join(lines))
    if strip:
        picture = Image.fromarray(np.concatenate(strip, axis=1))
        picture.resize((picture.width // 2, picture.height // 2), Image.Resampling.LANCZOS).save(args.out / "temporal.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
