"""The cuda backend: onnxruntime-gpu's CUDAExecutionProvider, or torch CUDA when onnxruntime-gpu is absent.

Two real routes, one name:
- onnxruntime-gpu (preferred for fp32): the artifact as is. After creating the session we compare
  `session.get_providers()` with what we asked for; onnxruntime quietly drops to CPU when libcudart/libcudnn
  do not load, and we turn that into BackendUnavailable naming the missing library.
- torch CUDA (used when onnxruntime-gpu is missing, and for fp16): the ONNX graph itself, executed op by op
  with torch (`torch_graph.py`; no re-export, no checkpoint needed). Its result is checked against
  onnxruntime CPU on one sample when the backend is created; a disagreement is an error, not a guess.
"""
from __future__ import annotations

import logging

from ..arrays import Array
from ..artifact import ModelArtifact
from ..errors import BackendUnavailable
from . import environment as env
from .base import Backend, Precision
from .cpu import OrtBackend, create_session, session_options
from .parity import check_parity

log = logging.getLogger("reggan_plugin.backends")

ORT_CUDA_DOCS = "https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements"


class OrtCudaBackend(OrtBackend):
    name = "cuda"
    provider = "CUDAExecutionProvider"


def _diagnose_missing_cuda_provider() -> str:
    """Why onnxruntime-gpu created a session without its CUDA provider."""
    import onnxruntime as ort

    missing = [probe.why for probe in (env.cudart(), env.cudnn()) if not probe.ok]
    reason = "; ".join(missing) if missing else "CUDA/cuDNN libraries load, so their versions probably do not match this onnxruntime"
    return (f"onnxruntime {ort.__version__} could not start CUDAExecutionProvider and fell back to CPU: {reason}. "
            f"onnxruntime-gpu 1.19+ needs CUDA 12 and cuDNN 9 ({ORT_CUDA_DOCS}); "
            "`pip install nvidia-cudnn-cu12 nvidia-cuda-runtime-cu12` provides both (the -cu13 ones for a CUDA 13 build)")


def create_ort_cuda(artifact: ModelArtifact, *, device_id: int) -> OrtCudaBackend:
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):  # onnxruntime >= 1.21: loads CUDA/cuDNN from NVIDIA's pip wheels if present
        try:
            ort.preload_dlls()
        except (OSError, RuntimeError) as exc:
            log.debug("onnxruntime.preload_dlls: %s", exc)
    providers = [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    session = create_session(str(artifact.path), providers, session_options())
    got = session.get_providers()
    if "CUDAExecutionProvider" not in got:
        raise BackendUnavailable(f"cuda backend: {_diagnose_missing_cuda_provider()}")
    gpu = env.gpu_info(device_id)
    device = f"GPU {device_id}" + (f" {gpu.name}" if gpu else "")
    return OrtCudaBackend(artifact, session, precision="fp32", device=device)


class TorchCudaBackend(Backend):
    """The ONNX graph run by torch on a CUDA device (fp32, or fp16 weights and activations)."""

    name = "cuda"

    def __init__(self, artifact: ModelArtifact, *, precision: Precision, device: str = "cuda:0", verify: bool = True) -> None:
        super().__init__(input_size=artifact.input_size, n_expressions=artifact.input_width, precision=precision)
        import torch

        from .torch_graph import TorchGraph, load_onnx

        self.artifact = artifact
        self._torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.graph: TorchGraph | None = TorchGraph(load_onnx(artifact.path), device=self.device, dtype=self.dtype)
        if verify:
            check_parity(self, self.artifact, f"cuda backend (torch route, {self.artifact.path.name})")

    @property
    def description(self) -> str:
        torch = self._torch
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else str(self.device)
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}), ONNX graph on {self.device} {where}, {self.precision}"

    def _run(self, feeds: dict[str, Array], outputs: tuple[str, ...]) -> dict[str, Array]:
        torch = self._torch
        if self.graph is None:
            raise BackendUnavailable("cuda backend: closed")
        with torch.inference_mode():
            # torch warns on wrapping a read-only array (a decoded frame, a broadcast): those are copied first
            inputs = {k: torch.from_numpy(v if v.flags.writeable else v.copy()).to(self.device, non_blocking=True)
                      .to(self.dtype) for k, v in feeds.items()}
            result = self.graph.run(inputs, outputs)
            return {k: v.float().cpu().numpy() for k, v in result.items()}

    def close(self) -> None:
        self.graph = None


def create_torch_cuda(artifact: ModelArtifact, *, precision: Precision, device_id: int) -> TorchCudaBackend:
    probe = env.torch_cuda()
    if not probe.ok:
        raise BackendUnavailable(f"torch CUDA: {probe.why}")
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise BackendUnavailable("torch CUDA route needs the onnx package to read the graph (`pip install onnx`)")
    return TorchCudaBackend(artifact, precision=precision, device=f"cuda:{device_id}")


def create_cuda_backend(artifact: ModelArtifact, *, precision: Precision = "fp32", device_id: int = 0) -> Backend:
    """onnxruntime-gpu for fp32 when it works, else torch CUDA; BackendUnavailable naming every reason."""
    gpu = env.gpu(device_id)
    if not gpu.ok:
        raise BackendUnavailable(f"cuda backend: {gpu.why}")
    reasons: list[str] = []
    routes = ("onnxruntime", "torch") if precision == "fp32" else ("torch",)
    if precision != "fp32":
        reasons.append("onnxruntime-gpu runs this fp32 model in fp32 only")
    for route in routes:
        try:
            if route == "onnxruntime":
                probe = env.onnxruntime_cuda()
                if not probe.ok:
                    raise BackendUnavailable(f"onnxruntime-gpu: {probe.why}")
                return create_ort_cuda(artifact, device_id=device_id)
            backend = create_torch_cuda(artifact, precision=precision, device_id=device_id)
            if reasons:
                log.info("cuda backend: using the torch route (%s)", "; ".join(reasons))
            return backend
        except BackendUnavailable as exc:
            reasons.append(str(exc))
    raise BackendUnavailable("cuda backend unavailable on " + gpu.value + ": " + "; ".join(reasons))


