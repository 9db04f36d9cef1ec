"""Blender properties: the panel's settings (per scene) and the add-on preferences.

Every default comes from the runtime's config dataclasses (reggan_plugin.config), the single source of
defaults shared with the CLI; tests/test_blender_addon.py checks that they agree.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    IntVectorProperty,
    PointerProperty,
    StringProperty,
)

from reggan_plugin.config import (
    BACKENDS,
    PRECISIONS,
    STAGES,
    SUBJECTS,
    EditConfig,
    InferenceConfig,
    SequenceConfig,
)
from reggan_plugin.expressions import EXPRESSIONS

from . import mix

ADDON = __package__  # the extension's module name (bl_ext.<repo>.reggan_expressions when installed)


def default(config: type, name: str) -> Any:
    """The default of a config dataclass field (the one place defaults are defined)."""
    for item in dataclasses.fields(config):
        if item.name == name:
            return item.default
    raise KeyError(f"{config.__name__} has no field {name!r}")


BACKEND_LABELS = {
    "auto": ("Auto", "The fastest backend that works here (TensorRT, then CUDA, then CPU); the panel says which"),
    "cpu": ("CPU", "onnxruntime on the CPU: works everywhere"),
    "cuda": ("CUDA", "NVIDIA GPU through onnxruntime-gpu or torch; an error (never a silent CPU run) if unavailable"),
    "tensorrt": ("TensorRT", "NVIDIA TensorRT engines, built once per GPU and cached"),
}
STAGE_LABELS = {
    "full": ("Full", "Regression stage and refinement network (best quality)"),
    "regression": ("Preview", "Regression stage alone: fast, blurrier"),
}
SUBJECT_LABELS = {
    "auto": ("Auto", "Each picture's faces read as a render or a photograph of a person"),
    "render": ("Render", "The edit as the model was fitted on renders"),
    "photo": ("Photograph", "A photograph of a person: the model's motion alone, its own skin and lips moved (the "
                            "model's paint only inside an opened mouth)"),
}
PREFERENCES_BACKEND = "PREFERENCES"
FACE_SOURCES = (
    ("AUTO", "Detect", "Find faces with the bundled detector (may miss stylised faces)"),
    ("SCENE", "From Scene", "Project the head (object, bone or vertex group) through the scene camera: exact, per frame"),
    ("BOX", "Box", "A fixed box in pixels (x, y from the top-left corner, width, height)"),
    ("WHOLE", "Whole Image", "The whole image is the face (already-cropped faces, face texture tiles)"),
)

MIX_HELP = ("How {} the face is at this frame (keyframe it). The sliders' sum, at most 1, is how far the face moves "
            "from the picture as rendered (0: untouched); their shares are the mix")
CHANNEL_HELP = ("How far ARKit's {} moves the face at this frame (keyframe it), on the channel model. Channels add; "
                "all at 0 leaves the picture as rendered")


def _only_mix(self: Any, context: Any) -> None:
    """Use Mix Sliders and Use Channel Sliders exclude each other: turning one on turns the other off."""
    if self.use_mix and self.use_channels:
        self.use_channels = False


def _only_channels(self: Any, context: Any) -> None:
    if self.use_channels and self.use_mix:
        self.use_mix = False


def _enum(names: tuple[str, ...], labels: dict[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    return [(name, *labels.get(name, (name.title(), name))) for name in names]


class RegganPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    backend: EnumProperty(
        name="Default Backend", items=_enum(BACKENDS, BACKEND_LABELS), default=default(InferenceConfig, "backend"),
        description="Backend used when a scene's backend is 'Default'",
    )
    precision: EnumProperty(
        name="Precision", items=[(p, p, f"{p} inference (fp16 on GPU backends only)") for p in PRECISIONS],
        default=default(InferenceConfig, "precision"),
    )
    batch: IntProperty(name="Batch", min=1, max=256, default=default(InferenceConfig, "batch"), description="Faces per inference call")
    model_path: StringProperty(
        name="Model File", subtype="FILE_PATH", default="",
        description="RegGAN ONNX face model used when a scene names none (empty: the model bundled with the add-on). "
                    "The Channel sliders use the bundled channel model",
    )
    cache_dir: StringProperty(
        name="Engine Cache", subtype="DIR_PATH", default="",
        description="Where TensorRT engines are cached (empty: the extension's user folder)",
    )

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(self, "backend")
        row = layout.row()
        row.prop(self, "precision")
        row.prop(self, "batch")
        layout.prop(self, "model_path")
        layout.label(text=f"Bundled model: {bundled_model_text()}")
        layout.prop(self, "cache_dir")
        layout.label(text=f"Engines go to: {engine_cache_dir(self)}")


class RegganSettings(bpy.types.PropertyGroup):
    expression: EnumProperty(
        name="Expression", items=[(e, e.title(), f"Make the face {e}") for e in EXPRESSIONS],
        default=default(EditConfig, "expression"),
    )
    intensity: FloatProperty(
        name="Intensity", min=0.0, max=1.0, subtype="FACTOR", default=default(EditConfig, "intensity"),
        description="0 keeps the face as it is, 1 is the full expression",
    )
    use_mix: BoolProperty(
        name="Use Mix Sliders", default=False,
        description="Edit with the Mix sliders (keyframable, read at each frame edited) instead of the one Expression",
        update=_only_mix,
    )
    use_channels: BoolProperty(
        name="Use Channel Sliders", default=False,
        description="Edit with the Channel sliders (one per ARKit blendshape, keyframable, read at each frame edited) "
                    "on the channel model, instead of the one Expression or the Mix sliders",
        update=_only_channels,
    )
    mix_happy: FloatProperty(name="Happy", min=0.0, max=1.0, subtype="FACTOR", description=MIX_HELP.format("happy"))
    mix_sad: FloatProperty(name="Sad", min=0.0, max=1.0, subtype="FACTOR", description=MIX_HELP.format("sad"))
    mix_surprised: FloatProperty(name="Surprised", min=0.0, max=1.0, subtype="FACTOR",
                                 description=MIX_HELP.format("surprised"))
    mix_angry: FloatProperty(name="Angry", min=0.0, max=1.0, subtype="FACTOR", description=MIX_HELP.format("angry"))
    mix_disgusted: FloatProperty(name="Disgusted", min=0.0, max=1.0, subtype="FACTOR",
                                 description=MIX_HELP.format("disgusted"))
    mix_fearful: FloatProperty(name="Fearful", min=0.0, max=1.0, subtype="FACTOR", description=MIX_HELP.format("fearful"))
    bake_expressions: EnumProperty(
        name="Expressions", options={"ENUM_FLAG"},
        items=[(e, e.title(), f"Bake a map of the {e} face") for e in EXPRESSIONS if e != "neutral"],
        default={e for e in EXPRESSIONS if e != "neutral"},
        description="The expressions Bake Expression Maps bakes (those the model knows)",
    )
    backend: EnumProperty(
        name="Backend",
        items=[(PREFERENCES_BACKEND, "Default", "The backend chosen in the add-on preferences"), *_enum(BACKENDS, BACKEND_LABELS)],
        default=PREFERENCES_BACKEND,
    )
    stage: EnumProperty(name="Quality", items=_enum(STAGES, STAGE_LABELS), default=default(InferenceConfig, "stage"))
    # Blender's pictures are renders: a realistic avatar's must not read as a photograph
    subject: EnumProperty(name="Subject", items=_enum(SUBJECTS, SUBJECT_LABELS), default="render")
    model_path: StringProperty(
        name="Model File", subtype="FILE_PATH", default="",
        description="RegGAN ONNX model (empty: the preferences' model, else the bundled one; with the Channel sliders "
                    "the bundled channel model)",
    )
    face_source: EnumProperty(name="Faces", items=FACE_SOURCES, default="AUTO")
    box: IntVectorProperty(
        name="Box", size=4, min=0, default=(0, 0, 256, 256),
        description="Face box in pixels: x and y of the top-left corner (y down, as in image files), width, height",
    )
    head_object: PointerProperty(name="Head", type=bpy.types.Object, description="Head mesh, or the armature holding the head bone")
    head_bone: StringProperty(name="Bone", description="Head bone (armatures): a sphere through its head and tail")
    head_vertex_group: StringProperty(name="Vertex Group", description="Face vertex group (meshes): the box around its vertices")
    trust_box: BoolProperty(
        name="Trust Box", default=not default(InferenceConfig, "find_in_box"),
        description="Align on the box as it is. Off: the box is a hint, the face the detector finds inside it gives "
                    "the landmarks (the box as it is where the detector finds none)",
    )
    box_margin: FloatProperty(
        name="Margin", min=-0.5, max=2.0, default=0.0, subtype="FACTOR",
        description="Grow (or shrink, negative) the projected box by this fraction",
    )
    frames_dir: StringProperty(name="Frames", subtype="DIR_PATH", description="Folder of rendered frames (default: the render output folder)")
    out_dir: StringProperty(name="Output", subtype="DIR_PATH", description="New folder for the edited frames (default: <frames>_reggan_<expression>)")
    skip_existing: BoolProperty(name="Skip Existing", default=default(SequenceConfig, "skip_existing"), description="Resume: keep frames already in the output folder")
    smooth: FloatProperty(
        name="Smoothing", min=0.0, max=1.0, default=default(SequenceConfig, "smooth"),
        description="Temporal smoothing of detected faces (0 = off)",
    )
    auto_apply: BoolProperty(
        name="Apply After Each Rendered Frame", default=False,
        description="While rendering an animation, edit every written frame into a sibling folder <output>_reggan_<expression>",
    )


for _channel in mix.MODELLED_CHANNELS:  # one keyframable slider per channel (channel_jaw_open, ...), made before registering
    RegganSettings.__annotations__[mix.channel_prop(_channel)] = FloatProperty(
        name=mix.channel_label(_channel), min=0.0, max=1.0, subtype="FACTOR",
        description=CHANNEL_HELP.format(_channel),
    )

classes = (RegganPreferences, RegganSettings)


def preferences(context: Any = None) -> RegganPreferences | None:
    """The add-on preferences, or None when the add-on was registered without being enabled (scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON)
    return addon.preferences if addon is not None else None


