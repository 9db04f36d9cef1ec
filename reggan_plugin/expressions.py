"""The expression vocabulary shared by training, export, runtime and the add-on.

Two vocabularies: the six expressions of the face model, and ARKit's blendshape channels, which the channel model
edits one by one and which add up (a mix of channels may sum past 1). The order is part of the model artifact's
contract: a model stores its own list in its metadata and the runtime always trusts that list; these tuples are only
the defaults for new models.
"""
from __future__ import annotations

from collections.abc import Iterable
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
    """Whether every one of ``names`` is an ARKit channel (and there is at least one)."""
    listed = [n for n in names if n != "neutral"]
    return bool(listed) and all(arkit_name(n) is not None for n in listed)
