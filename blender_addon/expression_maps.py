"""Bake Expression Maps: expression maps in the active head's UV layout, and a node group that blends them into its
material, each map's weight driven by the Mix slider of its expression.

The main thread reads the head (the evaluated mesh in world space, its active UV map) and its albedo (the Image
Texture feeding the Principled BSDF's Base Color) into plain arrays; a background job bakes the maps with the runtime
(`reggan_plugin.texture_maps`) and writes them beside the blend file; its finish loads them into the node group
"RegGAN Expression Maps (<object>)" between the albedo and the Base Color. Baking again reloads the images and rebuilds
the same group in place: never a second group, never a second group node.

The group follows the maps' blend rule, map by map: ``albedo * (1 + (multiplier - 1) * mask * weight)``.
"""
from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np

from . import engine, images, mix

if TYPE_CHECKING:
    from reggan_plugin.texture_maps.mesh import Mesh

GROUP_PREFIX = "RegGAN Expression Maps"
GROUP_NODE = "RegGAN Expression Maps"
MARKER = "reggan_expression_maps"
"""Custom property on the node group: the object it was baked for (how a bake finds its group again)."""
ALBEDO_SOCKET = "Albedo"
MULTIPLIER_SCALE = 65535.0 / 32768.0
"""A 16-bit PNG multiplier is stored as value / 32768; Blender reads a Non-Color 16-bit PNG as value / 65535."""
FOLDER_SUFFIX = "_expression_maps"
MIN_TEXTURE = 16


class BakeError(LookupError):
    """A head, material or file that cannot be baked: one line saying what to fix."""


# -- what the main thread reads --------------------------------------------------------------------
def head_mesh(obj: Any, depsgraph: Any) -> tuple[Mesh, str]:
    """(the bake's mesh, the UV map's name) of a mesh object: its evaluated mesh (modifiers applied) in world space,
    triangulated, with its active UV map, in the bake's axes (+Y up, the face towards +Z: Blender's (x, y, z) is
    (x, z, -y) there)."""
    from reggan_plugin.texture_maps.mesh import Mesh

    if obj is None or obj.type != "MESH":
        raise BakeError("no active mesh: select the head mesh and make it active")
    active = obj.data.uv_layers.active
    if active is None:
        raise BakeError(f"{obj.name} has no UV map: the maps are baked into the head's UV layout")
    uv_name = active.name
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        layer = mesh.uv_layers.get(uv_name) or mesh.uv_layers.active
        if layer is None:
            raise BakeError(f"{obj.name}'s modifiers remove its UV map {uv_name!r}")
        mesh.calc_loop_triangles()
        count = len(mesh.loop_triangles)
        if not count:
            raise BakeError(f"{obj.name} has no faces")
        vertices = np.empty(count * 3, np.int32)
        loops = np.empty(count * 3, np.int32)
        mesh.loop_triangles.foreach_get("vertices", vertices)
        mesh.loop_triangles.foreach_get("loops", loops)
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        uv = np.empty(len(mesh.loops) * 2, np.float32)
        layer.data.foreach_get("uv", uv)
        matrix = np.array(evaluated.matrix_world, np.float64)
    finally:
        evaluated.to_mesh_clear()
    world = co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    positions = np.stack([world[:, 0], world[:, 2], -world[:, 1]], axis=1)
    triangles = vertices.reshape(-1, 3).astype(np.int64)
    uv_triangles = loops.reshape(-1, 3).astype(np.int64)
    if np.linalg.det(matrix[:3, :3]) < 0:  # a mirroring transform turns the faces inside out: wind them back
        triangles, uv_triangles = triangles[:, ::-1], uv_triangles[:, ::-1]
    if not np.isfinite(positions).all() or not np.isfinite(uv).all():
        raise BakeError(f"{obj.name}'s positions or UVs hold NaN or inf")
    return Mesh(positions, uv.reshape(-1, 2).astype(np.float64), np.ascontiguousarray(triangles),
                np.ascontiguousarray(uv_triangles)), uv_name


