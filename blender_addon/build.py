"""Build the Blender extension zips: the add-on, its manifest, and the runtime as bundled wheels.

    python blender_addon/build.py                         # all platforms -> dist/blender/
    python blender_addon/build.py --platform linux-x64    # one platform
    python blender_addon/build.py --offline               # only the wheel cache, no network

Steps (Blender manual, Extensions > Python Wheels): build the reggan-plugin wheel from this checkout
(with the bundled model inside), `pip download --only-binary=:all: --platform ... --python-version 3.11`
the runtime's dependencies per platform into a cache (build/blender/wheels, reused offline), stage the
add-on with a manifest that lists the wheels, validate it, and build one zip per platform with
Blender's own extension tool (`blender_ext.py build --split-platforms`, shipped in the bpy wheel and in
Blender) or, where neither exists, with the same layout written by this script.

numpy is NOT bundled: Blender 4.2-5.0 ship numpy 1.x and the runtime uses theirs (a second numpy in the
extension site-packages would shadow it and break bpy's own modules).
This file runs with a plain Python 3.11+ (no bpy needed) and is excluded from the zips.
"""
from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
REPO = ADDON_DIR.parent
MANIFEST = "blender_manifest.toml"
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
PROVIDED_BY_BLENDER = {"numpy"}
# Imported lazily by optional GPU backends / training code; never bundled (see docs/BLENDER.md).
OPTIONAL_MODULES = {"torch", "tensorrt", "bpy", "cuda", "pycuda", "safetensors", "onnx"}
# Runtime subpackages that are not part of the runtime (torch code).
NOT_RUNTIME = ("training", "export")

REQUIRED_KEYS = {
    "schema_version": str, "id": str, "version": str, "name": str, "tagline": str,
    "maintainer": str, "type": str, "blender_version_min": str, "license": list,
}
OPTIONAL_KEYS = {
    "website": str, "tags": list, "blender_version_max": str, "copyright": list, "platforms": list,
    "wheels": list, "permissions": dict, "build": dict,
}
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


# -- manifest --------------------------------------------------------------------------------------
def _version_triple(text: str) -> tuple[int, int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def manifest_problems(manifest: dict, root: Path | None = None) -> list[str]:
    """Check a parsed blender_manifest.toml against the documented schema 1.0.0 (Blender manual,
    Extensions > Getting started / Python wheels). `root`: the folder the wheel paths are relative to."""
    problems = []
    for key, kind in REQUIRED_KEYS.items():
        if key not in manifest:
            problems.append(f"missing required key {key!r}")
        elif not isinstance(manifest[key], kind):
            problems.append(f"{key!r} must be a {kind.__name__}")
    for key, value in manifest.items():
        if key in OPTIONAL_KEYS and not isinstance(value, OPTIONAL_KEYS[key]):
            problems.append(f"{key!r} must be a {OPTIONAL_KEYS[key].__name__}")
        elif key not in REQUIRED_KEYS and key not in OPTIONAL_KEYS:
            problems.append(f"unknown key {key!r}")
    if problems:
        return problems
    if manifest["schema_version"] != "1.0.0":
        problems.append(f"schema_version must be '1.0.0', got {manifest['schema_version']!r}")
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_]*", manifest["id"]) or manifest["id"].endswith("_"):
        problems.append(f"id {manifest['id']!r} must be a Python identifier-like name (letters, digits, _)")
    if _version_triple(manifest["version"]) is None:
        problems.append(f"version {manifest['version']!r} must be MAJOR.MINOR.PATCH")
    if manifest["type"] not in ("add-on", "theme"):
        problems.append(f"type must be 'add-on' or 'theme', got {manifest['type']!r}")
    minimum = _version_triple(manifest["blender_version_min"])
    if minimum is None or minimum < (4, 2, 0):
        problems.append(f"blender_version_min {manifest['blender_version_min']!r} must be a version >= 4.2.0")
    tagline = manifest["tagline"]
    if not tagline or len(tagline) > 64 or tagline.rstrip().endswith((".", "!", "?")):
        problems.append("tagline must be 1-64 characters without a trailing punctuation mark")
    if not manifest["license"] or not all(isinstance(x, str) and x.startswith("SPDX:") for x in manifest["license"]):
        problems.append("license must be a non-empty list of 'SPDX:<id>' strings")
    for name, reason in manifest.get("permissions", {}).items():
        if name not in PERMISSIONS:
            problems.append(f"unknown permission {name!r} (known: {', '.join(sorted(PERMISSIONS))})")
        elif not isinstance(reason, str) or not reason.strip() or reason.rstrip().endswith(".") or len(reason) > 64:
            problems.append(f"permission {name!r} needs a reason of at most 64 characters without a trailing period")
    for platform in manifest.get("platforms", []):
        if platform not in ("linux-x64", "linux-arm64", "windows-x64", "windows-arm64", "macos-x64", "macos-arm64"):
            problems.append(f"unknown platform {platform!r}")
    for wheel in manifest.get("wheels", []):
        if not isinstance(wheel, str) or not wheel.startswith("./wheels/") or not wheel.endswith(".whl") or "\\" in wheel:
            problems.append(f"wheel {wheel!r} must be a './wheels/NAME.whl' path with forward slashes")
        elif len(Path(wheel).stem.split("-")) < 5:
            problems.append(f"wheel {wheel!r} does not follow the wheel file name convention")
        elif root is not None and not (root / wheel).is_file():
            problems.append(f"wheel {wheel!r} is listed but not present")
    return problems


