"""The TensorRT engine cache: where engines live, their keys, their JSON sidecars, and when to rebuild.

An engine is valid only for the exact ONNX file, TensorRT version, GPU (name and compute capability),
precision and shape profile it was built for. All of those go into the cache key AND into a JSON sidecar
written next to the engine; on lookup both are checked (plus the engine file's size and sha256), and any
mismatch, missing field or unreadable sidecar means "rebuild", never "load". No tensorrt import here.

Layout: <cache_dir>/<model-stem>-<key16>.engine, <same>.json, and timing-trt<ver>-sm<cc>.cache (shared
by builds on the same TensorRT and GPU architecture, so a rebuild after a model change is faster).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..artifact import file_sha256
from ..atomic import write_bytes
from ..user_cache import cache_root

SIDECAR_FORMAT = 1
# Rough first-build guess when no previous build on this machine says better (a small conv GAN at 128 px;
# fp16 tries more tactics). Stated as a guess in every message that uses it.
DEFAULT_BUILD_SECONDS = {"fp32": 90.0, "fp16": 180.0}


def default_cache_dir() -> Path:
    """$REGGAN_CACHE_DIR, else the platform's user cache dir, + reggan-plugin/engines."""
    return cache_root() / "engines"


@dataclass(frozen=True)
class Profile:
    """The optimisation profile: batch range and the model's (fixed) input size."""

    min_batch: int
    opt_batch: int
    max_batch: int
    input_size: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"profile needs 1 <= min <= opt <= max batch, got {self.min_batch}/{self.opt_batch}/{self.max_batch}")


