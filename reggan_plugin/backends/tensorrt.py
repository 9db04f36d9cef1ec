"""The tensorrt backend: a cached TensorRT 10+ engine, built from the artifact when missing (on request).

Engines come from `reggan_plugin.backends.engine_cache` (keys, sidecars, stale detection) and are built by
`trt_build.build_engine`. Device buffers: torch CUDA tensors when torch with CUDA is
importable, else cuda-python (`pip install cuda-python`). tensorrt, torch and cuda-python are imported
only when a backend is created.

Runtime API used (TensorRT 10): trt.Runtime.deserialize_cuda_engine, ICudaEngine.num_io_tensors /
get_tensor_name / get_tensor_mode / get_tensor_dtype, create_execution_context, set_input_shape,
set_tensor_address, execute_async_v3.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Array
from ..artifact import INPUT_NAMES, OUTPUT_NAMES, ModelArtifact
from ..errors import BackendUnavailable
from . import engine_cache
from . import environment as env
from .base import Backend, Precision
from .parity import check_parity

log = logging.getLogger("reggan_plugin.backends")

DEFAULT_MAX_BATCH = 32
DEFAULT_OPT_BATCH = 8


def device_buffers_probe() -> env.Probe:
    """Which library provides CUDA buffers for TensorRT here: torch (CUDA build) or cuda-python."""
    torch_probe = env.torch_cuda() if importlib.util.find_spec("torch") is not None else env.Probe(False, why="torch is not installed")
    if torch_probe.ok:
        return env.Probe(True, "torch")
    if _cuda_python() is not None:
        return env.Probe(True, "cuda-python")
    return env.Probe(False, why=f"TensorRT needs CUDA device buffers from torch with CUDA or cuda-python: "
                     f"`pip install cuda-python` (torch: {torch_probe.why})")


def _cuda_python() -> Any | None:
    """cuda-python's runtime module (new and old import paths), or None."""
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            if importlib.util.find_spec(module.rsplit(".", 1)[0]) is None:
                continue
            return importlib.import_module(module)
        except ImportError:
            continue
    return None


def current_spec(artifact: ModelArtifact, *, precision: Precision, device_id: int, max_batch: int,
                 opt_batch: int | None = None) -> engine_cache.EngineSpec:
    """The engine spec for this artifact on this machine (needs tensorrt importable and a GPU)."""
    import tensorrt as trt

    gpu = env.gpu_info(device_id)
    if gpu is None:
        raise BackendUnavailable(f"tensorrt backend: {env.gpu(device_id).why}")
    opt = min(opt_batch or DEFAULT_OPT_BATCH, max_batch)
    profile = engine_cache.Profile(1, opt, max_batch, artifact.input_size)
    return engine_cache.EngineSpec(artifact.sha256, trt.__version__, gpu.name, gpu.cc, precision, profile,
                                   cuda_major=tensorrt_cuda_major(), recipe=engine_cache.BUILD_RECIPE)


def tensorrt_cuda_major() -> str:
    """The CUDA major of the installed TensorRT wheel (tensorrt-cu12, tensorrt-cu13, ...), "" when unknown."""
    for major in ("13", "12", "11"):
        if env.distribution_version(f"tensorrt-cu{major}") or env.distribution_version(f"tensorrt_cu{major}_libs"):
            return major
    return ""


def cached_profile(cache_dir: Path, artifact: ModelArtifact, precision: str,
                   max_batch: int | None = None) -> tuple[int, int] | None:
    """(max_batch, opt_batch) of an existing engine for this model and precision (and `max_batch`, when given),
    so that an engine exported with any --max-batch / --opt-batch is found without repeating them."""
    found = []
    for s in engine_cache.cached_sidecars(cache_dir):
        profile = s.get("profile")
        if s.get("onnx_sha256") != artifact.sha256 or s.get("precision") != precision or not isinstance(profile, dict):
            continue
        top, opt = profile.get("max_batch"), profile.get("opt_batch")
        if isinstance(top, int) and isinstance(opt, int) and max_batch in (None, top):
            found.append((top, opt))
    return max(found) if found else None


