"""The expression vocabulary shared by training, export, runtime and the add-on.

Two vocabularies: the six expressions of the face model, and ARKit's blendshape channels, which the channel model
edits one by one and which add up (a mix of channels may sum past 1). The order is part of the model artifact's
contract: a model stores its own list in its metadata and the runtime always trusts that list; these tuples are only
the defaults for new models.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Literal, get_args

Expression = Literal["neutral", "happy", "sad", "surprised", "angry", "disgusted", "fearful"]
EXPRESSIONS: tuple[str, ...] = get_args(Expression)

# ARKit's blendshape locations (ARFaceAnchor.BlendShapeLocation), in Apple's order; Live Link Face writes them
# capitalised (EyeBlinkLeft). Matched without regard to case.
ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
_ARKIT_BY_FOLDED = {name.lower(): name for name in ARKIT_BLENDSHAPES}
# The channels the bundled channel model has: the face model its renders come from has no tongue shape
MODELLED_CHANNELS: tuple[str, ...] = tuple(name for name in ARKIT_BLENDSHAPES if name != "tongueOut")
# Channels by the part of the face they move: a channel is in the first group one of whose prefixes starts its name
CHANNEL_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Brows", ("brow",)), ("Eyes", ("eye",)), ("Cheeks and Nose", ("cheek", "nose")), ("Jaw", ("jaw",)),
    ("Mouth", ("mouth",)),
)


def channel_group(channel: str) -> str:
    """The group of `CHANNEL_GROUPS` that ``channel`` (an ARKit name) is in."""
    return next(group for group, prefixes in CHANNEL_GROUPS if channel.startswith(prefixes))


def arkit_name(name: str) -> str | None:
    """``name`` as ARKit spells it (``MouthSmileLeft`` -> ``mouthSmileLeft``: Live Link Face capitalises), or None
    when it is not a blendshape channel."""
    return _ARKIT_BY_FOLDED.get(name.strip().lower())


def is_channel_mix(names: Iterable[str]) -> bool:
    """Whether every one of ``names`` is an ARKit channel or a key of one (and there is at least one)."""
    listed = [key_of(n)[0] for n in names if n != "neutral"]
    return bool(listed) and all(arkit_name(n) is not None for n in listed)


# A model expression "eyeBlinkLeft@0.5" is a key: the channel's change at weight 0.5, fitted on renders at that
# weight. A channel with keys is interpolated piecewise-linearly between them (`key_weights`), as its image change is
# not linear in its weight where a lid or the lips cover what lies behind them.
KEY_MARK = "@"


def key_name(expression: str, at: float) -> str:
    """The name of ``expression``'s key at weight ``at`` (``at`` 1 is the expression itself)."""
    return expression if at >= 1.0 else f"{expression}{KEY_MARK}{at:g}"


def key_of(name: str) -> tuple[str, float]:
    """``"eyeBlinkLeft@0.5"`` -> ``("eyeBlinkLeft", 0.5)``; a name that is not a key -> ``(name, 1.0)``."""
    base, mark, at = name.partition(KEY_MARK)
    try:
        return (base, float(at)) if mark else (name, 1.0)
    except ValueError:
        return name, 1.0


def key_weights(weight: float, keys: Iterable[float]) -> dict[float, float]:
    """A weight in [0, 1] as weights over an expression's keys (their weights in (0, 1); 1, the expression itself, is
    always one): the hat functions of linear interpolation between 0 (no change), the keys and 1. They sum to at most
    1; the rest is neutral."""
    points = [0.0, *sorted(set(keys) | {1.0})]
    weight = min(max(float(weight), 0.0), 1.0)
    for lo, hi in pairwise(points):
        if weight <= hi:
            t = (weight - lo) / (hi - lo)
            return {k: w for k, w in ((lo, 1.0 - t), (hi, t)) if k > 0.0 and w > 0.0}
    return {1.0: 1.0}