def read_manifest(path: Path) -> dict:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def staged_manifest(source: str, wheels: list[str], platforms: list[str]) -> str:
    """The source manifest with `platforms` and `wheels` set (top-level keys, before any table)."""
    lines, skipping = [], False
    for line in source.splitlines():  # drop existing top-level platforms/wheels, multi-line arrays included
        if not skipping and re.match(r"(platforms|wheels)\s*=", line):
            skipping = "]" not in line.split("#")[0]
            continue
        if skipping:
            skipping = "]" not in line.split("#")[0]
            continue
        lines.append(line)
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    extra = ["platforms = [" + ", ".join(toml_string(p) for p in platforms) + "]", "wheels = ["]
    extra += [f"  {toml_string(w)}," for w in wheels] + ["]", ""]
    return "\n".join(lines[:first_table] + extra + lines[first_table:]) + "\n"


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


def build_package_wheel(dest: Path, *, require_model: bool = True) -> Path:
    """The reggan-plugin wheel from this checkout, with the bundled model inside."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("reggan_plugin-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:  # a copy: setuptools writes build/ and *.egg-info beside its sources
        source = Path(tmp) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (REPO / name).is_file():
                shutil.copy2(REPO / name, source / name)
        shutil.copytree(REPO / "reggan_plugin", source / "reggan_plugin",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest), str(source)])
    wheels = sorted(dest.glob("reggan_plugin-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one reggan_plugin wheel in {dest}, found {len(wheels)}")
    with zipfile.ZipFile(wheels[0]) as archive:
        names = set(archive.namelist())
    if "reggan_plugin/models/default.onnx" not in names:
        message = "the bundled model reggan_plugin/models/default.onnx is missing from the wheel"
        if require_model:
            raise BuildError(message + " (ship it first, or pass --allow-missing-model for a test build)")
        print(f"warning: {message}; users must set a model file in the add-on preferences", file=sys.stderr)
    return wheels[0]


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


def stage(stage_dir: Path, wheels: list[Path], platforms: list[str]) -> Path:
    """The extension's source folder: add-on files, wheels/, and the manifest listing them."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(ADDON_DIR, stage_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build.py", "*.zip"))
    (stage_dir / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, stage_dir / "wheels" / wheel.name)
    listed = [f"./wheels/{w.name}" for w in sorted(wheels, key=lambda p: p.name)]
    text = staged_manifest((ADDON_DIR / MANIFEST).read_text(encoding="utf-8"), listed, platforms)
    (stage_dir / MANIFEST).write_text(text, encoding="utf-8")
    problems = manifest_problems(read_manifest(stage_dir / MANIFEST), stage_dir)
    if problems:
        raise BuildError("staged manifest is invalid:\n  " + "\n  ".join(problems))
    return stage_dir


def blender_ext_tool() -> list[str] | None:
    """Blender's extension command line: the `blender_ext.py` inside the bpy wheel, else `blender` on PATH."""
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.origin:
        found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return [sys.executable, str(found[-1])]
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    return None


