"""The Mix sliders: one keyframable weight per expression, read at the frame being edited.

A frame's sliders become one `EditConfig` (`slider_edit`): the sliders' sum is how far the face moves from the
picture as it is (the edit's intensity, times the panel's Intensity) and their shares are the mix. So all sliders
at 0 leave the frame as it was rendered, bit for bit (intensity 0), "happy" at 1 is exactly the single-expression
happy edit, and "happy" keyed 0 -> 1 fades the smile in from the rendered face, not from the model's neutral face.
Sliders summing to more than 1 are refused (`MixError`, shown in the panel): scaling them down would render weights
the animator never keyed.

The sliders are evaluated at a frame number from the scene's own animation (`slider_values`: each F-curve's
`evaluate(frame)`), never by `scene.frame_set`: moving the playhead would run every frame-change handler and
re-evaluate the whole scene (simulations, drivers, other add-ons) behind the user's back, and the render hook
and "Apply to Frames" must both read the same numbers for a frame whatever frame the UI shows.
Only the scene's active action is read (not NLA strips or drivers on the sliders).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reggan_plugin.config import EditConfig
from reggan_plugin.expressions import EXPRESSIONS

MIX_EXPRESSIONS: tuple[str, ...] = tuple(e for e in EXPRESSIONS if e != "neutral")
SUM_SLACK = 1e-6  # as the runtime's `check_mix`: decimal rounding of keyed values


class MixError(ValueError):
    """The sliders at a frame sum to more than 1."""


def prop_name(expression: str) -> str:
    return f"mix_{expression}"


def data_path(expression: str) -> str:
    """The F-curve data path of a slider on the scene (`scene.reggan.mix_happy`)."""
    return f"reggan.{prop_name(expression)}"


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


def slider_values(scene: Any, frame: int) -> dict[str, float]:
    """Each slider's weight at `frame`: its F-curve evaluated there (clamped to [0, 1] as the property is), else
    its value (not animated)."""
    curves = {fc.data_path: fc for fc in scene_fcurves(scene)}
    values = {}
    for name in MIX_EXPRESSIONS:
        curve = curves.get(data_path(name))
        value = curve.evaluate(frame) if curve is not None else getattr(scene.reggan, prop_name(name))
        values[name] = min(1.0, max(0.0, float(value)))
    return values


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


def frame_edit(scene: Any, frame: int) -> EditConfig:
    """The edit of `scene`'s frame `frame`: the Mix sliders there, or the single expression when they are off."""
    from .settings import edit_config

    settings = scene.reggan
    if not settings.use_mix:
        return edit_config(settings)
    return slider_edit(slider_values(scene, frame), settings.intensity, f"frame {frame}")
