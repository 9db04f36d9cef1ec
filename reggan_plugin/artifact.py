"""The model artifact: one ONNX file whose metadata_props the runtime trusts (and checks).

Contract (format version 1):
  inputs  ``image`` float32 [N,3,S,S] sRGB in [-1,1]; ``expression`` float32 [N,E] weights over the
          model's expression list (one-hot, or a mix for compound expressions); ``intensity`` float32 [N].
  outputs ``output`` float32 [N,3,S,S] in [-1,1] (full RegGAN); ``stage1`` (regression stage alone);
          optionally ``motion`` and ``stage1_motion`` float32 [N,2,S,S]: where each output's pixels came
          from, in crop pixels (x, y): output(p) draws on image(p + motion(p)). Paste-back moves the
          frame itself by it (edit/blend.py); models without them are pasted as a plain difference.
Metadata keys are prefixed ``reggan.``; values are strings (JSON where structured).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import Array
from .errors import ModelError, UsageError
from .expressions import KEY_MARK, arkit_name, is_channel_mix, key_of, key_weights
from .faces.turn import Pose, pose_weights, valid_keys, valid_tilt_keys
from .geometry.resample import WARP_MODES, WarpMode

FORMAT_VERSION = 1
PREFIX = "reggan."
INPUT_NAMES = ("image", "expression", "intensity")
OUTPUT_NAMES = ("output", "stage1")
MOTION_NAMES = ("motion", "stage1_motion")  # optional, both or neither
REQUIRED_KEYS = ("format_version", "input_size", "color_space", "value_range", "expressions", "has_intensity")


def default_model_path() -> Path:
    """The model that ships inside the package (trained by `reggan-plugin train`, see MODEL_CARD.md)."""
    return Path(__file__).with_name("models") / "default.onnx"


def channels_model_path() -> Path:
    """The bundled channel model: one expression per ARKit blendshape (`reggan_plugin.expressions`), fitted on renders
    of each blendshape alone (recipes/channels.toml)."""
    return Path(__file__).with_name("models") / "channels.onnx"


def model_for(expression: str | Mapping[str, float], model: Path | None) -> Path | None:
    """The model an expression needs: ``model`` when given; else the bundled channel model for ARKit channels, and
    None (the bundled face model) for the six expressions."""
    if model is not None:
        return model
    names = parse_expression(expression) if isinstance(expression, str) else expression
    return channels_model_path() if is_channel_mix(names) else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelArtifact:
    path: Path
    sha256: str
    input_size: int
    expressions: tuple[str, ...]
    has_intensity: bool
    color_space: str
    value_range: tuple[float, float]
    crop_template: Array | None  # (5,2) in crop units, or None for the runtime's default
    has_motion: bool = False  # the graph has the MOTION_NAMES outputs
    warp: WarpMode = "bilinear"  # how the graph moves its crop by the motion (its model config's ``warp``): the
    # paste moves the crop the same way to take the paint as the difference
    provenance: dict[str, Any] = field(default_factory=dict)  # training data, iterations, metrics
    metadata: Mapping[str, str] = field(default_factory=dict)
    turn_keys: tuple[float, ...] = ()  # its model config's: stage 1 fitted at these turns (`reggan_plugin.faces.turn`)
    tilt_keys: tuple[float, ...] = ()  # and its motion at these tilts of each

    @property
    def input_width(self) -> int:
        """The network's expression input: a weight per expression, or per expression and pose key."""
        return _input_width(len(self.expressions), self.turn_keys, self.tilt_keys)

    def posed(self, weights: Array, pose: Pose) -> Array:
        """Weights over the expressions ([E]) as the network takes them for a face at ``pose``: for a model with turn
        keys, each expression's weight shared between the keys about the face (`pose_weights`), expression-major;
        else as they are."""
        if not self.turn_keys:
            return weights
        keyed: Array = (np.asarray(weights, np.float32)[:, None]
                        * pose_weights(pose, self.turn_keys, self.tilt_keys)[None])
        return keyed.reshape(-1)

    @property
    def adds_channels(self) -> bool:
        """Whether this is a channel model: its expressions are ARKit blendshapes, which add up."""
        return is_channel_mix(self.expressions)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The expressions (or channels) this model can be asked for: its expressions less their keys."""
        return tuple(e for e in self.expressions if KEY_MARK not in e)

    @cached_property
    def keys(self) -> dict[str, dict[float, int]]:
        """For each expression with keys (`reggan_plugin.expressions.key_name`): its keys' weights -> their indices in
        `expressions`, 1 (the expression itself) among them."""
        keys: dict[str, dict[float, int]] = {}
        for index, name in enumerate(self.expressions):
            base, at = key_of(name)
            if at < 1.0:
                keys.setdefault(base, {})[at] = index
        for base, at_index in keys.items():
            at_index[1.0] = self.expressions.index(base)
        return keys

    def expression_weights(self, expression: str | Mapping[str, float]) -> Array:
        """Weights over this model's expressions for a name ("happy"), a mix written "happy=0.5,surprised=0.5"
        (compound expressions) or a mapping {"happy": 0.5, "surprised": 0.5}.

        A mix whose weights sum below 1 is that much neutral: a model with a "neutral" expression gets the rest
        there (the regression stage blends per-expression pixel maps, so "happy=0.5" alone, with no neutral, would
        be half of a face, darkened; `reggan_plugin.sequence.curves` relies on this for its frames near neutral)."""
        if isinstance(expression, str):
            mix = parse_expression(expression)
        else:
            mix = dict(expression)
            check_mix(mix, repr(mix))
        adds = self.adds_channels
        weights = np.zeros(len(self.expressions), np.float32)
        keys = self.keys
        for name, weight in mix.items():
            name = (arkit_name(name) or name) if adds else name
            if name not in self.names:
                hint = " (ARKit channels: the channel model, the default when no --model is given)" if (
                    arkit_name(name) and not adds) else ""
                raise UsageError(f"unknown expression {name!r}; this model knows: {', '.join(self.names)}{hint}")
            if name in keys:  # between its keys: a share of each of the two around the weight
                for at, share in key_weights(float(weight), keys[name]).items():
                    weights[keys[name][at]] += share
            else:
                weights[self.expressions.index(name)] = float(weight)
        if "neutral" in self.expressions and "neutral" not in mix:
            rest = 1.0 - float(weights.sum())
            # channels add: each moves the face by its own change, so neutral takes the rest even below 0
            weights[self.expressions.index("neutral")] = rest if adds else max(0.0, rest)
        if not weights.any():
            raise UsageError(f"bad expression {mix!r}: every weight is 0 and this model has no neutral to fill it")
        return weights

    def network_input(self, expression: str | Mapping[str, float], intensity: float) -> tuple[Array, float]:
        """(weights, alpha): what the network is given for an edit at ``intensity``. A model with a "neutral" takes a
        partial intensity as the mix scaled by it, the rest neutral, at alpha 1, as curves give it: the model learnt
        its expressions at full strength, and its alpha input scales stage 1's paint twice over (once in stage 1,
        once in the refiner's blend: a quarter of the paint at 0.5, 2 dB further from renders at half intensity than
        the scaled mix, `evaluate --intensity 0.5`). Intensity 0 stays alpha 0: the input exactly."""
        if intensity <= 0.0 or intensity >= 1.0 or "neutral" not in self.expressions:
            return self.expression_weights(expression), float(intensity)
        mix = parse_expression(expression) if isinstance(expression, str) else dict(expression)
        scaled = {name: weight * intensity for name, weight in mix.items() if name != "neutral"}  # the rest: neutral
        return self.expression_weights(scaled), 1.0


def parse_expression(text: str) -> dict[str, float]:
    """ "happy" -> {"happy": 1.0}; "happy=0.5,surprised=0.5" -> {"happy": 0.5, "surprised": 0.5}."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name in mix:
            raise UsageError(f"bad expression {text!r}: {name!r} is given twice; give each expression once")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"bad expression {text!r}: weight {weight!r} is not a number") from None
    check_mix(mix, repr(text))
    if sum(mix.values()) <= 0.0:  # typed so, a mistake: a mapping at zero is the neutral face (curves' quiet frames)
        raise UsageError(f"bad expression {text!r}: every weight is 0; give at least one expression a weight above 0")
    return mix


