"""Expression recipes: FACS action units -> ARKit blendshape weights, read from ``recipes.json``.

The table is data, not code: an expression is a dict of AU strengths, each AU maps to blendshapes
with gains (see the json's ``about`` and docs/DATASET.md for sources).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from reggan_plugin.errors import InputError, UsageError
from reggan_plugin.expressions import EXPRESSIONS

RECIPES_PATH = Path(__file__).with_name("recipes.json")


@dataclass(frozen=True)
class RecipeTable:
    """AU -> blendshape gains, and named expressions as AU strengths."""

    au_to_blendshapes: Mapping[str, Mapping[str, float]]
    expressions: Mapping[str, Mapping[str, float]]
    compound: frozenset[str]
    max_weight: float = 1.0

    def names(self, include_compound: bool = True) -> tuple[str, ...]:
        return tuple(n for n in self.expressions if include_compound or n not in self.compound)

    def aus(self, expression: str) -> Mapping[str, float]:
        if expression not in self.expressions:
            raise UsageError(
                f"unknown expression {expression!r}; known: {', '.join(self.expressions)}"
            )
        return self.expressions[expression]

    def blendshapes(
        self, expression: str, intensity: float = 1.0, au_scale: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """Blendshape weights (name -> [0, max_weight]) for an expression at an intensity in [0, 1].

        ``au_scale`` optionally multiplies single AUs (per-identity jitter from ``variation``).
        """
        weights: dict[str, float] = {}
        for au, strength in self.aus(expression).items():
            s = strength * intensity * (au_scale or {}).get(au, 1.0)
            for shape, gain in self.au_to_blendshapes[au].items():
                weights[shape] = weights.get(shape, 0.0) + s * gain
        return {k: float(np.clip(v, 0.0, self.max_weight)) for k, v in sorted(weights.items()) if v > 0}


def parse_recipes(data: dict) -> RecipeTable:
    """Build and check a table from the json structure (unknown AUs are an error)."""
    au_map = {au: dict(entry["blendshapes"]) for au, entry in data["au_to_blendshapes"].items()}
    exprs: dict[str, dict[str, float]] = {}
    compound = set()
    for section in ("expressions", "compound_expressions"):
        for name, entry in data.get(section, {}).items():
            unknown = set(entry["aus"]) - set(au_map)
            if unknown:
                raise UsageError(f"recipe {name!r} uses unknown action units {sorted(unknown)}")
            exprs[name] = dict(entry["aus"])
            if section == "compound_expressions":
                compound.add(name)
    return RecipeTable(au_map, exprs, frozenset(compound), float(data.get("max_blendshape_weight", 1.0)))


@lru_cache(maxsize=4)
def load_recipes(path: Path = RECIPES_PATH) -> RecipeTable:
    """The table in ``path`` (the layout of the bundled ``recipes.json``); InputError naming the file if it is not one."""
    try:
        return parse_recipes(json.loads(Path(path).read_text()))
    except UsageError as exc:
        raise InputError(path, str(exc)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(path, f"not a recipe table like {RECIPES_PATH.name} ({type(exc).__name__}: {exc})") from None


def parse_expressions(spec: tuple[str, ...] | list[str] | None, table: RecipeTable) -> tuple[str, ...]:
    """CLI spec -> expression names. Items may be comma separated; 'basic' = the 7 basic, 'compound' = CFEE set."""
    if not spec:
        return tuple(EXPRESSIONS)
    out: list[str] = []
    for item in spec:
        for name in (s.strip() for s in item.split(",")):
            if not name:
                continue
            group = {"basic": list(EXPRESSIONS), "compound": sorted(table.compound), "all": list(table.names())}
            for n in group.get(name, [name]):
                table.aus(n)
                if n not in out:
                    out.append(n)
    if "neutral" not in out:
        out.insert(0, "neutral")
    return tuple(out)


def image_stem(expression: str, intensity: float) -> str:
    """File stem: ``happy`` at full intensity, ``happy_050`` at 0.5."""
    if abs(intensity - 1.0) < 1e-9 or expression == "neutral":
        return expression
    return f"{expression}_{int(round(intensity * 100)):03d}"