BUILD_RECIPE = 2  # raised whenever the builder changes what it makes (2: fp16 keeps the sampling grid in fp32)


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine depends on. `key` hashes all of it."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.9"
    precision: str  # "fp32" | "fp16"
    profile: Profile
    cuda_major: str = ""  # the CUDA major the TensorRT wheel was built for ("12", "13"; "" when unknown)
    recipe: int = 0  # BUILD_RECIPE of the builder that made it (see below)

    @property
    def key(self) -> str:
        payload = json.dumps(_spec_fields(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


def _spec_fields(spec: EngineSpec) -> dict[str, Any]:
    fields = asdict(spec)
    fields["profile"] = asdict(spec.profile)
    return fields


@dataclass(frozen=True)
class EnginePaths:
    engine: Path
    sidecar: Path
    timing_cache: Path


def engine_paths(cache_dir: Path, spec: EngineSpec, model_stem: str = "model") -> EnginePaths:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in model_stem)[:40] or "model"
    base = Path(cache_dir) / f"{safe}-{spec.key[:16]}"
    return EnginePaths(base.with_suffix(".engine"), base.with_suffix(".json"), timing_cache_path(cache_dir, spec))


def timing_cache_path(cache_dir: Path, spec: EngineSpec) -> Path:
    version = spec.tensorrt_version.replace(".", "_")
    return Path(cache_dir) / f"timing-trt{version}-sm{spec.compute_capability.replace('.', '')}.cache"


def make_sidecar(spec: EngineSpec, *, engine_bytes: bytes, build_seconds: float, onnx_path: str,
                 workspace_gb: float, plugin_version: str) -> dict[str, Any]:
    return {
        "format": SIDECAR_FORMAT,
        "key": spec.key,
        **_spec_fields(spec),
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "engine_bytes": len(engine_bytes),
        "build_seconds": round(float(build_seconds), 2),
        "workspace_gb": workspace_gb,
        "onnx_path": onnx_path,
        "reggan_plugin_version": plugin_version,
    }


atomic_write = write_bytes  # engines, sidecars and timing caches: the runtime's one atomic write


def write_sidecar(path: Path, sidecar: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar as a dict, or None when it is missing, unreadable, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def sidecar_mismatches(sidecar: dict[str, Any], spec: EngineSpec) -> list[str]:
    """Human-readable differences between a sidecar and what we need ([] = it describes `spec`'s engine)."""
    if sidecar.get("format") != SIDECAR_FORMAT:
        return [f"sidecar format {sidecar.get('format')!r} (expected {SIDECAR_FORMAT})"]
    wanted = _spec_fields(spec)
    problems = []
    labels = {"onnx_sha256": "ONNX file", "tensorrt_version": "TensorRT", "gpu_name": "GPU",
              "compute_capability": "compute capability", "precision": "precision", "profile": "profile",
              "cuda_major": "CUDA", "recipe": "build recipe"}
    for field, label in labels.items():
        have = sidecar.get(field)
        if have != wanted[field]:
            if field == "onnx_sha256":
                problems.append("built from a different ONNX file (sha256 differs)")
            else:
                problems.append(f"{label} {_short(have)} (now {_short(wanted[field])})")
    if sidecar.get("key") != spec.key:
        problems.append("cache key differs")
    return problems


def _short(value: object) -> str:
    if isinstance(value, dict):
        return "batch {min_batch}/{opt_batch}/{max_batch} at {input_size}px".format(**value) if set(value) >= {
            "min_batch", "opt_batch", "max_batch", "input_size"} else json.dumps(value)
    return repr(value)


Status = Literal["hit", "missing", "stale", "corrupt"]


@dataclass(frozen=True)
class CacheState:
    status: Status
    paths: EnginePaths
    reason: str  # why not "hit" ("" on a hit)
    estimate_seconds: float  # expected build time if a build is needed
    estimate_source: str  # "previous build of this model on this GPU" / "rough default"

    @property
    def usable(self) -> bool:
        return self.status == "hit"

    def rebuild_message(self) -> str:
        minutes = self.estimate_seconds / 60
        when = f"about {self.estimate_seconds:.0f} s" if minutes < 2 else f"about {minutes:.0f} min"
        return f"building a TensorRT engine ({self.reason}); this takes {when} ({self.estimate_source}) and happens once per model, GPU and TensorRT version"


def lookup(cache_dir: Path, spec: EngineSpec, model_stem: str = "model", *, verify_hash: bool = True) -> CacheState:
    """Decide whether the cached engine for `spec` can be loaded; never trusts an engine its sidecar does not vouch for."""
    paths = engine_paths(cache_dir, spec, model_stem)
    estimate, source = estimate_build_seconds(cache_dir, spec)

    def state(status: Status, reason: str) -> CacheState:
        return CacheState(status, paths, reason, estimate, source)

    if not paths.sidecar.exists() and not paths.engine.exists():
        return state("missing", _explain_missing(cache_dir, spec))
    sidecar = read_sidecar(paths.sidecar)
    if sidecar is None:
        return state("corrupt", f"sidecar {paths.sidecar.name} is missing or unreadable")
    problems = sidecar_mismatches(sidecar, spec)
    if problems:
        return state("stale", "cached engine was built for " + ", ".join(problems))
    if not paths.engine.is_file():
        return state("corrupt", f"engine file {paths.engine.name} is missing")
    size = paths.engine.stat().st_size
    if size != sidecar.get("engine_bytes"):
        return state("corrupt", f"engine file has {size} bytes, sidecar says {sidecar.get('engine_bytes')} (partial write?)")
    if verify_hash and file_sha256(paths.engine) != sidecar.get("engine_sha256"):
        return state("corrupt", "engine file sha256 does not match its sidecar")
    return state("hit", "")


def cached_sidecars(cache_dir: Path) -> list[dict[str, Any]]:
    try:
        files = sorted(Path(cache_dir).glob("*.json"))
    except OSError:
        return []
    return [s for s in (read_sidecar(f) for f in files) if s is not None and s.get("format") == SIDECAR_FORMAT]


def _explain_missing(cache_dir: Path, spec: EngineSpec) -> str:
    """Why there is no engine: none yet, or one for this model built under other conditions."""
    same_model = [s for s in cached_sidecars(cache_dir) if s.get("onnx_sha256") == spec.onnx_sha256]
    if not same_model:
        return "no engine for this model in the cache yet"
    nearest = min(same_model, key=lambda s: len(sidecar_mismatches(s, spec)))
    diffs = [d for d in sidecar_mismatches(nearest, spec) if d != "cache key differs"]
    return "the cached engine for this model was built for " + ", ".join(diffs)


def estimate_build_seconds(cache_dir: Path, spec: EngineSpec) -> tuple[float, str]:
    """Expected build time: a previous build here (same GPU and precision first), else a rough default."""
    previous = [s for s in cached_sidecars(cache_dir) if isinstance(s.get("build_seconds"), (int, float))]
    matches: tuple[tuple[Callable[[dict[str, Any]], bool], str], ...] = (
        (lambda s: s.get("onnx_sha256") == spec.onnx_sha256 and s.get("gpu_name") == spec.gpu_name
         and s.get("precision") == spec.precision, "from the previous build of this model on this GPU"),
        (lambda s: s.get("gpu_name") == spec.gpu_name and s.get("precision") == spec.precision,
         "from a previous build on this GPU"),
    )
    for match, source in matches:
        times = [float(s["build_seconds"]) for s in previous if match(s)]
        if times:
            return max(times), source
    return DEFAULT_BUILD_SECONDS.get(spec.precision, 180.0), "rough guess: no previous build on this machine"
