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
import importlib.metadata
import importlib.util
import re
import shutil
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADDON_DIR = Path(__file__).resolve().parent
REPO = ADDON_DIR.parent
MANIFEST = "blender_manifest.toml"


def _load_module(name: str, path: Path) -> Any:
    """A module loaded from its file (build.py also runs as a plain script, outside any package)."""
    spec = importlib.util.spec_from_file_location(f"reggan_addon_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_wheels = _load_module("build_wheels", ADDON_DIR / "build_wheels.py")
# one build at a time per cache: a second waits rather than replace the package and staged files under the first
exclusive_lock = _load_module("file_lock", REPO / "reggan_plugin" / "file_lock.py").exclusive_lock
BuildError, run, PLATFORM_TAGS, PLATFORMS, PYTHONS = (
    _wheels.BuildError, _wheels.run, _wheels.PLATFORM_TAGS, _wheels.PLATFORMS, _wheels.PYTHONS)
GPU_PLATFORMS, PROVIDED_BY_BLENDER = _wheels.GPU_PLATFORMS, _wheels.PROVIDED_BY_BLENDER
runtime_requirements, requirement_name, uncovered_imports = (
    _wheels.runtime_requirements, _wheels.requirement_name, _wheels.uncovered_imports)
wheel_name, wheel_fits, installs = _wheels.wheel_name, _wheels.wheel_fits, _wheels.installs
shared_pins, download_wheels, installed_runtime_problems = (
    _wheels.shared_pins, _wheels.download_wheels, _wheels.installed_runtime_problems)
read_manifest = _wheels.read_manifest

REQUIRED_KEYS = {
    "schema_version": str, "id": str, "version": str, "name": str, "tagline": str,
    "maintainer": str, "type": str, "blender_version_min": str, "license": list,
}
OPTIONAL_KEYS = {
    "website": str, "tags": list, "blender_version_max": str, "copyright": list, "platforms": list,
    "wheels": list, "permissions": dict, "build": dict,
}
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}


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


def stage(stage_dir: Path, wheels: list[Path], platforms: list[str]) -> Path:
    """The extension's source folder: add-on files, wheels/, and the manifest listing them."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(ADDON_DIR, stage_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build.py", "build_*.py", "*.zip"))
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
    with exclusive_lock(cache / ".lock"):
        return _build(platforms, out_dir, cache=cache, offline=offline, require_model=require_model, extra=extra,
                      gpu=gpu)


def _build(platforms: list[str], out_dir: Path, *, cache: Path, offline: bool, require_model: bool,
           extra: tuple[str, ...], gpu: bool) -> BuildResult:
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
