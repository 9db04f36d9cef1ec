"""Section h of `reggan-plugin bench`: what one frame costs, step by step, as the face grows from 128 to 1000 px.

The frames are the sample avatar render (samples/frames, with its landmarks in samples/faces.json) scaled so
that its face box is the wanted height and placed in the middle of a smooth 1080p or 4K backdrop, saved as RGBA
PNG: a real face, so the detector inside the box, the motion and the mask do what they do on users' frames.
Two more cases are the 640 px face (``FACE_SIZES[2]``) in 1080p under render noise of sigma ``GRAINY_SIGMA`` (a
low-sample render): aligning and paste-back each split such a frame's region into structure and grain
(``reggan_plugin.imaging.filters``), work a clean frame skips; and the same clean face given an expression that opens
the mouth (``OPEN_EXPRESSION``), whose lips on faces that large move whole and part on a drawn inside
(``reggan_plugin.edit.lips``, ``reggan_plugin.edit.interior``).
"""
from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE_FRAME = REPO / "samples" / "frames" / "shot_0001.png"
SAMPLE_FACES = REPO / "samples" / "faces.json"
FACE_SIZES = (128, 270, 640, 1000)
FRAME_SIZES = ((1920, 1080), (3840, 2160))
GRAINY_SIGMA = 6.0  # levels of Gaussian noise on the grainy case's frame
FAINT_SIGMA = 0.8  # levels: a clean render's faint noise
EXPRESSION = "happy"  # what every case but one is given
OPEN_EXPRESSION = "surprised"  # ... and that one: an expression that opens the mouth
STEPS = ("decode", "locate", "align", "network", "paste", "compose", "encode")
STEP_NOTES = {
    "decode": "PNG file -> pixels (`imageio.read_image`)",
    "locate": "the face inside the given box (BlazeFace on a few windows around it, its points registered)",
    "align": "the face's region to network colour (its structure when grainy), resampled into the model's crop",
    "network": "the model on one crop (onnxruntime, its default threads)",
    "paste": "the region to network colour again, then motion, painted difference and mask back at its resolution",
    "compose": "the region written into a copy of the frame in its own format",
    "encode": "pixels -> PNG file (`imageio.write_image`)",
}


@dataclass(frozen=True)
class SizeCase:
    width: int
    height: int
    face: int
    ms: dict[str, float]  # CPU ms per step (all threads of the process)
    noise: float = FAINT_SIGMA  # levels of Gaussian noise on the frame
    expression: str = EXPRESSION

    @property
    def grainy(self) -> bool:
        return self.noise > FAINT_SIGMA

    @property
    def default(self) -> bool:
        """A clean frame given EXPRESSION with the runtime's default options: the cases the ratios compare."""
        return not self.grainy and self.expression == EXPRESSION

    @property
    def total(self) -> float:
        return sum(self.ms.values())


