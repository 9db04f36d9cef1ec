"""Sections e-f of `reggan-plugin bench`: the render pipeline on real-face frames, memory over a long 4K sequence, the
detector."""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks.network import inputs
from benchmarks.timing import Report, cpu_seconds, rss_mib, time_per_call

# -- synthetic frames -----------------------------------------------------------------------------------


def synthetic_frame(width: int, height: int, seed: int, face: tuple[int, int, int]) -> np.ndarray:
    """An RGBA uint8 'render': smooth background, a shaded face-like ellipse with eyes and mouth, mild noise.

    face = (centre x, centre y, height). Content matters for PNG codec speed: a smooth render with a little
    sampling noise compresses like a Cycles frame, not like white noise.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([40 + 60 * x / width, 50 + 40 * y / height, 70 + 30 * (x + y) / (width + height)], -1)
    cx, cy, fh = face
    r = ((x - cx) / (0.38 * fh)) ** 2 + ((y - cy) / (0.5 * fh)) ** 2
    skin = np.array([205, 160, 135], np.float32) * (1.05 - 0.25 * np.clip(r, 0, 1))[..., None]
    rgb = np.where((r < 1)[..., None], skin, rgb)
    for dx, dy, rad, colour in ((-0.16, -0.1, 0.05, 40), (0.16, -0.1, 0.05, 40), (0, 0.22, 0.08, 120)):
        d = ((x - cx - dx * fh) ** 2 + ((y - cy - dy * fh) * 1.8) ** 2) < (rad * fh) ** 2
        rgb[d] = colour
    rgb += rng.normal(0, 1.5, rgb.shape).astype(np.float32)
    alpha = np.full((height, width, 1), 255, np.float32)
    return np.clip(np.concatenate([rgb, alpha], -1), 0, 255).astype(np.uint8)


def write_frames(directory: Path, count: int, width: int, height: int, face: int, distinct: int = 8) -> str:
    """`count` PNG frames in `directory` holding the sample face `face` px tall (`distinct` different ones, a little
    noise each, the rest hard links); returns the face's box as a `--region` value."""
    from benchmarks.face_sizes import write_face_frame

    directory.mkdir(parents=True, exist_ok=True)
    sources = []
    box = (0.0, 0.0, 0.0, 0.0)
    for i in range(min(distinct, count)):
        path = directory / f"frame_{i:05d}.png"
        box = write_face_frame(path, width, height, face, seed=i)
        sources.append(path)
    for i in range(len(sources), count):
        target = directory / f"frame_{i:05d}.png"
        try:
            os.link(sources[i % len(sources)], target)
        except OSError:
            shutil.copyfile(sources[i % len(sources)], target)
    return ",".join(f"{v:.1f}" for v in box)


# -- (e) the render pipeline ----------------------------------------------------------------------------------


