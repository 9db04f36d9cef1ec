"""ONNX artifact -> TensorRT 10+ engine, with a preflight, a persistent timing cache and a JSON sidecar.

`build_engine` is what `reggan-plugin export tensorrt` and the tensorrt backend (when an engine is missing)
call: it is part of the runtime, so that a user with TensorRT builds engines without the training/export code. TensorRT 10 API only: Builder.create_network(0) (explicit batch is the only mode),
OnnxParser, BuilderConfig.set_memory_pool_limit(WORKSPACE), BuilderFlag.FP16, one optimisation profile over
the batch dimension, create_timing_cache/set_timing_cache, build_serialized_network. No plugins.
tensorrt is imported inside the functions, never at module import.

Cache, keys, sidecars and stale-engine rules live in `engine_cache`; they are re-exported here.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from reggan_plugin import __version__
from reggan_plugin.artifact import load_artifact
from reggan_plugin.backends import environment as env
from reggan_plugin.backends.engine_cache import (
    CacheState,
    EnginePaths,
    EngineSpec,
    Profile,
    atomic_write,
    default_cache_dir,
    engine_paths,
    lookup,
    make_sidecar,
    read_sidecar,
    write_sidecar,
)
from reggan_plugin.backends.tensorrt import DEFAULT_MAX_BATCH, current_spec
from reggan_plugin.errors import BackendUnavailable, RegganError
from reggan_plugin.file_lock import exclusive_lock

from .trt_preflight import preflight

__all__ = [
    "CacheState", "EngineBuildError", "EnginePaths", "EngineSpec", "Profile", "build_engine", "default_cache_dir",
    "engine_paths", "lookup", "read_sidecar", "write_sidecar",
]

log = logging.getLogger("reggan_plugin.backends")

DEFAULT_WORKSPACE_GB = 4.0


class EngineBuildError(RegganError):
    """The preflight or TensorRT refused the model, or the build failed."""

    exit_code = 6


def _select_device(device_id: int) -> None:
    """Make `device_id` the current CUDA device for the builder (torch if present, else cuda-python)."""
    if device_id == 0:
        return
    from reggan_plugin.backends.tensorrt import _cuda_python, device_buffers_probe

    if device_buffers_probe().value == "torch":
        import torch

        torch.cuda.set_device(device_id)
        return
    runtime = _cuda_python()
    if runtime is None:
        raise BackendUnavailable(f"cannot select GPU {device_id}: install cuda-python or torch with CUDA (or set CUDA_VISIBLE_DEVICES)")
    runtime.cudaSetDevice(device_id)


def _parser_errors(parser: object) -> str:
    """TensorRT's parser errors, each with its node and op where this TensorRT reports them."""
    lines = []
    for i in range(parser.num_errors):  # type: ignore[attr-defined]
        error = parser.get_error(i)  # type: ignore[attr-defined]
        node = getattr(error, "node_name", lambda: "")() or f"#{error.node()}"
        op = getattr(error, "node_operator", lambda: "")()
        lines.append(f"{op or 'node'} {node}: {error.desc()}")
    return "; ".join(lines) or "no details reported"


