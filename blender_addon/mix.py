"""The Mix and Channel sliders: one keyframable weight per expression, or per ARKit channel, read at the frame edited.

Which sliders drive the edit is the panel's choice (`driver`): the one Expression, the six Mix sliders, or the 51
Channel sliders (ARKit's blendshapes less tongueOut, which the channel model has no render of).

A frame's Mix sliders become one `EditConfig` (`slider_edit`): the sliders' sum is how far the face moves from the
picture as it is (the edit's intensity, times the panel's Intensity) and their shares are the mix. So all sliders
at 0 leave the frame as it was rendered, bit for bit (intensity 0), "happy" at 1 is exactly the single-expression
happy edit, and "happy" keyed 0 -> 1 fades the smile in from the rendered face, not from the model's neutral face.
Sliders summing to more than 1 are refused (`MixError`, shown in the panel): scaling them down would render weights
the animator never keyed.

A frame's Channel sliders become the channel model's edit (`channel_edit`): the channels above 0 as the expression,
each at its own weight (channels add: they may sum past 1), at the panel's Intensity; all of them at 0 is intensity
0, the frame as rendered, bit for bit, as with the Mix sliders.

The sliders are evaluated at a frame number from the scene's own animation (`slider_values`, `channel_values`: each
F-curve's `evaluate(frame)`), never by `scene.frame_set`: moving the playhead would run every frame-change handler
and re-evaluate the whole scene (simulations, drivers, other add-ons) behind the user's back, and the render hook
and "Apply to Frames" must both read the same numbers for a frame whatever frame the UI shows.
Only the scene's active action is read (not NLA strips or drivers on the sliders).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reggan_plugin.config import EditConfig
from reggan_plugin.expressions import CHANNEL_GROUPS, EXPRESSIONS, MODELLED_CHANNELS, channel_group

MIX_EXPRESSIONS: tuple[str, ...] = tuple(e for e in EXPRESSIONS if e != "neutral")
SUM_SLACK = 1e-6  # as the runtime's `check_mix`: decimal rounding of keyed values


EXPRESSION, MIX, CHANNEL = "EXPRESSION", "MIX", "CHANNELS"  # what drives the edit (`driver`)


class MixError(ValueError):
    """The sliders at a frame sum to more than 1."""


def prop_name(expression: str) -> str:
    return f"mix_{expression}"


def channel_prop(channel: str) -> str:
    """A Channel slider's property on the scene settings: ARKit's name in snake case (jawOpen -> channel_jaw_open)."""
    return "channel_" + re.sub(r"([A-Z])", r"_\1", channel).lower()


def channel_label(channel: str) -> str:
    """A Channel slider's label: ARKit's name in words (mouthSmileLeft -> Mouth Smile Left)."""
    return re.sub(r"([A-Z])", r" \1", channel).title()


def grouped_channels() -> dict[str, tuple[str, ...]]:
    """The channels of each panel group, in ARKit's order."""
    return {group: tuple(c for c in MODELLED_CHANNELS if channel_group(c) == group) for group, _ in CHANNEL_GROUPS}


def slider_path(identifier: str) -> str:
    """The F-curve data path of a slider's property on the scene settings (`mix_happy` -> `reggan.mix_happy`)."""
    return f"reggan.{identifier}"


def data_path(expression: str) -> str:
    """The F-curve data path of a Mix slider on the scene (`scene.reggan.mix_happy`)."""
    return slider_path(prop_name(expression))


def channel_data_path(channel: str) -> str:
    """The F-curve data path of a Channel slider on the scene (`scene.reggan.channel_jaw_open`)."""
    return slider_path(channel_prop(channel))


def driver(settings: Any) -> str:
    """What drives the edit: the Channel sliders (`use_channels`), the Mix sliders (`use_mix`) or the one Expression.
    The panel keeps the two toggles exclusive; were both set (a script writing the raw properties), channels win."""
    if settings.use_channels:
        return CHANNEL
    return MIX if settings.use_mix else EXPRESSION


def scene_fcurves(scene: Any) -> Any:
    """The F-curves of the scene's active action (its slot's channelbag on Blender 4.4+), or () when not animated."""
    animation = scene.animation_data
    action = animation.action if animation is not None else None
    if action is None:
        return ()
    if hasattr(animation, "action_slot"):  # Blender 4.4+: layered actions (Action.fcurves is gone in 5.0)
        from bpy_extras import anim_utils

        channelbag = anim_utils.action_get_channelbag_for_slot(action, animation.action_slot)
        return channelbag.fcurves if channelbag is not None else ()
    return action.fcurves


def values_at(scene: Any, frame: int, names: Iterable[str], prop: Callable[[str], str]) -> dict[str, float]:
    """Each named slider's weight at `frame` (`prop`: its property on the scene settings): its F-curve evaluated there
    (clamped to [0, 1] as the property is), else its value (not animated). The one reading of the sliders for the
    render hook, Apply to Frames and the panel."""
    curves = {fc.data_path: fc for fc in scene_fcurves(scene)}
    values = {}
    for name in names:
        identifier = prop(name)
        curve = curves.get(slider_path(identifier))
        value = curve.evaluate(frame) if curve is not None else getattr(scene.reggan, identifier)
        values[name] = min(1.0, max(0.0, float(value)))
    return values


def slider_values(scene: Any, frame: int) -> dict[str, float]:
    """Each Mix slider's weight at `frame` (`values_at`)."""
    return values_at(scene, frame, MIX_EXPRESSIONS, prop_name)


def channel_values(scene: Any, frame: int) -> dict[str, float]:
    """Each Channel slider's weight at `frame` (`values_at`), by ARKit's name."""
    return values_at(scene, frame, MODELLED_CHANNELS, channel_prop)


def slider_edit(mix: Mapping[str, float], intensity: float, where: str = "") -> EditConfig:
    """The edit for one frame's sliders: their shares as the mix, their sum times `intensity` as the intensity.
    MixError (naming `where`, e.g. "frame 12") when they sum to more than 1."""
    total = float(sum(mix.values()))
    if total > 1.0 + SUM_SLACK:
        shown = ", ".join(f"{name} {weight:.2f}" for name, weight in mix.items() if weight)
        raise MixError(f"{where + ': ' if where else ''}the Mix sliders sum to {total:.2f} ({shown}); "
                       "lower them to at most 1 in all")
    if total <= 0.0:
        return EditConfig(expression=dict(mix), intensity=0.0)  # the frame as it was, bit for bit
    shares = {name: weight / total for name, weight in mix.items() if weight > 0.0}
    return EditConfig(expression=shares, intensity=min(1.0, total) * float(intensity))


def channel_edit(channels: Mapping[str, float], intensity: float) -> EditConfig:
    """The channel model's edit for one frame's Channel sliders: the channels above 0 at their weights (they add, so
    they may sum past 1), at `intensity`; all at 0: intensity 0, the frame as it was, bit for bit."""
    weights = {name: float(weight) for name, weight in channels.items() if weight > 0.0}
    if not weights:
        return EditConfig(expression=dict(channels), intensity=0.0)
    return EditConfig(expression=weights, intensity=float(intensity))


def frame_edit(scene: Any, frame: int) -> EditConfig:
    """The edit of `scene`'s frame `frame`: the Channel sliders there, the Mix sliders there, or the single
    expression when neither drives it."""
    from .settings import edit_config

    settings = scene.reggan
    what = driver(settings)
    if what == CHANNEL:
        return channel_edit(channel_values(scene, frame), settings.intensity)
    if what == MIX:
        return slider_edit(slider_values(scene, frame), settings.intensity, f"frame {frame}")
    return edit_config(settings)
