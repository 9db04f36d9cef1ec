"""RegGAN training: stage 1 in closed form, then stage 2 adversarially (StarGAN's solver, in phases).

Phase 0 (once, rank 0): fit every expression's mean flow and region (`fit_motions`), choose stage 1's
receptive field r and ridge lambda on the moved validation pairs (`losses.select_ridge`, table written to
RUN/stage1_selection.md), then fit every expression's regression maps on all moved training pairs with
`fit_ridge` and install them.

Stage 1 stays FROZEN while stage 2 trains. Why: its closed-form fit is already the ridge optimum of
its own loss; letting adversarial gradients into E x 3 x r^2 x S^2 per-pixel weights (millions of
parameters with no weight sharing) overfits the few hundred identities and lets the regression
drift away from what the evaluation reports as "stage 1 alone"; and a fixed stage 1 gives the
refiner a fixed input distribution. The refiner learns what a local linear map cannot: sharpness,
identity, and motions larger than r.

The first ``warmup_iterations`` iterations train the refiner alone on the reconstruction terms (no D,
no adversarial or classification terms, a G step every iteration). Then every iteration of stage 2:
  1. inputs: a batch of augmented pairs (x neutral, t target, c expression) from this iteration's generator
  2. D step: L_D = -D(t) + D(y) + lambda_cls CE(D_cls(t), c) + lambda_gp GP
  3. G step (every n_critic): L_G = -lambda_adv D(y) + lambda_cls CE(D_cls(y), c) + lambda_l1 multiscale |y - t|
                                   + lambda_l2 (y - t)^2
                                   + lambda_grad |grad y - grad t| + lambda_sparse |m_out (y - x)|
                                   + lambda_ident |G(x, neutral) - x| + lambda_mask mean(mask) + lambda_flow_tv TV(flow)
  4. bookkeeping: CSV log, sample grid, checkpoint (rank 0)
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reggan_plugin.faces import DetectorConfig
from reggan_plugin.faces.turn import symmetric_keys

from .config import TURN_MARK, ModelConfig, base_expression, turn_key_name
from .data.augment import degrade_inputs
from .data.dataset import PairedFaces
from .data.landmarks import LazyDetector
from .data.realign import detector_aligned
from .data.turn_keys import pair_tilt_weights, pair_turn_weights, turn_keyed
from .losses import (
    classification_loss,
    face_oval_mask,
    gradient_penalty,
    image_gradient_l1,
    masked_residual_sparsity,
    multiscale_l1,
    psnr,
    ridge_table_markdown,
    select_ridge,
    total_variation,
)
from .models import Discriminator, RegGAN, apply_flow, ellipse_region, fit_mean_flow, fit_ridge
from .models.exposure import exposure_level, normalised_pair
from .run_state import (
    CsvLog,
    DistInfo,
    iteration_generator,
    load_run_state,
    restore_optimisers,
    save_run_checkpoint,
)
from .train_config import TrainConfig

log = logging.getLogger(__name__)
LOG_COLUMNS = ["iteration", "time_s", "lr_g", "lr_d", "D/loss", "D/real", "D/fake", "D/cls", "D/gp",
               "G/loss", "G/adv", "G/cls", "G/l1", "G/l2", "G/grad", "G/sparse", "G/ident", "G/mask", "G/flow_tv"]
DEFAULT_LAMBDA = 0.4  # LSRF's lambda, used when there is no validation pair to choose one


def _indices_by_expression(data: PairedFaces | None) -> dict[str, Tensor]:
    """Expression (neutral left out) -> the indices of its pairs, where it has any."""
    if data is None:
        return {}
    found = {name: torch.nonzero(data.pair_expression == k).flatten() for k, name in enumerate(data.expressions)}
    return {name: idx for name, idx in found.items() if name != "neutral" and len(idx)}


def _pairs_by_expression(data: PairedFaces | None) -> dict[str, tuple[Tensor, Tensor]]:
    """Expression -> (neutral, target): every pair's central crop."""
    return {name: data.batch(idx)[:2] for name, idx in _indices_by_expression(data).items()} if data else {}


def _weights_by_expression(data: PairedFaces) -> dict[str, Tensor]:
    """Expression -> how much each of its pairs counts in stage 1's fits (`PairedFaces.pair_weight`)."""
    return {name: data.pair_weight[idx.cpu()] for name, idx in _indices_by_expression(data).items()}


def _tilts_by_expression(data: PairedFaces | None, tilt_keys: tuple[float, ...]) -> dict[str, Tensor]:
    """Expression -> each of its pairs' weights over the tilt keys [n, T] (`pair_tilt_weights`); none without keys."""
    if data is None or not tilt_keys:
        return {}
    tilts = pair_tilt_weights(data, tilt_keys)
    return {name: tilts[idx.cpu()] for name, idx in _indices_by_expression(data).items()}


def _points_by_expression(data: PairedFaces) -> dict[str, tuple[Tensor, Tensor]]:
    """Expression -> the 68 landmarks (neutral, target) [n,68,2] of its pairs, grid units (`PairedFaces.points`)."""
    return {name: data.points(idx) for name, idx in _indices_by_expression(data).items()}


