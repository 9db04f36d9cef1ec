"""Measure the face detector: detection rate and landmark accuracy; prints tables, writes docs/DETECTION.md.

    python benchmarks/detection.py                      # London set (../shared/data) + pasted 1080p frames
    python benchmarks/detection.py --avatars DIR        # also rendered avatars (training/synth layout:
                                                           #   DIR/<identity>/<stem>.png + <stem>.landmarks.json)
    python benchmarks/detection.py --no-write           # print only

A face counts as FOUND when a detection's two eye points both lie within 0.25 x the inter-ocular
distance (IOD) of the ground-truth eyes; every other detection is a false positive. The London set
has ground truth for the neutral photos only (189-point WebMorph template: 0/1 pupils, 87/93 mouth
corners); smiling photos are judged against their neutral's eyes with a looser 0.5 x IOD (the head
moves a little between the two shots). Rendered avatars carry exact 68-point landmarks (eye centre =
mean of the eye contour). No picture is written: the London photos may not be redistributed here.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reggan_plugin.faces import DetectorConfig, Face, FaceDetector, landmarks68_to_5  # noqa: E402
from reggan_plugin.faces.detector import SHORT_RANGE_MODEL, plan_windows  # noqa: E402
from reggan_plugin.faces.refine import BOX_HINTS, refine_box_face  # noqa: E402
from reggan_plugin.geometry.align import crop_matrix_from_landmarks, invert_affine  # noqa: E402
from training.data.landmarks import five_from_webmorph189  # noqa: E402
from training.evaluate.perturbations import head_box  # noqa: E402

FULL_HD = (1080, 1920)
PASTE_SIZES = (400, 200, 120, 80, 60, 48, 36)  # face box side (~2.25 x IOD), pixels of a 1920x1080 frame


@dataclass
class Sample:
    name: str
    rgb: np.ndarray  # HxWx3 uint8
    eyes: np.ndarray  # (2, 2) left (image-left) eye, right eye
    mouth: np.ndarray | None  # (2,) mouth centre, or None
    tol: float  # eye tolerance, x IOD; 0 = loose check (no ground truth: the eyes of another shot)
    five: np.ndarray | None = None  # (5, 2) true points in CANONICAL_5PT order, where the crop error is measured
    hint: Face | None = None  # a box alone the face is looked for in (faces/refine.py), instead of the whole frame


@dataclass
class Result:
    found: int = 0
    total: int = 0
    false_pos: int = 0
    eye_err: list[float] | None = None
    mouth_err: list[float] | None = None
    crop_err: list[float] | None = None
    seconds: float = 0.0

    def row(self, label: str) -> list[str]:
        eye = np.array(self.eye_err or [np.nan])
        mouth = np.array(self.mouth_err or [np.nan])
        return [
            label,
            f"{self.found}/{self.total}",
            f"{100.0 * self.found / max(self.total, 1):.1f}%",
            str(self.false_pos),
            _fmt(np.nanmean(eye)),
            _fmt(np.nanpercentile(eye, 95) if np.isfinite(eye).any() else np.nan),
            _fmt(np.nanmean(mouth)),
            f"{np.mean(self.crop_err):.2f} ({np.max(self.crop_err):.1f})" if self.crop_err else "-",
            f"{1000.0 * self.seconds / max(self.total, 1):.0f}",
        ]


HEADER = ["set", "found", "rate", "false pos.", "eye err. mean (xIOD)", "eye err. p95", "mouth err. mean",
          "crop err. mean (max), px", "ms/frame"]
CROP = 128
FACE_PIXELS = np.stack(np.meshgrid(np.arange(32, 96), np.arange(40, 110)), -1).reshape(-1, 2).astype(np.float64)
"""Pixels of a CROP px crop that the face covers (brows to chin, cheek to cheek), where the crop error is measured."""


def crop_error(true: np.ndarray, found: np.ndarray) -> float:
    """How far, on average, the face's pixels in the crop ``found`` gives lie from where the true crop has them (px)."""
    m = np.vstack([crop_matrix_from_landmarks(true, CROP), [0, 0, 1]]) @ np.vstack(
        [invert_affine(crop_matrix_from_landmarks(found, CROP)), [0, 0, 1]])
    return float(np.linalg.norm(FACE_PIXELS @ m[:2, :2].T + m[:2, 2] - FACE_PIXELS, axis=1).mean())