def face_frame(width: int, height: int, face_px: int, seed: int = 0,
               noise: float = FAINT_SIGMA) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(RGBA uint8 frame, the face's box x, y, w, h): the sample render scaled to a `face_px`-tall face box, with
    Gaussian noise of std `noise` levels."""
    from PIL import Image

    from reggan_plugin.faces import box_from_landmarks

    points = np.array(json.loads(SAMPLE_FACES.read_text())["frames"][SAMPLE_FRAME.name][0]["landmarks"])
    bx, by, bw, bh = box_from_landmarks(points)
    scale = face_px / bh
    with Image.open(SAMPLE_FRAME) as src:
        side = round(src.width * scale)
        big = np.asarray(src.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.stack([40 + 60 * x / width, 50 + 40 * y / height, 70 + 30 * (x + y) / (width + height)], -1)
    ox, oy = int(width / 2 - (bx + bw / 2) * scale), int(height / 2 - (by + bh / 2) * scale)
    rows, cols = slice(max(oy, 0), min(oy + side, height)), slice(max(ox, 0), min(ox + side, width))
    frame[rows, cols] = big[rows.start - oy : rows.stop - oy, cols.start - ox : cols.stop - ox]
    frame += np.random.default_rng(seed).normal(0, noise, frame.shape).astype(np.float32)
    rgba = np.concatenate([frame, np.full((height, width, 1), 255, np.float32)], -1)
    return np.clip(rgba, 0, 255).astype(np.uint8), (bx * scale + ox, by * scale + oy, bw * scale, bh * scale)


def write_face_frame(path: Path, width: int, height: int, face_px: int, seed: int = 0,
                     noise: float = FAINT_SIGMA) -> tuple[float, float, float, float]:
    from PIL import Image

    pixels, box = face_frame(width, height, face_px, seed, noise)
    Image.fromarray(pixels, "RGBA").save(path, compress_level=1)
    return box


def step_costs(frame: Path, box: tuple[float, float, float, float], renderer: Any, repeats: int = 3,
               expression: str = EXPRESSION) -> dict[str, float]:
    """CPU ms (process time, every thread) of each step of one 1-face frame given ``expression``, best of `repeats`
    after a warm-up."""
    from reggan_plugin.config import EditConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.imageio import read_image, write_image

    edit = EditConfig(expression, 1.0)
    costs: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        value = fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            value = fn()
            best = min(best, time.process_time() - start)
        costs[name] = best * 1e3
        return value

    with tempfile.TemporaryDirectory() as tmp:
        image = step("decode", lambda: read_image(frame))
        faces = step("locate", lambda: renderer.find_in_boxes(image, [Face(box=box, source="given")]))
        prepared = step("align", lambda: renderer.prepare_image(image, faces))
        prepared.rgb = None  # as in the streaming render: the float region is made again when the frame is written
        edited = step("network", lambda: renderer.forward_images([prepared], edit)[0])
        pasted = step("paste", lambda: renderer.paste(prepared.region_rgb(), prepared.matrices, prepared.crops,
                                                        edited.faces, inplace=True, interior=edited.interior))
        result = step("compose", lambda: renderer.compose(prepared, *pasted))
        step("encode", lambda: write_image(Path(tmp) / "out.png", result))
    return costs


def bench_face_sizes(workdir: Path, model_path: Path, *, faces: tuple[int, ...] = FACE_SIZES,
                     frames: tuple[tuple[int, int], ...] = FRAME_SIZES, repeats: int = 3,
                     grainy: int | None = FACE_SIZES[2], opened: int | None = FACE_SIZES[2]) -> list[SizeCase]:
    """Per-step CPU ms of a 1-face frame for every frame size x face height, then, in the first frame size, of a
    `grainy` px face under render noise of sigma GRAINY_SIGMA and of a clean `opened` px face given OPEN_EXPRESSION
    (None: not that case)."""
    import click

    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.renderer import ExpressionRenderer

    inference = InferenceConfig(model=model_path, backend="cpu", batch=1)
    renderer = ExpressionRenderer(inference)
    runs = [(width, height, face, FAINT_SIGMA, EXPRESSION) for width, height in frames for face in faces]
    if grainy is not None:
        runs.append((*frames[0], grainy, GRAINY_SIGMA, EXPRESSION))
    if opened is not None:
        runs.append((*frames[0], opened, FAINT_SIGMA, OPEN_EXPRESSION))
    cases = []
    for width, height, face, noise, expression in runs:
        click.echo(f"face sizes: {face} px in {width}x{height}, noise sigma {noise}, {expression} ...", err=True)
        path = workdir / f"face_{width}x{height}_{face}_{noise}.png"
        box = write_face_frame(path, width, height, face, noise=noise)
        cases.append(SizeCase(width, height, face, step_costs(path, box, renderer, repeats, expression), noise,
                              expression))
        path.unlink()
    return cases


def face_size_markdown(cases: list[SizeCase], reference: int = 270) -> list[str]:
    """The per-step table (one column per case) and each case's total against the `reference` face in its frame."""
    if not cases:
        return []
    head = [f"{c.face} px, {'4K' if c.height > 1080 else f'{c.height}p'}" + (f", noise sigma {c.noise:g}" if c.grainy else "")
            + ("" if c.expression == EXPRESSION else f", {c.expression}") for c in cases]
    lines = ["| step | " + " | ".join(head) + " | what it is |", "|---|" + "---|" * len(cases) + "---|"]
    for step in STEPS:
        lines.append(f"| {step} | " + " | ".join(f"{c.ms[step]:.0f}" for c in cases) + f" | {STEP_NOTES[step]} |")
    lines.append("| **total** | " + " | ".join(f"**{c.total:.0f}**" for c in cases) + " | |")
    ratios = []
    for c in cases:
        ref = reference_case(cases, reference, c.height)
        ratios.append(f"{c.total / ref.total:.2f}x" if ref else "")
    lines.append(f"| vs the {reference} px face | " + " | ".join(ratios) + " | |")
    return lines


def reference_case(cases: list[SizeCase], face: int, height: int) -> SizeCase | None:
    """The clean `face` px case with default options in frames `height` tall: what the others are compared with."""
    return next((c for c in cases if c.face == face and c.height == height and c.default), None)


def size_ratio(cases: list[SizeCase], face: int = 640, reference: int = 270, height: int = 1080,
               expression: str = EXPRESSION) -> float | None:
    """CPU per frame of a clean `face` px face given ``expression`` over that of a `reference` px face given
    EXPRESSION, both in frames `height` tall."""
    by_face = {c.face: c.total for c in cases if c.height == height and not c.grainy and c.expression == expression}
    ref = reference_case(cases, reference, height)
    if face not in by_face or ref is None:
        return None
    return by_face[face] / ref.total