def _with_perturbed_copies(data: PairedFaces | None, clean: dict[str, tuple[Tensor, Tensor]],
                           cfg: TrainConfig) -> dict[str, tuple[Tensor, Tensor]]:
    """``clean`` followed, for the ``stage1_augment_expressions``, by ``stage1_augment_copies`` copies of each pair
    moved and recoloured alike (``stage1_augment``'s geometry and colour), then ``stage1_degrade_copies`` copies
    with flaws on the input alone (its ``input_*`` settings, on the canonical crops), then with
    ``stage1_detector_copies`` one copy aligned on BlazeFace's keypoints; seeded by ``cfg.seed``.
    ``clean`` itself when there are none."""
    aug = cfg.stage1_augment
    copies = cfg.stage1_augment_copies if aug.enabled else 0
    degrade = cfg.stage1_degrade_copies if aug.enabled else 0
    if data is None or not copies + degrade + cfg.stage1_detector_copies:
        return clean
    # BlazeFace's keypoints as they are, neither mapped (faces/keypoint_map.py) nor registered (faces/register.py): the
    # copies show the maps how far off a detector can put a face, and the runtime takes most of that back
    detect = LazyDetector(DetectorConfig(keypoint_map=False)) if cfg.stage1_detector_copies else None
    moved = replace(aug, input_noise=0.0, input_jpeg_prob=0.0)
    out = {}
    for name, (x, t) in clean.items():
        if cfg.stage1_augment_expressions and base_expression(name) not in cfg.stage1_augment_expressions:
            out[name] = (x, t)
            continue
        k = data.expressions.index(name)
        idx = torch.nonzero(data.pair_expression == k).flatten()
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + k)
        views = [data.batch(idx, gen, moved)[:2] for _ in range(copies)]
        for _ in range(degrade):  # in [0, 1] and back
            xd, td = degrade_inputs((x + 1) / 2, (t + 1) / 2, aug, gen)
            views.append((xd * 2 - 1, td * 2 - 1))
        if detect is not None:
            views.append(detector_aligned(data, idx, detect))
        out[name] = (torch.cat([x] + [v[0] for v in views]), torch.cat([t] + [v[1] for v in views]))
    return out


def training_exposure(pairs: dict[str, tuple[Tensor, Tensor]]) -> float:
    """The median `exposure_level` of the training neutrals: the brightness a normalising model brings faces to."""
    neutrals = torch.cat([x for x, _ in pairs.values()])
    return round(float(exposure_level(neutrals).median()), 4)


def _scaled(pairs: dict[str, tuple[Tensor, Tensor]], reference: float) -> dict[str, tuple[Tensor, Tensor]]:
    """Every pair as the maps of a model with exposure ``reference`` see it (models/exposure.py); 0: as they are."""
    return {e: normalised_pair(x, t, reference) for e, (x, t) in pairs.items()} if reference else pairs


def _motions_and_moved(train: PairedFaces, clean: dict[str, tuple[Tensor, Tensor]], size: int, cfg: TrainConfig,
                       reference: float, mode: str) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, tuple[Tensor, Tensor]]]:
    """Stage 1's inputs at the exposure ``reference``: the mean motions (fitted on the clean pairs) and every training
    pair, perturbed copies included, moved by them (``mode``: the model's warp)."""
    points = _points_by_expression(train) if cfg.stage1_flow_landmarks > 0 else None
    tilts = _tilts_by_expression(train, cfg.stage1_tilt_keys)
    motions = fit_motions(_scaled(clean, reference), size, cfg, mode, points, _weights_by_expression(train), tilts)
    return motions, _moved(_scaled(_with_perturbed_copies(train, clean, cfg), reference), motions, mode, tilts)


def _evenly(pairs: tuple[Tensor, Tensor], limit: int) -> tuple[Tensor, Tensor]:
    """At most ``limit`` of one expression's pairs, evenly spaced: every data set keeps its share."""
    if not limit or len(pairs[0]) <= limit:
        return pairs
    idx = torch.linspace(0, len(pairs[0]) - 1, limit).round().long().to(pairs[0].device)
    return pairs[0][idx], pairs[1][idx]


def _select(moved_train: dict[str, tuple[Tensor, Tensor]], val: PairedFaces | None, motions: dict,
            radii: tuple[int, ...], cfg: TrainConfig, reference: float, mode: str
            ) -> tuple[int | None, dict[str, float], list, str]:
    """(radius, lambda per expression, table rows, Markdown table) chosen on the moved validation pairs (at the
    model's exposure ``reference``); radius None when there are none."""
    val_sets = _moved(_scaled(_with_perturbed_copies(val, _pairs_by_expression(val), cfg), reference), motions, mode,
                      _tilts_by_expression(val, cfg.stage1_tilt_keys))
    sub = {e: _evenly(v, cfg.ridge_max_pairs) for e, v in moved_train.items() if e in val_sets}
    if not sub:
        return None, {}, [], (f"\n{', '.join(moved_train)}: no validation pairs; the radius chosen before (else the"
                              " config's), the median of the lambdas chosen (`fit_stage1_maps`)\n")
    radius, lambdas, rows = select_ridge(sub, {e: val_sets[e] for e in sub}, radii, cfg.ridge_lambdas,
                                         cfg.ridge_toward_identity, cfg.ridge_shared_colour, cfg.ridge_colour_tie)
    return radius, lambdas, rows, ridge_table_markdown(rows, radius, lambdas)


