"""Tuned numbers live in reggan_plugin/tuning.py: the edit's, the crop's and the filters' modules define none."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reggan_plugin"
SCANNED = ("edit", "geometry", "imaging")
UPPER = re.compile(r"_?[A-Z][A-Z0-9_]*")
# Numbers that stay with their module: not tuned to make a picture or a metric right.
ALLOWED = {
    "edit/calibration.py": {"MAX_FLOW_PX"},  # a bound a model file's metadata is checked against, not a tuned value
    "geometry/align.py": {
        "ARCFACE_112",  # the published insightface template
        "CANONICAL_BOX",  # measured: a mean face fitted to the template
        "_EPS",  # a numerical guard
    },
    "geometry/resample.py": {"_REMAP_ROW"},  # cv2.remap's limit on a map's side
    "imaging/filters.py": {
        "BAND_ROWS",  # a memory bound: the same result pixel for pixel whatever it is
        "_IMMERKAER",  # Immerkaer's noise-estimation kernel
    },
    "imaging/tone.py": {"REC601_LUMA", "REC709_LUMA"},  # the standards' luma weights
}


def _numeric(node: ast.expr) -> bool:
    """A number, or an expression, tuple or list of numbers only (or ``np.array`` of one)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return _numeric(node.operand)
    if isinstance(node, ast.BinOp):
        return _numeric(node.left) and _numeric(node.right)
    if isinstance(node, (ast.Tuple, ast.List)):
        return bool(node.elts) and all(_numeric(e) for e in node.elts)
    if isinstance(node, ast.Call):
        return bool(node.args) and _numeric(node.args[0])
    return False


def _numeric_constants(path: Path) -> set[str]:
    """The UPPER_CASE module-level names ``path`` binds to numbers."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if (
            isinstance(node, ast.AnnAssign) and node.value is not None) else []
        value = getattr(node, "value", None)
        for target in targets:
            pairs = (zip(target.elts, value.elts) if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                     else [(target, value)])
            found |= {t.id for t, v in pairs if isinstance(t, ast.Name) and UPPER.fullmatch(t.id) and _numeric(v)}
    return found


def test_tuned_numbers_are_defined_in_tuning_only() -> None:
    stray = {}
    for folder in SCANNED:
        for path in sorted((PACKAGE / folder).glob("*.py")):
            name = f"{folder}/{path.name}"
            extra = _numeric_constants(path) - ALLOWED.get(name, set())
            if extra:
                stray[name] = sorted(extra)
    assert not stray, f"tuned numbers belong in reggan_plugin/tuning.py (or, if not tuned, in ALLOWED): {stray}"


def test_the_allow_list_names_numbers_that_exist() -> None:
    for name, allowed in ALLOWED.items():
        assert allowed <= _numeric_constants(PACKAGE / name), name


def test_the_check_sees_a_stray_number(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('PATH = "x"\nRADII = (0.1, -0.2)\nGAIN: float = 1.5 / 2\nA, KEY = 3, "k"\nNAMES = ("a",)\n')
    assert _numeric_constants(module) == {"RADII", "GAIN", "A"}
