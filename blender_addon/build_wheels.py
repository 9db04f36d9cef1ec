"""What the extension bundles: the runtime's requirements, which wheel Blender installs where, downloading them.

Loaded by build.py (a sibling, not part of the add-on package and not shipped in the zips)."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
REPO = ADDON_DIR.parent


def read_manifest(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


# Each zip carries wheels for both Pythons that Blender embeds: Blender's installer (bl_pkg,
# `_extensions_wheel_filter_for_this_system`) installs only the wheels whose platform and Python tags fit the
# running Blender (`installs` below mirrors it), so one zip per platform serves 4.2 LTS to 5.2 LTS.
PYTHONS = {"3.11": "Blender 4.2 - 5.0", "3.13": "Blender 5.1 and newer"}
NUMPY_OF = {"3.11": "numpy<2", "3.13": "numpy>=2"}  # what those Blenders ship; only used to resolve, never bundled

# Blender platform -> wheel platform tags pip may pick (newest first; pip takes any that matches).
PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_14_0_arm64", "macosx_13_0_arm64", "macosx_12_0_arm64", "macosx_11_0_arm64", "macosx_10_9_universal2"),
}
PLATFORMS = tuple(PLATFORM_TAGS)

# The GPU variant swaps onnxruntime for onnxruntime-gpu (CUDA and TensorRT execution providers; NVIDIA GPUs,
# so Linux and Windows x64 only). Both install the same `onnxruntime` module: a zip carries one or the other.
GPU_PLATFORMS = ("linux-x64", "windows-x64")
GPU_RUNTIME = "onnxruntime-gpu"

# Distributions Blender itself provides: never bundled (a second copy would shadow Blender's).
PROVIDED_BY_BLENDER = {"numpy", "opencolorio"}  # Blender bundles PyOpenColorIO
# Imported lazily by optional GPU backends / training code; never bundled (see docs/BLENDER.md).
OPTIONAL_MODULES = {"torch", "tensorrt", "bpy", "cuda", "pycuda", "safetensors", "onnx"}
# Runtime subpackages that are not part of the runtime (torch code).
NOT_RUNTIME = ("training", "export")
class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


# -- what the runtime needs ------------------------------------------------------------------------
def runtime_requirements(pyproject: Path = REPO / "pyproject.toml", *, gpu: bool = False) -> list[str]:
    """[project].dependencies of pyproject.toml, minus what Blender provides (numpy); with `gpu`,
    onnxruntime-gpu (same version range) instead of onnxruntime."""
    deps = read_manifest(pyproject)["project"]["dependencies"]
    kept = [d for d in deps if requirement_name(d) not in PROVIDED_BY_BLENDER]
    if gpu:
        kept = [GPU_RUNTIME + d.strip()[len("onnxruntime"):] if requirement_name(d) == "onnxruntime" else d for d in kept]
    return kept


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def runtime_imports(package: Path = REPO / "reggan_plugin") -> dict[str, list[str]]:
    """Third-party top-level modules the runtime imports (at module level or lazily): {module: [files]}.

    Modules of the optional GPU backends and of the torch code (OPTIONAL_MODULES) are left to the caller."""
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        if set(path.relative_to(package).parts[:1]) & set(NOT_RUNTIME):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("reggan_plugin", "__future__"):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(package.parent)))
    return found


def uncovered_imports(wheel_files: list[Path]) -> list[str]:
    """Runtime modules that no bundled wheel (nor Blender) provides, as messages."""
    bundled = {wheel_name(w) for w in wheel_files} | PROVIDED_BY_BLENDER
    dists = importlib.metadata.packages_distributions()
    problems = []
    for module, files in runtime_imports().items():
        if module in OPTIONAL_MODULES:
            continue
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if module == "onnxruntime":
            owners.add(GPU_RUNTIME)  # the same module, in the GPU variant
        if not owners & bundled:
            problems.append(f"{module} (imported by {files[0]}) is in no bundled wheel; add it to pyproject dependencies")
    return problems


def wheel_name(path: Path) -> str:
    return path.name.split("-")[0].lower().replace("_", "-")


# -- steps -----------------------------------------------------------------------------------------
def run(cmd: list[str], *, quiet: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode and not quiet:
        tail = (result.stderr or result.stdout).strip().splitlines()[-8:]
        raise BuildError(f"{' '.join(cmd[:4])} ... failed:\n  " + "\n  ".join(tail))
    return result


def installs(wheel: str, platform: str, python: str) -> bool:
    """Whether Blender's installer installs `wheel` (a file name) on `platform` in a Blender embedding `python`:
    the platform tag fits, and the Python tag is that version (cpXY), any Python 3 (py3), or an older one with
    the stable ABI (abi3)."""
    if not wheel_fits(wheel, platform):
        return False
    python_tags, abi_tag = Path(wheel).stem.split("-")[-3:-1]
    major, minor = (int(v) for v in python.split("."))
    for tag in python_tags.split("."):
        if tag in ("py3", f"py{major}", f"cp{major}{minor}", f"py{major}{minor}"):
            return True
        if abi_tag == "abi3" and tag.startswith(f"cp{major}") and tag[3:].isdigit() and int(tag[3:]) <= minor:
            return True
    return False


def shared_pins(wheels: list[Path]) -> list[str]:
    """`name==version` of the wheels every Python installs (py3, abi3): the next Python's resolution must pick
    the same ones, or both Blenders would get two copies of them."""
    pins = []
    for wheel in wheels:
        parts = wheel.stem.split("-")
        if "py3" in parts[-3].split(".") or parts[-2] == "abi3":
            pins.append(f"{wheel_name(wheel)}=={parts[1]}")
    return pins


def download_wheels(requirements: list[str], platform: str, cache: Path, *, python: str = "3.11",
                    offline: bool = False, pins: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The dependency wheels for one Blender platform and Python: from the cache when it has them, else PyPI."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reggan-wheels-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join([NUMPY_OF[python], *pins]) + "\n")
        dest = Path(tmp) / "wheels"
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
               "--python-version", python, "--dest", str(dest), "--find-links", str(cache), "-c", str(constraints)]
        for tag in PLATFORM_TAGS[platform]:
            cmd += ["--platform", tag]
        cmd += requirements
        if run([*cmd, "--no-index"], quiet=True).returncode:
            if offline:
                raise BuildError(f"{platform}, Python {python}: the wheel cache {cache} lacks some of {requirements} "
                                 "and --offline was given")
            run(cmd)
        wheels = []
        for wheel in sorted(dest.glob("*.whl")):
            if not (cache / wheel.name).is_file():
                shutil.copy2(wheel, cache / wheel.name)
            if wheel_name(wheel) not in PROVIDED_BY_BLENDER:
                wheels.append(cache / wheel.name)
    return wheels


def wheel_fits(filename: str, platform: str) -> bool:
    tags = Path(filename).stem.split("-")[-1].split(".")
    if tags == ["any"]:
        return True
    return any(t in PLATFORM_TAGS[platform] or _same_family(t, platform) for t in tags)


def _same_family(tag: str, platform: str) -> bool:
    if platform == "linux-x64":
        return tag.startswith("manylinux") and tag.endswith("x86_64")
    if platform == "macos-arm64":
        return tag.startswith("macosx") and tag.endswith(("arm64", "universal2"))
    return tag == "win_amd64"


def installed_runtime_problems(wheels: list[str], platform: str) -> list[str]:
    """For each Python Blender may embed: what its installer would leave missing or install twice."""
    problems = []
    for python, blenders in PYTHONS.items():
        picked = [Path(w).name for w in wheels if installs(Path(w).name, platform, python)]
        names = [wheel_name(Path(w)) for w in picked]
        problems += [f"{blenders} (Python {python}): {m}" for m in uncovered_imports([Path(w) for w in picked])]
        problems += [f"{blenders} (Python {python}): {n} would be installed twice"
                     for n in sorted({n for n in names if names.count(n) > 1})]
    return problems


