"""The panel, drawn in two places: the Image Editor sidebar ("RegGAN" tab) and Render Properties; Bake Expression
Maps in the 3D Viewport sidebar ("RegGAN" tab) and under the Render Properties panel."""
from __future__ import annotations

from typing import Any

import bpy

from . import engine, mix
from .handlers import HOOK
from .jobs import JOBS


def draw_settings(layout: Any, context: Any) -> None:
    s = context.scene.reggan
    col = layout.column(align=True)
    if mix.driver(s) == mix.EXPRESSION:
        col.prop(s, "expression")
    col.prop(s, "intensity", slider=True)
    draw_mix(layout, context)
    draw_channels(layout, context)
    col = layout.column(align=True)
    col.prop(s, "backend")  # every drop-down says what it chooses
    col.prop(s, "stage")
    layout.prop(s, "subject")
    layout.prop(s, "model_path")

    layout.prop(s, "face_source")
    if s.face_source == "BOX":
        layout.prop(s, "box")
        layout.prop(s, "trust_box")
    elif s.face_source == "SCENE":
        layout.prop(s, "head_object")
        head = s.head_object
        if head is not None and head.type == "ARMATURE":
            layout.prop_search(s, "head_bone", head.data, "bones")
        elif head is not None and head.type == "MESH":
            layout.prop_search(s, "head_vertex_group", head, "vertex_groups")
        layout.prop(s, "box_margin")
        layout.prop(s, "trust_box")
        if context.scene.camera is None:
            layout.label(text="The scene has no camera", icon="ERROR")


def _slider_box(layout: Any, settings: Any, toggle: str) -> Any:
    """A box headed by a group's toggle and the curves import; the box when the toggle is on, else None."""
    box = layout.box()
    row = box.row()
    row.prop(settings, toggle)
    row.operator("reggan.import_mix_curves", text="", icon="IMPORT")
    return box if getattr(settings, toggle) else None


def draw_mix(layout: Any, context: Any) -> None:
    """The "Mix" group: the toggle, and with it on the six keyframable sliders and what they sum to at this frame."""
    s = context.scene.reggan
    box = _slider_box(layout, s, "use_mix")
    if box is None:
        return
    col = box.column(align=True)
    for name in mix.MIX_EXPRESSIONS:
        col.prop(s, mix.prop_name(name), slider=True)
    frame = context.scene.frame_current
    try:
        mix.frame_edit(context.scene, frame)
    except mix.MixError as exc:
        box.label(text=str(exc), icon="ERROR")
    else:
        total = sum(mix.slider_values(context.scene, frame).values())
        box.label(text=f"Frame {frame}: {round(total * 100)}% of the way to the mix (0%: as rendered)", icon="INFO")


def draw_channels(layout: Any, context: Any) -> None:
    """The "Channels" group: the toggle, and with it on the Channel sliders in collapsible groups (brows, eyes, cheeks
    and nose, jaw, mouth; each header says how many of its channels are above 0 at this frame) and a line for the
    frame."""
    s = context.scene.reggan
    box = _slider_box(layout, s, "use_channels")
    if box is None:
        return
    frame = context.scene.frame_current
    values = mix.channel_values(context.scene, frame)
    for group, names in mix.grouped_channels().items():
        on = sum(1 for name in names if values[name] > 0.0)
        title = f"{group} ({on} on)" if on else group
        if hasattr(box, "panel"):  # Blender 4.1+: a collapsible layout panel, closed until opened
            header, body = box.panel(f"REGGAN_channels_{group.lower().replace(' ', '_')}", default_closed=True)
            header.label(text=title)
        else:
            box.label(text=title)
            body = box
        if body is not None:
            col = body.column(align=True)
            for name in names:
                col.prop(s, mix.channel_prop(name), slider=True)
    on = sum(1 for value in values.values() if value > 0.0)
    text = (f"Frame {frame}: {on} channel(s) on, on the channel model" if on
            else f"Frame {frame}: every channel at 0 (as rendered)")
    box.label(text=text, icon="INFO")