def run_render(frames: Path, out: Path, model_path: Path, region: str, batch: int, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for `render_sequence` over `frames` (the renderer is built before the clock)."""
    from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
    from reggan_plugin.faces import parse_region
    from reggan_plugin.pipeline import render_sequence
    from reggan_plugin.renderer import ExpressionRenderer

    inference = InferenceConfig(model=model_path, backend="cpu", batch=batch)
    renderer = ExpressionRenderer(inference)
    shutil.rmtree(out, ignore_errors=True)
    cpu, start = cpu_seconds(), time.perf_counter()
    summary = render_sequence(SequenceConfig(frames, out, region=parse_region(region)), EditConfig("happy", 1.0), inference,
                              renderer=renderer, **kwargs)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    shutil.rmtree(out, ignore_errors=True)
    if summary.done != summary.total or summary.failed:
        raise RuntimeError(f"benchmark render failed: {' | '.join(summary.lines())}")
    return elapsed, cpu


# -- (f) memory over a long sequence, and the detector -----------------------------------------------------------



def memory_child(frames: str, out: str, model_path: str, region: str, batch: int) -> None:
    """Entry point of the memory subprocess: render, print 'frames done, RSS MiB' lines, then the peak."""
    from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
    from reggan_plugin.faces import parse_region
    from reggan_plugin.pipeline import render_sequence
    from reggan_plugin.renderer import ExpressionRenderer

    inference = InferenceConfig(model=Path(model_path), backend="cpu", batch=batch)
    renderer = ExpressionRenderer(inference)
    print(f"start {rss_mib()[0]:.1f}", flush=True)
    every = 1

    def progress(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            print(f"rss {done} {rss_mib()[0]:.1f}", flush=True)

    summary = render_sequence(SequenceConfig(Path(frames), Path(out), region=parse_region(region)), EditConfig("happy", 1.0),
                              inference, renderer=renderer, progress=progress)
    print(f"peak {rss_mib()[1]:.1f} done {summary.done} of {summary.total}", flush=True)


def rss_trend(rss: list[float]) -> tuple[float, float]:
    """(median RSS over 10-20% of the frames, median over the last 10%). Medians: RSS moves by 100-250 MiB from frame
    to frame with how many frames the queues hold at that moment (and what the allocator has just given back), so
    the largest sample of a window is a transient, not a trend."""
    tenth = max(1, len(rss) // 10)
    early = float(np.median(rss[tenth : 2 * tenth])) if len(rss) >= 2 * tenth else float(rss[0])
    return early, float(np.median(rss[-tenth:]))


def bench_memory(report: Report, workdir: Path, model_path: Path, *, count: int, width: int, height: int, face: int,
                 batch: int) -> dict[str, Any]:
    import subprocess

    frames, out = workdir / "long", workdir / "long_out"
    region = write_frames(frames, count, width, height, face)
    code = ("import sys; from benchmarks.pipeline import memory_child; "
            "memory_child(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))")
    click.echo(f"memory: rendering {count} frames of {width}x{height} in a subprocess ...", err=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(frames), str(out), str(model_path), region, str(batch)],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(frames, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed: {proc.stderr.strip()[-2000:]}")
    samples, peak, start_rss = [], 0.0, 0.0
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[0] == "rss":
            samples.append((int(parts[1]), float(parts[2])))
        elif parts[0] == "peak":
            peak = float(parts[1])
        elif parts[0] == "start":
            start_rss = float(parts[1])
    report.memory = samples
    early, late = rss_trend([r for _, r in samples])
    report.add("f", f"long sequence: {count} frames {width}x{height}, one {face} px face each", count / elapsed, unit="frames/s",
               note=f"(subprocess wall time incl. start-up {elapsed:.0f} s)")
    return {"peak_mib": peak, "start_mib": start_rss, "early_mib": early, "late_mib": late,
            "growth_mib": late - early, "frames": count, "frame": (width, height), "face": face}


def bench_detector(report: Report, frame: Path, repeats: int) -> float | None:
    """Seconds per 1080p frame for the BlazeFace detector (None when it cannot be loaded)."""
    try:
        from reggan_plugin.faces import FaceDetector
        from reggan_plugin.imageio import read_image, to_network_rgb

        detector = FaceDetector()
        rgb = to_network_rgb(read_image(frame))
    except Exception as exc:  # any import/model problem: report it, do not fail the benchmark
        report.add("f", "face detector (BlazeFace pyramid)", None, unit="frames/s", note=f"not available: {exc}")
        return None
    seconds = min(time_per_call(lambda: detector.detect(rgb), 0.0, min_calls=1) for _ in range(repeats))
    found = len(detector.detect(rgb))
    report.add("f", f"face detector alone on {rgb.shape[1]}x{rgb.shape[0]} (BlazeFace pyramid)", 1 / seconds,
               unit="frames/s", note=f"({seconds * 1e3:.0f} ms/frame; found {found} face(s) in the frame)")
    return seconds



def bench_pipeline(report: Report, workdir: Path, model_path: Path, *, count: int, width: int, height: int, face: int,
                   batch: int, rounds: int, seconds: float, size: int, n_expr: int) -> dict[str, Any]:
    """(e): render_sequence on `count` PNG frames (one `face` px face each, --region) against the network alone and
    against the same frames decoded and encoded only (the box off the frame: no face, each frame written as read)."""
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.backends import create_backend

    frames, out = workdir / "frames", workdir / "frames_out"
    region = write_frames(frames, count, width, height, face)
    backend = create_backend(load_artifact(model_path), "cpu")
    feeds = inputs(batch, size, n_expr)
    network = lambda: backend.run(feeds["image"], feeds["expression"], feeds["intensity"])  # noqa: E731
    modes = {"pipeline": region, "io": f"{2 * width},{2 * height},10,10"}
    best: dict[str, float] = {}
    cpu_ms: dict[str, float] = {}
    click.echo(f"pipeline: {count} frames {width}x{height}, {face} px face, {rounds} rounds ...", err=True)
    for _ in range(rounds):
        best["network"] = max(best.get("network", 0.0), batch / time_per_call(network, seconds))
        for mode, box in modes.items():
            elapsed, cpu = run_render(frames, out, model_path, box, batch)
            if count / elapsed > best.get(mode, 0.0):
                best[mode], cpu_ms[mode] = count / elapsed, cpu / count * 1e3
    report.add("e", f"network alone, batch {batch} (the pipeline's batch)", best["network"])
    names = {"pipeline": f"render pipeline, {width}x{height} PNG RGBA, one {face} px face",
             "io": f"the same frames decoded and encoded only (no face: {width}x{height} PNG RGBA in and out)"}
    for mode, name in names.items():
        report.add("e", name, best[mode], unit="frames/s",
                   note=f"({best[mode] / best['network']:.0%} of the network alone; {cpu_ms[mode]:.0f} ms CPU/frame, "
                        f"{cpu_ms[mode] * best[mode] / 1e3:.2f} cores busy)")
    return {"network": best["network"], "pipeline": best["pipeline"], "io_bound": best["io"],
            "frame": (width, height), "face": face}


def memory_marks(samples: list[tuple[int, float]], points: int = 10) -> list[tuple[int, float]]:
    if not samples:
        return []
    step = max(1, len(samples) // points)
    picked = samples[step - 1 :: step]
    if picked[-1] != samples[-1]:
        picked.append(samples[-1])
    return picked
