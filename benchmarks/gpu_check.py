"""Everything a GPU machine should check, in one command: the environment, the GPU tests (the shipped model
included, fp32 and fp16 parity against the CPU; the region graphs on the device) and the GPU benchmarks.

    python benchmarks/gpu_check.py [--out DIR]      # from the checkout root; DIR gets the logs and BENCHMARKS_GPU.md

Runs from the checkout as it is (PYTHONPATH=., nothing installed): it first lists which of the runtime's
packages this Python has, so a machine that lacks one says so instead of failing inside a test. Exit code:
the GPU tests' (0 when they pass; a parity failure fails, it is never a skip).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME = ("numpy", "onnxruntime", "PIL", "click", "tifffile", "OpenEXR", "tqdm")
GPU = ("torch", "tensorrt", "cuda", "onnx", "pytest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "gpu-check")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for group, names in (("runtime", RUNTIME), ("GPU and tests", GPU)):
        have = {n: importlib.util.find_spec(n) is not None for n in names}
        print(f"{group}: " + ", ".join(f"{n} {'ok' if ok else 'MISSING'}" for n, ok in have.items()), flush=True)

    def step(name: str, cmd: list[str]) -> int:
        print(f"\n== {name}: {' '.join(cmd)}", flush=True)
        with open(args.out / f"{name}.log", "w") as log:
            result = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            log.write(result.stdout)
        print(result.stdout[-4000:], flush=True)
        return result.returncode

    step("info", [sys.executable, "-m", "reggan_plugin.cli", "info"])
    tests = step("gpu-tests", [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "gpu or tensorrt",
                               "tests/test_tensorrt.py", "tests/test_backends.py", "tests/test_region_graphs.py"])
    step("fp16-emulation", [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                            "tests/test_backends.py", "-k", "half_precision"])
    step("benchmark", [sys.executable, "benchmarks/gpu_bench.py", "--out", str(args.out / "BENCHMARKS_GPU.md")])
    step("region-graphs", [sys.executable, "benchmarks/region_graphs.py", "--out", str(args.out)])
    print(f"\nlogs, BENCHMARKS_GPU.md and REGION_GRAPHS.md in {args.out}; copy them into docs/", flush=True)
    return tests


if __name__ == "__main__":
    raise SystemExit(main())