def draw_job(layout: Any) -> None:
    status = JOBS.status
    if status.active:
        row = layout.row(align=True)
        text = f"{status.label}: {status.done}/{status.total}" if status.total > 1 else f"{status.label}..."
        if hasattr(row, "progress"):  # Blender 4.0+
            row.progress(factor=status.factor, type="BAR", text=text)
        else:
            row.label(text=text)
        row.operator("reggan.cancel", text="", icon="CANCEL")
    elif status.state == "failed":
        box = layout.box()
        box.label(text=status.message, icon="ERROR")
        if status.hint:
            box.label(text=status.hint, icon="INFO")
            if "model" in status.hint.lower():
                box.operator("reggan.show_preferences", icon="PREFERENCES")
    elif status.message:
        icon = {"done": "CHECKMARK", "partial": "ERROR", "nothing": "ERROR"}.get(status.state, "INFO")
        layout.label(text=status.message, icon=icon)
    if HOOK.text():
        layout.label(text=HOOK.text(), icon="RENDER_ANIMATION")
    models = engine.loaded()
    if models:
        row = layout.row()
        row.label(text=models[0], icon="MEMORY")
        row.operator("reggan.release", text="", icon="X")


def draw_frames(layout: Any, context: Any) -> None:
    s = context.scene.reggan
    layout.prop(s, "frames_dir")
    layout.prop(s, "out_dir")
    row = layout.row()
    row.prop(s, "skip_existing")
    if s.face_source == "AUTO":
        row.prop(s, "smooth")
    layout.operator("reggan.apply_frames", icon="SEQUENCE")
    layout.prop(s, "auto_apply")


def draw_bake(layout: Any, context: Any) -> None:
    """Bake Expression Maps: which expressions, the button (for the active mesh), and the sliders that drive the
    baked maps in the material."""
    s = context.scene.reggan
    layout.label(text="Expressions to bake:")
    grid = layout.grid_flow(columns=3, even_columns=True, align=True)
    grid.prop(s, "bake_expressions")
    obj = context.active_object
    row = layout.row()
    row.operator("reggan.bake_expression_maps", icon="TEXTURE")
    if obj is None or obj.type != "MESH":
        layout.label(text="Select the head mesh", icon="INFO")
    col = layout.column(align=True)
    col.label(text="Map weights (Mix sliders):")
    for name in mix.MIX_EXPRESSIONS:
        if name in s.bake_expressions:
            col.prop(s, mix.prop_name(name), slider=True)


class REGGAN_PT_image_editor(bpy.types.Panel):
    bl_label = "RegGAN Expressions"
    bl_idname = "REGGAN_PT_image_editor"
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "RegGAN"

    def draw(self, context: Any) -> None:
        layout = self.layout
        draw_settings(layout, context)
        image = getattr(context.space_data, "image", None)
        col = layout.column(align=True)
        if image is not None and image.type == "RENDER_RESULT":
            col.operator("reggan.apply_render_result", icon="RENDER_RESULT")
        else:
            col.operator("reggan.apply_image", icon="IMAGE_DATA")
            if image is not None and bpy.data.images.get(image.name + " (before RegGAN)") is not None:
                col.operator("reggan.revert_image", icon="LOOP_BACK")
            col.operator("reggan.apply_render_result", icon="RENDER_RESULT")
        draw_job(layout)


class REGGAN_PT_image_editor_frames(bpy.types.Panel):
    bl_label = "Frame Sequence"
    bl_idname = "REGGAN_PT_image_editor_frames"
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "RegGAN"
    bl_parent_id = "REGGAN_PT_image_editor"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: Any) -> None:
        draw_frames(self.layout, context)


class REGGAN_PT_render(bpy.types.Panel):
    bl_label = "RegGAN Expressions"
    bl_idname = "REGGAN_PT_render"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        draw_settings(layout, context)
        layout.operator("reggan.apply_render_result", icon="RENDER_RESULT")
        draw_frames(layout, context)
        draw_job(layout)


class REGGAN_PT_view3d_bake(bpy.types.Panel):
    bl_label = "RegGAN Expression Maps"
    bl_idname = "REGGAN_PT_view3d_bake"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RegGAN"

    def draw(self, context: Any) -> None:
        layout = self.layout
        draw_bake(layout, context)
        draw_job(layout)


class REGGAN_PT_render_bake(bpy.types.Panel):
    bl_label = "Expression Maps"
    bl_idname = "REGGAN_PT_render_bake"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"
    bl_parent_id = "REGGAN_PT_render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: Any) -> None:
        draw_bake(self.layout, context)


classes = (REGGAN_PT_image_editor, REGGAN_PT_image_editor_frames, REGGAN_PT_render, REGGAN_PT_render_bake,
           REGGAN_PT_view3d_bake)
