"""The Blender scene: one face mesh, procedural materials, three area lights, a camera; Cycles on the CPU.

Only this module (and ``render`` through it) imports bpy, and only inside functions/classes that are
used when rendering. A :class:`FaceScene` is built once per worker process and re-targeted per
identity (:meth:`set_identity`) and per expression (:meth:`set_vertices`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .camera import CM_TO_M, SENSOR_MM, CameraPose, orbit
from .face_model import EYEBALL_SHELLS, HIDDEN_MATERIALS, MOUTH_SOCKET, FaceModel, eye_coordinates
from .regions import region_masks
from .variation import IdentityParams, Light, srgb_to_linear

LIGHT_DISTANCE_M = 1.2

# material slots of the render mesh
SKIN, EYE, TEETH, GUMS, MOUTH, LASHES = range(6)
SLOT_NAMES = ("skin", "eye", "teeth", "gums_tongue", "mouth_socket", "lashes")


def polygon_slots(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """(kept polygon mask, slot per kept polygon). Helper meshes and the inner eyeballs are dropped."""
    names = model.material_names
    per_material = np.full(len(names), -1)
    for i, n in enumerate(names):
        if n in ("M_Face", "M_BackHead"):
            per_material[i] = SKIN
        elif n == "M_Teeth":
            per_material[i] = TEETH
        elif n == "M_GumsTongue":
            per_material[i] = GUMS
        elif n == "M_EyeLashes":
            per_material[i] = LASHES
        elif n in [shell for shell, _ in EYEBALL_SHELLS.values()]:
            per_material[i] = EYE
        # inner eyeballs (M_Iris*) sit inside the opaque shells; HIDDEN_MATERIALS are helpers
    assert not any(per_material[names.index(h)] >= 0 for h in HIDDEN_MATERIALS if h in names)
    slots = per_material[model.face_material]
    off = model.polygon_offsets()
    lo, hi = MOUTH_SOCKET
    fvi = model.face_vertex_indices
    in_socket = np.minimum.reduceat(fvi, off[:-1]) >= lo
    in_socket &= np.maximum.reduceat(fvi, off[:-1]) <= hi
    slots = np.where((slots == SKIN) & in_socket, MOUTH, slots)
    # lower lashes: cards without an alpha texture read as a grey band under the eye; drop them
    lm = model.neutral[model.landmarks68]
    lid_y = lm[[36, 39, 42, 45], 1].mean()
    max_y = np.maximum.reduceat(model.neutral[fvi, 1], off[:-1])
    slots = np.where((slots == LASHES) & (max_y < lid_y), -1, slots)
    keep = slots >= 0
    return keep, slots[keep]


class FaceScene:
    """A bpy scene holding the face; set identity, set expression vertices, render to a PNG."""

    def __init__(self, model: FaceModel, size: int, samples: int, denoise: bool, threads: int = 0,
                 look: str = "studio") -> None:
        import bpy

        from .looks import apply_look

        self.bpy = bpy
        self.model = model
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        self._setup_render(size, samples, denoise, threads)
        self.mesh_obj = self._build_mesh()
        self.params: dict[str, Any] = {}
        self._build_materials()
        self.camera = self._add_camera()
        self.lights = {name: self._add_light(name) for name in ("key", "fill", "rim")}
        self._setup_world()
        self.look = look
        apply_look(self, look)

    # ---- setup -------------------------------------------------------------------------------
    def _setup_render(self, size: int, samples: int, denoise: bool, threads: int) -> None:
        sc = self.scene
        sc.render.engine = "CYCLES"
        cy = sc.cycles
        cy.device = "CPU"
        cy.samples = samples
        cy.use_adaptive_sampling = True
        cy.adaptive_threshold = 0.02
        cy.use_denoising = denoise
        if denoise:
            cy.denoiser = "OPENIMAGEDENOISE"
        cy.max_bounces = 4
        cy.diffuse_bounces = 2
        cy.glossy_bounces = 2
        cy.transmission_bounces = 0
        cy.volume_bounces = 0
        cy.transparent_max_bounces = 4
        cy.caustics_reflective = False
        cy.caustics_refractive = False
        cy.seed = 0
        sc.render.resolution_x = size
        sc.render.resolution_y = size
        sc.render.resolution_percentage = 100
        sc.render.film_transparent = True
        sc.render.use_persistent_data = True
        if threads > 0:
            sc.render.threads_mode = "FIXED"
            sc.render.threads = threads
        settings = sc.render.image_settings
        settings.file_format = "PNG"
        settings.color_mode = "RGBA"
        settings.color_depth = "8"
        settings.compression = 15
        sc.view_settings.view_transform = "Standard"
        sc.view_settings.look = "None"

    def _build_mesh(self) -> Any:
        bpy, m = self.bpy, self.model
        keep, slots = polygon_slots(m)
        sizes = m.face_sizes[keep]
        corner_mask = np.repeat(keep, m.face_sizes)
        corners = m.face_vertex_indices[corner_mask]
        uv_ids = m.face_uv_indices[corner_mask]
        mesh = bpy.data.meshes.new("face")
        nv = len(m.neutral)
        mesh.vertices.add(nv)
        mesh.vertices.foreach_set("co", (m.neutral * CM_TO_M).ravel())
        mesh.loops.add(len(corners))
        mesh.loops.foreach_set("vertex_index", corners)
        mesh.polygons.add(len(sizes))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        mesh.polygons.foreach_set("loop_start", starts)
        mesh.polygons.foreach_set("material_index", slots.astype(np.int32))
        mesh.polygons.foreach_set("use_smooth", np.ones(len(sizes), bool))
        uv = mesh.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", m.uvs[uv_ids].ravel())
        mesh.attributes.new("regions", "FLOAT_COLOR", "POINT")
        mesh.attributes.new("eyec", "FLOAT_VECTOR", "POINT")
        mesh.update()
        mesh.validate(verbose=False)
        obj = bpy.data.objects.new("face", mesh)
        self.scene.collection.objects.link(obj)
        self._corner_count = len(corners)
        return obj

    def _value(self, tree: Any, key: str, value: float | list[float]) -> Any:
        """A parameter node (Value or RGB) that set_identity updates; returns its output socket."""
        if isinstance(value, (list, tuple)):
            node = tree.nodes.new("ShaderNodeRGB")
            node.outputs[0].default_value = (*value[:3], 1.0)
        else:
            node = tree.nodes.new("ShaderNodeValue")
            node.outputs[0].default_value = float(value)
        self.params[key] = node
        return node.outputs[0]

    def _build_materials(self) -> None:
        from . import shaders

        mats = [
            shaders.skin_material(self),
            shaders.eye_material(self),
            shaders.simple_material("teeth", (0.62, 0.56, 0.45), 0.3, subsurface=0.1),
            shaders.simple_material("gums_tongue", (0.42, 0.08, 0.08), 0.35, subsurface=0.3),
            shaders.simple_material("mouth_socket", (0.12, 0.02, 0.02), 0.6),
            shaders.lash_material(self),
        ]
        for mat in mats:
            self.mesh_obj.data.materials.append(mat)

    def _add_camera(self) -> Any:
        bpy = self.bpy
        cam = bpy.data.cameras.new("camera")
        cam.sensor_fit = "HORIZONTAL"
        cam.sensor_width = SENSOR_MM
        cam.clip_start = 0.05
        cam.clip_end = 20.0
        obj = bpy.data.objects.new("camera", cam)
        self.scene.collection.objects.link(obj)
        self.scene.camera = obj
        return obj

    def _add_light(self, name: str) -> Any:
        bpy = self.bpy
        light = bpy.data.lights.new(name, type="AREA")
        light.shape = "DISK"
        obj = bpy.data.objects.new(name, light)
        self.scene.collection.objects.link(obj)
        return obj

    def _setup_world(self) -> None:
        bpy = self.bpy
        world = bpy.data.worlds.new("world")
        if world.node_tree is None:  # Blender < 5
            world.use_nodes = True
        self.scene.world = world
        self.world_bg = world.node_tree.nodes["Background"]

    # ---- per identity ------------------------------------------------------------------------
    def set_identity(self, params: IdentityParams, neutral_cm: np.ndarray, pose: CameraPose) -> None:
        """Geometry attributes, materials, camera, lights and world for one identity."""
        mesh = self.mesh_obj.data
        masks = region_masks(self.model, neutral_cm, params.skin.brow_thickness)
        mesh.attributes["regions"].data.foreach_set("color", masks.ravel())
        eyec = eye_coordinates(self.model, neutral_cm)
        mesh.attributes["eyec"].data.foreach_set("vector", np.c_[eyec, np.zeros(len(eyec))].ravel())
        self.set_vertices(neutral_cm)

        from . import shaders
        from .looks import look_lighting, set_toon_light

        shaders.apply_params(self, params)
        self.camera.matrix_world = _matrix(pose.matrix_world())
        self.camera.data.lens = pose.focal_mm
        lighting = look_lighting(params.lighting, self.look, params.index, params.seed)
        for name, light in (("key", lighting.key), ("fill", lighting.fill), ("rim", lighting.rim)):
            self._place_light(self.lights[name], light, pose.target)
        set_toon_light(self, orbit(lighting.key.yaw, lighting.key.elevation) @ np.array([0.0, 0.0, 1.0]))
        bg = srgb_to_linear(np.mean([params.background.colour_a, params.background.colour_b], axis=0))
        ambient = 0.5 * bg + 0.5 * np.mean(bg)
        self.world_bg.inputs["Color"].default_value = (*ambient, 1.0)
        self.world_bg.inputs["Strength"].default_value = lighting.ambient
        self.scene.view_settings.exposure = params.lighting.exposure
        self.scene.cycles.seed = params.render_seed % (2**31 - 1)

    def _place_light(self, obj: Any, light: Light, target: np.ndarray) -> None:
        rot = orbit(light.yaw, light.elevation)
        m = np.eye(4)
        m[:3, :3] = rot
        m[:3, 3] = target + rot @ np.array([0.0, 0.0, LIGHT_DISTANCE_M])
        obj.matrix_world = _matrix(m)
        obj.data.energy = light.power
        obj.data.size = light.size
        obj.data.color = light.colour

    def set_vertices(self, vertices_cm: np.ndarray) -> None:
        mesh = self.mesh_obj.data
        mesh.vertices.foreach_set("co", (vertices_cm * CM_TO_M).astype(np.float32).ravel())
        mesh.update()

    def render(self, path: Path) -> None:
        """Render the current state to an RGBA PNG (straight alpha, sRGB) at ``path``."""
        self.scene.render.filepath = str(path)
        self.bpy.ops.render.render(write_still=True)

    def render_rgba(self, scratch: Path) -> np.ndarray:
        """Render the current state and return it as HxWx4 uint8 RGBA (Blender writes ``scratch``, removed after)."""
        from PIL import Image

        self.render(scratch)
        try:
            with Image.open(scratch) as im:
                return np.asarray(im.convert("RGBA"))
        finally:
            scratch.unlink(missing_ok=True)


def _matrix(m: np.ndarray) -> Any:
    from mathutils import Matrix

    return Matrix([list(map(float, row)) for row in m])
