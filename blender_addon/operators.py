"""Operators. Each reads what it needs from bpy on the main thread, starts a background job and returns
at once; the job's `finish` writes the result back on the main thread (see jobs.py)."""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

from . import engine, expression_maps, images, jobs, mix, scene_faces, settings
from .jobs import JOBS, Job

BACKUP_SUFFIX = " (before RegGAN)"


# -- helpers ---------------------------------------------------------------------------------------
def run_settings(context: Any, scene: Any = None) -> engine.RunSettings:
    """The frozen configs a worker gets: `scene`'s panel settings (default: the context's scene) and the preferences.
    The edit is the one of the scene's current frame (with Use Mix Sliders or Use Channel Sliders: those sliders there;
    MixError where the Mix sliders sum past 1); with the Channel sliders the model is the channel model."""
    prefs = settings.preferences(context)
    scene = scene or context.scene
    s = scene.reggan
    edit = mix.frame_edit(scene, scene.frame_current)
    return engine.RunSettings(settings.inference_config(s, prefs), edit, settings.engine_cache_override(prefs))


def output_tag(s: Any) -> str:
    """What names the default output folder (<frames>_reggan_<tag>): the expression, "mix" for the Mix sliders,
    "channels" for the Channel sliders."""
    return {mix.MIX: "mix", mix.CHANNEL: "channels"}.get(mix.driver(s), s.expression)


def given_faces(scene: Any, height: int, width: int) -> list | None:
    """Faces the main thread can compute (box, scene projection at the current frame); None: the
    worker locates them (detector or whole image)."""
    from reggan_plugin.faces import Face

    s = scene.reggan
    if s.face_source == "BOX":
        x, y, w, h = s.box
        return [Face(box=(x, y, max(w, 1), max(h, 1)), source="region")]
    if s.face_source == "SCENE":
        box = scene_face_box(scene)
        if box is None:
            return []
        rw, rh = scene_faces.render_size(scene)
        if (rw, rh) != (width, height):  # the image is not at render size: scale the box
            sx, sy = width / rw, height / rh
            box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        return [Face(box=box, source="given")]
    return None


def head_arguments(scene: Any) -> dict[str, Any]:
    s = scene.reggan
    if s.head_object is None:
        raise LookupError("'From Scene' needs a head object (mesh, or armature with a head bone)")
    return dict(
        obj=s.head_object, bone=s.head_bone if s.head_object.type == "ARMATURE" else "",
        vertex_group=s.head_vertex_group if s.head_object.type == "MESH" else "", margin=s.box_margin,
    )


def scene_face_box(scene: Any) -> tuple[float, float, float, float] | None:
    """The head's box at the scene's current frame, evaluated at that frame (during an animation render the
    view layer's depsgraph still holds the frame the UI shows), as "Apply to Frames" computes it."""
    head = head_arguments(scene)
    frame = scene.frame_current
    return scene_faces.scene_face_boxes(scene, [frame], head.pop("obj"), **head)[frame]


def ensure_timer() -> None:
    """The drain timer; persistent, so that opening a file while a job runs does not leave it undrained."""
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=jobs.TIMER_INTERVAL, persistent=True)


def _tick() -> float | None:
    from . import handlers

    busy = JOBS.drain()
    busy = handlers.HOOK.drain() or busy
    return jobs.TIMER_INTERVAL if busy else None


def start(operator: Any, job: Job, total: int = 0) -> set[str]:
    if JOBS.job is not None and JOBS.busy:
        operator.report({"WARNING"}, f"RegGAN is busy with {JOBS.job.label!r}: cancel it or wait")
        return {"CANCELLED"}
    JOBS.start(job, total)
    if bpy.app.background:  # a script under `blender -b` (or bpy): no timers run, and the script expects the result
        print(f"RegGAN: {job.label} ...", flush=True)
        status = JOBS.wait(timeout=None, report=lambda s: print(f"RegGAN: {s.done}/{s.total}", flush=True))
        return script_result(operator, status)
    ensure_timer()
    operator.report({"INFO"}, f"RegGAN: {job.label} started")
    return {"FINISHED"}


