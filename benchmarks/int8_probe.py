"""Would int8 (VNNI) convolutions make the CPU backend much faster? A probe, not a product path.

    python benchmarks/int8_probe.py [--rounds 3] [--seconds 1.5]

Builds the default ModelConfig RegGAN (random weights), quantises it statically with onnxruntime's
quantisation tool (QDQ, per-channel int8 weights, uint8 activations, calibrated on random faces) and times
fp32 against int8 at batch 1 and 8, interleaved, best round kept. Also prints the largest output change:
with random weights this only says how coarse int8 is, not whether trained faces survive it.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.network import build_models, expression_width, inputs
from benchmarks.timing import interleaved_best
from reggan_plugin.backends.cpu import create_session, session_options
from training.config import ModelConfig


def main() -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    config = ModelConfig()
    size, n_expr = config.image_size, expression_width(config)

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([inputs(1, size, n_expr, seed=s) for s in range(16)])

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        _, path, _ = build_models(config, Path(tmp))
        prepped = Path(tmp) / "prep.onnx"
        quant_pre_process(str(path), str(prepped), skip_symbolic_shape=True)
        int8 = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(int8), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        sessions = {name: create_session(str(p), ["CPUExecutionProvider"], session_options())
                    for name, p in (("fp32", path), ("int8", int8))}
        probe = inputs(4, size, n_expr, seed=99)
        diff = float(np.abs(sessions["fp32"].run(["output"], probe)[0] - sessions["int8"].run(["output"], probe)[0]).max())
        feeds = {n: inputs(n, size, n_expr) for n in (1, 8)}
        cases = {f"{name} batch {n}": ((lambda s=s, f=feeds[n]: s.run(["output"], f)), n)
                 for name, s in sessions.items() for n in (1, 8)}
        best = interleaved_best(cases, args.rounds, args.seconds)
    print("| model | faces/s |\n|---|---|")
    for name, rate in best.items():
        print(f"| {name} | {rate:.1f} |")
    print(f"\nlargest |int8 - fp32| output difference on 4 random faces: {diff:.3f} (range [-1, 1])")


if __name__ == "__main__":
    main()
