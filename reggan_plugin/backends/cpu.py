"""onnxruntime on the CPU: the backend that always works (fp32 only)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..arrays import Array
from ..artifact import ModelArtifact
from ..errors import BackendUnavailable, ModelError, UsageError
from .base import Backend, Precision
from .environment import physical_cores


@dataclass(frozen=True)
class CpuTuning:
    """Session options for the CPU backend (the hook for benchmark-driven tuning).

    threads: intra-op threads; None = physical cores of this process's CPU set.
    inter_op_threads: only used by parallel execution (ours is sequential: one conv chain).
    config_entries: extra `SessionOptions.add_session_config_entry` pairs. Default: no spinning. Idle
        intra-op threads that spin steal the cores the streaming pipeline's decode/encode threads (and other
        jobs on a shared node, and Blender's UI) need: measured on the 2-core dev machine, the 1080p render
        pipeline ran 12% faster and the network alone 14% faster without spinning (docs/BENCHMARKS.md,
        benchmarks/ort_tuning.py). Pass {"session.intra_op.allow_spinning": "1"} for a dedicated machine.
    """

    threads: int | None = None
    inter_op_threads: int = 1
    graph_optimization: str = "all"  # "basic" | "extended" | "all" (onnxruntime GraphOptimizationLevel)
    sequential: bool = True
    memory_pattern: bool = True
    cpu_arena: bool = True
    config_entries: Mapping[str, str] = field(default_factory=lambda: {"session.intra_op.allow_spinning": "0"})


def session_options(tuning: CpuTuning | None = None) -> Any:
    """onnxruntime.SessionOptions for our graphs; shared by the GPU sessions (which ignore the thread counts)."""
    import onnxruntime as ort

    tuning = tuning or CpuTuning()
    options = ort.SessionOptions()
    options.intra_op_num_threads = tuning.threads or physical_cores()
    options.inter_op_num_threads = tuning.inter_op_threads
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if tuning.graph_optimization not in levels:
        raise UsageError(f"unknown graph optimisation level {tuning.graph_optimization!r}; choose {', '.join(levels)}")
    options.graph_optimization_level = levels[tuning.graph_optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if tuning.sequential else ort.ExecutionMode.ORT_PARALLEL
    options.enable_mem_pattern = tuning.memory_pattern
    options.enable_cpu_mem_arena = tuning.cpu_arena
    options.log_severity_level = 3  # errors only; provider fallbacks are detected via get_providers(), not logs
    for key, value in tuning.config_entries.items():
        options.add_session_config_entry(key, value)
    return options


def create_session(path: str, providers: list[Any], options: Any) -> Any:
    """An InferenceSession; a load failure is BackendUnavailable naming the file and onnxruntime's reason."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(path, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/RuntimeException/... classes without a common base
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailable(f"{path}: onnxruntime could not create a session: {first}") from None
    # A GPU session must fail loudly, not rerun a failed call on the CPU behind the user's back.
    session.disable_fallback()
    return session


class OrtBackend(Backend):
    """A backend over one onnxruntime session (CPU, or the CUDA provider in `cuda.py`)."""

    provider = "CPUExecutionProvider"

    def __init__(self, artifact: ModelArtifact, session: Any, *, precision: Precision, device: str) -> None:
        super().__init__(input_size=artifact.input_size, n_expressions=artifact.input_width, precision=precision)
        self.artifact = artifact
        self.session = session
        self.device = device

    @property
    def description(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__}, {self.provider} ({self.device}), {self.precision}"

    def _run(self, feeds: dict[str, Array], outputs: tuple[str, ...]) -> dict[str, Array]:
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

        try:
            values = self.session.run(list(outputs), feeds)
        except (Fail, InvalidArgument, RuntimeException) as exc:  # a graph that loads but cannot run these inputs
            if "alloc" in str(exc).lower():  # out of memory: not the model's fault
                raise
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(self.artifact.path, f"fails at run time ({reason}); re-export the model") from None
        return dict(zip(outputs, values))

    def close(self) -> None:
        self.session = None


class CpuBackend(OrtBackend):
    name = "cpu"

    def __init__(self, artifact: ModelArtifact, *, precision: Precision = "fp32", tuning: CpuTuning | None = None) -> None:
        if precision != "fp32":
            raise UsageError("the cpu backend runs fp32 only; use --precision fp32 (fp16 is for --backend cuda or tensorrt)")
        options = session_options(tuning)
        session = create_session(str(artifact.path), ["CPUExecutionProvider"], options)
        got = session.get_providers()
        if got[:1] != ["CPUExecutionProvider"]:
            raise BackendUnavailable(f"{artifact.path}: asked onnxruntime for CPUExecutionProvider, got {got}")
        super().__init__(artifact, session, precision="fp32", device=f"{options.intra_op_num_threads} threads")