@dataclass(frozen=True)
class Albedo:
    """Where a material's albedo is: its Principled BSDF, the Image Texture node feeding its Base Color, and the
    expression-maps group node already between them (None before the first bake)."""

    bsdf: Any
    image_node: Any
    group_node: Any


def find_albedo(material: Any) -> Albedo:
    """The Image Texture linked to a Principled BSDF's Base Color (directly, or through this add-on's group)."""
    tree = getattr(material, "node_tree", None) if material is not None else None
    if tree is None:
        raise BakeError("the active object has no material with nodes: give it one with a Principled BSDF")
    bsdfs = [n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"]
    if not bsdfs:
        raise BakeError(f"material {material.name!r} has no Principled BSDF")
    for bsdf in bsdfs:
        base = bsdf.inputs["Base Color"]
        if not base.is_linked:
            continue
        source = base.links[0].from_node
        group = None
        if is_maps_group_node(source):
            group, albedo = source, source.inputs.get(ALBEDO_SOCKET)
            source = albedo.links[0].from_node if albedo is not None and albedo.is_linked else None
        if source is not None and source.type == "TEX_IMAGE" and source.image is not None:
            return Albedo(bsdf, source, group)
    raise BakeError(f"no albedo image in material {material.name!r}: link an Image Texture node with an image to "
                    "the Principled BSDF's Base Color")


def is_maps_group_node(node: Any) -> bool:
    return node.type == "GROUP" and node.node_tree is not None and MARKER in node.node_tree


def albedo_linear(image: Any) -> np.ndarray:
    """The image as linear Rec.709 RGB float32 [H,W,3], top row first. Byte images hold their colour space's encoded
    values (sRGB: decoded); float images hold the blend file's working space (linear); Non-Color images are used as
    the shader uses them, as they are."""
    from reggan_plugin.imageio.colour import srgb_decode
    from reggan_plugin.imageio.ocio import frame_colours

    picture = images.read_pixels(image)
    pixels = picture.pixels
    values = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)
    rgb = np.repeat(values[..., :1], 3, axis=2) if values.shape[2] < 3 else values[..., :3]
    if rgb.shape[0] < MIN_TEXTURE or rgb.shape[1] < MIN_TEXTURE:
        raise BakeError(f"image {image.name!r} is {rgb.shape[1]}x{rgb.shape[0]}: too small for a texture")
    if picture.colorspace is None:  # Non-Color data
        return np.ascontiguousarray(rgb)
    colours = frame_colours(images.colour_of(picture))
    conversion = colours.float_frames if picture.linear else colours.stored_frames
    if conversion is not None:
        return np.ascontiguousarray(conversion.to_linear(rgb), np.float32)
    return np.ascontiguousarray(rgb if picture.linear else srgb_decode(rgb), np.float32)


def maps_folder(obj: Any) -> Path:
    """//<object name>_expression_maps/ beside the blend file (BakeError when it has never been saved)."""
    if not bpy.data.filepath:
        raise BakeError("save the blend file first: the maps are written beside it")
    safe = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", obj.name).strip(" .") or "head"
    folder = Path(bpy.path.abspath(f"//{safe}{FOLDER_SUFFIX}"))
    if folder.exists() and not folder.is_dir():
        raise BakeError(f"{folder} exists and is not a folder")
    return folder


# -- the worker --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BakeResult:
    folder: Path
    manifest: Path
    baked: tuple[str, ...]
    unknown: tuple[str, ...]  # chosen, but the model has no such expression