def validate_with_blender(path: Path) -> str | None:
    """Blender's own `extension validate` on a folder or zip; None when Blender's tool is not available."""
    tool = blender_ext_tool()
    if tool is None:
        return None
    result = run([*tool, "validate", str(path)], quiet=True)
    if result.returncode:
        raise BuildError(f"Blender's extension validate rejected {path}:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


def zip_extension(stage_dir: Path, out_dir: Path, platforms: list[str]) -> list[Path]:
    """One zip per platform. Blender's tool when available, else the same layout by hand."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(stage_dir / MANIFEST)
    tool = blender_ext_tool()
    if tool is not None:
        args = ["build", "--source-dir", str(stage_dir), "--output-dir", str(out_dir)]
        run(tool + args + (["--split-platforms"] if len(platforms) > 0 else []))
        zips = [out_dir / f"{manifest['id']}-{manifest['version']}-{p.replace('-', '_')}.zip" for p in platforms]
        missing = [z for z in zips if not z.is_file()]
        if missing:
            raise BuildError(f"Blender's extension build did not write {', '.join(map(str, missing))}")
        return zips
    return [_zip_by_hand(stage_dir, out_dir, manifest, p) for p in platforms]


def _zip_by_hand(stage_dir: Path, out_dir: Path, manifest: dict, platform: str) -> Path:
    wheels = [w for w in manifest.get("wheels", []) if wheel_fits(Path(w).name, platform)]
    text = staged_manifest((stage_dir / MANIFEST).read_text(encoding="utf-8"), wheels, [platform])
    target = out_dir / f"{manifest['id']}-{manifest['version']}-{platform.replace('-', '_')}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, text)
        for path in sorted(stage_dir.rglob("*")):
            rel = path.relative_to(stage_dir).as_posix()
            if path.is_dir() or rel == MANIFEST or (rel.startswith("wheels/") and f"./{rel}" not in wheels):
                continue
            archive.write(path, rel)
    return target


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


def current_platform() -> str:
    import platform as _platform

    system = {"linux": "linux", "windows": "windows", "darwin": "macos"}.get(_platform.system().lower(), "?")
    machine = {"x86_64": "x64", "amd64": "x64", "arm64": "arm64", "aarch64": "arm64"}.get(_platform.machine().lower(), "?")
    name = f"{system}-{machine}"
    if name not in PLATFORM_TAGS:
        raise BuildError(f"this machine ({name}) is not one of the supported platforms {PLATFORMS}")
    return name


@dataclass(frozen=True)
class BuildResult:
    zips: list[Path]
    wheels: dict[str, list[Path]]  # platform -> dependency wheels (reggan-plugin's own not included)
    package_wheel: Path
    validated_by: str  # "blender_ext" or "schema"


def build(
    platforms: list[str], out_dir: Path, *, cache: Path = REPO / "build" / "blender",
    offline: bool = False, require_model: bool = True, extra: tuple[str, ...] = (), gpu: bool = False,
) -> BuildResult:
    """One zip per platform in `out_dir`; with `gpu`, the onnxruntime-gpu variant, named `..._gpu.zip`."""
    unknown = [p for p in platforms if p not in PLATFORM_TAGS]
    if unknown:
        raise BuildError(f"unknown platform(s) {unknown}; choose from {PLATFORMS}")
    if gpu and set(platforms) - set(GPU_PLATFORMS):
        raise BuildError(f"the GPU variant is for {', '.join(GPU_PLATFORMS)} (NVIDIA GPUs) only")
    variant = "gpu" if gpu else "cpu"
    package = build_package_wheel(cache / "package", require_model=require_model)
    requirements = runtime_requirements(gpu=gpu) + list(extra)
    per_platform: dict[str, list[Path]] = {}
    for p in platforms:
        wheels: dict[str, Path] = {}
        for python in PYTHONS:
            got = download_wheels(requirements, p, cache / f"wheels-{variant}" / p, python=python, offline=offline,
                                  pins=shared_pins(list(wheels.values())))
            problems = uncovered_imports(got)
            if problems:
                raise BuildError(f"{p}, Python {python}: " + "; ".join(problems))
            wheels.update((w.name, w) for w in got)
        per_platform[p] = sorted(wheels.values())
    every = {w.name: w for ws in per_platform.values() for w in ws}
    stage_dir = stage(cache / f"stage-{variant}", [package, *every.values()], platforms)
    validated_by = "blender_ext" if validate_with_blender(stage_dir) is not None else "schema"
    zips = zip_extension(stage_dir, out_dir, platforms)
    if gpu:
        zips = [archive.replace(archive.with_name(archive.stem + "_gpu.zip")) for archive in zips]
    for archive in zips:
        check_zip(archive)
    return BuildResult(zips, per_platform, package, validated_by)


def effective_manifest(manifest: dict) -> dict:
    """The manifest as Blender reads it: `[build.generated]` (written by --split-platforms) overrides
    `platforms` and `wheels`."""
    manifest = dict(manifest)
    generated = manifest.get("build", {}).get("generated", {})
    for key in ("platforms", "wheels"):
        if key in generated:
            manifest[key] = generated[key]
    return manifest


def zip_manifest(archive: Path) -> tuple[dict, set[str]]:
    """(effective manifest, file names) of an extension zip."""
    with zipfile.ZipFile(archive) as handle:
        names = set(handle.namelist())
        if MANIFEST not in names:
            raise BuildError(f"{archive.name}: no {MANIFEST} at the top of the zip")
        return effective_manifest(tomllib.loads(handle.read(MANIFEST).decode("utf-8"))), names


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


def check_zip(archive: Path) -> None:
    """The zip holds a valid manifest for one platform, the add-on's __init__.py and exactly the wheels
    for that platform that the manifest lists (numpy never), and Blender's installer would install a
    complete runtime under each Python that the admitted Blender versions embed."""
    manifest, names = zip_manifest(archive)
    problems = manifest_problems({k: v for k, v in manifest.items() if k != "build"})
    if "__init__.py" not in names:
        problems.append("__init__.py missing at the top of the zip")
    platforms = manifest.get("platforms", [])
    listed = {w[2:] for w in manifest.get("wheels", [])}
    problems += [f"listed wheel {w} is not in the zip" for w in sorted(listed - names)]
    problems += [f"wheel {n} is in the zip but not listed" for n in sorted(names) if n.startswith("wheels/") and n not in listed]
    if len(platforms) == 1:
        problems += [f"wheel {w} is not for {platforms[0]}" for w in sorted(listed) if not wheel_fits(Path(w).name, platforms[0])]
        problems += installed_runtime_problems(sorted(listed), platforms[0])
    problems += [f"{w} must not be bundled (Blender ships it)" for w in sorted(listed) if wheel_name(Path(w)) in PROVIDED_BY_BLENDER]
    if problems:
        raise BuildError(f"{archive.name}: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the RegGAN Expressions Blender extension zips.")
    parser.add_argument("--platform", action="append", choices=(*PLATFORMS, "current"),
                        help="platform to build (repeatable; default: all of them)")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "blender", help="where the zips go")
    parser.add_argument("--cache", type=Path, default=REPO / "build" / "blender", help="wheel cache and staging folder")
    parser.add_argument("--offline", action="store_true", help="use only the wheel cache; never contact PyPI")
    parser.add_argument("--allow-missing-model", action="store_true",
                        help="build even though reggan_plugin/models/default.onnx is not there yet (test builds)")
    parser.add_argument("--gpu", action="store_true",
                        help=f"the onnxruntime-gpu variant (CUDA/TensorRT backends; {', '.join(GPU_PLATFORMS)})")
    parser.add_argument("--with", dest="extra", action="append", default=[], metavar="REQUIREMENT",
                        help="bundle this requirement too (repeatable), beyond pyproject's dependencies")
    args = parser.parse_args(argv)
    try:
        default = GPU_PLATFORMS if args.gpu else PLATFORMS
        platforms = [current_platform() if p == "current" else p for p in (args.platform or default)]
        result = build(list(dict.fromkeys(platforms)), args.out, cache=args.cache, offline=args.offline,
                       require_model=not args.allow_missing_model, extra=tuple(args.extra), gpu=args.gpu)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for archive in result.zips:
        print(f"{archive}  ({archive.stat().st_size / 1e6:.1f} MB)")
    print(f"manifest validated by {result.validated_by}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