def script_result(operator: Any, status: jobs.JobStatus) -> set[str]:
    """What a script's `bpy.ops.reggan.*()` returns once the job ended, with the message as a report: FINISHED when
    something was edited ("partial": with a WARNING report naming what was not), CANCELLED when nothing was (no face
    found, the job failed or was cancelled), as Blender's own operators return CANCELLED when they did nothing."""
    if status.state == "done":
        operator.report({"INFO"}, f"RegGAN: {status.message}")
        return {"FINISHED"}
    if status.state == "partial":
        operator.report({"WARNING"}, f"RegGAN: {status.message}")
        return {"FINISHED"}
    operator.report(_error_level() if status.state == "failed" else {"WARNING"}, f"RegGAN: {status.message}")
    return {"CANCELLED"}


def _error_level() -> set[str]:
    """ERROR pops up in the UI; under a script an ERROR report would raise out of bpy.ops, so there it is a
    WARNING (printed) and the operator returns {'CANCELLED'}."""
    return {"WARNING"} if bpy.app.background else {"ERROR"}


def _failed(operator: Any, exc: Exception) -> set[str]:
    message = jobs.panel_words(str(exc))
    operator.report(_error_level(), message)
    JOBS.status = jobs.JobStatus(label=operator.bl_label, state="failed", message=message, hint=jobs._hint(exc))
    return {"CANCELLED"}


NO_FACE_HINT = {  # what to try when a picture had no face, by face source
    "AUTO": "; the detector misses stylised faces: choose Faces: From Scene or Box",
    "SCENE": "; the head is not in the camera's view",
    "BOX": "; the Box lies off the picture",
    "WHOLE": "",
}


def _label(s: Any) -> str:
    return f"{output_tag(s)} {round(s.intensity * 100)}%"


# -- operators -------------------------------------------------------------------------------------
class REGGAN_OT_apply_render_result(bpy.types.Operator):
    """Apply the expression to the Render Result; the edit goes into a new image (the render is kept)"""

    bl_idname = "reggan.apply_render_result"
    bl_label = "Apply to Render Result"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        if bpy.data.images.get("Render Result") is None:
            cls.poll_message_set("Render a frame first (F12)")
            return False
        return not JOBS.busy

    def execute(self, context: Any) -> set[str]:
        from reggan_plugin.errors import RegganError
        from reggan_plugin.imageio.ocio import frame_colours

        s = context.scene.reggan
        try:
            picture = images.render_result_pixels(context.scene)
            faces = given_faces(context.scene, *picture.pixels.shape[:2])
            run = run_settings(context)
            colour = images.colour_of(picture)
            frame_colours(colour)  # a space the config lacks is reported here, not in the worker
        except (LookupError, RuntimeError, RegganError, ValueError) as exc:
            return _failed(self, exc)
        name = f"Render Result ({_label(s)})"
        mode, scene_name = s.face_source, context.scene.name

        def work(progress: Any, cancel: Any) -> Any:
            progress(0, 1)
            result = engine.edit_pixels(picture.pixels, linear=True, mode=mode, faces=faces, settings=run, cancel=cancel,
                                        colour=colour)
            progress(1, 1)
            return result

        def finish(result: Any) -> jobs.Outcome:
            pixels, count = result
            if not count:  # no copy that would only repeat the render
                return jobs.Outcome(f"Render Result: no face found (nothing edited{NO_FACE_HINT[mode]})", "nothing")
            image = images.new_image(name, images.Picture(pixels, linear=True))
            images.look_like_the_render(image, bpy.data.scenes.get(scene_name) or bpy.context.scene)
            show_image(bpy.context, image)
            return jobs.Outcome(f"{image.name}: {count} face(s) edited")

        return start(self, Job(self.bl_label, work, finish), total=1)


