"""GPU throughput: faces/s for fp32 and fp16 at batch 1, 32 and 256 on every GPU backend that runs here.

    python benchmarks/gpu_bench.py [--model PATH] [--batches 1,32,256] [--seconds 3] [--out docs/BENCHMARKS_GPU.md]

Backends: `cuda` (onnxruntime-gpu, or the torch CUDA route when onnxruntime-gpu is absent: the description
column says which), `tensorrt` (engines built into the cache first if missing; build time is reported), and
`torch-cuda` (the torch route forced, so torch CUDA is measured even where onnxruntime-gpu exists).
A "face" is one crop at the model's input size through `Backend.run`, host arrays in and out (copies
included). Each cell: 3 warm-up calls, then repeated calls for at least --seconds. Prints a table and
rewrites the output doc. Without an NVIDIA GPU it says why and exits 0 without touching the doc.
No assertions on timings: this measures, it does not test.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np

from reggan_plugin.artifact import default_model_path, load_artifact
from reggan_plugin.backends import create_backend
from reggan_plugin.backends import environment as env
from reggan_plugin.errors import RegganError

REPO = Path(__file__).resolve().parents[1]


def measure(backend, artifact, batch: int, seconds: float) -> float:
    rng = np.random.default_rng(0)
    s, e = artifact.input_size, len(artifact.expressions)
    image = rng.uniform(-1, 1, (batch, 3, s, s)).astype(np.float32)
    expression = np.stack([artifact.turned(np.eye(e, dtype=np.float32)[i], 0.0) for i in rng.integers(0, e, batch)])
    intensity = np.ones(batch, np.float32)
    for _ in range(3):
        backend.run(image, expression, intensity)
    calls, start = 0, time.perf_counter()
    while True:
        backend.run(image, expression, intensity)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 5:
            return batch * calls / elapsed


def make_backend(kind: str, artifact, precision: str, max_batch: int):
    if kind == "torch-cuda":
        from reggan_plugin.backends.cuda import create_torch_cuda

        return create_torch_cuda(artifact, precision=precision, device_id=0)  # type: ignore[arg-type]
    if kind == "tensorrt":
        return create_backend(artifact, "tensorrt", precision=precision, max_batch=max_batch)  # type: ignore[arg-type]
    return create_backend(artifact, kind, precision=precision)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX artifact [default: the bundled model]")
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--precisions", default="fp32,fp16")
    parser.add_argument("--backends", default="cuda,torch-cuda,tensorrt")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "BENCHMARKS_GPU.md")
    args = parser.parse_args()

    gpus, why = env.nvidia_gpus()
    if not gpus:
        print(f"skipped: {why}")
        return 0
    model = args.model or default_model_path()
    artifact = load_artifact(model)
    batches = [int(b) for b in args.batches.split(",")]
    rows, notes = [], []
    for kind in args.backends.split(","):
        for precision in args.precisions.split(","):
            start = time.perf_counter()
            try:
                backend = make_backend(kind, artifact, precision, max(batches))
            except RegganError as exc:
                notes.append(f"- {kind} {precision}: not measured: {exc}")
                print(notes[-1])
                continue
            setup = time.perf_counter() - start
            cells = []
            for b in batches:
                try:
                    cells.append(f"{measure(backend, artifact, b, args.seconds):,.0f}")
                except RegganError as exc:
                    cells.append("error")
                    notes.append(f"- {kind} {precision} batch {b}: {exc}")
            rows.append((kind, precision, *cells, f"{setup:.1f}", backend.description))
            print(" | ".join(rows[-1]))
            backend.close()

    device = f"{gpus[0].name} (compute {gpus[0].cc}, {gpus[0].memory_mib} MiB, driver {gpus[0].driver})"
    header = ["backend", "precision", *[f"batch {b} (faces/s)" for b in batches], "setup s", "runs on"]
    lines = [
        "# GPU benchmarks",
        "",
        f"Measured {datetime.date.today()} by `python benchmarks/gpu_bench.py` on {device}, "
        f"{platform.processor() or platform.machine()}, Python {sys.version.split()[0]}.",
        f"Model: `{model.name}` ({artifact.input_size}x{artifact.input_size}, sha256 {artifact.sha256[:12]}). "
        "A face = one crop through `Backend.run`, host arrays in and out. \"setup s\" includes any TensorRT "
        "engine build (0 when it was cached).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
        *notes,
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
