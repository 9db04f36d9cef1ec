"""What GPU software this machine has, each with the reason when it is missing. Imports nothing heavy.

Every probe returns a `Probe(ok, value, why)`: `value` is what was found (a version, a GPU name), `why` says
what is missing and how to fix it. NVML is read through ctypes (no pynvml dependency); `nvidia-smi` is the
fallback. torch is imported only by `torch_cuda()` and only when the caller asks.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

DRIVER_FIX = "install the NVIDIA driver (https://www.nvidia.com/drivers; >= 525 for CUDA 12, >= 580 for CUDA 13) and reboot"


@dataclass(frozen=True)
class Probe:
    ok: bool
    value: str = ""
    why: str = ""

    def line(self) -> str:
        return self.value if self.ok else f"not available: {self.why}"


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    driver: str
    compute_capability: tuple[int, int]
    memory_mib: int

    @property
    def cc(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def _nvml_library() -> ctypes.CDLL | None:
    names = ["nvml.dll"] if sys.platform == "win32" else ["libnvidia-ml.so.1", "libnvidia-ml.so"]
    found = ctypes.util.find_library("nvidia-ml")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _gpus_from_nvml() -> list[GpuInfo] | None:
    """GPUs through NVML, or None when NVML cannot be loaded or initialised."""
    lib = _nvml_library()
    if lib is None:
        return None
    try:
        if lib.nvmlInit_v2() != 0:
            return None
    except AttributeError:
        return None
    try:
        buf = ctypes.create_string_buffer(96)
        driver = buf.value.decode() if lib.nvmlSystemGetDriverVersion(buf, 96) == 0 else "?"
        count = ctypes.c_uint(0)
        if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return None
        gpus = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            if lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            name = ctypes.create_string_buffer(96)
            lib.nvmlDeviceGetName(handle, name, 96)
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            lib.nvmlDeviceGetCudaComputeCapability(handle, ctypes.byref(major), ctypes.byref(minor))

            class Memory(ctypes.Structure):
                _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

            memory = Memory()
            lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory))
            gpus.append(GpuInfo(index, name.value.decode(), driver, (major.value, minor.value), int(memory.total >> 20)))
        return gpus
    finally:
        lib.nvmlShutdown()


def _gpus_from_smi() -> list[GpuInfo] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = "index,name,driver_version,compute_cap,memory.total"
    try:
        done = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    gpus = []
    for row in done.stdout.strip().splitlines():
        parts = [p.strip() for p in row.split(",")]
        if len(parts) != 5:
            continue
        try:
            major, minor = (int(x) for x in parts[3].split("."))
            gpus.append(GpuInfo(int(parts[0]), parts[1], parts[2], (major, minor), int(float(parts[4]))))
        except ValueError:
            continue
    return gpus


@lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[tuple[GpuInfo, ...], str]:
    """(GPUs found, why none) from NVML, else nvidia-smi. Cached for the process."""
    gpus = _gpus_from_nvml()
    if gpus is None:
        gpus = _gpus_from_smi()
    if gpus is None:
        return (), f"no NVIDIA GPU: nvidia-smi not found and libnvidia-ml could not be loaded; {DRIVER_FIX}"
    if not gpus:
        return (), "the NVIDIA driver is installed but reports no GPU (check `nvidia-smi`, container --gpus flags)"
    return tuple(gpus), ""


def nvml_index(device_id: int) -> int:
    """The NVML (nvidia-smi) index of CUDA device `device_id`. CUDA numbers only the GPUs listed in
    CUDA_VISIBLE_DEVICES (a farm node's slot), NVML numbers them all; numeric entries are mapped here
    (with CUDA_DEVICE_ORDER=PCI_BUS_ID the two orders agree; UUID entries are kept as given)."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" not in os.environ or not 0 <= device_id < len(visible):
        return device_id
    entry = visible[device_id]
    return int(entry) if entry.isdigit() else device_id


def gpu(device_id: int = 0) -> Probe:
    gpus, why = nvidia_gpus()
    if not gpus:
        return Probe(False, why=why)
    info = gpu_info(device_id)
    if info is not None:
        return Probe(True, f"{info.name} (compute {info.cc}, {info.memory_mib} MiB, driver {info.driver})")
    return Probe(False, why=f"no GPU with index {nvml_index(device_id)} (found {len(gpus)}: indices {[g.index for g in gpus]})")


def gpu_info(device_id: int = 0) -> GpuInfo | None:
    """The GPU that CUDA calls `device_id`, as NVML describes it."""
    gpus, _ = nvidia_gpus()
    index = nvml_index(device_id)
    return next((g for g in gpus if g.index == index), None)


# Where NVIDIA's pip wheels put their libraries, under site-packages/nvidia/: CUDA 12 wheels one folder per
# library (nvidia-cuda-runtime-cu12 -> cuda_runtime/lib, nvidia-cudnn-cu12 -> cudnn/lib), CUDA 13 wheels
# a shared cu13/lib (cudnn keeps cudnn/lib).
PIP_LIBRARY_FOLDERS = {"cudart": ("cuda_runtime", "cu13"), "cudnn": ("cudnn", "cu13")}


def _pip_library_dirs(folders: tuple[str, ...]) -> list[str]:
    """Existing lib (bin on Windows) directories of NVIDIA's pip wheels under the `nvidia` namespace."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for root in spec.submodule_search_locations:
        for folder in folders:
            for sub in ("lib", "bin"):
                path = os.path.join(root, folder, sub)
                if os.path.isdir(path):
                    dirs.append(path)
    return dirs


def shared_library(stem: str, sonames: tuple[str, ...], pip_package: str) -> Probe:
    """Whether a CUDA library (cudart, cudnn, cublas) loads: by soname, then from NVIDIA's pip wheels."""
    candidates = list(sonames)
    found = ctypes.util.find_library(stem)
    if found:
        candidates.append(found)
    for directory in _pip_library_dirs(PIP_LIBRARY_FOLDERS.get(stem, ())):
        candidates += [os.path.join(directory, f) for f in sorted(os.listdir(directory)) if f.startswith(f"lib{stem}") or f.startswith(stem)]
    errors = []
    for name in candidates:
        try:
            ctypes.CDLL(name)
            return Probe(True, name)
        except OSError as exc:
            errors.append(str(exc).split(":")[-1].strip())
    return Probe(False, why=f"lib{stem} not found ({', '.join(sonames)}); install the CUDA runtime or "
                             f"`pip install {pip_package}-cu12` (CUDA 12; -cu13 for CUDA 13)")


def cudart() -> Probe:
    names = ("cudart64_12.dll", "cudart64_110.dll") if sys.platform == "win32" else ("libcudart.so.12", "libcudart.so.11.0", "libcudart.so.13")
    return shared_library("cudart", names, "nvidia-cuda-runtime")


def cudnn() -> Probe:
    names = ("cudnn64_9.dll", "cudnn64_8.dll") if sys.platform == "win32" else ("libcudnn.so.9", "libcudnn.so.8")
    return shared_library("cudnn", names, "nvidia-cudnn")


def distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def onnxruntime_providers() -> Probe:
    """onnxruntime's version, its distribution (onnxruntime / onnxruntime-gpu) and available providers."""
    if importlib.util.find_spec("onnxruntime") is None:
        return Probe(False, why="onnxruntime is not installed (`pip install onnxruntime`)")
    import onnxruntime as ort

    dists = [d for d in ("onnxruntime-gpu", "onnxruntime", "onnxruntime-directml", "onnxruntime-openvino") if distribution_version(d)]
    providers = ", ".join(ort.get_available_providers())
    return Probe(True, f"{ort.__version__} ({' + '.join(dists) or 'unknown wheel'}); providers: {providers}")


def onnxruntime_cuda() -> Probe:
    """Whether onnxruntime offers the CUDA provider (onnxruntime-gpu installed, and only it)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return Probe(False, why="onnxruntime is not installed")
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return Probe(True, f"onnxruntime {ort.__version__} CUDAExecutionProvider")
    if distribution_version("onnxruntime-gpu") and distribution_version("onnxruntime"):
        return Probe(False, why="both onnxruntime and onnxruntime-gpu are installed and the CPU one wins: "
                     "`pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu`")
    return Probe(False, why=f"onnxruntime {ort.__version__} is the CPU build: "
                 "`pip uninstall -y onnxruntime && pip install onnxruntime-gpu`")


def _import_or_probe(module: str, missing: str, broken: str) -> tuple[Any, Probe | None]:
    """(the module, None), or (None, a failed Probe saying why): not installed, or installed but not loading."""
    if importlib.util.find_spec(module) is None:
        return None, Probe(False, why=missing)
    try:
        return importlib.import_module(module), None
    except (ImportError, OSError) as exc:
        return None, Probe(False, why=f"{broken}: {str(exc).splitlines()[0][:160]}")


def tensorrt() -> Probe:
    """The TensorRT Python package and whether its libraries load (imports tensorrt: call only when needed)."""
    trt, failed = _import_or_probe("tensorrt", "TensorRT is not installed (`pip install \"reggan-plugin[tensorrt]\"`, i.e. tensorrt>=10)",
                                   "the tensorrt package is installed but its libraries do not load")
    if failed:
        return failed
    version = getattr(trt, "__version__", "?")
    problem = tensorrt_version_problem(version)
    return Probe(False, version, why=problem) if problem else Probe(True, version)


def tensorrt_version_problem(version: str) -> str | None:
    """Why this TensorRT version cannot be used, or None. The engine builder is written for TensorRT 10
    (11 removed BuilderFlag.FP16 in favour of strongly typed networks)."""
    major = version.split(".")[0]
    if not major.isdigit() or int(major) < 10:
        return f"TensorRT {version} is too old: this plugin needs TensorRT 10 (`pip install 'tensorrt>=10,<11'`)"
    if int(major) > 10:
        return f"TensorRT {version} is not supported yet: this plugin needs TensorRT 10 (`pip install 'tensorrt>=10,<11'`)"
    return None


def torch_cuda() -> Probe:
    """torch and its CUDA (imports torch: call only when needed)."""
    torch, failed = _import_or_probe("torch", "torch is not installed", "torch does not import")
    if failed:
        return failed
    if torch.version.cuda is None:
        return Probe(False, torch.__version__, why=f"torch {torch.__version__} is a CPU-only build: "
                     "install a CUDA build (https://pytorch.org/get-started/locally/)")
    if not torch.cuda.is_available():
        return Probe(False, torch.__version__, why=f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU "
                     "(driver too old for this CUDA, or no GPU visible: check CUDA_VISIBLE_DEVICES)")
    return Probe(True, f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")


def physical_cores() -> int:
    """Physical CPU cores usable by this process (hyper-threads do not help onnxruntime's conv kernels)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            physical = core = ""
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                    cores.add((physical, core))
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True, timeout=5, check=False)
            return max(1, min(logical, int(out.stdout.strip())))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return max(1, logical)
    if cores:
        total_logical = os.cpu_count() or logical
        per_core = max(1, total_logical // len(cores))
        return max(1, min(len(cores), logical // per_core or 1))
    return max(1, logical)
