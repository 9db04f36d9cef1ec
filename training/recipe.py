"""One recipe, one command: a TOML file (``recipes/``) naming the renders a model is trained on, the training phases
that make it and the gains it ships with, run in order by ``reggan-plugin recipe FILE``.

A recipe's ``kind`` says what it makes: ``expression`` (the default; an expression model, by its ``[[phase]]``
runs), ``coverage`` (the head-coverage model, `training.coverage`, settings in ``[coverage]``), ``interior`` (the
mouth interiors, `training.interior`) or ``photo_reader`` (`training.photo_reader`, settings in ``[photo_reader]``).
Every kind renders its ``[[data]]`` first. An expression recipe's ``photos`` (folders of paired photographs, a
``neutral/`` and an expression folder each, under the shared data folder) train every phase beside the renders: the
half of their people that chooses the photo gains (``in_choosing_half``); the other half stays for checking them.

Every step is skipped when its output is complete (a render folder resumes, a phase with a summary is done, a
stopped phase goes on from its last checkpoint), so a stopped build is resumed by running the command again. The
model written last carries the recipe (its name, its file's sha256 and text) in its provenance, so a shipped model
names what rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import click

from reggan_plugin.errors import UsageError
from reggan_plugin.expressions import key_name
from reggan_plugin.geometry.resample import WARP_MODES, WarpMode

from .config import MIXES
from .shared_data import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
RECIPE_KEY = "reggan.recipe"
"""Model metadata: the recipe that built it ({"name", "sha256", "text"})."""
KINDS = ("expression", "coverage", "interior", "photo_reader")
PROVENANCE_KEY = "reggan.provenance"


@dataclass(frozen=True)
class DataSpec:
    """One render folder (`training.synth.render.RenderConfig`'s settings): ``name`` is its folder under the data
    root."""

    name: str
    identities: int
    size: int = 128
    seed: int = 0
    start: int = 0
    samples: int = 8
    expressions: tuple[str, ...] = ()  # empty: the recipes table's basic expressions; ["all"]: every one it has
    recipes: str = ""  # the expression table (training/synth/recipes.json's layout), relative to the repository; empty:
    # that one
    yaw: tuple[float, float] | None = None
    pitch: float = 8.0
    look: str = "studio"  # training.synth.looks.LOOKS
    lips: str = "fixed"  # training.synth.variation.LIPS
    intensities: tuple[float, ...] = (1.0,)  # the weights each expression is rendered at; below 1, the model gets a
    # key of the expression there (`reggan_plugin.expressions.key_name`), fitted on those renders

    @property
    def table(self) -> Path:
        """The expression table this folder is rendered from."""
        from .synth.recipes import RECIPES_PATH

        return REPO / self.recipes if self.recipes else RECIPES_PATH

    def expression_names(self) -> tuple[str, ...]:
        """The expressions this folder renders, from its table."""
        from .synth.recipes import load_recipes, parse_expressions

        return parse_expressions(self.expressions or None, load_recipes(self.table))

    def key_names(self) -> list[str]:
        """The model expressions this folder's renders below weight 1 are the targets of."""
        return [key_name(name, at) for at in self.intensities if at < 1.0 for name in self.expression_names()
                if name != "neutral"]


@dataclass(frozen=True)
class Phase:
    """One `train` run: a new run, a run continued from an earlier phase's last checkpoint (``resume``), or a new run
    whose refiner starts as an earlier phase's (``init_refiner``)."""

    name: str
    iterations: int
    stop_at: int = 0
    resume: str | None = None
    init_refiner: str | None = None
    refit_stage1: bool = False
    augment: bool = True
    settings: tuple[str, ...] = ()  # TrainConfig overrides, as `train --set`
    stage1_by_expression: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return min(self.stop_at, self.iterations) if self.stop_at else self.iterations


@dataclass(frozen=True)
class Recipe:
    name: str
    preset: str
    image_size: int | None
    warp: WarpMode | None  # the model's `ModelConfig.warp`; None: the preset's
    mix: str | None  # the model's `ModelConfig.mix`; None: the preset's
    batch_size: int
    checkpoint_every: int
    data: tuple[DataSpec, ...]
    phases: tuple[Phase, ...]
    gains: dict[str, dict[str, dict[str, Any]]]  # subject -> expression -> {motion, paint, upper}
    text: str
    photos: tuple[str, ...] = ()  # paired photo folders under the shared data folder (their first half trains)
    kind: str = "expression"
    options: dict[str, Any] = field(default_factory=dict)  # the kind's own table ([coverage])
    photo_motion: dict[str, Any] = field(default_factory=dict)  # [photo_motion]: `training.photo_motion.SETTINGS`

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def stamp(self) -> dict[str, str]:
        """What a model it built carries (`RECIPE_KEY`): the recipe's name, sha256 and text."""
        return {"name": self.name, "sha256": self.sha256, "text": self.text}


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items() if k != "stage1_by_expression"}
    if "stage1_by_expression" in table:
        values["stage1_by_expression"] = {k: tuple(v) for k, v in dict(table["stage1_by_expression"]).items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise UsageError(f"{where}: {exc}") from None


def load_recipe(path: Path) -> Recipe:
    """The recipe in ``path``; a malformed one is a `UsageError` naming the file and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except OSError as exc:
        raise UsageError(f"recipe {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"recipe {path}: not valid TOML ({exc})") from None
    kind = str(doc.get("kind", "expression"))
    if kind not in KINDS:
        raise UsageError(f"recipe {path}: kind {kind!r}: one of {', '.join(KINDS)}")
    for key in ("name", "data") + (("phase",) if kind == "expression" else ()):
        if key not in doc:
            raise UsageError(f"recipe {path}: no `{key}`")
    known = {"name", "about", "kind", "data"} | ({"preset", "image_size", "warp", "mix", "batch_size",
                                                  "checkpoint_every", "phase", "gains", "photos", "photo_motion"}
                                                 if kind == "expression"
                                                 else {kind})
    unknown = sorted(set(doc) - known)
    if unknown:
        raise UsageError(f"recipe {path}: unknown key(s) {', '.join(unknown)} for a recipe of kind {kind}")
    options = dict(doc.get(kind, {})) if kind != "expression" else {}
    if options:
        known_options = _kind_settings(kind)
        unknown = sorted(set(options) - set(known_options))
        if unknown:
            raise UsageError(f"recipe {path}: unknown [{kind}] key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(known_options)}")
    if doc.get("photo_motion"):
        from .photo_motion import settings_of

        try:
            settings_of(dict(doc["photo_motion"]))
        except UsageError as exc:
            raise UsageError(f"recipe {path}: {exc}") from None
    if doc.get("warp", "bilinear") not in WARP_MODES:
        raise UsageError(f"recipe {path}: warp {doc['warp']!r}: 'bilinear' or 'bicubic'")
    if doc.get("mix", MIXES[0]) not in MIXES:
        raise UsageError(f"recipe {path}: mix {doc['mix']!r}: one of {', '.join(MIXES)}")
    data = tuple(_build(DataSpec, t, f"recipe {path}, data {i + 1}") for i, t in enumerate(doc["data"]))
    phases = tuple(_build(Phase, t, f"recipe {path}, phase {i + 1}") for i, t in enumerate(doc.get("phase", [])))
    names = [p.name for p in phases]
    for i, p in enumerate(phases):
        for ref in (p.resume, p.init_refiner):
            if ref is not None and ref not in names[:i]:
                raise UsageError(f"recipe {path}: phase {p.name!r} refers to {ref!r}, not an earlier phase")
    if len(set(names)) != len(names):
        raise UsageError(f"recipe {path}: two phases share a name")
    return Recipe(name=str(doc["name"]), preset=str(doc.get("preset", "default")), image_size=doc.get("image_size"),
                  warp=doc.get("warp"), mix=doc.get("mix"),
                  batch_size=int(doc.get("batch_size", 8)), checkpoint_every=int(doc.get("checkpoint_every", 500)),
                  data=data, phases=phases, gains=dict(doc.get("gains", {})), text=text, kind=kind, options=options,
                  photos=tuple(str(name) for name in doc.get("photos", ())),
                  photo_motion=dict(doc.get("photo_motion", {})))


def _kind_settings(kind: str) -> dict[str, Any]:
    """The keys a recipe of ``kind`` may set in its own table, with their defaults."""
    if kind == "coverage":
        from . import coverage as module
    elif kind == "photo_reader":
        from . import photo_reader as module  # type: ignore[no-redef]
    else:
        return {}
    return dict(module.SETTINGS)


def _render(spec: DataSpec, folder: Path, face_model: Path | None, log: Callable[[str], None]) -> None:
    from .synth.render import RenderConfig, render_dataset

    names = spec.expression_names()
    if face_model is None:
        missing = _missing_renders(spec, folder, names)
        if missing:
            raise UsageError(f"data {spec.name}: {missing}; rendering it needs the face model (--face-model or "
                             "$REGGAN_ICT_MODEL)")
        log(f"data {spec.name}: every render there")
        return
    config = RenderConfig(out=folder, face_model=face_model, identities=spec.identities, start=spec.start,
                          expressions=names, size=spec.size, seed=spec.seed, samples=spec.samples,
                          yaw=spec.yaw, pitch=spec.pitch, look=spec.look, lips=spec.lips, recipes=spec.table,
                          intensities=spec.intensities)
    summary = render_dataset(config, progress=False, log=log)
    log(f"data {spec.name}: {summary.rendered} rendered, {summary.skipped} there")


def _missing_renders(spec: DataSpec, folder: Path, expressions: Sequence[str]) -> str:
    """What keeps ``folder`` from being ``spec``'s finished renders, read from its manifest ("" when nothing)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        settings, identities = manifest["settings"], manifest["identities"]
    except (OSError, ValueError, KeyError):
        return f"{folder} has no readable manifest"
    wanted: dict[str, Any] = {"seed": spec.seed, "size": spec.size, "samples": spec.samples, "look": spec.look,
                              "lips": spec.lips, "yaw": None}
    if spec.yaw is not None:  # a frontal set's manifest has no yaw and no pitch
        wanted.update(yaw=list(spec.yaw), pitch=spec.pitch)
    for key, value in wanted.items():
        if settings.get(key) != value:
            return f"{folder} was rendered with {key} {settings.get(key)!r}, the recipe says {value!r}"
    by_index = {entry["index"]: entry for entry in identities.values()}
    changes = [name for name in expressions if name != "neutral"]  # each at every intensity; neutral once
    count = len(changes) * len(spec.intensities) + len(expressions) - len(changes)
    for index in range(spec.start, spec.start + spec.identities):
        entry = by_index.get(index, {"name": "", "images": {}})
        stems = [stem for stem, image in entry["images"].items() if image["expression"] in expressions
                 and (image["expression"] == "neutral" or image.get("intensity", 1.0) in spec.intensities)]
        files = [folder / entry["name"] / f"{stem}{suffix}" for stem in stems for suffix in (".png", ".landmarks.json")]
        if len(stems) < count or not all(path.is_file() for path in files):
            return f"identity {index} is not fully rendered in {folder}"
    return ""


def copy_choosing_half(source: Path, target: Path) -> Path:
    """``target``: the paired photos of ``source`` (``neutral/`` and an expression folder each) whose people are in
    the half that chooses (``in_choosing_half``), copied (the training loader reads a folder whole); the other half
    is left for checks. A `UsageError` names a folder without photographs."""
    from .data.split import in_choosing_half

    neutrals = sorted((source / "neutral").glob("*.*")) if (source / "neutral").is_dir() else []
    if not neutrals:
        raise UsageError(f"photos {source}: no neutral/ folder of photographs (set REGGAN_SHARED_DATA)")
    people = {p.name.split(".")[0] for p in neutrals if in_choosing_half(f"{source.name}/{p.name.split('.')[0]}")}
    shutil.rmtree(target, ignore_errors=True)
    for folder in sorted(d for d in source.iterdir() if d.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.name.split(".")[0] in people:
                (target / folder.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / folder.name / path.name)
    return target


def _carry_checkpoint(source: Path, target: Path) -> None:
    """``source``'s last checkpoint as ``target``'s start (a phase continuing another)."""
    latest = json.loads((source / "latest.json").read_text())
    (target / "checkpoints").mkdir(parents=True, exist_ok=True)
    for path in (source / "checkpoints").glob(f"{latest['stem']}-*"):
        shutil.copy2(path, target / "checkpoints" / path.name)
    for name in ("latest.json", "train_config.json"):
        shutil.copy2(source / name, target / name)


def _with_recipe(model: Path, recipe: Recipe, out: Path, flows: dict[str, Any] | None = None) -> None:
    """The model with the recipe's gains (and ``flows``, fitted flows for photographs by expression:
    `training.photo_motion`), its provenance naming the recipe, and the recipe itself in its metadata, written to
    ``out`` in one write."""
    from export.metadata import with_entries
    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.edit.calibration import METADATA_KEY, dump_gains, parse_gains

    entries: dict[str, str | None] = {}
    table = {subject: {name: dict(g) for name, g in by_expression.items()} for subject, by_expression in
             recipe.gains.items()}
    for name, grid in (flows or {}).items():
        table.setdefault("photo", {}).setdefault(name, {})["flow"] = grid
    if table:
        # read as the runtime reads them (its bounds checked) before anything is written
        entries[METADATA_KEY] = dump_gains(parse_gains(model, json.dumps(table)))
    provenance = dict(load_artifact(model).provenance)
    provenance["training"] = f"reggan-plugin recipe {recipe.name}.toml"
    provenance["recipe"] = {"name": recipe.name, "sha256": recipe.sha256,
                            "phases": [{"name": p.name, "iterations": p.end} for p in recipe.phases]}
    provenance["data"] = [{k: v for k, v in entry.items() if k != "root"} for entry in provenance.get("data", [])]
    entries[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True)
    entries[RECIPE_KEY] = json.dumps(recipe.stamp, sort_keys=True)
    with_entries(model, entries, out)


def phase_config(recipe: Recipe, phase: Phase) -> Any:
    """The phase's `TrainConfig`; bad settings are a `UsageError` naming the phase."""
    from .train_config import TrainConfig

    try:
        cfg = TrainConfig(iterations=phase.iterations, stop_at=phase.stop_at, batch_size=recipe.batch_size,
                          checkpoint_every=recipe.checkpoint_every, stage1_by_expression=phase.stage1_by_expression)
        if not phase.augment:
            cfg = replace(cfg, augment=replace(cfg.augment, enabled=False))
        return cfg.with_overrides(list(phase.settings))
    except ValueError as exc:
        raise UsageError(f"recipe {recipe.name}, phase {phase.name}: {exc}") from None


def build(recipe: Recipe, data_root: Path, runs: Path, out: Path, face_model: Path | None, device: str = "cpu",
          log: Callable[[str], None] = print) -> Path:
    """Render the recipe's data under ``data_root`` (``face_model`` is needed only for renders still missing), make
    what its kind makes (an expression model's phases run under ``runs``, the data's crops cut once in
    ``runs``/cache), write it to ``out``."""
    for spec in recipe.data:
        _render(spec, data_root / spec.name, face_model, log)
    data_dirs = [data_root / spec.name for spec in recipe.data]
    photo_dirs = [copy_choosing_half(shared_data_dir() / name, runs / "photos" / name) for name in recipe.photos]
    data_dirs += photo_dirs
    out.parent.mkdir(parents=True, exist_ok=True)
    if recipe.kind == "coverage":
        from .coverage import build_model

        build_model(data_dirs, out, recipe.options, recipe.stamp, device, log=log)
    elif recipe.kind == "interior":
        from .interior import build_strips

        build_strips(data_dirs, out, recipe.stamp, log=log)
    elif recipe.kind == "photo_reader":
        from .photo_reader import build_reader

        build_reader(data_dirs, out, recipe.options, recipe.stamp, log=log)
    else:
        _train_phases(recipe, data_dirs, runs, device, log)
        model = runs / recipe.phases[-1].name / "model.onnx"
        flows = None
        if recipe.photo_motion:
            from .photo_motion import photo_flows

            flows = photo_flows(model, photo_dirs, recipe.photo_motion, runs, log)
        _with_recipe(model, recipe, out, flows)
    log(f"wrote {out}")
    return out


def model_config(recipe: Recipe) -> Any:
    """The `ModelConfig` a recipe trains: its preset's, with the recipe's size, warp and mix, and after the preset's
    expressions the keys its data renders (`DataSpec.key_names`)."""
    from .cli import PRESETS

    config = PRESETS[recipe.preset]
    if recipe.image_size:
        config = replace(config, image_size=recipe.image_size)
    if recipe.warp:
        config = replace(config, warp=recipe.warp)
    if recipe.mix:
        config = replace(config, mix=recipe.mix)
    keys = [key for spec in recipe.data for key in spec.key_names()]
    return replace(config, expressions=(*config.expressions, *dict.fromkeys(keys))) if keys else config


def _train_phases(recipe: Recipe, data_dirs: list[Path], runs: Path, device: str, log: Callable[[str], None]) -> None:
    from .cli import run_training

    for phase in recipe.phases:
        run = runs / phase.name
        if (run / "summary.json").is_file():
            log(f"phase {phase.name}: done")
            continue
        # a checkpoint in the phase's own folder: a stopped phase goes on from it (for a continued phase, the one
        # carried over from the phase before, if it stopped before its own first)
        stopped = (run / "latest.json").is_file()
        if phase.resume is not None and not stopped:
            _carry_checkpoint(runs / phase.resume, run)
        cfg = phase_config(recipe, phase)
        log(f"phase {phase.name}: {phase.iterations} iterations" + (f", stopping at {phase.stop_at}" if phase.stop_at
                                                                     else ""))
        run_training(data_dirs, run, model_config(recipe), cfg, device, resume=phase.resume is not None or stopped,
                     cache_dir=runs / "cache", progress=False, refit_stage1=phase.refit_stage1,
                     init_refiner=None if phase.init_refiner is None or stopped else runs / phase.init_refiner,
                     report=_reporter(log, f"phase {phase.name}: "))


def _reporter(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    """``log`` with each line after ``prefix``."""
    return lambda line: log(prefix + line)


@click.command("recipe")
@click.argument("recipe_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="Where the renders go (a folder per data entry; existing ones are resumed).")
@click.option("--runs", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="Where the phases' runs go (one folder each, named <recipe>/<phase>).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The model file. [default: RUNS/<recipe>/model.onnx]")
@click.option("--face-model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Packed ICT model (.npz), for renders still missing; default: $REGGAN_ICT_MODEL.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def recipe_command(recipe_file: Path, data_root: Path, runs: Path, out: Path | None, face_model: Path | None,
                   device: str) -> None:
    """Rebuild a model from a recipe file: render its data, run its training phases, write the model."""
    from reggan_plugin.cli_exits import run_or_exit

    from .synth.face_model import ENV_VAR, resolve_model_path

    def go() -> None:
        recipe = load_recipe(recipe_file)
        target = out or runs / recipe.name / "model.onnx"
        model = resolve_model_path(face_model) if face_model or os.environ.get(ENV_VAR) else None
        build(recipe, data_root, runs / recipe.name, target, model, device, log=lambda line: click.echo(line, err=True))

    run_or_exit(go)