def build_engine(
    onnx_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    precision: str = "fp32",
    max_batch: int = DEFAULT_MAX_BATCH,
    opt_batch: int | None = None,
    workspace_gb: float = DEFAULT_WORKSPACE_GB,
    timing_cache: str | Path | None = None,
    device_id: int = 0,
    force: bool = False,
) -> EnginePaths:
    """Build (or find up to date) the engine for `onnx_path` on this GPU; returns its paths.

    out_dir: engine directory (default: the user cache dir, where the runtime looks).
    timing_cache: TensorRT timing cache file (default: one per TensorRT version and GPU architecture in out_dir).
    force: rebuild even when a valid engine exists.
    """
    onnx_path = Path(onnx_path)
    if precision not in ("fp32", "fp16"):
        raise EngineBuildError(f"unknown precision {precision!r}: choose fp32 or fp16")
    if max_batch < 1:
        raise EngineBuildError(f"--max-batch must be >= 1, got {max_batch}")
    if not onnx_path.is_file():
        raise EngineBuildError(f"{onnx_path}: ONNX file not found")
    report = preflight(onnx_path)  # first: it needs neither TensorRT nor a GPU, and names every bad op
    if not report.ok:
        raise EngineBuildError(report.summary())
    log.info("%s", report.summary())
    artifact = load_artifact(onnx_path)
    for probe in (env.tensorrt(), env.gpu(device_id)):
        if not probe.ok:
            raise BackendUnavailable(f"cannot build a TensorRT engine: {probe.why}")

    out_dir = Path(out_dir) if out_dir is not None else default_cache_dir()
    spec = current_spec(artifact, precision=precision, device_id=device_id, max_batch=max_batch, opt_batch=opt_batch)  # type: ignore[arg-type]
    paths = engine_paths(out_dir, spec, onnx_path.stem)
    timing_path = Path(timing_cache) if timing_cache is not None else paths.timing_cache
    paths = EnginePaths(paths.engine, paths.sidecar, timing_path)
    state = lookup(out_dir, spec, onnx_path.stem)
    if state.usable and not force:
        log.info("TensorRT engine is up to date: %s", paths.engine)
        return paths
    log.warning("%s", state.rebuild_message() if not state.usable else "rebuilding the TensorRT engine (--force)")

    with build_lock(paths.engine):  # two processes (farm workers, the add-on and the CLI) never build it twice
        state = lookup(out_dir, spec, onnx_path.stem)
        if state.usable and not force:
            log.info("TensorRT engine built by another process meanwhile: %s", paths.engine)
            return paths
        try:
            _select_device(device_id)
            serialized, timing_blob, seconds = _build(onnx_path, spec, artifact_expressions=artifact.input_width,
                                                      workspace_gb=workspace_gb, timing_path=timing_path)
        except (RuntimeError, AttributeError, OSError, TypeError, ValueError) as exc:  # TensorRT's or CUDA's own
            raise EngineBuildError(f"{onnx_path}: TensorRT failed to build the engine: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
        atomic_write(paths.engine, serialized)
        if timing_blob:
            atomic_write(timing_path, timing_blob)
        sidecar = make_sidecar(spec, engine_bytes=serialized, build_seconds=seconds, onnx_path=str(onnx_path.resolve()),
                               workspace_gb=workspace_gb, plugin_version=__version__)
        write_sidecar(paths.sidecar, sidecar)  # written last: an engine without its sidecar is never loaded
    log.warning("TensorRT engine built in %.0f s: %s", seconds, paths.engine)
    return paths


def build_lock(engine: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on `<engine>.lock`, held while one process builds that engine (others wait, then find
    it built)."""
    return exclusive_lock(engine.with_name(engine.name + ".lock"))


def fp32_tensor_names(onnx_path: Path) -> set[str]:
    """ONNX tensors that an fp16 engine must compute in fp32: the sampling-grid arithmetic and what GridSample
    produces (the same islands the torch route keeps in float32, `torch_graph.grid_arithmetic`)."""
    import onnx

    from reggan_plugin.backends.graph_precision import grid_arithmetic

    model = onnx.load(str(onnx_path), load_external_data=False)
    samples = {out for node in model.graph.node if node.op_type == "GridSample" for out in node.output}
    return grid_arithmetic(model) | samples


def pin_fp32_layers(network: object, names: set[str], trt: object) -> int:
    """Set float32 precision (and output types) on every layer of `network` that produces one of `names`;
    with OBEY_PRECISION_CONSTRAINTS the builder keeps them so. Returns how many layers were pinned."""
    pinned = 0
    for i in range(network.num_layers):  # type: ignore[attr-defined]
        layer = network.get_layer(i)  # type: ignore[attr-defined]
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if any(t.name in names for t in outputs) and all(t.dtype in (trt.float32, trt.float16) for t in outputs):  # type: ignore[attr-defined]
            layer.precision = trt.float32  # type: ignore[attr-defined]
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)  # type: ignore[attr-defined]
            pinned += 1
    return pinned


def _build(onnx_path: Path, spec: EngineSpec, *, artifact_expressions: int, workspace_gb: float,
           timing_path: Path) -> tuple[bytes, bytes, float]:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineBuildError(f"{onnx_path}: TensorRT {trt.__version__} could not parse the model: {_parser_errors(parser)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if spec.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = pin_fp32_layers(network, fp32_tensor_names(onnx_path), trt)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("fp16 engine: %d layer(s) of the sampling grid and GridSample kept in fp32", pinned)

    p, s = spec.profile, spec.profile.input_size
    shapes: dict[str, Callable[[int], tuple[int, ...]]] = {
        "image": lambda b: (b, 3, s, s),
        "expression": lambda b: (b, artifact_expressions),
        "intensity": lambda b: (b,),
    }
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in shapes:
            raise EngineBuildError(f"{onnx_path}: unexpected input {name!r} (the artifact has image, expression, intensity)")
        profile.set_shape(name, shapes[name](p.min_batch), shapes[name](p.opt_batch), shapes[name](p.max_batch))
    config.add_optimization_profile(profile)

    blob = b""
    if timing_path.is_file():
        blob = timing_path.read_bytes()
    cache = config.create_timing_cache(blob)
    if cache is None and blob:
        log.warning("timing cache %s is unreadable; starting a new one", timing_path)
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):  # made on another GPU or TensorRT: start afresh
        log.warning("timing cache %s does not fit this GPU or TensorRT; starting a new one", timing_path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: TensorRT {trt.__version__} failed to build the engine (see the TensorRT log above)")
    timing = config.get_timing_cache()
    timing_blob = bytes(memoryview(timing.serialize())) if timing is not None else b""
    return bytes(memoryview(serialized)), timing_blob, seconds