def create_tensorrt_backend(
    artifact: ModelArtifact,
    *,
    precision: Precision = "fp32",
    device_id: int = 0,
    cache_dir: Path | None = None,
    max_batch: int | None = None,
    build_missing: bool = True,
) -> TensorRTBackend:
    checks: tuple[Callable[[], env.Probe], ...] = (lambda: env.gpu(device_id), env.tensorrt, device_buffers_probe)
    for check in checks:  # in order: stop at the first miss
        probe = check()
        if not probe.ok:
            raise BackendUnavailable(f"tensorrt backend: {probe.why}")
    cache_dir = Path(cache_dir) if cache_dir is not None else engine_cache.default_cache_dir()
    cached = cached_profile(cache_dir, artifact, precision, max_batch)
    batch = max_batch or (cached[0] if cached else DEFAULT_MAX_BATCH)
    spec = current_spec(artifact, precision=precision, device_id=device_id, max_batch=batch,
                        opt_batch=cached[1] if cached else None)
    state = engine_cache.lookup(cache_dir, spec, artifact.path.stem)
    if not state.usable:
        if not build_missing:
            raise BackendUnavailable(
                f"tensorrt backend: {state.reason}; build it once with `reggan-plugin export tensorrt --onnx "
                f"{artifact.path} --{precision} --max-batch {batch}` (about {state.estimate_seconds / 60:.0f} min)"
            )
        from .trt_build import build_engine  # logs the rebuild reason and time estimate before building

        build_engine(artifact.path, cache_dir, precision=precision, max_batch=batch, device_id=device_id)
        state = engine_cache.lookup(cache_dir, spec, artifact.path.stem)
        if not state.usable:
            raise BackendUnavailable(f"tensorrt backend: the engine just built does not check out: {state.reason}")
    backend = TensorRTBackend(artifact, state.paths, spec, device_id=device_id)
    check_parity(backend, artifact, f"tensorrt backend (engine {state.paths.engine.name})")  # every engine, new or cached
    return backend


class _TorchBuffers:
    def __init__(self, device_id: int) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda", device_id)
        torch.cuda.set_device(self.device)
        self.stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        self.live: dict[str, Any] = {}

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def put(self, name: str, array: Array) -> int:
        with self.torch.cuda.stream(self.stream):
            # torch warns on wrapping a read-only array: those are copied first
            self.live[name] = self.torch.from_numpy(array if array.flags.writeable else array.copy()).to(self.device)
        return int(self.live[name].data_ptr())

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
        torch_dtype = self.torch.float16 if dtype == np.float16 else self.torch.float32
        current = self.live.get(name)
        if current is None or tuple(current.shape) != shape or current.dtype != torch_dtype:
            self.live[name] = self.torch.empty(shape, dtype=torch_dtype, device=self.device)
        return int(self.live[name].data_ptr())

    def get(self, name: str) -> Array:
        with self.torch.cuda.stream(self.stream):
            out = self.live[name].cpu()  # synchronises with the stream
        host: Array = out.numpy()
        return host

    def close(self) -> None:
        self.live.clear()


class _CudaPythonBuffers:
    def __init__(self, device_id: int) -> None:
        rt = _cuda_python()
        if rt is None:
            raise BackendUnavailable("tensorrt backend: cuda-python is not installed (`pip install cuda-python`)")
        self.rt = rt
        self._check(self.rt.cudaSetDevice(device_id))
        self.stream = self._check(self.rt.cudaStreamCreate())
        self.live: dict[str, tuple[int, int, tuple[int, ...], np.dtype[Any]]] = {}

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise BackendUnavailable(f"tensorrt backend: CUDA call failed: {err}")
        return rest[0] if rest else None

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def _alloc(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        current = self.live.get(name)
        if current is None or current[1] < nbytes:
            if current is not None:
                self._check(self.rt.cudaFree(current[0]))
            pointer = int(self._check(self.rt.cudaMalloc(nbytes)))
            self.live[name] = (pointer, nbytes, shape, np.dtype(dtype))
        else:
            self.live[name] = (current[0], current[1], shape, np.dtype(dtype))
        return self.live[name][0]

    def put(self, name: str, array: Array) -> int:
        pointer = self._alloc(name, array.shape, array.dtype)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self.stream))
        self._check(self.rt.cudaStreamSynchronize(self.stream))  # `array` may be freed by the caller
        return pointer

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
        return self._alloc(name, shape, dtype)

    def get(self, name: str) -> Array:
        pointer, _, shape, dtype = self.live[name]
        out = np.empty(shape, dtype)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(out.ctypes.data, pointer, out.nbytes, kind, self.stream))
        self._check(self.rt.cudaStreamSynchronize(self.stream))
        return out

    def close(self) -> None:
        for pointer, *_ in self.live.values():
            self.rt.cudaFree(pointer)
        self.live.clear()