def check_mix(mix: Mapping[str, float], shown: str) -> None:
    """A mix's weights: each a finite number in [0, 1], summing to at most 1 unless they are ARKit channels, which add
    (UsageError saying which rule is broken). What a mix leaves is neutral (`ModelArtifact.expression_weights`)."""
    for name, weight in mix.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)) or not 0.0 <= weight <= 1.0:
            raise UsageError(f"bad expression {shown}: the weight of {name!r} is {weight!r}; each weight is in [0, 1]")
    total = float(sum(mix.values()))
    if total > 1.0 + 1e-6 and not is_channel_mix(mix):
        raise UsageError(f"bad expression {shown}: the weights sum to {total:g}; they must sum to at most 1")


def build_metadata(
    *,
    input_size: int,
    expressions: Sequence[str],
    crop_template: Array | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The metadata_props an exporter writes (the inverse of `parse_metadata`)."""
    meta = {
        "format_version": str(FORMAT_VERSION),
        "input_size": str(int(input_size)),
        "color_space": "srgb",
        "value_range": "-1,1",
        "expressions": json.dumps(list(expressions)),
        "has_intensity": "true",
        "provenance": json.dumps(dict(provenance or {}), sort_keys=True),
    }
    if crop_template is not None:
        meta["crop_template"] = json.dumps(np.asarray(crop_template, float).round(6).tolist())
    return {PREFIX + key: value for key, value in meta.items()}


def parse_metadata(path: Path, props: Mapping[str, str]) -> dict[str, Any]:
    """Validate ``reggan.*`` metadata; every problem is a ModelError naming the file and the key."""
    meta = {key[len(PREFIX):]: value for key, value in props.items() if key.startswith(PREFIX)}
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise ModelError(path, f"not a reggan model: metadata key(s) missing: {', '.join(PREFIX + k for k in missing)}")

    def bad(key: str, why: str) -> ModelError:
        return ModelError(path, f"bad metadata {PREFIX}{key}={meta[key]!r}: {why}")

    if meta["format_version"] != str(FORMAT_VERSION):
        raise bad("format_version", f"this runtime reads format {FORMAT_VERSION}; update reggan-plugin or re-export")
    try:
        size = int(meta["input_size"])
    except ValueError:
        raise bad("input_size", "not an integer") from None
    if not 16 <= size <= 2048:
        raise bad("input_size", "must be between 16 and 2048")
    if meta["color_space"] != "srgb":
        raise bad("color_space", "only 'srgb' is supported")
    if meta["value_range"] != "-1,1":
        raise bad("value_range", "only '-1,1' is supported")
    try:
        expressions = json.loads(meta["expressions"])
    except json.JSONDecodeError:
        raise bad("expressions", "not JSON") from None
    if not (isinstance(expressions, list) and expressions and all(isinstance(e, str) for e in expressions)):
        raise bad("expressions", "must be a non-empty JSON list of names")
    if len(set(expressions)) != len(expressions):
        raise bad("expressions", "names repeat")
    for name in (e for e in expressions if KEY_MARK in e):
        base, at = key_of(name)
        if not (base in expressions and 0.0 < at < 1.0):
            raise bad("expressions", f"{name!r} is not a key (a listed expression at a weight in (0, 1))")
    if meta["has_intensity"] not in ("true", "false"):
        raise bad("has_intensity", "must be 'true' or 'false'")
    template = None
    if "crop_template" in meta:
        try:
            template = np.asarray(json.loads(meta["crop_template"]), np.float64)
        except (json.JSONDecodeError, ValueError, TypeError):
            raise bad("crop_template", "not a JSON list of points") from None
        if template.shape != (5, 2):
            raise bad("crop_template", "must be 5 (x, y) points")
    try:
        provenance = json.loads(meta.get("provenance", "{}"))
        model_config = json.loads(provenance.get("model_config", "{}"))
        warp, turn_keys = model_config.get("warp", "bilinear"), tuple(model_config.get("turn_keys", ()))
        tilt_keys = tuple(model_config.get("tilt_keys", ()))
    except (json.JSONDecodeError, AttributeError, TypeError):
        raise bad("provenance", "not JSON, or its model_config is not") from None
    if warp not in WARP_MODES:
        raise bad("provenance", f"model_config's warp is {warp!r}: this runtime knows 'bilinear' and 'bicubic'")
    if not valid_keys(turn_keys):
        raise bad("provenance", f"model_config's turn_keys {list(turn_keys)} are not two or more ascending numbers")
    if not valid_tilt_keys(tilt_keys, turn_keys):
        raise bad("provenance", f"model_config's tilt_keys {list(tilt_keys)} are not two or more ascending numbers "
                                "beside turn keys")
    return {
        "input_size": size,
        "expressions": tuple(expressions),
        "has_intensity": meta["has_intensity"] == "true",
        "color_space": "srgb",
        "value_range": (-1.0, 1.0),
        "crop_template": template,
        "provenance": provenance,
        "warp": warp,
        "turn_keys": tuple(float(k) for k in turn_keys),
        "tilt_keys": tuple(float(k) for k in tilt_keys),
    }


def _input_width(expressions: int, turn_keys: Sequence[float], tilt_keys: Sequence[float]) -> int:
    return expressions * max(len(turn_keys), 1) * max(len(tilt_keys), 1)


def _check_signature(path: Path, session: Any, size: int, n_expr: int) -> bool:
    """Raise ModelError unless the graph's inputs and outputs match the metadata; True when it has motion outputs."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    for name in INPUT_NAMES:
        if name not in inputs:
            raise ModelError(path, f"model has no input {name!r} (has: {', '.join(inputs)})")
    for name in OUTPUT_NAMES:
        if name not in outputs:
            raise ModelError(path, f"model has no output {name!r} (has: {', '.join(sorted(outputs))})")
    if list(inputs["image"].shape[1:]) != [3, size, size]:
        raise ModelError(path, f"input 'image' has shape {inputs['image'].shape}, metadata says [N,3,{size},{size}]")
    if inputs["expression"].shape[1:] != [n_expr]:
        raise ModelError(path, f"input 'expression' has shape {inputs['expression'].shape}, metadata gives {n_expr} "
                               "(its expressions, times its turn and tilt keys)")
    motions = [name for name in MOTION_NAMES if name in outputs]
    if motions and len(motions) != len(MOTION_NAMES):
        raise ModelError(path, f"model has output {motions[0]!r} but not {', '.join(set(MOTION_NAMES) - set(motions))!r}: "
                               "motion outputs come together")
    for name in motions:
        if list(outputs[name].shape[1:]) != [2, size, size]:
            raise ModelError(path, f"output {name!r} has shape {outputs[name].shape}, expected [N,2,{size},{size}]")
    return bool(motions)


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int, size_bytes: int) -> ModelArtifact:
    import onnxruntime as ort  # runtime dependency; imported here so that `import reggan_plugin` stays light

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... classes
        raise ModelError(path, f"not a loadable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    props = session.get_modelmeta().custom_metadata_map
    parsed = parse_metadata(path, props)
    width = _input_width(len(parsed["expressions"]), parsed["turn_keys"], parsed["tilt_keys"])
    has_motion = _check_signature(path, session, parsed["input_size"], width)
    return ModelArtifact(path=path, sha256=file_sha256(path), metadata=dict(props), has_motion=has_motion, **parsed)


def load_artifact(path: str | Path | None = None) -> ModelArtifact:
    """Load and validate a model file (the bundled default when `path` is None)."""
    path = Path(path) if path is not None else default_model_path()
    if path.is_dir():
        raise ModelError(path, "is a directory, not a model file (give the .onnx file)")
    if path.exists() and not path.is_file():
        raise ModelError(path, "not a regular file (give the .onnx model file)")
    if not path.is_file():
        hint = " (the bundled default model is missing: reinstall reggan-plugin)" if path == default_model_path() else ""
        raise ModelError(path, f"model file not found{hint}")
    stat = path.stat()
    return _load_cached(path.resolve(), stat.st_mtime_ns, stat.st_size)
