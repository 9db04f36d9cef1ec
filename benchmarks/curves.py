"""Smoothness of an edit driven by expression curves (`render --curves`): mouth jitter on a 48-frame ramp.

    python benchmarks/curves.py [--frames 48] [--out docs] [--truth DIR ...]   # writes docs/CURVES_JITTER.md

The shot is samples/frames/shot_0001.png held still for 48 frames (its faces.json landmarks given: no detector),
the same at 640 px (upscaled, landmarks scaled: the size where the lips' split runs), and at 640 px
panning 1 px a frame in a 1920x1080 frame, found by the detector with --smooth 0.5 (as benchmarks/temporal.py). The
curves key frame 1 neutral, frame 24 a smile and frame 48 surprise, linearly between (`ExpressionCurves`): happy and
surprised on the face model, and the ARKit channels of each on the channel model.

Jitter is benchmarks/temporal.py's measure, over the mouth region of benchmarks/temporal.py (`mouth_region`), with
the edit's smooth course taken out: a steady edit is measured by its temporal standard deviation; an edit that
follows a ramp by how far each frame's edit departs from its smooth course, the local quadratic through it and its
two neighbours on each side (a 5-frame Savitzky-Golay fit, weights (-3, 12, 17, 12, -3) / 35). The departure r_t
is 0 for any course that bends like a parabola over five frames, and independent noise of deviation s makes its mean
square 0.514 s^2; so per pixel s = sqrt(mean_t r_t^2 / 0.514), averaged over the region, as a fraction of the mean
absolute edit there (temporal.py's "temporal std / mean edit" for a steady edit). Frames within two of a key are
left out: there the curve turns by design. The column `3-frame` gives the same with the mean of the two
neighbours as the course (r_t = e_t - (e_{t-1} + e_{t+1}) / 2, noise mean square 1.5 s^2), which also counts the
course's bending: it falls as the ramp is given more frames, where noise would stay. The largest change from one
frame to the next, as a multiple of the median one, shows a jump (a step of the edit) that averages hide.

``--truth DIR`` (repeatable: one folder per size): the same ramps rendered with the face model's blendshapes
(tools/make_samples.py --ramp 48 [--size N], into DIR/expressions and DIR/channels, with their faces.json): the seed,
identity and first camera pose of the shot. Two more rows for each: the truth's own figure (what a true ramp scores:
an opening mouth's edges crossing pixels bend its course faster than a parabola over five frames, the more so the
sharper they are) and the edit of the truth's first frame, given its landmarks, at the truth's size; and the edit's
PSNR gain over copy against the true frames, leg by leg. The two rows of one size are the like-for-like comparison:
the other rows' shot is an upscaled 256 px picture, softer than a render at 640 px.
"""
from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.temporal import mouth_region, pan_frames
from reggan_plugin.artifact import channels_model_path
from reggan_plugin.atomic import write_text
from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
from reggan_plugin.imageio import ImageData, read_image, write_image
from reggan_plugin.pipeline import render_sequence
from reggan_plugin.renderer import ExpressionRenderer
from reggan_plugin.sequence.curves import ExpressionCurves

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# The ramp's smile and surprise: the face model's expressions, and the channel model's ARKit channels of each
SMILE = {"expressions": {"happy": 1.0},
         "channels": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "cheekSquintLeft": 0.9, "cheekSquintRight": 0.9}}
SURPRISE = {"expressions": {"surprised": 1.0},
            "channels": {"jawOpen": 0.5, "browInnerUp": 1.0, "browOuterUpLeft": 1.0, "browOuterUpRight": 1.0,
                         "eyeWideLeft": 0.9, "eyeWideRight": 0.9}}