def bundled_model_text() -> str:
    from reggan_plugin.artifact import default_model_path

    path = default_model_path()
    return str(path) if path.is_file() else "not installed (choose a model file)"


def engine_cache_override(prefs: RegganPreferences | None) -> Path | None:
    """The TensorRT engine cache the add-on asks for: the preference, else the extension's user folder
    (`bpy.utils.extension_path_user`); None (the runtime's own default) when not run as an extension."""
    if prefs is not None and prefs.cache_dir:
        return Path(bpy.path.abspath(prefs.cache_dir))
    if ADDON and ADDON.startswith("bl_ext."):
        return Path(bpy.utils.extension_path_user(ADDON, path="engines", create=True))
    return None


def engine_cache_dir(prefs: RegganPreferences | None) -> Path:
    """Where engines go (for display): the override, else the runtime's default cache dir."""
    override = engine_cache_override(prefs)
    if override is not None:
        return override
    from reggan_plugin.backends.engine_cache import default_cache_dir

    return default_cache_dir()


def model_path(settings: RegganSettings, prefs: RegganPreferences | None, channels: bool = False) -> Path | None:
    """The model file: the scene's Model File when set; else, for the Channel sliders, the bundled channel model
    (ModelError when it is not installed), and for the face model the preferences' Model File, else the bundled one."""
    if settings.model_path:
        return Path(bpy.path.abspath(settings.model_path))
    if channels:
        from reggan_plugin.artifact import channels_model_path
        from reggan_plugin.errors import ModelError

        path = channels_model_path()
        if not path.is_file():
            raise ModelError(path, "the channel model the Channel sliders drive is not installed; choose a channel "
                                   "model as the panel's Model File")
        return path
    if prefs is not None and prefs.model_path:
        return Path(bpy.path.abspath(prefs.model_path))
    return None  # the bundled model (InferenceConfig.model's default)