def _fmt(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.3f}"


def evaluate(detector: FaceDetector, samples: Iterator[Sample]) -> Result:
    res = Result(eye_err=[], mouth_err=[], crop_err=[])
    for s in samples:
        start = time.perf_counter()
        faces = detector.detect(s.rgb) if s.hint is None else _in_box(detector, s.rgb, s.hint)
        res.seconds += time.perf_counter() - start
        res.total += 1
        iod = float(np.linalg.norm(s.eyes[1] - s.eyes[0]))
        best: tuple[float, Face] | None = None
        for face in faces:
            assert face.landmarks is not None
            err = loose_error(face.landmarks[:2], s.eyes) if s.tol == 0 else float(np.linalg.norm(face.landmarks[:2] - s.eyes, axis=1).max() / iod)
            if best is None or err < best[0]:
                best = (err, face)
        if best is not None and best[0] <= max(s.tol, 1.0 if s.tol == 0 else 0.0):
            res.found += 1
            res.false_pos += len(faces) - 1
            lm = best[1].landmarks
            assert lm is not None and res.eye_err is not None and res.mouth_err is not None
            res.eye_err.append(float(np.linalg.norm(lm[:2] - s.eyes, axis=1).mean() / iod))
            if s.mouth is not None:
                res.mouth_err.append(float(np.linalg.norm(lm[3:].mean(0) - s.mouth) / iod))
            if s.five is not None and res.crop_err is not None:
                res.crop_err.append(crop_error(s.five, lm))
        else:
            res.false_pos += len(faces)
    if res.total and s.tol == 0:  # loose matches: accuracy numbers would mislead
        res.eye_err, res.mouth_err, res.crop_err = [], [], []
    return res


def _in_box(detector: FaceDetector, rgb: np.ndarray, hint: Face) -> list[Face]:
    face = refine_box_face(rgb, hint, detector)
    return [] if face.landmarks is None else [face]


def loose_error(eyes: np.ndarray, ref: np.ndarray) -> float:
    """<= 1 when detected eyes are plausible for a shot whose head may have moved: midpoint within 1 IOD
    of the reference's, eye distance within 20% and eye line within 10 degrees of it."""
    v, r = eyes[1] - eyes[0], ref[1] - ref[0]
    iod = float(np.linalg.norm(r))
    shift = float(np.linalg.norm(eyes.mean(0) - ref.mean(0))) / iod
    scale = abs(float(np.linalg.norm(v)) / iod - 1.0) / 0.2
    angle = abs(float(np.degrees(np.arctan2(v[1], v[0]) - np.arctan2(r[1], r[0])))) / 10.0
    return max(shift, scale, angle)


# -- data sets -----------------------------------------------------------------------------------