def ramp_curves(count: int, kind: str = "expressions") -> ExpressionCurves:
    """Neutral at frame 1, a smile at the middle frame, surprise at the last."""
    return ExpressionCurves.from_keys({1: {}, count // 2: SMILE[kind], count: SURPRISE[kind]})


def sample_face(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """samples/frames/shot_0001.png (RGB, on its own white) scaled by ``scale``, and its 68 landmarks scaled alike."""
    with Image.open(SAMPLES / "frames" / "shot_0001.png") as src:
        rgba = src.convert("RGBA")
        size = (round(rgba.width * scale), round(rgba.height * scale))
        rgba = rgba.resize(size, Image.Resampling.LANCZOS) if scale != 1 else rgba
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    picture = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    given = json.loads((SAMPLES / "faces.json").read_text())["frames"]["shot_0001.png"][0]["landmarks"]
    return picture, np.asarray(given, np.float64) * scale


def ramp_jitter(frames: list[np.ndarray], shifts: list[int], renderer: ExpressionRenderer, work: Path,
                curves: ExpressionCurves, landmarks: np.ndarray | None, smooth: float = 0.5
                ) -> tuple[float, float, float, float, list[np.ndarray]]:
    """(jitter fraction, the 3-frame figure, mean |edit| in levels, largest frame-to-frame step / median step, the
    edited frames)."""
    src, out = work / "in", work / "out"
    src.mkdir(parents=True, exist_ok=True)
    names = [f"f{i + 1:04d}.png" for i in range(len(frames))]
    for name, frame in zip(names, frames):
        write_image(src / name, ImageData(frame))
    faces = None
    if landmarks is not None:
        faces = work / "faces.json"
        entry = [{"landmarks": landmarks.round(3).tolist()}]
        faces.write_text(json.dumps({"version": 1, "frames": {name: entry for name in names}}))
    summary = render_sequence(SequenceConfig(src, out, faces=faces, smooth=smooth), EditConfig(), renderer=renderer,
                              curves=curves)
    if summary.failed or summary.no_face:
        raise SystemExit("\n".join(summary.lines()))
    rows, cols = mouth_region(frames[0])
    edits, edited = [], []
    for name, frame, shift in zip(names, frames, shifts):
        result = read_image(out / name).pixels[..., :3]
        edited.append(result)
        delta = result.astype(np.float32) - frame.astype(np.float32)
        edits.append(delta[rows, cols.start + shift : cols.stop + shift])
    keys = set() if curves.keys is None else {int(k) for k in curves.keys}
    return (*course_departure(np.stack(edits), keys), edited)


def course_departure(stack: np.ndarray, keys: set[int]) -> tuple[float, float, float, float]:
    """(jitter fraction, the 3-frame figure, mean |change| in levels, largest frame-to-frame step / median step) of
    a change over frames ``stack`` [T,H,W,3] whose curves turn at the frame numbers ``keys`` (1-based)."""
    size = float(np.abs(stack).mean())
    # frame t + 1 (1-based) is stack[t]; a course through a key bends there
    quadratic = stack[2:-2] - (-3 * stack[:-4] + 12 * stack[1:-3] + 17 * stack[2:-2] + 12 * stack[3:-1]
                               - 3 * stack[4:]) / 35  # frames 3 .. n-2
    near = [t for t in range(len(quadratic)) if not any(abs(t + 3 - k) <= 2 for k in keys)]
    noise = np.sqrt((quadratic[near] ** 2).mean(axis=0) / (630 / 1225))
    linear = stack[1:-1] - (stack[:-2] + stack[2:]) / 2  # frames 2 .. n-1
    away = [t for t in range(len(linear)) if t + 2 not in keys]
    bending = np.sqrt((linear[away] ** 2).mean(axis=0) / 1.5)
    steps = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2, 3))
    scale = max(size, 1e-6)
    return (float(noise.mean()) / scale, float(bending.mean()) / scale, size,
            float(steps.max() / max(np.median(steps), 1e-6)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--truth", type=Path, action="append", default=[],
                        help="the ramps rendered with the face model's blendshapes (tools/make_samples.py --ramp N), "
                             "DIR/expressions and DIR/channels: adds each truth's own figure, the edit of its first "
                             "frame and the edit's gain against it (repeatable: one folder per size)")
    args = parser.parse_args(argv)
    rows: list[tuple[str, float, float, float, float]] = []
    strip: list[np.ndarray] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, label, scale, pan in (
                ("expressions", "still, 256 px, landmarks given", 1.0, False),
                ("expressions", "still, 640 px, landmarks given", 2.5, False),
                ("expressions", "pan 1 px/frame, 640 px in 1920x1080, detector, --smooth 0.5", 2.5, True),
                ("channels", "still, 256 px, landmarks given", 1.0, False),
                ("channels", "pan 1 px/frame, 640 px in 1920x1080, detector, --smooth 0.5", 2.5, True)):
            model = channels_model_path() if kind == "channels" else None
            renderer = ExpressionRenderer(InferenceConfig(model=model, backend="cpu"))
            curves = ramp_curves(args.frames, kind)
            label = f"{kind}: {label}"
            face, landmarks = sample_face(scale)
            if pan:
                frames, shifts = pan_frames(face, args.frames)
                given = None
            else:
                frames, shifts, given = [face] * args.frames, [0] * args.frames, landmarks
            value, bent, size, jump, edited = ramp_jitter(frames, shifts, renderer, Path(tmp) / f"{len(rows)}", curves,
                                                          given)
            rows.append((label, value, bent, size, jump))
            print(f"{label}: jitter {value:.1%} of the edit (3-frame {bent:.1%}; {size:.2f} levels), largest step "
                  f"{jump:.1f}x the median", flush=True)
            if scale == 1.0 and not pan and kind == "expressions":
                r, c = mouth_region(frames[0])
                box = around(r, c, r.stop - r.start)
                strip = [edited[i][box] for i in range(0, args.frames, max(1, args.frames // 8))]
        against: dict[tuple[str, int], tuple[list[tuple[str, float, float, float, float]], str, np.ndarray]] = {}
        for root in args.truth:
            for kind in ("expressions", "channels"):
                if (root / kind).is_dir():
                    table, said, picture, side = against_truth(root / kind, args.frames, Path(tmp) / str(len(against)),
                                                               kind)
                    against[kind, side] = table, said, picture
        for table, _, _ in against.values():
            rows += table
    lines = ["# Expression curves: smoothness", "",
             f"Generated {datetime.date.today()} by `python benchmarks/curves.py --frames {args.frames}"
             f"{' --truth DIR' * len(args.truth)}`; do not edit by hand. Method: the module docstring of "
             "benchmarks/curves.py (benchmarks/temporal.py's jitter, with the ramp's own course taken out). CPU "
             "backend; default options. Curves: frame 1 neutral, frame "
             f"{args.frames // 2} a smile, frame {args.frames} surprise, linear between: happy and surprised on the "
             "face model (expressions), or their ARKit channels on the channel model (channels: `SMILE`, `SURPRISE`).",
             "",
             "| shot (samples/frames/shot_0001.png) | mouth jitter (std about the ramp / mean edit) | 3-frame "
             "| mean edit (levels) | largest step / median step |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {value:.1%} | {bent:.1%} | {size:.2f} | {jump:.1f}x |"
              for label, value, bent, size, jump in rows]
    if strip:
        lines += ["", "![the mouth every few frames of the 256 px still](curves_ramp.png)"]
    if against:
        lines += ["", "**Against the rendered truth** (`--truth`: the ramps rendered with the face model's blendshapes, "
                  "tools/make_samples.py --ramp; the seed, identity and first camera pose of the shot, the edit given "
                  "the truth's own landmarks). A truth row measures how far a true ramp departs from a 5-frame "
                  "parabola: the lips' edges cross pixels as the mouth opens. The edit of its first frame, PSNR gain "
                  "over the unedited first frame against each true frame, mouth region:", ""]
        lines += [f"- {kind}, {side} px: {said}" for (kind, side), (_, said, _) in against.items()]
        lines += ["", "Each strip: the edit above the truth, every few frames.", ""]
        lines += [f"![{kind}, {side} px: edit and truth every few frames](curves_truth_{kind}_{side}.png)"
                  for kind, side in against]
    lines += [""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "CURVES_JITTER.md", "\n".join(lines))
    if strip:
        Image.fromarray(np.concatenate(strip, axis=1)).save(args.out / "curves_ramp.png")
    for (kind, side), (_, _, picture) in against.items():
        Image.fromarray(picture).save(args.out / f"curves_truth_{kind}_{side}.png")
    return 0


def around(rows: slice, cols: slice, margin: int) -> tuple[slice, slice]:
    """The region ``rows`` x ``cols`` grown by ``margin`` pixels on every side (not past the picture's top-left)."""
    return (slice(max(0, rows.start - margin), rows.stop + margin),
            slice(max(0, cols.start - margin), cols.stop + margin))


def against_truth(folder: Path, count: int, work: Path, kind: str
                  ) -> tuple[list[tuple[str, float, float, float, float]], str, np.ndarray, int]:
    """(the truth's row and the edit's row of the table, the edit's gain against the truth leg by leg, a strip of the
    mouth every few frames, edit above truth, the frames' side in px) for ``kind``'s ramp rendered in ``folder``
    (f0001.png ...)."""
    from training.evaluate.metrics import psnr

    paths = [folder / f"f{frame:04d}.png" for frame in range(1, count + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"{folder}: no {missing[0]} ({len(missing)} of {count} frames missing); render them with "
                         f"tools/make_samples.py --ramp {count}")
    truth = [read_image(p).pixels[..., :3] for p in paths]
    rows, cols = mouth_region(truth[0])
    keys = {1, count // 2, count}
    change = np.stack([t.astype(np.float32) - truth[0].astype(np.float32) for t in truth])[:, rows, cols]
    value, bent, size, jump = course_departure(change, keys)
    side = truth[0].shape[0]
    table = [(f"truth: the {kind}' ramp rendered with blendshapes, {side} px", value, bent, size, jump)]
    model = channels_model_path() if kind == "channels" else None
    renderer = ExpressionRenderer(InferenceConfig(model=model, backend="cpu"))
    faces = folder / "faces.json"
    if not faces.is_file():
        raise SystemExit(f"{folder}: no faces.json; render the ramp with tools/make_samples.py --ramp {count}")
    landmarks = np.asarray(json.loads(faces.read_text())["frames"][paths[0].name][0]["landmarks"], np.float64)
    value, bent, size, jump, edited = ramp_jitter([truth[0]] * count, [0] * count, renderer, work,
                                                  ramp_curves(count, kind), landmarks)
    table.append((f"{kind}: still, {side} px, the truth's first frame, landmarks given", value, bent, size, jump))
    gains = [psnr(e[rows, cols], t[rows, cols]) - psnr(truth[0][rows, cols], t[rows, cols])
             for e, t in zip(edited, truth)]
    middle = count // 2
    legs = [(f"neutral -> smile (frames 2-{middle})", gains[1:middle]),
            (f"smile -> surprise (frames {middle + 1}-{count})", gains[middle:])]
    said = "; ".join(f"{name} mean {np.mean(g):+.1f} dB, worst frame {min(g):+.1f}" for name, g in legs)
    box = around(rows, cols, (rows.stop - rows.start) // 2)
    shown = range(max(1, count // 8) - 1, count, max(1, count // 8))
    strip = np.concatenate([np.concatenate([edited[i][box] for i in shown], axis=1),
                            np.concatenate([truth[i][box] for i in shown], axis=1)])
    return table, said, strip, side


if __name__ == "__main__":
    raise SystemExit(main())
