"""The dataset job runner: plan identities, write the manifest, render missing images with W processes.

Layout of ``out``::

    manifest.json                       every random parameter, settings, versions, seed
    id00000/neutral.png                 RGBA 8-bit: RGB = face over background, A = face coverage
    id00000/neutral.landmarks.json      68 landmarks in pixels (x, y), pixel centres at integers
    id00000/happy.png ...               same camera for every image of one identity (pixel-aligned pairs)

Resumable: an image whose PNG and landmarks file both exist is skipped. Files are written to a
temporary name and renamed, so an interrupted run leaves no half-written image.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reggan_plugin.artifact import file_sha256
from reggan_plugin.atomic import atomic_path, write_text
from reggan_plugin.errors import UsageError

from .background import composite, make_background
from .camera import CM_TO_M, frame_face, project
from .face_model import FaceModel, load_face_model
from .recipes import RECIPES_PATH, RecipeTable, image_stem, load_recipes
from .variation import IdentityParams, sample_identity

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RenderConfig:
    """One dataset run. ``expressions`` always contains 'neutral' first."""

    out: Path
    face_model: Path
    identities: int
    expressions: tuple[str, ...]
    intensities: tuple[float, ...] = (1.0,)
    size: int = 256
    seed: int = 0
    samples: int = 8
    denoise: bool = True
    workers: int = 2
    start: int = 0
    look: str = "studio"  # training.synth.looks.LOOKS
    lips: str = "fixed"  # training.synth.variation.LIPS
    recipes: Path = RECIPES_PATH  # expressions as action units (training/synth/recipes.json's layout)
    yaw: tuple[float, float] | None = None  # heads turned this many degrees to either side; None: near frontal
    pitch: float = 8.0  # with yaw: the pitch's bound, degrees either way


@dataclass(frozen=True)
class Job:
    stem: str
    expression: str
    intensity: float
    blendshapes: dict[str, float]


@dataclass(frozen=True)
class RenderSummary:
    rendered: int
    skipped: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0


def identity_jobs(params: IdentityParams, config: RenderConfig, recipes: RecipeTable) -> list[Job]:
    jobs: list[Job] = []
    for expr in config.expressions:
        for inten in ((1.0,) if expr == "neutral" else config.intensities):
            weights = {**params.gaze, **recipes.blendshapes(expr, inten, params.au_scale)}
            jobs.append(Job(image_stem(expr, inten), expr, inten, dict(sorted(weights.items()))))
    return jobs


def _done(folder: Path, stem: str) -> bool:
    return (folder / f"{stem}.png").is_file() and (folder / f"{stem}.landmarks.json").is_file()


def _write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "unknown"

    # bpy's version from its metadata: importing bpy here would force 'spawn' workers
    return {"reggan_plugin": version("reggan-plugin"), "bpy": version("bpy"), "numpy": np.__version__,
            "python": platform.python_version(), "format": str(FORMAT_VERSION)}


def build_manifest(config: RenderConfig, model: FaceModel, recipes: RecipeTable,
                   plans: list[IdentityParams]) -> dict:
    settings = {
        "seed": config.seed, "size": config.size, "samples": config.samples, "denoise": config.denoise,
        "look": config.look, "lips": config.lips, **({} if config.yaw is None else
                                                          {"yaw": list(config.yaw), "pitch": config.pitch}),
        "face_model": str(config.face_model), "face_model_sha256": file_sha256(config.face_model),
        "intensities": list(config.intensities),
    }
    identities = {}
    for p in plans:
        d = p.to_dict()
        d["images"] = {j.stem: {"expression": j.expression, "intensity": j.intensity, "blendshapes": j.blendshapes}
                       for j in identity_jobs(p, config, recipes)}
        identities[p.name] = d
    return {
        "format": FORMAT_VERSION,
        "settings": settings,
        "expressions": list(config.expressions),
        "recipes": {e: dict(recipes.aus(e)) for e in config.expressions},
        "au_to_blendshapes": {k: dict(v) for k, v in recipes.au_to_blendshapes.items()},
        "image_layout": "<identity>/<stem>.png RGBA (RGB: face over background, A: face coverage); "
                        "<identity>/<stem>.landmarks.json 68 points (x, y) px, pixel centres at integers",
        "identities": identities,
    }


def _recipe_differs(old: dict, new: dict, expression: str) -> bool:
    """Whether two manifests' recipes of ``expression`` differ: its AU strengths, or the blendshape gains of those
    AUs where both manifests keep them."""
    aus = old["recipes"][expression]
    if aus != new["recipes"][expression]:
        return True
    gains_old, gains_new = old.get("au_to_blendshapes") or {}, new.get("au_to_blendshapes") or {}
    return bool(gains_old and gains_new) and any(gains_old.get(au) != gains_new.get(au) for au in aus)


def merge_manifest(path: Path, new: dict) -> dict:
    """Add identities/expressions to an existing manifest; other settings must match."""
    if not path.is_file():
        return new
    old = json.loads(path.read_text())
    keys = ("seed", "size", "samples", "denoise", "look", "lips", "face_model_sha256")
    old_settings = {"look": "studio", "lips": "fixed", **old.get("settings", {})}  # folders from before those settings
    diff = [k for k in keys if old_settings.get(k) != new["settings"].get(k)]
    if diff:
        raise UsageError(f"{path}: this folder was rendered with other settings ({', '.join(diff)}); use another --out")
    changed = [e for e in new["recipes"] if e in old["recipes"] and _recipe_differs(old, new, e)]
    if changed:  # its images would mix two expressions under one name
        raise UsageError(f"{path}: this folder's {', '.join(changed)} was rendered with another recipe; use another --out")
    for name, ident in new["identities"].items():
        if name in old["identities"]:
            old["identities"][name]["images"].update(ident["images"])
        else:
            old["identities"][name] = ident
    old["expressions"] = list(dict.fromkeys(old["expressions"] + new["expressions"]))
    old["recipes"].update(new["recipes"])
    old["settings"]["intensities"] = sorted(set(old["settings"]["intensities"]) | set(new["settings"]["intensities"]))
    old["versions"] = new["versions"]
    return old


# ---- worker side -------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _drop_inherited_bpy_paths() -> None:
    """A spawned child inherits the parent's sys.path, which bpy extends with its own scripts/modules
    folder; there ``import bpy`` would find the inner package instead of the module and fail (_bpy)."""
    import re
    import sys

    if "bpy" not in sys.modules:
        inner = re.compile(r"[/\\]bpy[/\\]\d+\.\d+[/\\]scripts([/\\]|$)")
        sys.path[:] = [p for p in sys.path if not inner.search(p)]


def _init_worker(config: RenderConfig, progress: Any, threads: int) -> None:
    from .scene import FaceScene

    _drop_inherited_bpy_paths()

    model = load_face_model(config.face_model)
    _STATE.update(config=config, model=model, recipes=load_recipes(config.recipes), progress=progress,
                  scene=FaceScene(model, config.size, config.samples, config.denoise, threads, config.look))


def render_identity(index: int) -> int:
    """Render the missing images of one identity in this process; returns how many were rendered."""
    config: RenderConfig = _STATE["config"]
    model: FaceModel = _STATE["model"]
    recipes: RecipeTable = _STATE["recipes"]
    params = sample_identity(config.seed, index, model.n_identities, recipes, config.lips, config.yaw,
                             config.pitch)
    folder = config.out / params.name
    jobs = [j for j in identity_jobs(params, config, recipes) if not _done(folder, j.stem)]
    if not jobs:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    identity_w = np.asarray(params.identity_weights, np.float32)
    neutral = model.vertices(identity_w)
    pose = frame_face(neutral[model.landmarks68] * CM_TO_M, params.camera)
    scene = _STATE["scene"]
    scene.set_identity(params, neutral, pose)
    background = make_background(params.background, config.size, params.render_seed)
    for job in jobs:
        verts = model.vertices(identity_w, model.expression_vector(job.blendshapes))
        scene.set_vertices(verts)
        rgba = scene.render_rgba(folder / f".{job.stem}.{os.getpid()}.render.png")
        with atomic_path(folder / f"{job.stem}.png") as tmp:
            Image.fromarray(composite(rgba, background), "RGBA").save(tmp, format="PNG", compress_level=6)
        points = project(verts[model.landmarks68] * CM_TO_M, pose, config.size)
        _write_json(folder / f"{job.stem}.landmarks.json", {
            "identity": params.name, "expression": job.expression, "intensity": job.intensity,
            "size": config.size, "convention": "x, y in pixels; pixel centres at integer coordinates",
            "points": [[round(float(x), 3), round(float(y), 3)] for x, y in points],
        })
        if _STATE.get("progress") is not None:
            _STATE["progress"].put(1)
    return len(jobs)


# ---- main side ---------------------------------------------------------------------------------
def render_dataset(config: RenderConfig, progress: bool = True,
                   log: Callable[[str], None] | None = None) -> RenderSummary:
    """Plan, write the manifest and render every missing image of ``config``."""
    if config.identities < 1 or config.size < 8 or config.samples < 1 or config.workers < 1:
        raise UsageError("need --identities >= 1, --size >= 8, --samples >= 1 and --workers >= 1")
    recipes = load_recipes(config.recipes)
    model = load_face_model(config.face_model)
    for e in config.expressions:
        recipes.aus(e)
    indices = list(range(config.start, config.start + config.identities))
    plans = [sample_identity(config.seed, i, model.n_identities, recipes, config.lips, config.yaw, config.pitch)
             for i in indices]
    config.out.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(config, model, recipes, plans)
    manifest["versions"] = _versions()
    _write_json(config.out / MANIFEST, merge_manifest(config.out / MANIFEST, manifest))

    todo = {p.index: sum(not _done(config.out / p.name, j.stem) for j in identity_jobs(p, config, recipes))
            for p in plans}
    total = sum(todo.values())
    skipped = sum(len(identity_jobs(p, config, recipes)) for p in plans) - total
    pending = [i for i in indices if todo[i] > 0]
    if log:
        log(f"{total} images to render, {skipped} already there, {config.workers} worker(s)")
    t0 = time.perf_counter()
    rendered = _run_jobs(config, pending, total, progress)
    return RenderSummary(rendered=rendered, skipped=skipped, seconds=time.perf_counter() - t0)


def _pool_context() -> mp.context.BaseContext:
    """fork where bpy is not loaded in this process (no re-import of an unguarded __main__), else spawn."""
    import sys

    if "bpy" not in sys.modules and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _run_jobs(config: RenderConfig, pending: list[int], total: int, progress: bool) -> int:
    from concurrent.futures import ProcessPoolExecutor, wait

    from tqdm import tqdm

    if not pending:
        return 0
    workers = min(config.workers, len(pending))
    cores = os.cpu_count() or 1
    threads = max(1, cores // workers) if workers > 1 else 0
    bar = tqdm(total=total, unit="img", disable=None if progress else True, desc="render")  # None: a terminal only
    if workers == 1:
        _init_worker(config, None, threads)
        done = 0
        for index in pending:
            n = render_identity(index)
            done += n
            bar.update(n)
        bar.close()
        return done
    ctx = _pool_context()
    q = ctx.Queue()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(config, q, threads)) as pool:
        futures = [pool.submit(render_identity, i) for i in pending]
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, timeout=0.5)
            for f in finished:
                f.result()  # re-raise a worker's error (BrokenProcessPool if one died)
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
                bar.update(1)
        counts = [f.result() for f in futures]
    bar.update(max(0, sum(counts) - bar.n))
    bar.close()
    return sum(counts)