def london_truth(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eyes, mouth centre and the five points (``training.data.landmarks``' reading of the 189-point template)."""
    pts = np.loadtxt(path)
    return pts[[0, 1]], pts[[87, 93]].mean(0), five_from_webmorph189(pts)


def london(root: Path, expression: str) -> Iterator[Sample]:
    for jpg in sorted((root / expression).glob("*.jpg")):
        eyes, mouth, five = london_truth(root / "neutral" / f"{jpg.stem}.landmarks189.txt")
        rgb = np.asarray(Image.open(jpg).convert("RGB"))
        if expression == "neutral":
            yield Sample(jpg.stem, rgb, eyes, mouth, 0.25, five)
        else:
            yield Sample(jpg.stem, rgb, eyes, None, 0.0)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered but face-free backdrop: low-frequency colour noise plus a few flat rectangles."""
    small = rng.uniform(0, 255, (9, 16, 3)).astype(np.uint8)
    bg = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)).copy()
    for _ in range(12):
        x0, y0 = rng.integers(0, width - 50), rng.integers(0, height - 50)
        bg[y0 : y0 + rng.integers(20, 300), x0 : x0 + rng.integers(20, 300)] = rng.integers(0, 256, 3)
    return bg


def pasted(source: Iterator[Sample], face_px: int, seed: int) -> Iterator[Sample]:
    """Each sample scaled so that its face box is about ``face_px`` wide, pasted at a random place in 1920x1080."""
    rng = np.random.default_rng(seed)
    height, width = FULL_HD
    for s in source:
        iod = float(np.linalg.norm(s.eyes[1] - s.eyes[0]))
        scale = face_px / (2.25 * iod)
        rgb, eyes, mouth = s.rgb, s.eyes, s.mouth
        h, w = rgb.shape[:2]
        fit = int(min(h, w, 0.95 * height / scale))
        if fit < min(h, w) or h != w:  # too big for the frame: keep a square around the face
            cx, cy = (int(np.clip(v - fit / 2, 0, lim - fit)) for v, lim in zip(eyes.mean(0), (w, h)))
            rgb = rgb[cy : cy + fit, cx : cx + fit]
            eyes = eyes - [cx, cy]
            mouth = None if mouth is None else mouth - [cx, cy]
            h, w = rgb.shape[:2]
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.LANCZOS))
        x0, y0 = int(rng.integers(0, width - nw + 1)), int(rng.integers(0, height - nh + 1))
        frame = background(rng, height, width)
        frame[y0 : y0 + nh, x0 : x0 + nw] = small
        sx, sy = nw / w, nh / h

        def move(p: np.ndarray, sx: float = sx, sy: float = sy, x0: int = x0, y0: int = y0) -> np.ndarray:
            return (p + 0.5) * [sx, sy] - 0.5 + [x0, y0]  # pixel-centre coordinates through a resize + offset

        yield Sample(s.name, frame, move(eyes), None if mouth is None else move(mouth), s.tol)


def rotated(source: Iterator[Sample], degrees: float) -> Iterator[Sample]:
    """Each sample rolled by ``degrees`` (counter-clockwise on screen) about its eye midpoint."""
    for s in source:
        centre = s.eyes.mean(0)
        img = Image.fromarray(s.rgb).rotate(degrees, resample=Image.Resampling.BICUBIC, center=tuple(centre + 0.5), fillcolor=(128, 128, 128))
        t = np.deg2rad(degrees)
        rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # y points down: screen CCW

        def turn(p: np.ndarray, centre: np.ndarray = centre, rot: np.ndarray = rot) -> np.ndarray:
            return (p - centre) @ rot.T + centre

        yield Sample(s.name, np.asarray(img), turn(s.eyes), None if s.mouth is None else turn(s.mouth), s.tol)


def head_boxed(samples: Iterator[Sample]) -> Iterator[Sample]:
    """The samples with a box alone around the whole head, as from a head bone (``evaluate --perturb``'s)."""
    for s in samples:
        assert s.five is not None
        yield replace(s, hint=head_box(s.rgb, s.five, s.rgb, np.random.default_rng(0)).face)


def avatars(root: Path) -> Iterator[Sample]:
    for meta in sorted(root.glob("*/*.landmarks.json")):
        png = meta.with_name(meta.name.replace(".landmarks.json", ".png"))
        if not png.is_file():
            continue
        five = landmarks68_to_5(np.array(json.loads(meta.read_text())["points"], dtype=np.float64))
        rgb = np.asarray(Image.open(png).convert("RGB"))
        yield Sample(f"{meta.parent.name}/{png.stem}", rgb, five[:2], five[3:].mean(0), 0.25, five)


# -- report --------------------------------------------------------------------------------------


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def conversion_check() -> str:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(SHORT_RANGE_MODEL)).metadata_props}
    check = json.loads(meta.get("check_vs_tflite", "{}"))
    rows = [f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(check.items())]
    return "\n".join([f"Source: {meta.get('source', '?')}  ", f"tflite sha256 `{meta.get('source_tflite_sha256', '?')}`", "",
                      "| check (ONNX vs .tflite) | value |", "|---|---|", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--london", type=Path, default=REPO.parent / "shared" / "data" / "london-faces")
    parser.add_argument("--avatars", type=Path, action="append", default=[], help="rendered avatar folder (repeatable)")
    parser.add_argument("--paste-limit", type=int, default=35, help="London photos per pasted size (speed)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "DETECTION.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    config = DetectorConfig()
    detector = FaceDetector(config=config)
    whole_only = FaceDetector(config=replace(config, min_face=0))
    sections: list[tuple[str, list[list[str]]]] = []

    rows = []
    for expr in ("neutral", "happy"):
        rows.append(evaluate(detector, london(args.london, expr)).row(f"London {expr} 512px" + (" (loose check against the neutral shot)" if expr == "happy" else "")))
        print(table(rows[-1:]), flush=True)
    no_refine = FaceDetector(config=replace(config, refine_fractions=(), accept_score=config.min_score))
    rows.append(evaluate(no_refine, london(args.london, "neutral")).row("London neutral 512px, without the second look"))
    registered = FaceDetector(config=BOX_HINTS)
    rows.append(evaluate(registered, london(args.london, "neutral")).row("London neutral 512px, points registered"))
    unmapped = FaceDetector(config=replace(config, keypoint_map=False))
    rows.append(evaluate(unmapped, london(args.london, "neutral")).row("London neutral 512px, BlazeFace's keypoints as they are"))
    for degrees in (15, 30, 45):
        rows.append(evaluate(detector, rotated(london(args.london, "neutral"), degrees)).row(f"London neutral, head rolled {degrees} degrees"))
        print(table(rows[-1:]), flush=True)
    sections.append(("London faces (real photos, 512x512)", rows))

    rows = []
    for face_px in PASTE_SIZES:
        limit = args.paste_limit
        for name, det in (("default", detector), ("whole frame only", whole_only)):
            lond = (s for i, s in enumerate(london(args.london, "neutral")) if i < limit)
            rows.append(evaluate(det, pasted(lond, face_px, seed=face_px)).row(f"{face_px}px face in 1920x1080, {name}"))
            print(table(rows[-1:]), flush=True)
    sections.append(("London neutral faces pasted into 1920x1080 frames (random place, cluttered backdrop)", rows))

    for folder in args.avatars:
        src = list(avatars(folder))
        size = src[0].rgb.shape[0] if src else 0
        people = len({x.name.split("/")[0] for x in src})
        name = f"ICT renders {size}px, {people} identities, {len(src)} images (all expressions)"
        rows = [evaluate(detector, iter(src)).row(name),
                evaluate(registered, iter(src)).row(name.replace("(all", "(points registered, all")),
                evaluate(unmapped, iter(src)).row(name.replace("(all", "(BlazeFace's keypoints as they are, all"))]
        rows += [evaluate(registered, head_boxed(iter(src))).row("head-sphere box hints (points registered, as the runtime)"),
                 evaluate(detector, head_boxed(iter(src))).row("head-sphere box hints, points not registered")]
        for face_px in (120, 60):
            rows.append(evaluate(detector, pasted(iter(src), face_px, seed=face_px)).row(f"avatars, {face_px}px face in 1920x1080"))
        print(table(rows), flush=True)
        manifest = folder / "manifest.json"
        settings = json.loads(manifest.read_text()).get("settings", {}) if manifest.is_file() else {}
        how = ", ".join(f"{k} {settings[k]}" for k in ("seed", "size", "samples") if k in settings)
        sections.append((f"Rendered avatars (ICT Face Model, training/synth renderer{': ' + how if how else ''})", rows))

    windows = {f"{h}x{w}": len(plan_windows(h, w, config)) for h, w in ((512, 512), (1080, 1920), (2160, 3840))}
    doc = render_doc(sections, config, windows)
    print(doc)
    if not args.no_write:
        args.out.write_text(doc, encoding="utf-8")
        print(f"wrote {args.out}")


def render_doc(sections: list[tuple[str, list[list[str]]]], config: DetectorConfig, windows: dict[str, int]) -> str:
    parts = [
        "# Face detection: what the built-in detector finds",
        "",
        "Generated by `python benchmarks/detection.py` (add `--avatars DIR` for rendered avatars); do not edit by hand.",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, onnxruntime CPU, "
        "2 shared cores (timings are indicative only).",
        "",
        "The detector is MediaPipe's BlazeFace short-range model (mediapipe 0.10.14, Apache-2.0), converted to ONNX at",
        "dev time (`tools/convert_blazeface.py`) and run by onnxruntime: no mediapipe or TensorFlow Lite at run time.",
        "It is looked through a pyramid of square windows (whole frame letterboxed, then overlapping windows",
        f"{config.window_shrink:g}x smaller, down to faces of `min_face`={config.min_face}px), merged by weighted NMS, and",
        "each face is looked at again through windows it fills "
        f"{', '.join(f'{f:g}' for f in config.refine_fractions)} of: keypoints are the views' score-weighted mean, the",
        f"score their best, and faces below {config.accept_score:g} are dropped (the false-positive filter).",
        f"Windows per frame: {', '.join(f'{k}: {v}' for k, v in windows.items())}.",
        "",
        "FOUND: a detection whose two eye points both lie within 0.25 x the inter-ocular distance (IOD) of the",
        "ground-truth eyes (smiling London photos have none: their eyes must be plausible for the neutral shot's,",
        "midpoint within 1 IOD, eye distance within 20%, eye line within 10 degrees; heads move up to ~40 px between",
        "the two shots). Errors are in units of IOD (mean of the two eyes; mouth: detected mouth centre vs the",
        "centre of the true mouth corners). Crop err.: how far, on average, the face's pixels (brows to chin, cheek",
        "to cheek) lie in the 128 px crop the detected points give from where the crop on the true five points has",
        "them. False positives: detections that match no face.",
        "",
    ]
    for title, rows in sections:
        parts += [f"## {title}", "", table(rows), ""]
    parts += [
        "## Landmarks returned",
        "",
        "Five points in `reggan_plugin.geometry.align.CANONICAL_5PT` order (left eye, right eye, nose tip, left and right mouth",
        "corner; left = image left). BlazeFace detects the eyes, nose tip and mouth centre (and ear tragions), placed by",
        "its own training data's convention. A linear map fitted on the neutrals of the training renders",
        "(`reggan_plugin/faces/keypoint_map.py`, made by `tools/make_keypoint_map.py`) takes the eyes, nose and mouth",
        "centre, read in the crop they give as they are (mouth corners the mouth centre -/+ 0.40 x the eye-to-eye vector),",
        "to where the renders' own five points lie, the points the model's crops were cut on. The errors above are against",
        "each set's own ground truth. On the renders that is the model's convention, and the map brings the mouth and the",
        "crop nearer (rows \"BlazeFace's keypoints as they are\"). On the London photos the mapped points are further",
        "from the annotators' (pupils, mouth corners, a nose tip of their own): whether that is the annotators' convention",
        "or a correction learnt on renders that photos do not need, this set cannot tell. What the edit gains on renders",
        "is in docs/experiments/MODEL_NOTES.md (a picture given with no face).",
        "",
        "The faces found inside box hints are registered (rows \"points registered\"): the five points are moved",
        "together (one similarity: a turn of up to 15 degrees, a shift of up to 4 px and a zoom of 0.97-1.03 in a 128 px",
        "crop) so that the crop they give matches the mean edges of neutral training crops aligned on their true landmarks",
        "(`reggan_plugin/faces/register.py`, `reggan_plugin/faces/refine.py`). It fits the crop, not each point: it",
        "may take the eyes a little off their detected places to bring the nose and mouth nearer. On the renders above,",
        "every expression, it leaves the mean crop error where the mapped points put it and raises the worst (a smile or",
        "an open mouth matches the neutral template less well); on neutral faces, what the model is given, the edit under",
        "other tools' boxes gains from it (docs/experiments/MODEL_NOTES.md).",
        "",
        "## Choices and limits",
        "",
        "- Short-range model + window pyramid, not MediaPipe's full-range model: the full-range .tflite (192x192) stores",
        "  sparse float16 weights behind DENSIFY ops, which tflite2onnx 0.4.1 cannot convert, and the pyramid already",
        "  finds 36-pixel faces in 1080p frames (table above) at the cost of more windows (time per frame above).",
        "- `min_face` (48 px) bounds the pyramid: smaller faces are found only by chance. 4K frames stop at about 64 px",
        "  (`max_windows`). Lower `min_face` in `DetectorConfig` for crowds or wide shots (more windows, more time).",
        "- `accept_score` 0.75 is set from the scores measured here (true faces >= 0.88, false positives <= 0.70).",
        "  Avatar styles far from the ICT renders (toon, anime, non-human) are not measured: a face BlazeFace scores",
        "  below 0.75 is reported as 'no face found' for that frame; give `--faces faces.json` or `--region` then.",
        "- Not measured: profile views (large yaw), occlusions, very dark or blurred frames.",
        "",
        "## Conversion check",
        "",
        conversion_check(),
        "",
        "Photo differences are absolute (regressors in 128-px input pixels, logits); noise inputs drive activations",
        "into the thousands, where float32 rounding differs between kernels, hence the relative figure. The same",
        "size of difference separates TFLite's own XNNPACK and builtin kernels.",
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
