"""Import a curves CSV onto the sliders as keyframes: expression columns (reggan_plugin.sequence.curves' format, with a
``frame`` column) onto the Mix sliders, ARKit blendshape columns (a Live Link Face capture, or any ARKit-column curves
CSV) onto the Channel sliders.

Keys are linear between a file's rows and held beyond the first and last, as `ExpressionCurves.mix_at` reads the file.

- Expression columns: each row keys all six Mix sliders at its frame (an expression the file leaves out is keyed 0).
  The sliders' meaning is the add-on's (docs/BLENDER.md, *Mix sliders*: their sum is the intensity; all 0 is the frame
  as rendered), so an imported file renders as `render --curves` does only on rows that sum to 1. A file without a
  ``frame`` column is refused.
- ARKit columns, read as the runtime reads them for the channel model (`read_curves` with the channel model's
  channels: any case, Live Link Face's Timecode, BlendShapeCount and rotation columns read past, tongueOut dropped):
  each of the file's channels is keyed at every row; the channels it leaves out are set to 0 without keys. With a
  ``frame`` column a row keys that frame; without one (Live Link Face writes a row per captured frame) row i keys the
  scene's frame_start + i.

The file's keys replace the old keys of the sliders it drives, and turns those sliders on (Use Mix Sliders or Use
Channel Sliders).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.props import StringProperty

from . import jobs, mix


def _remove_keys(scene: Any, paths: set[str]) -> None:
    """Remove the F-curves (every key) of the slider data paths `paths`."""
    for fcurve in list(mix.scene_fcurves(scene)):
        if fcurve.data_path in paths:
            mix.scene_fcurves(scene).remove(fcurve)


def _replace_keys(scene: Any, names: Sequence[str], prop: Callable[[str], str], frames: np.ndarray,
                  values: np.ndarray) -> None:
    """Key the sliders `names` (`prop`: each one's property) at `frames` with `values` [K, len(names)], linear between
    keys, after removing every old key of the sliders `names`."""
    settings = scene.reggan
    _remove_keys(scene, {mix.slider_path(prop(name)) for name in names})  # the file's keys replace the old ones
    for column, name in enumerate(names):  # one key each makes the F-curves (and the action, its slot)
        setattr(settings, prop(name), float(values[0, column]))
        settings.keyframe_insert(prop(name), frame=int(frames[0]))
    curves = {fc.data_path: fc for fc in mix.scene_fcurves(scene)}
    for column, name in enumerate(names):  # then all the rows at once (a capture is thousands of keys a channel)
        fcurve = curves[mix.slider_path(prop(name))]
        points = fcurve.keyframe_points
        points.add(len(frames) - len(points))
        coordinates = np.stack([frames.astype(np.float32), values[:, column].astype(np.float32)], axis=1)
        points.foreach_set("co", coordinates.ravel())
        for point in points:
            point.interpolation = "LINEAR"  # as the runtime interpolates between a file's keys
        fcurve.update()


def key_curves(scene: Any, curves: Any) -> int:
    """Replace the Mix sliders' keys by `curves`' rows (ExpressionCurves of expressions, with frame keys); returns the
    keys per slider."""
    if curves.keys is None:
        raise LookupError(f"{curves.path}: the Mix sliders need a 'frame' column (the frame each row keys)")
    columns = [curves.names.index(name) if name in curves.names else None for name in mix.MIX_EXPRESSIONS]
    values = np.stack([curves.values[:, c] if c is not None else np.zeros(len(curves.keys)) for c in columns], axis=1)
    _replace_keys(scene, mix.MIX_EXPRESSIONS, mix.prop_name, np.asarray(curves.keys), values)
    scene.reggan.use_mix = True
    return len(curves.keys)


def key_channel_curves(scene: Any, curves: Any) -> tuple[int, int, int]:
    """Replace the Channel sliders' keys by `curves`' rows (ExpressionCurves of ARKit channels): row i at its frame
    key, or at the scene's frame_start + i without one; the channels the file leaves out are set to 0, unkeyed.
    Returns (keys per channel, first frame, last frame)."""
    settings = scene.reggan
    count = len(curves.values)
    frames = np.asarray(curves.keys) if curves.keys is not None else scene.frame_start + np.arange(count)
    names = tuple(curves.names)
    _remove_keys(scene, {mix.channel_data_path(name) for name in mix.MODELLED_CHANNELS})  # the file's or not
    for name in mix.MODELLED_CHANNELS:
        if name not in names:  # left out of the file: 0 on every frame
            setattr(settings, mix.channel_prop(name), 0.0)
    _replace_keys(scene, names, mix.channel_prop, frames, np.asarray(curves.values))
    settings.use_channels = True
    return count, int(frames[0]), int(frames[-1])


def import_curves(scene: Any, path: Path) -> str:
    """Key the sliders from the curves CSV at `path` (expression columns: the Mix sliders; ARKit columns: the
    Channel sliders); returns what was keyed, in words. InputError (the runtime's) or LookupError when refused."""
    from reggan_plugin.sequence.curves import read_curves, read_table

    if read_table(path).arkit:
        count, first, last = key_channel_curves(scene, read_curves(path, ("neutral", *mix.MODELLED_CHANNELS)))
        return f"{path.name}: {count} key(s) on the Channel sliders (frames {first}-{last})"
    return f"{path.name}: {key_curves(scene, read_curves(path))} key(s) on the Mix sliders"


class REGGAN_OT_import_mix_curves(bpy.types.Operator):
    """Key the Mix sliders from a curves CSV (a frame column and expression columns, docs/CURVES.md), or the Channel
    sliders from a Live Link Face capture or other ARKit-column CSV"""

    bl_idname = "reggan.import_mix_curves"
    bl_label = "Import Curves CSV"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Curves CSV", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def invoke(self, context: Any, event: Any) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> set[str]:
        from reggan_plugin.errors import RegganError

        try:
            message = import_curves(context.scene, Path(bpy.path.abspath(self.filepath)))
        except (LookupError, RegganError) as exc:
            message = jobs.panel_words(str(exc))
            jobs.JOBS.status = jobs.JobStatus(label=self.bl_label, state="failed", message=message)
            self.report({"WARNING"} if bpy.app.background else {"ERROR"}, message)
            return {"CANCELLED"}
        jobs.JOBS.status = jobs.JobStatus(label=self.bl_label, state="done", message=message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


classes = (REGGAN_OT_import_mix_curves,)
