"""Which onnxruntime CPU session options make the default RegGAN fastest here? (Evidence for backends/cpu.py.)

    python benchmarks/ort_tuning.py [--batch 8] [--rounds 3] [--seconds 1.5]

Builds the default ModelConfig RegGAN (random weights), then times one session per option set in
interleaved rounds (best round kept) and prints faces/s. Needs torch and onnx (like `reggan-plugin bench`).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.network import build_models, expression_width, inputs
from benchmarks.timing import interleaved_best
from reggan_plugin.backends.cpu import CpuTuning, create_session, session_options
from training.config import ModelConfig

VARIANTS: dict[str, CpuTuning] = {
    "spinning, 2 threads, all opts": CpuTuning(config_entries={"session.intra_op.allow_spinning": "1"}),
    "no spinning": CpuTuning(config_entries={"session.intra_op.allow_spinning": "0"}),
    "1 thread": CpuTuning(threads=1),
    "extended opts (no NCHWc layout)": CpuTuning(graph_optimization="extended"),
    "denormals as zero": CpuTuning(config_entries={"session.set_denormal_as_zero": "1"}),
    "dynamic block base 4": CpuTuning(config_entries={"session.intra_op.dynamic_block_base": "4"}),
    "no arena, no mem pattern": CpuTuning(memory_pattern=False, cpu_arena=False),
    "no spinning + dynamic block base 4": CpuTuning(config_entries={
        "session.intra_op.allow_spinning": "0", "session.intra_op.dynamic_block_base": "4"}),
    "no spinning + denormals as zero": CpuTuning(config_entries={
        "session.intra_op.allow_spinning": "0", "session.set_denormal_as_zero": "1"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    config = ModelConfig()
    with tempfile.TemporaryDirectory() as tmp:
        _, path, _ = build_models(config, Path(tmp))
        feeds = inputs(args.batch, config.image_size, expression_width(config))
        cases = {}
        for name, tuning in VARIANTS.items():
            session = create_session(str(path), ["CPUExecutionProvider"], session_options(tuning))
            cases[name] = ((lambda s=session: s.run(["output"], feeds)), args.batch)
        best = interleaved_best(cases, args.rounds, args.seconds)
    base = best[next(iter(VARIANTS))]
    print(f"| session options (batch {args.batch}) | faces/s | vs defaults |\n|---|---|---|")
    for name, rate in best.items():
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
