"""Import a curves CSV (reggan_plugin.sequence.curves' format, with a ``frame`` column) onto the Mix sliders as keyframes.

Each row keys all six sliders at its frame (an expression the file leaves out is keyed 0), with linear
interpolation and held beyond the first and last key, as `ExpressionCurves.mix_at` reads the file. The sliders' meaning
is the add-on's (docs/BLENDER.md, *Mix sliders*: their sum is the intensity; all 0 is the frame as rendered), so an
imported file renders as `render --curves` does only on rows that sum to 1. Live Link Face / ARKit captures are refused
by `read_curves` (the model has no ARKit channels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

from . import jobs, mix


def key_curves(scene: Any, curves: Any) -> int:
    """Replace the sliders' keys by `curves`' rows (ExpressionCurves with frame keys); returns the keys per slider."""
    if curves.keys is None:
        raise LookupError(f"{curves.path}: the Mix sliders need a 'frame' column (the frame each row keys)")
    settings = scene.reggan
    for fcurve in list(mix.scene_fcurves(scene)):  # the file's keys replace the sliders' old ones
        if fcurve.data_path in {mix.data_path(name) for name in mix.MIX_EXPRESSIONS}:
            mix.scene_fcurves(scene).remove(fcurve)
    for row, frame in enumerate(curves.keys):
        weights = dict(zip(curves.names, curves.values[row]))
        for name in mix.MIX_EXPRESSIONS:
            setattr(settings, mix.prop_name(name), float(weights.get(name, 0.0)))
            settings.keyframe_insert(mix.prop_name(name), frame=int(frame))
    for fcurve in mix.scene_fcurves(scene):
        if fcurve.data_path in {mix.data_path(name) for name in mix.MIX_EXPRESSIONS}:
            for point in fcurve.keyframe_points:
                point.interpolation = "LINEAR"  # as the runtime interpolates between a file's keys
    settings.use_mix = True
    return len(curves.keys)


class REGGAN_OT_import_mix_curves(bpy.types.Operator):
    """Key the Mix sliders from a curves CSV (a frame column and expression columns, docs/CURVES.md)"""

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
        from reggan_plugin.sequence.curves import read_curves

        try:
            curves = read_curves(Path(bpy.path.abspath(self.filepath)))
            count = key_curves(context.scene, curves)
        except (LookupError, RegganError) as exc:
            message = jobs.panel_words(str(exc))
            jobs.JOBS.status = jobs.JobStatus(label=self.bl_label, state="failed", message=message)
            self.report({"WARNING"} if bpy.app.background else {"ERROR"}, message)
            return {"CANCELLED"}
        message = f"{Path(self.filepath).name}: {count} key(s) on the Mix sliders"
        jobs.JOBS.status = jobs.JobStatus(label=self.bl_label, state="done", message=message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


classes = (REGGAN_OT_import_mix_curves,)