def _write_selection(run_dir: Path | None, report: dict, table: str) -> None:
    if run_dir is None:
        return
    (run_dir / "stage1_selection.md").write_text(
        f"# Stage 1 ridge selection (validation split)\n\nchosen radius r = {report['radius']}; per expression: "
        + ", ".join(f"{e} lambda={v['lambda']:g} ({v['train_pairs']} train pairs)" for e, v in report["fitted"].items())
        + "\n\nEvery pair is moved by its expression's mean flow first (so `copy L1` is the moved input's).\n\n"
        + table)
    (run_dir / "stage1_selection.json").write_text(json.dumps(report, indent=1))


def fit_stage1(model_config: ModelConfig, cfg: TrainConfig, train: PairedFaces, val: PairedFaces | None,
               run_dir: Path | None) -> tuple[RegGAN, dict]:
    """Phase 0: select (r, lambda) on ``val``, fit every expression on ``train``; returns the model (on the
    CPU) and a report. The normal equations are built in float64 where the data lives (GPU or CPU). With
    ``stage1_turn_keys`` each expression is fitted at each key, on the pairs and their mirror images about it; keys
    symmetric about the camera are fitted facing it and turned one way, the other way's keys their mirror images
    (`LocalRegression.mirror_keys`: the same pairs mirrored would fit them, but for the draws of the flow's batches
    and the perturbed copies, and the landmarks holding the flow, which mirror images lack). One key and one group of
    expressions at a time (`_fit_parts`): the perturbed copies of every key's pairs at once would not fit in memory."""
    reference = (training_exposure(_pairs_by_expression(train)) if cfg.stage1_normalise_exposure
                 else model_config.exposure_reference)
    keys = cfg.stage1_turn_keys
    model_config = replace(model_config, turn_keys=keys, tilt_keys=cfg.stage1_tilt_keys, exposure_reference=reference)

    def make(radius: int | None) -> RegGAN:
        # no validation pairs chose one: the config's radius where it is a candidate, else the first candidate
        if radius is None:
            radius = model_config.radius if model_config.radius in cfg.ridge_radii else cfg.ridge_radii[0]
        torch.manual_seed(cfg.seed)
        model = RegGAN(replace(model_config, radius=radius))
        if cfg.zero_init_output:
            model.refiner.start_as_identity(cfg.mask_init_logit)
        return model

    model, fitted, motions, rows, table = _fit_parts(_stage1_parts(train, val, keys), make, cfg, reference,
                                                     cfg.ridge_radii, {}, model_config.warp)
    if symmetric_keys(keys):
        model.stage1.mirror_keys()
        for name in list(fitted):
            expression, key = base_expression(name), int(name.rpartition(TURN_MARK)[2])
            if keys[key] > 0:
                fitted[turn_key_name(expression, len(keys) - 1 - key)] = {**fitted[name], "mirror_of": name}
    report = {"radius": model.config.radius, "exposure_reference": reference, "fitted": fitted,
              "motion": motion_report(motions, cfg), "table": [asdict(r) for r in rows]}
    _write_selection(run_dir, report, table)
    return model, report


def _fit_parts(parts: Iterable[tuple[PairedFaces, PairedFaces | None]], make: Callable[[int | None], RegGAN],
               cfg: TrainConfig, reference: float, radii: tuple[int, ...], fallback: dict[str, float], warp: str
               ) -> tuple[RegGAN, dict, dict[str, tuple[Tensor, Tensor]], list, str]:
    """Stage 1 fitted group by group (`_fit_groups`) on each part's pairs: the model made (``make``) at the radius the
    first group chooses among ``radii``, each group's motions and maps installed before the next group's pairs are
    made. Where no validation chose lambdas, ``fallback``'s (`fit_stage1_maps` takes their median for the rest).
    -> (model, fitted, motions, table rows, table)."""
    model: RegGAN | None = None
    fitted: dict = {}
    lambdas: dict[str, float] = {}
    motions: dict[str, tuple[Tensor, Tensor]] = {}
    rows: list = []
    table = ""
    for part, part_val in parts:
        clean = _pairs_by_expression(part)
        radii = radii if model is None else (model.stage1.radius,)
        for group_cfg, got, moved, radius, chosen, got_rows, got_table in _fit_groups(part, part_val, clean, part.size,
                                                                                      cfg, reference, radii, warp):
            model = model or make(radius)
            lambdas |= chosen if radius is not None else fallback
            install_motions(model, got)
            fitted |= fit_stage1_maps(model, moved, lambdas, toward_identity=group_cfg.ridge_toward_identity,
                                      shared_colour=group_cfg.ridge_shared_colour,
                                      colour_tie=group_cfg.ridge_colour_tie, weights=_weights_by_expression(part))
            motions |= got
            rows += got_rows
            table += got_table
            del moved
    if model is None:
        raise ValueError("stage 1 has no training pairs to fit")
    return model, fitted, motions, rows, table


