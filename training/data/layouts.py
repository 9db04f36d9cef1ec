"""Folder layouts of paired face data, scanned into (identity, neutral image, target image, expression).

Three layouts are recognised (``detect_layout``), in this order:

``synthetic``: the renderer's output (``training/synth``, ``docs/DATASET.md``)::

    DIR/manifest.json
    DIR/<identity>/neutral.png + neutral.landmarks.json
    DIR/<identity>/<expression>.png (+ .landmarks.json)     same camera: pairs are pixel-aligned

  Full-intensity images are used (stems equal to an expression name); ``scan_dataset(..., intensity=0.5)`` takes the
  renders at that intensity instead (``happy_050``: the manifest's ``intensity``), the truth an edit at that
  intensity is judged against. A model with a key of an expression (``eyeBlinkLeft@0.5``,
  `reggan_plugin.expressions.key_name`) takes the renders at the key's weight as its targets. The other layouts hold
  full expressions only.

``plain``: ``DIR/neutral/<name>.<ext>`` and ``DIR/<expression>/<name>.<ext>`` with matching stems, one
  person per stem (``../shared/data/london-faces``: ``neutral/001.jpg``, ``happy/001.jpg``). The
  neutral image needs a landmark sidecar (``data/landmarks.py``); targets may have one.

``cfee``: subject folders with expression-coded file names (CFEE, Du, Tao & Martinez 2014, and the
  like)::

    DIR/<subject>/<name>.<ext>

  The expression is read from the stem, split on ``_``, ``-``, ``.`` and spaces: the first token
  (from the right) that is an expression name or alias wins (``neutral``/``ne``/``n``,
  ``happy``/``ha``/``hap``/``happiness``/``joy``/``smile``, ``sad``/``sa``/``sadness``,
  ``surprised``/``su``/``sur``/``surprise``, ``angry``/``an``/``ang``/``anger``,
  ``disgusted``/``di``/``dis``/``disgust``, ``fearful``/``fe``/``fea``/``fear``/``afraid``,
  case-insensitive). Failing that, a numeric LAST token is a CFEE category code: 1 neutral, 2 happy,
  3 sad, 4 fearful, 5 angry, 6 surprised, 7 disgusted (8-22, the compound categories, are skipped).
  Examples: ``S001/S001_happy.jpg``, ``007/007_02.png`` (happy), ``ann/ann-NE.jpg``. Every subject
  needs exactly one neutral image with a landmark sidecar; each other coded image is one pair.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from reggan_plugin.errors import InputError
from reggan_plugin.expressions import EXPRESSIONS, key_name

Layout = Literal["synthetic", "plain", "cfee"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

ALIASES: dict[str, str] = {
    **{e: e for e in EXPRESSIONS},
    "ne": "neutral", "n": "neutral", "neu": "neutral",
    "ha": "happy", "hap": "happy", "happiness": "happy", "joy": "happy", "smile": "happy", "smiling": "happy",
    "sa": "sad", "sadness": "sad",
    "su": "surprised", "sur": "surprised", "surprise": "surprised",
    "an": "angry", "ang": "angry", "anger": "angry",
    "di": "disgusted", "dis": "disgusted", "disgust": "disgusted",
    "fe": "fearful", "fea": "fearful", "fear": "fearful", "afraid": "fearful",
}
CFEE_CODES: dict[int, str] = {1: "neutral", 2: "happy", 3: "sad", 4: "fearful", 5: "angry", 6: "surprised", 7: "disgusted"}


@dataclass(frozen=True)
class PairRecord:
    identity: str  # unique across datasets: "<dataset name>/<person>"
    neutral: Path
    target: Path
    expression: str


@dataclass(frozen=True)
class DatasetScan:
    root: Path
    name: str
    layout: Layout
    pixel_aligned: bool  # True: one camera per identity, the neutral's crop transform fits the target exactly
    pairs: tuple[PairRecord, ...]
    skipped: tuple[str, ...] = field(default=())  # "path: reason" for files not used


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def detect_layout(root: Path) -> Layout:
    if (root / "manifest.json").is_file():
        return "synthetic"
    if (root / "neutral").is_dir():
        return "plain"
    if any(p.is_dir() and _images(p) for p in root.iterdir()):
        return "cfee"
    raise InputError(root, "no known data layout (need manifest.json, a neutral/ folder, or subject folders with images)")


def expression_from_name(stem: str) -> str | None:
    """The expression coded in a CFEE-style file stem, or None (see the module docstring)."""
    tokens = [t for t in re.split(r"[_\-. ]+", stem.lower()) if t]
    for token in reversed(tokens):
        if token in ALIASES:
            return ALIASES[token]
    if tokens and tokens[-1].isdigit():
        return CFEE_CODES.get(int(tokens[-1]))
    return None


def scan_synthetic(root: Path, name: str, expressions: tuple[str, ...], intensity: float = 1.0) -> DatasetScan:
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(root / "manifest.json", f"unreadable manifest: {exc}") from None
    identities = manifest.get("identities") or {}
    names = sorted(identities) if identities else sorted(p.name for p in root.iterdir() if p.is_dir())
    pairs, skipped = [], []
    for ident in names:
        folder = root / ident
        neutral = folder / "neutral.png"
        if not (neutral.is_file() and (folder / "neutral.landmarks.json").is_file()):
            skipped.append(f"{folder}: no neutral.png + neutral.landmarks.json (not rendered yet?)")
            continue
        images = identities.get(ident, {}).get("images") if identities else None
        stems = sorted(images) if images else [e for e in expressions]
        for stem in stems:
            expr = images[stem]["expression"] if images else stem
            at = float(images[stem].get("intensity", 1.0)) if images else 1.0
            # at full intensity a render below 1 is the target of the expression's key there, if the model has one
            label = expr if intensity != 1.0 else key_name(expr, at)
            if (expr == "neutral" or label not in expressions or (intensity != 1.0 and abs(at - intensity) > 1e-6)
                    or (at == 1.0 and stem != expr)):
                continue  # neutral itself, other intensities, expressions the model does not have
            target = folder / f"{stem}.png"
            if target.is_file():
                pairs.append(PairRecord(f"{name}/{ident}", neutral, target, label))
            elif images:
                skipped.append(f"{target}: listed in the manifest but missing")
    return DatasetScan(root, name, "synthetic", True, tuple(pairs), tuple(skipped))


def scan_plain(root: Path, name: str, expressions: tuple[str, ...]) -> DatasetScan:
    neutrals = {p.stem: p for p in _images(root / "neutral")}
    pairs, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "neutral"):
        expr = ALIASES.get(folder.name.lower())
        if expr is None or expr not in expressions:
            skipped.append(f"{folder}: not an expression of this model")
            continue
        for target in _images(folder):
            if target.stem in neutrals:
                pairs.append(PairRecord(f"{name}/{target.stem}", neutrals[target.stem], target, expr))
            else:
                skipped.append(f"{target}: no neutral/{target.stem}.* to pair with")
    return DatasetScan(root, name, "plain", False, tuple(pairs), tuple(skipped))


def scan_cfee(root: Path, name: str, expressions: tuple[str, ...]) -> DatasetScan:
    pairs, skipped = [], []
    for subject in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        coded = [(img, expression_from_name(img.stem)) for img in _images(subject)]
        neutrals = [img for img, expr in coded if expr == "neutral"]
        if len(neutrals) != 1:
            skipped.append(f"{subject}: needs exactly one neutral image, found {len(neutrals)}")
            continue
        for img, expr in coded:
            if expr is None:
                skipped.append(f"{img}: no expression code in the name")
            elif expr != "neutral" and expr in expressions:
                pairs.append(PairRecord(f"{name}/{subject.name}", neutrals[0], img, expr))
    return DatasetScan(root, name, "cfee", False, tuple(pairs), tuple(skipped))


def scan_dataset(root: str | Path, expressions: tuple[str, ...] = EXPRESSIONS, layout: Layout | None = None,
                 name: str | None = None, intensity: float = 1.0) -> DatasetScan:
    """Find the pairs of one data folder. ``name`` (default: the folder name) prefixes identities; ``intensity``: the
    targets' (below 1, rendered folders only: the renders at that intensity)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "data folder not found")
    layout = layout or detect_layout(root)
    if layout == "synthetic":
        scan = scan_synthetic(root, name or root.resolve().name, tuple(expressions), intensity)
    elif intensity != 1.0:
        raise InputError(root, f"no targets at intensity {intensity:g} in this {layout} layout: only rendered folders "
                               "(`dataset render --intensities`) hold partial expressions")
    else:
        scanner = {"plain": scan_plain, "cfee": scan_cfee}[layout]
        scan = scanner(root, name or root.resolve().name, tuple(expressions))
    if not scan.pairs:
        why = f" ({scan.skipped[0]})" if scan.skipped else ""
        raise InputError(root, f"no usable neutral/expression pairs in this {layout} layout{why}")
    return scan
