"""The options `render` and `texture` share (`inference_options`), the configs built from them (`build_configs`), and
`FiniteRange`, a float option that refuses nan and inf. Each default is the config dataclass field's own."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .artifact import model_for
from .config import (
    BACKENDS,
    PRECISIONS,
    REGION_GRAPHS,
    STAGES,
    SUBJECTS,
    BackendName,
    EditConfig,
    InferenceConfig,
    Precision,
    RegionGraphs,
    Stage,
    Subject,
    field_default,
)


class FiniteRange(click.FloatRange):
    """A float range that also refuses nan and inf (which pass every comparison)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


F = TypeVar("F", bound=Callable[..., Any])


def inference_options(func: F) -> F:
    """Options shared by `render` and `texture`: which model runs, and where."""
    options = [
        click.option("--expression", "-e", default=field_default(EditConfig, "expression"), show_default=True,
                     help="Target expression: neutral, happy, sad, surprised, angry, disgusted, fearful; "
                          "or a mix such as happy=0.6,surprised=0.4."),
        click.option("--intensity", "-i", type=FiniteRange(0, 1), default=field_default(EditConfig, "intensity"),
                     show_default=True, help="0 leaves the face as it is, 1 is the full expression."),
        click.option("--model", type=click.Path(path_type=Path), default=None,
                     help="ONNX model file. [default: the model bundled with reggan-plugin]"),
        click.option("--backend", type=click.Choice(BACKENDS), default=field_default(InferenceConfig, "backend"),
                     show_default=True, help="Where the network runs; auto picks the fastest that works and says which."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=field_default(InferenceConfig, "precision"),
                     show_default=True, help="fp16 is for GPU backends."),
        click.option("--batch", type=click.IntRange(1, 1024), default=field_default(InferenceConfig, "batch"),
                     show_default=True, help="Faces per inference call."),
        click.option("--stage", type=click.Choice(STAGES), default=field_default(InferenceConfig, "stage"), show_default=True,
                     help="'regression': the fast regression stage alone (a preview)."),
        click.option("--trust-box", is_flag=True, default=not field_default(InferenceConfig, "find_in_box"),
                     help="Align on a face box (--region, a faces.json box) as it is. By default a box is a hint: the "
                          "face found inside it gives the landmarks (boxes from other tools are sized and centred "
                          "differently); use this for faces the detector cannot read."),
        click.option("--region-graphs", type=click.Choice(REGION_GRAPHS), default=field_default(InferenceConfig, "region_graphs"),
                     show_default=True, help="Align and paste back the face region in onnxruntime beside the network; "
                                             "auto: where the network runs on a GPU (numpy is faster on the CPU)."),
        click.option("--lip-split/--no-lip-split", default=field_default(InferenceConfig, "lip_split"), show_default=True,
                     help="On faces from about 280 px, move each lip whole where the expression opens the mouth (its "
                          "stretch left to the gap between them), so the lips keep their sharp edges, and from about "
                          "285 px show a rendered mouth's teeth and inside in the gap (a smile shows the model's own "
                          "paint between the lips)."),
        click.option("--coverage/--no-coverage", default=field_default(InferenceConfig, "coverage"), show_default=True,
                     help="Keep the edit where the coverage model sees the head, off the backdrop beside a turned "
                          "head's cheek and off the neck below a dropping chin (a face it sees no head in is edited "
                          "whole)."),
        click.option("--colorspace", default=None, metavar="NAME",
                     help="The pictures' OpenColorIO colour space (e.g. ACEScg), in the $OCIO config or else the "
                          "built-in ACES CG config; the edit is made in sRGB and put back in it (docs/STUDIO.md). "
                          "[default: with $OCIO, float pictures in its scene_linear role; else sRGB]"),
        click.option("--subject", type=click.Choice(SUBJECTS), default=field_default(InferenceConfig, "subject"),
                     show_default=True, help="What the faces are: renders (the edit as fitted on renders), photographs "
                                             "of people (the model's gains for photos: a real smile's smaller motion "
                                             "and eye squint; MODEL_CARD.md), or "
                                             "auto: each picture's faces read as one or the other (a render that looks "
                                             "like a photograph, with real skin and hair, may read as one: give "
                                             "render)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_configs(expression: str, intensity: float, model: Path | None, backend: BackendName, precision: Precision,
                  batch: int, stage: Stage, trust_box: bool, region_graphs: RegionGraphs,
                  lip_split: bool, coverage: bool, subject: Subject) -> tuple[EditConfig, InferenceConfig]:
    edit = EditConfig(expression, intensity)  # checks the expression before a model is chosen for it
    return edit, InferenceConfig(model_for(expression, model), backend, precision, batch, stage, find_in_box=not trust_box,
                                 region_graphs=region_graphs, lip_split=lip_split,
                                 subject=subject, coverage=coverage)