def bake_to_folder(mesh: Mesh, albedo: np.ndarray, expressions: Sequence[str], run: engine.RunSettings,
                   folder: Path, *, mesh_name: str, texture_name: str, progress: Callable[[int, int], None],
                   cancel: threading.Event) -> BakeResult:
    """Bake each expression the model knows at full intensity and write the PNG maps and maps.json into
    ``folder`` (worker thread: no bpy). Raises InterruptedError when cancelled (between views)."""
    from reggan_plugin.config import EditConfig
    from reggan_plugin.errors import UsageError
    from reggan_plugin.texture_maps.bake import VIEWS, bake_maps
    from reggan_plugin.texture_maps.manifest import write_maps

    renderer = engine.get_renderer(run)
    known = renderer.artifact.names
    baked = tuple(e for e in expressions if e in known)
    unknown = tuple(e for e in expressions if e not in known)
    if not baked:
        raise UsageError(f"the model knows none of {', '.join(expressions)} (it has: {', '.join(known)})")
    total = len(VIEWS) + 1
    seen = [0]

    def view_done(line: str) -> None:
        print(f"RegGAN: {line}", flush=True)
        seen[0] += 1
        progress(min(seen[0], total - 1), total)
        if cancel.is_set():
            raise InterruptedError("cancelled")

    progress(0, total)
    maps = bake_maps(mesh, albedo, [(e, EditConfig(e, 1.0)) for e in baked], renderer, progress=view_done)
    if cancel.is_set():
        raise InterruptedError("cancelled")
    manifest = write_maps(folder, maps, "png", mesh=mesh_name, texture=texture_name,
                          model={"sha256": renderer.artifact.sha256, "expressions": list(known)})
    progress(total, total)
    return BakeResult(folder, manifest, baked, unknown)


# -- the finish: images, the node group, its drivers ------------------------------------------------------
def load_map(path: Path) -> Any:
    """The map image at ``path``: the one already loaded (read again from the new file) or a new one; Non-Color."""
    for image in bpy.data.images:
        if image.source == "FILE" and image.filepath and Path(bpy.path.abspath(image.filepath)) == path:
            image.reload()
            break
    else:
        image = bpy.data.images.load(str(path), check_existing=False)
        with contextlib.suppress(ValueError):  # another drive (Windows): the path stays absolute
            image.filepath = bpy.path.relpath(str(path))
    image.colorspace_settings.is_data = True
    return image


def load_maps(result: BakeResult) -> dict[str, tuple[Any, Any]]:
    """{expression: (multiplier image, mask image)} of a finished bake."""
    loaded = {}
    for name in result.baked:
        pair = tuple(load_map(result.folder / f"{name}_{kind}.png") for kind in ("multiplier", "mask"))
        for image in pair:
            if not image.has_data and tuple(image.size) == (0, 0):
                raise RuntimeError(f"cannot read the baked map {image.filepath}")
        loaded[name] = pair
    return loaded


def group_name(obj_name: str) -> str:
    return f"{GROUP_PREFIX} ({obj_name})"


def maps_group(obj_name: str, used: Any) -> Any:
    """The node group of this object's maps: the one the material uses now, else the object's, else a new one."""
    if used is not None:
        return used
    for tree in bpy.data.node_groups:
        if tree.bl_idname == "ShaderNodeTree" and tree.get(MARKER) == obj_name:
            return tree
    return bpy.data.node_groups.new(group_name(obj_name), "ShaderNodeTree")


def socket(sockets: Any, identifier: str) -> Any:
    return next(s for s in sockets if s.identifier == identifier)


