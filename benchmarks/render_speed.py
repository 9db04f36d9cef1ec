"""Render-speed table: images/s at a few sizes and sample/denoise settings, with quality against a reference.

Wall time depends on what else runs on the machine, so the table also gives CPU seconds per image
(all Cycles threads of this process together), from which the throughput of an idle machine with C
cores and C single-threaded workers is about ``C / cpu_s``. Quality: PSNR (dB, RGB, face region)
against the same images rendered with ``REFERENCE_SAMPLES`` samples and denoising.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
from PIL import Image

from training.synth.camera import CM_TO_M, frame_face
from training.synth.face_model import load_face_model
from training.synth.recipes import load_recipes
from training.synth.variation import sample_identity

REFERENCE_SAMPLES = 256


@dataclass(frozen=True)
class BenchRow:
    size: int
    samples: int
    denoise: bool
    images: int
    wall_s: float
    cpu_s: float
    psnr: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s

    @property
    def cpu_per_image(self) -> float:
        return self.cpu_s / self.images


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mask = (a[..., 3] > 127) | (b[..., 3] > 127)
    err = ((a[..., :3].astype(float) - b[..., :3].astype(float)) ** 2)[mask].mean()
    return float(10 * np.log10(255.0**2 / max(err, 1e-12)))


def run_bench(face_model: Path, sizes: tuple[int, ...] = (128, 256),
              settings: tuple[tuple[int, bool], ...] = ((4, True), (8, True), (16, True), (32, True), (64, False)),
              identities: int = 2, expressions: tuple[str, ...] = ("neutral", "happy", "surprised"),
              threads: int = 0, seed: int = 0) -> list[BenchRow]:
    """Render ``identities x expressions`` images per setting in this process; returns one row per setting."""
    from training.synth.scene import FaceScene

    model = load_face_model(face_model)
    recipes = load_recipes()
    rows: list[BenchRow] = []
    with TemporaryDirectory() as tmp:
        for size in sizes:
            scene = FaceScene(model, size, REFERENCE_SAMPLES, True, threads)

            def render_all(tag: str, scene: FaceScene = scene) -> tuple[list[np.ndarray], float, float]:
                images = []
                w0, c0 = time.perf_counter(), time.process_time()
                for i in range(identities):
                    p = sample_identity(seed, i, model.n_identities, recipes)
                    w = np.asarray(p.identity_weights, np.float32)
                    neutral = model.vertices(w)
                    scene.set_identity(p, neutral, frame_face(neutral[model.landmarks68] * CM_TO_M, p.camera))
                    for e in expressions:
                        scene.set_vertices(model.vertices(w, model.expression_vector(recipes.blendshapes(e))))
                        path = Path(tmp) / f"{tag}_{i}_{e}.png"
                        scene.render(path)
                        images.append(np.asarray(Image.open(path).convert("RGBA")))
                return images, time.perf_counter() - w0, time.process_time() - c0

            reference, _, _ = render_all("ref")
            for samples, denoise in settings:
                scene.scene.cycles.samples = samples
                scene.scene.cycles.use_denoising = denoise
                images, wall, cpu = render_all(f"s{samples}{denoise}")
                psnr = float(np.mean([_psnr(a, b) for a, b in zip(images, reference)]))
                rows.append(BenchRow(size, samples, denoise, len(images), wall, cpu, psnr))
            scene.scene.cycles.samples = REFERENCE_SAMPLES
            scene.scene.cycles.use_denoising = True
    return rows


def format_table(rows: list[BenchRow], cores: int = 2) -> str:
    lines = [
        "| size | samples | denoise | images | wall s/img | img/s (this run) | CPU s/img | img/s idle, "
        f"{cores} workers | PSNR vs {REFERENCE_SAMPLES} spp (dB) |",
        "|---:|---:|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.size} | {r.samples} | {'yes' if r.denoise else 'no'} | {r.images} | {r.wall_s / r.images:.2f} | "
            f"{r.images_per_s:.2f} | {r.cpu_per_image:.2f} | {cores / r.cpu_per_image:.2f} | {r.psnr:.1f} |"
        )
    return "\n".join(lines)
