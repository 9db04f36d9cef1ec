"""The one module that chooses backends.

`create_backend(artifact, "auto")` tries tensorrt -> cuda -> cpu and logs (INFO) which it picked and why each
faster one was not usable. An explicitly named backend that cannot run raises BackendUnavailable with the reason
and the fix: never a silent CPU fallback.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..artifact import ModelArtifact, load_artifact
from ..errors import BackendUnavailable, UsageError
from . import environment as env
from .base import BACKEND_NAMES, PRECISIONS, Backend, BackendName, Precision
from .cpu import CpuBackend, CpuTuning

log = logging.getLogger("reggan_plugin.backends")

AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "cpu")


def _as_artifact(artifact: ModelArtifact | str | Path | None) -> ModelArtifact:
    return artifact if isinstance(artifact, ModelArtifact) else load_artifact(artifact)


def _create_one(
    name: str,
    artifact: ModelArtifact,
    *,
    precision: Precision,
    cache_dir: Path | None,
    device_id: int,
    max_batch: int | None,
    build_missing: bool,
    cpu_tuning: CpuTuning | None,
) -> Backend:
    if name == "cpu":
        return CpuBackend(artifact, precision=precision, tuning=cpu_tuning)
    try:
        if name == "cuda":
            from .cuda import create_cuda_backend

            return create_cuda_backend(artifact, precision=precision, device_id=device_id)
        if name == "tensorrt":
            from .tensorrt import create_tensorrt_backend

            return create_tensorrt_backend(
                artifact, precision=precision, device_id=device_id, cache_dir=cache_dir,
                max_batch=max_batch, build_missing=build_missing,
            )
    except (RuntimeError, AttributeError, OSError, ImportError, TypeError, ValueError) as exc:
        # GPU libraries fail in their own ways (CUDA init, a changed API, a missing .so): the backend is
        # unavailable (exit 4, and `auto` moves on), with the library's own words.
        raise BackendUnavailable(f"{name} backend: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
    raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")


def create_backend(
    artifact: ModelArtifact | str | Path | None,
    name: BackendName = "auto",
    *,
    precision: Precision = "fp32",
    cache_dir: str | Path | None = None,
    device_id: int = 0,
    max_batch: int | None = None,
    build_engine: bool | None = None,
    cpu_tuning: CpuTuning | None = None,
) -> Backend:
    """A ready backend for `artifact` (a ModelArtifact, a path, or None for the bundled model).

    name: "auto" | "cpu" | "cuda" | "tensorrt".
    precision: "fp32" | "fp16" (fp16: cuda via torch, or tensorrt; auto falls back to fp32 on the CPU and says so).
    cache_dir: TensorRT engine cache (default: `engine_cache.default_cache_dir()`).
    max_batch: TensorRT profile max batch (larger batches are split); None = the cached engine's, or 32.
    build_engine: build a missing TensorRT engine now (minutes). Default: yes for "tensorrt", no for "auto"
        (auto never stalls a first run on a build: it uses cuda and says how to build the engine).
    """
    if name not in BACKEND_NAMES:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    art = _as_artifact(artifact)
    cache = Path(cache_dir) if cache_dir is not None else None

    def create(candidate: str, build_missing: bool) -> Backend:
        return _create_one(candidate, art, precision=precision, build_missing=build_missing, cache_dir=cache,
                           device_id=device_id, max_batch=max_batch, cpu_tuning=cpu_tuning)

    if name != "auto":
        backend = create(name, build_engine is not False)
        backend.model_path = art.path
        backend.selection = f"{name} (requested)"
        log.info("backend: %s", backend.description)
        return backend

    skipped: list[str] = []
    for candidate in AUTO_ORDER[:-1]:
        try:
            backend = create(candidate, bool(build_engine))
        except BackendUnavailable as exc:
            skipped.append(str(exc))  # each message starts with "<name> backend"
            continue
        backend.selection = f"auto picked {candidate}" + (f" (not {_merged(skipped)})" if skipped else "")
        backend.model_path = art.path
        log.info("backend auto: picked %s: %s%s", candidate, backend.description,
                 "".join(f"\n  not {s}" for s in skipped))
        return backend
    if precision != "fp32":
        skipped.append("cpu backend: fp16 is not available on the CPU, running fp32")
    backend = CpuBackend(art, precision="fp32", tuning=cpu_tuning)
    backend.model_path = art.path
    backend.selection = f"auto picked cpu ({_merged(skipped)})"
    log.info("backend auto: picked cpu: %s; faster backends not usable:%s", backend.description,
             "".join(f"\n  {s}" for s in skipped))
    return backend


def availability(name: str, device_id: int = 0) -> env.Probe:
    """Whether a backend can run here at all (no model needed): for `reggan-plugin info` and CLI help."""
    if name == "cpu":
        return env.Probe(True, "onnxruntime CPUExecutionProvider")
    gpu = env.gpu(device_id)
    if name == "cuda":
        if not gpu.ok:
            return env.Probe(False, why=gpu.why)
        ort_cuda = env.onnxruntime_cuda()
        if ort_cuda.ok:
            return env.Probe(True, f"{ort_cuda.value} on {gpu.value}")
        torch_cuda = env.torch_cuda()
        if torch_cuda.ok:
            return env.Probe(True, f"{torch_cuda.value} (onnxruntime-gpu absent: {ort_cuda.why})")
        return env.Probe(False, why=f"neither onnxruntime-gpu ({ort_cuda.why}) nor torch CUDA ({torch_cuda.why})")
    if name == "tensorrt":
        if not gpu.ok:
            return env.Probe(False, why=gpu.why)
        trt = env.tensorrt()
        if not trt.ok:
            return env.Probe(False, why=trt.why)
        from .tensorrt import device_buffers_probe

        buffers = device_buffers_probe()
        if not buffers.ok:
            return env.Probe(False, why=buffers.why)
        return env.Probe(True, f"TensorRT {trt.value} on {gpu.value} (buffers: {buffers.value})")
    if name == "auto":
        for candidate in AUTO_ORDER:
            probe = availability(candidate, device_id)
            if probe.ok:
                return env.Probe(True, f"{candidate}: {probe.value}")
    raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")


def describe_environment(device_id: int = 0) -> list[tuple[str, str]]:
    """(label, value) rows for `reggan-plugin info`: what GPU software is here and, when missing, why not."""
    from .engine_cache import default_cache_dir

    gpus, why_none = env.nvidia_gpus()
    rows: list[tuple[str, str]] = []
    if gpus:
        for info in gpus:
            rows.append((f"GPU {info.index}", f"{info.name}, compute {info.cc}, {info.memory_mib} MiB"))
        rows.append(("NVIDIA driver", gpus[0].driver))
    else:
        rows.append(("GPU", f"none: {why_none}"))
    rows.append(("CUDA runtime", env.cudart().line()))
    rows.append(("cuDNN", env.cudnn().line()))
    rows.append(("onnxruntime", env.onnxruntime_providers().line()))
    rows.append(("onnxruntime CUDA", env.onnxruntime_cuda().line()))
    rows.append(("TensorRT", env.tensorrt().line()))
    # torch is imported (seconds, hundreds of MB) only where it could serve a GPU
    rows.append(("torch CUDA", env.torch_cuda().line() if gpus else "not checked: no NVIDIA GPU"))
    rows.append(("engine cache", str(default_cache_dir())))
    for name in AUTO_ORDER:
        probe = availability(name, device_id)
        rows.append((f"backend {name}", f"yes: {probe.value}" if probe.ok else f"no: {probe.why}"))
    auto = availability("auto", device_id)
    rows.append(("backend auto", f"would pick {auto.value}"))
    return rows


def _merged(skipped: list[str]) -> str:
    """``"tensorrt backend: no GPU"`` and ``"cuda backend: no GPU"`` -> ``"tensorrt and cuda backends: no GPU"``: on
    a machine without a GPU every GPU backend fails for the same reason, said once."""
    names: dict[str, list[str]] = {}
    for message in skipped:
        name, sep, reason = message.partition(" backend: ")
        names.setdefault(reason if sep else message, []).append(name if sep else "")
    return "; ".join(
        reason if not all(who) else f"{' and '.join(who)} backend{'s' * (len(who) > 1)}: {reason}"
        for reason, who in names.items()
    )