class TensorRTBackend(Backend):
    """Runs a deserialised engine; batches larger than the profile's max are split."""

    name = "tensorrt"

    def __init__(self, artifact: ModelArtifact, paths: engine_cache.EnginePaths, spec: engine_cache.EngineSpec,
                 *, device_id: int = 0) -> None:
        super().__init__(input_size=artifact.input_size, n_expressions=artifact.input_width, precision=spec.precision)  # type: ignore[arg-type]
        import tensorrt as trt

        self.trt = trt
        self.spec = spec
        self.paths = paths
        self.max_batch = spec.profile.max_batch
        self.buffers: Any = _TorchBuffers(device_id) if device_buffers_probe().value == "torch" else _CudaPythonBuffers(device_id)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(paths.engine.read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"{paths.engine}: TensorRT {trt.__version__} could not deserialise this engine; "
                                     "delete it (and its .json) to rebuild")
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        missing = [n for n in INPUT_NAMES + OUTPUT_NAMES if n not in names]
        if missing:
            raise BackendUnavailable(f"{paths.engine}: engine lacks tensor(s) {missing}; rebuild it from the artifact")
        self.outputs = [n for n in sorted(names) if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendUnavailable(f"{paths.engine}: TensorRT could not create an execution context (out of GPU memory?)")

    @property
    def description(self) -> str:
        return (f"TensorRT {self.trt.__version__}, {self.spec.gpu_name} (compute {self.spec.compute_capability}), "
                f"{self.precision}, batch <= {self.max_batch}, engine {self.paths.engine.name}")

    def _np_dtype(self, name: str) -> np.dtype[Any]:
        dtype = self.engine.get_tensor_dtype(name)
        return np.dtype(np.float16) if dtype == self.trt.DataType.HALF else np.dtype(np.float32)

    def _run(self, feeds: dict[str, Array], outputs: tuple[str, ...]) -> dict[str, Array]:
        n = feeds["image"].shape[0]
        parts: dict[str, list[Array]] = {o: [] for o in outputs}
        for start in range(0, n, self.max_batch):
            chunk = {k: np.ascontiguousarray(v[start:start + self.max_batch]) for k, v in feeds.items()}
            result = self._run_chunk(chunk, outputs)
            for o in outputs:
                parts[o].append(result[o])
        return {o: np.concatenate(v).astype(np.float32, copy=False) for o, v in parts.items()}

    def _run_chunk(self, chunk: dict[str, Array], outputs: tuple[str, ...]) -> dict[str, Array]:
        context = self.context
        for name, array in chunk.items():
            array = np.ascontiguousarray(array, dtype=self._np_dtype(name))
            if not context.set_input_shape(name, tuple(array.shape)):
                raise BackendUnavailable(f"{self.paths.engine}: input {name!r} shape {array.shape} is outside the engine's profile")
            context.set_tensor_address(name, self.buffers.put(name, array))
        for name in self.outputs:
            shape = tuple(context.get_tensor_shape(name))
            context.set_tensor_address(name, self.buffers.empty(name, shape, self._np_dtype(name)))
        if not context.execute_async_v3(self.buffers.stream_handle):
            raise BackendUnavailable(f"{self.paths.engine}: TensorRT execution failed (see the TensorRT log above)")
        return {name: self.buffers.get(name) for name in outputs}

    def close(self) -> None:
        if getattr(self, "buffers", None) is not None:
            self.buffers.close()
        self.context = self.engine = None