class REGGAN_OT_apply_image(bpy.types.Operator):
    """Apply the expression to an image (a face texture): edited in place, a backup copy is kept for Revert"""

    bl_idname = "reggan.apply_image"
    bl_label = "Apply to Image"
    bl_options = {"REGISTER"}

    image_name: StringProperty(name="Image", description="Image to edit (default: the Image Editor's image)")

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not JOBS.busy

    def target(self, context: Any) -> Any:
        if self.image_name:
            image = bpy.data.images.get(self.image_name)
        else:
            image = getattr(context.space_data, "image", None) if context.space_data is not None else None
        if image is None:
            raise ValueError("no image: open one in the Image Editor")
        if image.type in ("RENDER_RESULT", "COMPOSITING"):
            raise LookupError("this is the Render Result: use 'Apply to Render Result'")
        return image

    def execute(self, context: Any) -> set[str]:
        from reggan_plugin.errors import RegganError
        from reggan_plugin.imageio.ocio import frame_colours

        s = context.scene.reggan
        try:
            image = self.target(context)
            picture = images.read_pixels(image)
            faces = given_faces(context.scene, *picture.pixels.shape[:2])
            run = run_settings(context)
            colour = images.colour_of(picture)
            frame_colours(colour)
        except (LookupError, RuntimeError, RegganError, ValueError) as exc:
            return _failed(self, exc)
        name, mode, label = image.name, s.face_source, _label(s)

        def work(progress: Any, cancel: Any) -> Any:
            progress(0, 1)
            result = engine.edit_pixels(picture.pixels, linear=picture.linear, mode=mode, faces=faces, settings=run,
                                        cancel=cancel, colour=colour)
            progress(1, 1)
            return result

        def finish(result: Any) -> jobs.Outcome:
            pixels, count = result
            target = bpy.data.images.get(name)
            if target is None:
                raise LookupError(f"image {name!r} was removed while RegGAN worked on it")
            if not count:
                return jobs.Outcome(f"{name}: no face found (unchanged{NO_FACE_HINT[mode]})", "nothing")
            backup = keep_backup(target, picture)  # the pixels as they were when Apply was pressed
            images.write_pixels(target, pixels)
            packed = images.keep_edit(target, backup)
            return jobs.Outcome(f"{name}: {count} face(s) edited ({label}); Revert restores it" + (packed and f"; {packed}"))

        return start(self, Job(f"{self.bl_label} {name}", work, finish), total=1)


def keep_backup(image: Any, picture: images.Picture) -> Any:
    """A copy of the image's pixels before its first RegGAN edit (kept with a fake user; 'Revert' copies it back
    and removes it). A later edit keeps that backup: Revert returns the picture as it was before the first edit,
    not the one before it. Only a backup that no longer fits the image (resized, other channels) is replaced."""
    backup_name = image.name + BACKUP_SUFFIX
    backup = bpy.data.images.get(backup_name)
    if backup is not None and tuple(backup.size) == tuple(image.size) and backup.channels == image.channels:
        return backup
    if backup is not None:
        bpy.data.images.remove(backup)
    backup = images.new_image(backup_name, picture)
    backup.use_fake_user = True
    return backup