def _stage1_parts(train: PairedFaces, val: PairedFaces | None, keys: tuple[float, ...]
                  ) -> Iterator[tuple[PairedFaces, PairedFaces | None]]:
    """What each of stage 1's fits is made on: the pairs themselves, or each turn key's (`turn_keyed`); of keys
    symmetric about the camera, those facing it or turned one way."""
    if not keys:
        yield train, val
        return
    for key in range(len(keys) // 2 if symmetric_keys(keys) else 0, len(keys)):
        yield turn_keyed(train, keys, key), turn_keyed(val, keys, key) if val is not None and len(val) else None


def _fit_groups(train: PairedFaces, val: PairedFaces | None, clean: dict[str, tuple[Tensor, Tensor]], size: int,
                cfg: TrainConfig, reference: float, radii: tuple[int, ...], mode: str
                ) -> Iterator[tuple[TrainConfig, dict, dict, int | None, dict, list, str]]:
    """Each group of expressions (`TrainConfig.stage1_groups`) with its own settings, one after the other: (settings,
    motions, moved pairs, radius, lambdas, table rows, table); the first group's validation chooses the radius among
    ``radii``, the others use it. ``mode``: how the model warps (`ModelConfig.warp`). A group's moved pairs (its
    perturbed copies among them) are let go before the next group's are made."""
    radius: int | None = None
    for group_cfg, names in cfg.stage1_groups(tuple(clean)):
        if not names:
            continue
        motions, moved = _motions_and_moved(train, {e: clean[e] for e in names}, size, group_cfg, reference, mode)
        chosen, lambdas, rows, table = _select(moved, val, motions, radii if radius is None else (radius,), group_cfg,
                                               reference, mode)
        radius = radius if radius is not None else chosen
        yield group_cfg, motions, moved, radius, lambdas, rows, table
        del moved


def fit_motions(pairs: dict[str, tuple[Tensor, Tensor]], size: int, cfg: TrainConfig, mode: str = "bilinear",
                points: dict[str, tuple[Tensor, Tensor]] | None = None, weights: dict[str, Tensor] | None = None,
                tilts: dict[str, Tensor] | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """Per expression, (mean flow [2,S,S] already limited to the region, region [1,S,S]), on the CPU; ``points``:
    each expression's landmarks (`_points_by_expression`), which hold the flow with `stage1_flow_landmarks`;
    ``weights``: how much each pair counts (`_weights_by_expression`; alike where not given); ``tilts``: each pair's
    weights over the tilt keys (`_tilts_by_expression`), where the flow is one per key [T,2,S,S] if the pairs reach
    the end keys (`_reaches_every_tilt`), else one flow for every tilt."""
    motions = {}
    for expr, (x, t) in pairs.items():
        bounded = base_expression(expr) in cfg.stage1_region_expressions
        region = ellipse_region(size, cfg.stage1_region_ellipse) if bounded else torch.ones(1, size, size)
        flow = (fit_mean_flow(x, t, cfg.stage1_flow_grid, cfg.stage1_flow_steps, seed=cfg.seed, mode=mode,
                              points=(points or {}).get(expr), points_weight=cfg.stage1_flow_landmarks,
                              weights=(weights or {}).get(expr), tilts=_reaches_every_tilt((tilts or {}).get(expr))).cpu()
                if cfg.stage1_flow_grid else torch.zeros(2, size, size))
        motions[expr] = (flow * region, region)
    return motions


def _reaches_every_tilt(tilts: Tensor | None) -> Tensor | None:
    """The pairs' weights over the tilt keys [n, T] where some pair lies at or beyond each end key, else None. Flows
    fitted at keys beyond every pair extrapolate from the pairs' spread: a turn key beyond the renders' turns has a few
    pairs, and their flows at the tilt keys reached three times as far as they moved."""
    if tilts is None or not (bool((tilts[:, 0] >= 1.0).any()) and bool((tilts[:, -1] >= 1.0).any())):
        return None
    return tilts


def motion_report(motions: dict[str, tuple[Tensor, Tensor]], cfg: TrainConfig) -> dict:
    """What the run reports about each motion: its largest displacement in crop pixels, whether it is bounded."""
    return {e: {"max_flow_px": round(float(flow.abs().max()) * flow.shape[-1] / 2, 2),
                "tilt_flows": flow.shape[0] if flow.dim() == 4 else 1,
                "region": list(cfg.stage1_region_ellipse) if base_expression(e) in cfg.stage1_region_expressions
                else "whole crop"}
            for e, (flow, _) in motions.items()}


def _moved(pairs: dict[str, tuple[Tensor, Tensor]], motions: dict[str, tuple[Tensor, Tensor]], mode: str,
           tilts: dict[str, Tensor] | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """Each expression's pairs moved by its motion; with ``tilts`` (the clean pairs' weights over the tilt keys) each
    pair by its own blend, its perturbed copies (which follow the clean pairs in blocks) alike."""
    def each(e: str, x: Tensor) -> Tensor | None:
        clean = (tilts or {}).get(e)
        one_flow = motions[e][0].dim() == 3  # one for every tilt (`_reaches_every_tilt`)
        return None if clean is None or one_flow else clean.repeat(len(x) // len(clean), 1)

    return {e: (apply_flow(x, motions[e][0].to(x.device), mode, tilts=each(e, x)), t) for e, (x, t) in pairs.items()
            if e in motions}


def install_motions(model: RegGAN, motions: dict[str, tuple[Tensor, Tensor]]) -> None:
    device = model.stage1.flow.device
    for expr, (flow, region) in motions.items():
        model.stage1.set_motion(model.config.stage1_index(expr), flow.to(device), region.to(device))


def fit_stage1_maps(model: RegGAN, pairs: dict[str, tuple[Tensor, Tensor]], lambdas: dict[str, float],
                    toward_identity: bool = False, shared_colour: bool = False,
                    weights: dict[str, Tensor] | None = None, colour_tie: float = 0.0) -> dict:
    """Fit and install every expression's ridge maps at the model's radius on (already moved) pairs; an
    expression without a chosen lambda takes the median of the others (LSRF's 0.4 when there are none).
    ``weights``: how much each clean pair counts (`_weights_by_expression`), its perturbed copies (which follow the
    clean pairs in blocks, `_with_perturbed_copies`) alike."""
    fallback = float(np.median(list(lambdas.values()))) if lambdas else DEFAULT_LAMBDA
    fitted = {}
    for expr, (x, t) in pairs.items():
        lam = lambdas.get(expr, fallback)
        each = (weights or {}).get(expr)
        weight, bias = fit_ridge(x, t, model.config.radius, lam, toward_identity=toward_identity,
                                 shared_colour=shared_colour, colour_tie=colour_tie,
                                 weights=None if each is None else each.repeat(len(x) // len(each)))
        model.stage1.set_expression(model.config.stage1_index(expr), weight.to(model.stage1.weight.device),
                                    bias.to(model.stage1.bias.device))
        fitted[expr] = {"lambda": lam, "train_pairs": len(x)}
    return fitted


def refit_stage1(model: RegGAN, train: PairedFaces, val: PairedFaces | None, stage1_meta: dict, iteration: int,
                 cfg: TrainConfig, run_dir: Path | None = None) -> dict:
    """Refit stage 1 (motions, then ridge maps) on ``train`` at the model's radius (``--refit-stage1``: the data
    or the stage-1 recipe changed since the run began), lambdas chosen again on the moved ``val`` pairs (the
    run's lambdas when there are none). Returns the updated stage-1 metadata."""
    if (cfg.stage1_turn_keys, cfg.stage1_tilt_keys) != (model.config.turn_keys, model.config.tilt_keys):
        raise ValueError("stage 1's turn and tilt keys are fitted with a new stage 1 (a phase with init_refiner), not "
                         f"refitted onto a model with other keys ({model.config.turn_keys}, {model.config.tilt_keys} -> "
                         f"{cfg.stage1_turn_keys}, {cfg.stage1_tilt_keys})")
    clean = _pairs_by_expression(train)
    reference = model.config.exposure_reference or (training_exposure(clean) if cfg.stage1_normalise_exposure else 0.0)
    model.config = replace(model.config, exposure_reference=reference)
    run_lambdas = {e: v["lambda"] for e, v in stage1_meta.get("fitted", {}).items()}
    _, fitted, motions, rows, table = _fit_parts([(train, val)], lambda _: model, cfg, reference,
                                                 (model.stage1.radius,), run_lambdas, model.config.warp)
    meta = {**stage1_meta, "fitted": fitted, "motion": motion_report(motions, cfg), "refit_at_iteration": iteration}
    _write_selection(run_dir, {**meta, "radius": model.stage1.radius, "table": [asdict(r) for r in rows]}, table)
    return meta


@torch.no_grad()
def evaluate_pairs(model: RegGAN, data: PairedFaces, device: torch.device, batch: int = 32) -> dict[str, dict[str, float]]:
    """Per expression, on central crops: L1 and PSNR against the true target of copy / stage 1 / RegGAN."""
    model.eval()
    turns = (pair_turn_weights(data, model.config.turn_keys, model.config.tilt_keys) if model.config.turn_keys
             else None)
    sums: dict[str, dict[str, list[float]]] = {}
    for start in range(0, len(data), batch):
        idx = torch.arange(start, min(start + batch, len(data)))
        x, t, c = data.batch(idx)
        x, t = x.to(device), t.to(device)
        onehot = F.one_hot(c.to(device), len(model.config.expressions)).float()
        y, s1 = model(x, model.keyed(onehot, None if turns is None else turns[idx].to(device)),
                      torch.ones(len(x), device=device))
        for i in range(len(x)):
            name = model.config.expressions[int(c[i])]
            acc = sums.setdefault(name, {k: [] for k in ("copy_l1", "stage1_l1", "reggan_l1", "copy_psnr", "stage1_psnr", "reggan_psnr")})
            for key, pred in (("copy", x[i]), ("stage1", s1[i]), ("reggan", y[i])):
                acc[f"{key}_l1"].append(float((pred - t[i]).abs().mean()))
                acc[f"{key}_psnr"].append(psnr(pred, t[i]))
    model.train()
    return {e: {k: round(float(np.mean(v)), 5) for k, v in acc.items()} | {"pairs": len(acc["copy_l1"])} for e, acc in sums.items()}


def _to_u8(img: Tensor) -> np.ndarray:
    return ((img.detach().float().cpu().permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


@torch.no_grad()
def sample_grid(model: RegGAN, batch: tuple[Tensor, Tensor, Tensor], path: Path, turn: Tensor | None = None) -> Path:
    """One row per pair: input | stage 1 | RegGAN | target (central crops); ``turn``: the pairs' turn weights."""
    from PIL import Image

    x, t, c = batch
    onehot = F.one_hot(c.to(x.device), len(model.config.expressions)).float()
    was_training = model.training
    model.eval()
    y, s1 = model(x, model.keyed(onehot, turn), torch.ones(len(x), device=x.device))
    model.train(was_training)
    rows = [np.concatenate([_to_u8(a[i]) for a in (x, s1, y, t)], axis=1) for i in range(len(x))]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path


class Solver:
    """Stage 2 training loop around a RegGAN whose stage 1 is fitted and frozen."""

    def __init__(self, model: RegGAN, cfg: TrainConfig, train: PairedFaces, val: PairedFaces | None, run_dir: Path,
                 device: torch.device, dist: DistInfo = DistInfo(), meta: dict | None = None) -> None:
        self.cfg, self.train_data, self.val_data, self.run_dir, self.device, self.dist = cfg, train, val, run_dir, device, dist
        self.meta = dict(meta or {})
        mc = model.config
        self.n_expr = len(mc.expressions)
        self.neutral_index = mc.expressions.index("neutral") if "neutral" in mc.expressions else None
        torch.manual_seed(cfg.seed)
        self.G = model.to(device).train()
        self.G.stage1.requires_grad_(False)
        self.D = Discriminator(self.n_expr, mc.d_conv_dim, mc.d_layers).to(device)
        head = list(self.G.refiner.head.parameters())
        body = [p for p in self.G.refiner.parameters() if all(p is not h for h in head)]
        self.opt_g = torch.optim.Adam([{"params": body, "lr_scale": 1.0}, {"params": head, "lr_scale": cfg.head_lr_scale}],
                                      cfg.g_lr, (cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.d_lr, (cfg.beta1, cfg.beta2))
        self.outside = 1.0 - face_oval_mask(mc.image_size).to(device)
        # a keyed stage 1 paints each face with its turn's keys, in training as at run time: the refiner learns on
        # what it will be given (a flipped pair would turn the other way than its landmarks say)
        if mc.turn_keys and cfg.augment.enabled and cfg.augment.flip:
            raise ValueError("a model with turn keys trains without flip augmentation (a flip turns the face)")
        self.turns = pair_turn_weights(train, mc.turn_keys, mc.tilt_keys).to(device) if mc.turn_keys else None
        self.iteration, self.wall_time = 0, 0.0

    # -- checkpoints --------------------------------------------------------------------------------
    def resume(self) -> int:
        g, d_state, tensors, meta = load_run_state(self.run_dir)
        self.G.load_state_dict(g.state_dict())
        self.D.load_state_dict(d_state)
        restore_optimisers(self.opt_g, self.opt_d, tensors, meta)
        self.iteration, self.wall_time = int(meta["iteration"]), float(meta.get("wall_time_s", 0.0))
        self.meta.update({k: v for k, v in meta.items() if k in ("stage1", "data")})
        return self.iteration

    def save(self) -> Path:
        meta = {**self.meta, "train_config": self.cfg.to_dict(), "wall_time_s": self.wall_time,
                "generator_info": {"stage1": self.meta.get("stage1", {}), "wall_time_s": self.wall_time}}
        return save_run_checkpoint(self.run_dir, self.iteration, self.G, self.D, self.opt_g, self.opt_d, meta,
                                   self.cfg.keep_checkpoints)

    # -- one iteration ------------------------------------------------------------------------------
    def _learning_rates(self, it: int) -> tuple[float, float]:
        total, start = self.cfg.iterations, self.cfg.lr_decay_start * self.cfg.iterations
        factor = 1.0 if it < start or total <= start else max(0.0, (total - it) / (total - start))
        return self.cfg.g_lr * factor, self.cfg.d_lr * factor

    def step(self, g_model, d_model, it: int) -> dict[str, float]:
        cfg, dev = self.cfg, self.device
        lr_g, lr_d = self._learning_rates(it)
        for group in self.opt_g.param_groups:
            group["lr"] = lr_g * group["lr_scale"]
        for group in self.opt_d.param_groups:
            group["lr"] = lr_d

        # 1. Inputs: augmented pairs, drawn from this iteration's generator (resumable by construction).
        gen = iteration_generator(cfg.seed, it, self.dist.rank)
        idx = self.train_data.sample_indices(cfg.batch_size, gen)
        x, t, c_idx = self.train_data.batch(idx, gen)
        x, t, c_idx = x.to(dev), t.to(dev), c_idx.to(dev)
        n = len(x)
        c = F.one_hot(c_idx, self.n_expr).float()
        turn = None if self.turns is None else self.turns[idx.to(dev)]
        ones = torch.ones(n, device=dev)
        alpha = torch.rand(n, 1, 1, 1, generator=gen).to(dev)
        out: dict[str, float] = {"lr_g": lr_g, "lr_d": lr_d}

        # Warm-up: the refiner alone on its reconstruction terms, every iteration, no D (why: train_config.py).
        if it < cfg.warmup_iterations:
            return out | self._generator_step(g_model, x, t, c, c_idx, turn, adversarial=False)

        # 2. Train the discriminator: one forward over [real | fake | interpolates].
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake, _ = g_model(x, self.G.keyed(c, turn), ones)
        x_hat = (alpha * t + (1 - alpha) * fake).requires_grad_(True)
        src, cls = d_model(torch.cat([t, fake, x_hat]))
        src_real, src_fake, src_hat = src[:n], src[n : 2 * n], src[2 * n :]
        d_real, d_fake = -src_real.mean(), src_fake.mean()
        d_cls = classification_loss(cls[:n], c_idx)
        d_gp = gradient_penalty(src_hat, x_hat)
        d_loss = d_real + d_fake + cfg.lambda_cls * d_cls + cfg.lambda_gp * d_gp
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        out.update({"D/loss": d_loss.item(), "D/real": d_real.item(), "D/fake": d_fake.item(), "D/cls": d_cls.item(), "D/gp": d_gp.item()})

        # 3. Train the generator (refiner) every n_critic iterations.
        if (it + 1) % cfg.n_critic == 0:
            out.update(self._generator_step(g_model, x, t, c, c_idx, turn, adversarial=True))
        return out

    def _generator_step(self, g_model, x: Tensor, t: Tensor, c: Tensor, c_idx: Tensor, turn: Tensor | None,
                        adversarial: bool) -> dict[str, float]:
        """One refiner update; one forward over [targets | identity]. Without ``adversarial`` D is not run; ``turn``:
        the pairs' turn weights for a keyed model."""
        cfg, dev, n = self.cfg, self.device, len(x)
        self.D.requires_grad_(False)
        m = (n + 1) // 2 if self.neutral_index is not None else 0
        x_all = torch.cat([x, x[:m]])
        c_all = torch.cat([c, F.one_hot(torch.full((m,), self.neutral_index or 0, device=dev), self.n_expr).float()])
        c_all = self.G.keyed(c_all, None if turn is None else torch.cat([turn, turn[:m]]))
        y_all, _, flow, mask = g_model(x_all, c_all, torch.ones(n + m, device=dev), heads=True)
        y, y_ident = y_all[:n], y_all[n:]
        zero = torch.zeros((), device=dev)
        if adversarial:
            src_f, cls_f = self.D(y)
            g_adv, g_cls = -src_f.mean(), classification_loss(cls_f, c_idx)
        else:
            g_adv, g_cls = zero, zero
        g_l1 = multiscale_l1(y, t)
        g_l2 = ((y - t) ** 2).mean()
        g_grad = image_gradient_l1(y, t)
        g_sparse = masked_residual_sparsity(y, x, self.outside)
        g_ident = (y_ident - x[:m]).abs().mean() if m else zero
        g_mask, g_tv = mask.mean(), total_variation(flow)
        g_loss = (cfg.lambda_adv * g_adv + cfg.lambda_cls * g_cls + cfg.lambda_l1 * g_l1 + cfg.lambda_l2 * g_l2 + cfg.lambda_grad * g_grad
                  + cfg.lambda_sparse * g_sparse + cfg.lambda_ident * g_ident + cfg.lambda_mask * g_mask
                  + cfg.lambda_flow_tv * g_tv)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        return {"G/loss": g_loss.item(), "G/adv": g_adv.item(), "G/cls": g_cls.item(), "G/l1": g_l1.item(),
                "G/l2": g_l2.item(), "G/grad": g_grad.item(), "G/sparse": g_sparse.item(), "G/ident": g_ident.item(),
                "G/mask": g_mask.item(), "G/flow_tv": g_tv.item()}

    # -- the loop -----------------------------------------------------------------------------------
    def train(self, progress: bool = True, report: Callable[[str], None] | None = None) -> dict:
        """Run to the schedule's end; ``report`` (rank 0) gets a line at each checkpoint and at the end: the
        iteration, the time an iteration takes and what is left, for runs with no progress bar to watch."""
        from tqdm import tqdm

        cfg, dist = self.cfg, self.dist
        g_model: nn.Module = self.G  # DDP-wrapped when distributed
        d_model: nn.Module = self.D
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            g_model, d_model = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)
        if 0 < cfg.iterations <= cfg.warmup_iterations and dist.is_main:
            log.warning("all %d iterations are refiner-only warm-up (warmup_iterations=%d): the discriminator never "
                        "trains; pass --set warmup_iterations=K with K < --iterations for an adversarial phase",
                        cfg.iterations, cfg.warmup_iterations)
        csv_log = CsvLog(self.run_dir / "log.csv", LOG_COLUMNS, self.iteration) if dist.is_main else None
        fixed, fixed_turn = self._sample_batch() if dist.is_main else (None, None)
        bar = tqdm(total=cfg.end, initial=self.iteration, desc="train", unit="it",
                   disable=None if (progress and dist.is_main) else True, dynamic_ncols=True)
        last: dict[str, float] = {}
        first, started = self.iteration, self.wall_time
        while self.iteration < cfg.end:
            t0 = time.perf_counter()
            last.update(self.step(g_model, d_model, self.iteration))
            finite_or_raise(last)
            self.iteration += 1
            self.wall_time += time.perf_counter() - t0
            bar.update(1)
            if csv_log is None or fixed is None:  # ranks other than 0
                continue
            # 4. Bookkeeping (rank 0 only; every rank holds the same weights).
            it = self.iteration
            if it % cfg.log_every == 0 or it == cfg.end:
                csv_log.write({"iteration": it, "time_s": round(self.wall_time, 3), **last})
                bar.set_postfix({k: f"{last[k]:.3f}" for k in ("D/loss", "G/l1") if k in last})
            if cfg.sample_every and (it % cfg.sample_every == 0 or it == cfg.end):
                sample_grid(self.G, fixed, self.run_dir / "samples" / f"{it:07d}.png", fixed_turn)
            if cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it != cfg.end:
                self.save()
            if report is not None and (it == cfg.end or (cfg.checkpoint_every and it % cfg.checkpoint_every == 0)):
                report(progress_line(it, cfg.end, (self.wall_time - started) / (it - first)))
        bar.close()
        if dist.is_main:
            self.save()
        if dist.distributed:
            torch.distributed.barrier()
        return {"iteration": self.iteration, "wall_time_s": round(self.wall_time, 1)}

    def _sample_batch(self) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor | None]:
        """The fixed rows of the sample grid and their turn weights (a keyed model): renders only when there are
        any, because sample grids end up in docs/ and pictures made from third-party photos must not."""
        data = self.val_data if self.val_data is not None and len(self.val_data) else self.train_data
        rendered = [k for k, s in enumerate(data.summaries) if s.layout == "synthetic"]
        pool = torch.nonzero(torch.isin(data.pair_set, torch.tensor(rendered))).flatten() if rendered else torch.arange(len(data))
        n = min(self.cfg.n_samples, len(pool))
        picks = pool[torch.linspace(0, len(pool) - 1, n).round().long()]
        x, t, c = data.batch(picks)
        keys = self.G.config.turn_keys
        turn = pair_turn_weights(data, keys, self.G.config.tilt_keys)[picks].to(self.device) if keys else None
        return (x.to(self.device), t.to(self.device), c), turn

    def export(self, path: Path, provenance: dict) -> Path:
        from export.onnx_export import export_model

        model = copy.deepcopy(self.G).cpu().eval()
        return export_model(model, path, provenance=provenance)


def progress_line(iteration: int, end: int, seconds_each: float) -> str:
    """A line such as 'iteration 500/4000, 1.14 s each, about 67 min left'."""
    left = (end - iteration) * seconds_each
    when = "done" if iteration >= end else (f"about {math.ceil(left / 60)} min left" if left < 5400
                                            else f"about {left / 3600:.1f} h left")
    return f"iteration {iteration}/{end}, {seconds_each:.2f} s each, {when}"


def broadcast_stage1(model: RegGAN, dist: DistInfo) -> None:
    """Rank 0 fitted stage 1; every other rank receives the same maps and motions."""
    if dist.distributed:
        for p in (*model.stage1.parameters(), model.stage1.flow, model.stage1.region):
            torch.distributed.broadcast(p.data, src=0)


def params_digest(*models: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes: equal digests mean bit-identical weights."""
    import hashlib

    h = hashlib.sha256()
    for model in models:
        for name, p in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def finite_or_raise(values: dict[str, float]) -> None:
    from reggan_plugin.errors import NumericalError

    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise NumericalError(f"training diverged: {', '.join(bad)} not finite")