def build_group(tree: Any, obj_name: str, uv_name: str, maps: dict[str, tuple[Any, Any]]) -> None:
    """Rebuild ``tree``: Albedo in, one weight input per map, the albedo times each map by the blend rule out."""
    tree.nodes.clear()
    tree.interface.clear()
    tree[MARKER] = obj_name
    tree.interface.new_socket(ALBEDO_SOCKET, in_out="INPUT", socket_type="NodeSocketColor").default_value = (
        0.8, 0.8, 0.8, 1.0)
    for name in maps:
        weight = tree.interface.new_socket(name.title(), in_out="INPUT", socket_type="NodeSocketFloat")
        weight.min_value, weight.max_value, weight.default_value = 0.0, 1.0, 0.0
        weight.description = f"How much of the {name} map (driven by the {name.title()} Mix slider)"
    tree.interface.new_socket("Color", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes, links = tree.nodes, tree.links
    inputs = nodes.new("NodeGroupInput")
    inputs.location = (-900, 0)
    outputs = nodes.new("NodeGroupOutput")
    outputs.location = (300 * len(maps) + 200, 0)
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map, uv.location = uv_name, (-900, -300)
    colour = inputs.outputs[ALBEDO_SOCKET]
    for k, (name, (multiplier, mask)) in enumerate(maps.items()):
        x = 300 * k
        textures = []
        for row, image in enumerate((multiplier, mask)):
            texture = nodes.new("ShaderNodeTexImage")
            texture.image, texture.extension, texture.interpolation = image, "EXTEND", "Linear"
            texture.location, texture.label = (x - 600, -300 - 300 * row), image.name
            links.new(uv.outputs["UV"], texture.inputs["Vector"])
            textures.append(texture)
        scale = nodes.new("ShaderNodeVectorMath")
        scale.operation, scale.location, scale.label = "SCALE", (x - 300, -300), f"{name} multiplier"
        scale.inputs["Scale"].default_value = MULTIPLIER_SCALE
        links.new(textures[0].outputs["Color"], scale.inputs[0])
        factor = nodes.new("ShaderNodeMath")
        factor.operation, factor.use_clamp, factor.location = "MULTIPLY", True, (x - 300, -600)
        factor.label = f"{name} mask x weight"
        links.new(textures[1].outputs["Color"], factor.inputs[0])
        links.new(inputs.outputs[name.title()], factor.inputs[1])
        blend = nodes.new("ShaderNodeMix")
        blend.data_type, blend.blend_type, blend.location, blend.label = "RGBA", "MULTIPLY", (x, 0), name
        blend.clamp_factor, blend.clamp_result = True, False
        links.new(factor.outputs["Value"], socket(blend.inputs, "Factor_Float"))
        links.new(colour, socket(blend.inputs, "A_Color"))
        links.new(scale.outputs["Vector"], socket(blend.inputs, "B_Color"))
        colour = socket(blend.outputs, "Result_Color")
    links.new(colour, outputs.inputs["Color"])


def slider_path(name: str) -> str:
    return mix.data_path(name)


def drive_weights(material: Any, node: Any, scene: Any, names: Sequence[str]) -> None:
    """A driver on each weight input of ``node``: the scene's Mix slider of that expression."""
    tree = material.node_tree
    for name in names:
        index = next(i for i, s in enumerate(node.inputs) if s.name == name.title())
        curve = tree.driver_add(f'nodes["{node.name}"].inputs[{index}].default_value')
        driver = curve.driver
        driver.type = "AVERAGE"  # the slider's value itself: no Python expression (no auto-run needed)
        variable = driver.variables.new()
        variable.name, variable.type = "slider", "SINGLE_PROP"
        target = variable.targets[0]
        target.id_type, target.id, target.data_path = "SCENE", scene, slider_path(name)


def remove_drivers(material: Any, node_name: str) -> None:
    animation = material.node_tree.animation_data
    if animation is None:
        return
    prefix = f'nodes["{node_name}"].'
    for curve in [c for c in animation.drivers if c.data_path.startswith(prefix)]:
        animation.drivers.remove(curve)


def install(material: Any, albedo: Albedo, tree: Any, scene: Any, names: Sequence[str]) -> Any:
    """The group node between the albedo's Image Texture and the Base Color (the old one replaced), its weights
    driven by the sliders. Returns the node."""
    nodes, links = material.node_tree.nodes, material.node_tree.links
    location = (albedo.image_node.location.x + 300, albedo.image_node.location.y)
    if albedo.group_node is not None:
        location = tuple(albedo.group_node.location)
        remove_drivers(material, albedo.group_node.name)
        nodes.remove(albedo.group_node)
    node = nodes.new("ShaderNodeGroup")
    node.node_tree, node.name, node.label, node.location = tree, GROUP_NODE, "RegGAN Expression Maps", location
    node.width = 220
    links.new(albedo.image_node.outputs["Color"], node.inputs[ALBEDO_SOCKET])
    links.new(node.outputs["Color"], albedo.bsdf.inputs["Base Color"])
    drive_weights(material, node, scene, names)
    return node


def expression_names(settings: Any) -> list[str]:
    """The expressions chosen for baking, in the sliders' order."""
    chosen = set(settings.bake_expressions)
    return [name for name in mix.MIX_EXPRESSIONS if name in chosen]