class REGGAN_OT_revert_image(bpy.types.Operator):
    """Restore the image as it was before its first RegGAN edit (since the last Revert)"""

    bl_idname = "reggan.revert_image"
    bl_label = "Revert"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Image")

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not JOBS.busy  # a running edit would land on the reverted image with its backup gone

    def execute(self, context: Any) -> set[str]:
        name = self.image_name or getattr(getattr(context.space_data, "image", None), "name", "")
        image, backup = bpy.data.images.get(name), bpy.data.images.get(name + BACKUP_SUFFIX)
        if image is None or backup is None:
            message = f"no RegGAN backup for {name!r}: nothing to revert" if name else "no image to revert"
            JOBS.status = jobs.JobStatus(label=self.bl_label, state="nothing", message=message)  # the panel says so
            self.report({"WARNING"}, message)
            return {"CANCELLED"}
        try:
            done = images.restore(image, backup)
        except RuntimeError as exc:  # the image was resized since the edit, or its backup lost its pixels
            return _failed(self, exc)
        bpy.data.images.remove(backup)
        message = f"{name} restored" + (done and f" ({done})")
        JOBS.status = jobs.JobStatus(label=self.bl_label, state="done", message=message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


FRAME_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_number(path: Path) -> int | None:
    match = FRAME_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


def frames_dir(context: Any) -> Path:
    s = context.scene.reggan
    text = s.frames_dir or str(Path(bpy.path.abspath(context.scene.render.filepath)).parent)
    return Path(bpy.path.abspath(text))


class REGGAN_OT_apply_frames(bpy.types.Operator):
    """Apply the expression to a folder of rendered frames, writing a new folder (like `reggan-plugin render`)"""

    bl_idname = "reggan.apply_frames"
    bl_label = "Apply to Frames"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not JOBS.busy

    def execute(self, context: Any) -> set[str]:
        from reggan_plugin.config import SequenceConfig
        from reggan_plugin.errors import RegganError
        from reggan_plugin.faces import parse_region
        from reggan_plugin.imageio import list_frames

        s = context.scene.reggan
        faces_file = None
        try:
            source = frames_dir(context)
            out = Path(bpy.path.abspath(s.out_dir)) if s.out_dir else engine.sibling_dir(source, output_tag(s))
            frames = list_frames(source)
            edits = self.slider_edits(context.scene, frames) if mix.driver(s) != mix.EXPRESSION else None
            faces_file = self.scene_faces_file(context, frames) if s.face_source == "SCENE" else None
            x, y, w, h = s.box
            seq = SequenceConfig(
                frames=source, out=out, faces=faces_file,
                region=parse_region(f"{x},{y},{max(w, 1)},{max(h, 1)}") if s.face_source == "BOX" else None,
                whole_image=s.face_source == "WHOLE", skip_existing=s.skip_existing, smooth=s.smooth,
            )
            run = run_settings(context)
        except (LookupError, RuntimeError, RegganError, ValueError, OSError) as exc:
            if faces_file is not None:
                faces_file.unlink(missing_ok=True)
            return _failed(self, exc)

        def work(progress: Any, cancel: Any) -> Any:
            try:
                return engine.render_frames(seq, run, progress, cancel, frame_edits=edits)
            finally:
                if faces_file is not None:
                    faces_file.unlink(missing_ok=True)

        def finish(summary: Any) -> jobs.Outcome:
            lines = [jobs.panel_words(line) for line in summary.lines()]
            for line in lines[1:]:
                print("RegGAN:", line)
            message = f"{lines[0]} -> {out}" + (f" (see the console for {len(lines) - 1} problem(s))" if len(lines) > 1 else "")
            edited = summary.done - len(summary.no_face)
            if (summary.failed or summary.no_face) and edited == 0:
                return jobs.Outcome(message, "nothing")
            return jobs.Outcome(message, "partial" if summary.failed or summary.no_face else "done")

        return start(self, Job(f"{self.bl_label} {source.name}", work, finish), total=len(frames))

    @staticmethod
    def slider_edits(scene: Any, frames: list[Path]) -> dict[str, Any]:
        """Each frame's edit from the Mix or Channel sliders at its number (the last digits of its name), as the render
        hook reads them at the frame it writes; MixError naming the first frame whose Mix sliders sum past 1."""
        which = "Channel" if mix.driver(scene.reggan) == mix.CHANNEL else "Mix"
        edits = {}
        for frame in frames:
            number = frame_number(frame)
            if number is None:
                raise LookupError(f"the {which} sliders need frame numbers in the file names; {frame.name} has none")
            edits[frame.name] = mix.frame_edit(scene, number)
        return edits

    def scene_faces_file(self, context: Any, frames: list[Path]) -> Path:
        """faces.json with the projected head box of each frame (frame number = the last digits of its name)."""
        boxes: dict[str, Any] = {}
        found = {frame: frame_number(frame) for frame in frames}
        missing = [f.name for f, n in found.items() if n is None]
        if missing:
            raise LookupError(f"'From Scene' needs frame numbers in the file names; {missing[0]} has none")
        numbers = {frame: n for frame, n in found.items() if n is not None}
        head = head_arguments(context.scene)
        projected = scene_faces.scene_face_boxes(context.scene, sorted(set(numbers.values())), head.pop("obj"), **head)
        for frame, number in numbers.items():
            boxes[frame.stem] = projected[number]
        with tempfile.NamedTemporaryFile("w", prefix="reggan-faces-", suffix=".json", delete=False) as handle:
            json.dump(engine.faces_json(boxes), handle)
        return Path(handle.name)


class REGGAN_OT_bake_expression_maps(bpy.types.Operator):
    """Bake expression maps in the active head's UV layout beside the blend file, and blend them into its material
    with a node group whose weights the Mix sliders drive"""

    bl_idname = "reggan.bake_expression_maps"
    bl_label = "Bake Expression Maps"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not JOBS.busy

    def execute(self, context: Any) -> set[str]:
        from reggan_plugin.config import EditConfig
        from reggan_plugin.errors import RegganError

        s = context.scene.reggan
        obj = context.active_object
        try:
            names = expression_maps.expression_names(s)
            if not names:
                raise expression_maps.BakeError("choose at least one expression to bake")
            mesh, uv_name = expression_maps.head_mesh(obj, context.evaluated_depsgraph_get())
            albedo = expression_maps.find_albedo(obj.active_material)
            pixels = expression_maps.albedo_linear(albedo.image_node.image)
            folder = expression_maps.maps_folder(obj)
            prefs = settings.preferences(context)
            run = engine.RunSettings(settings.inference_config(s, prefs, channels=False), EditConfig(),
                                     settings.engine_cache_override(prefs))
        except (LookupError, RuntimeError, RegganError, ValueError, OSError) as exc:
            return _failed(self, exc)
        obj_name, material_name, scene_name = obj.name, obj.active_material.name, context.scene.name
        texture_name = albedo.image_node.image.name

        def work(progress: Any, cancel: Any) -> Any:
            return expression_maps.bake_to_folder(mesh, pixels, names, run, folder, mesh_name=obj_name,
                                                  texture_name=texture_name, progress=progress, cancel=cancel)

        def finish(result: expression_maps.BakeResult) -> jobs.Outcome:
            material = bpy.data.materials.get(material_name)
            scene = bpy.data.scenes.get(scene_name)
            if material is None or scene is None:
                raise LookupError(f"material {material_name!r} or scene {scene_name!r} was removed during the bake")
            found = expression_maps.find_albedo(material)
            loaded = expression_maps.load_maps(result)  # before any change to the material
            tree = expression_maps.maps_group(obj_name, found.group_node.node_tree if found.group_node else None)
            expression_maps.build_group(tree, obj_name, uv_name, loaded)
            expression_maps.install(material, found, tree, scene, result.baked)
            message = (f"{obj_name}: {len(result.baked)} expression map(s) in {bpy.path.relpath(str(result.folder))}, "
                       f"blended by {tree.name!r} (the Mix sliders drive it)")
            if result.unknown:
                return jobs.Outcome(f"{message}; the model has no {', '.join(result.unknown)}", "partial")
            return jobs.Outcome(message)

        return start(self, Job(f"{self.bl_label} {obj_name}", work, finish), total=1)


class REGGAN_OT_cancel(bpy.types.Operator):
    """Stop the running RegGAN job (frames already written are complete; none is left half-written)"""

    bl_idname = "reggan.cancel"
    bl_label = "Cancel"

    def execute(self, context: Any) -> set[str]:
        if not JOBS.request_cancel():
            self.report({"INFO"}, "nothing to cancel")
        return {"FINISHED"}


class REGGAN_OT_release(bpy.types.Operator):
    """Unload the RegGAN model (frees its memory, and GPU memory with a GPU backend)"""

    bl_idname = "reggan.release"
    bl_label = "Release Model"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not JOBS.busy

    def execute(self, context: Any) -> set[str]:
        self.report({"INFO"}, f"released {engine.release()} model(s)")
        return {"FINISHED"}


class REGGAN_OT_show_preferences(bpy.types.Operator):
    """Open the RegGAN add-on preferences (model file, default backend, engine cache)"""

    bl_idname = "reggan.show_preferences"
    bl_label = "Open Preferences"

    def execute(self, context: Any) -> set[str]:
        try:
            bpy.ops.screen.userpref_show("INVOKE_DEFAULT")
            context.preferences.active_section = "ADDONS"
            bpy.ops.preferences.addon_show(module=settings.ADDON)
        except RuntimeError:  # no window to open it in (background mode, a script)
            self.report({"WARNING"}, f"no window: set the preferences under Edit > Preferences > Add-ons > {settings.ADDON}")
            return {"CANCELLED"}
        return {"FINISHED"}


def show_image(context: Any, image: Any) -> None:
    """Show a new image in an Image Editor that is not showing the Render Result (if there is one)."""
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen is not None else ():
        if area.type == "IMAGE_EDITOR" and area.spaces.active.image is not None and area.spaces.active.image.type != "RENDER_RESULT":
            area.spaces.active.image = image
            return


def progress_listener(status: jobs.JobStatus) -> None:
    """Window-manager progress (the cursor / status bar) and panel redraws, on the main thread."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    if status.active:
        if not getattr(progress_listener, "begun", False):
            wm.progress_begin(0, 100)
            progress_listener.begun = True  # type: ignore[attr-defined]
        wm.progress_update(int(status.factor * 100))
    elif getattr(progress_listener, "begun", False):
        wm.progress_end()
        progress_listener.begun = False  # type: ignore[attr-defined]
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("IMAGE_EDITOR", "PROPERTIES", "STATUSBAR"):
                area.tag_redraw()


classes = (
    REGGAN_OT_apply_render_result,
    REGGAN_OT_apply_image,
    REGGAN_OT_revert_image,
    REGGAN_OT_apply_frames,
    REGGAN_OT_bake_expression_maps,
    REGGAN_OT_cancel,
    REGGAN_OT_release,
    REGGAN_OT_show_preferences,
)