def backend(settings: RegganSettings, prefs: RegganPreferences | None) -> str:
    if settings.backend != PREFERENCES_BACKEND:
        return settings.backend
    return prefs.backend if prefs is not None else default(InferenceConfig, "backend")


def inference_config(settings: RegganSettings, prefs: RegganPreferences | None,
                     channels: bool | None = None) -> InferenceConfig:
    """The panel's inference settings. `channels`: whether the Channel sliders drive the edit (the channel model);
    None: as the panel says (`mix.driver`)."""
    if channels is None:
        channels = mix.driver(settings) == mix.CHANNEL
    return InferenceConfig(
        model=model_path(settings, prefs, channels),
        backend=backend(settings, prefs),  # type: ignore[arg-type]
        precision=prefs.precision if prefs is not None else default(InferenceConfig, "precision"),
        batch=prefs.batch if prefs is not None else default(InferenceConfig, "batch"),
        stage=settings.stage,
        subject=settings.subject,  # type: ignore[arg-type]
        find_in_box=not settings.trust_box,
    )


def edit_config(settings: RegganSettings) -> EditConfig:
    return EditConfig(expression=settings.expression, intensity=float(settings.intensity))


def register_properties() -> None:
    bpy.types.Scene.reggan = PointerProperty(type=RegganSettings)


def unregister_properties() -> None:
    del bpy.types.Scene.reggan
