"""Render looks: one shading/lighting/colour-management style per dataset, so the model meets more than one.

Users' renders are never ours: other shaders, lights and colour management. A look is applied once to a
built scene (material graphs, view transform) and, for lighting looks, to each identity's lights. Identity
``i`` of a seed keeps its face, camera and background in every look; only the rendering changes.

- ``studio``: the default physically based skin (subsurface, pores) under soft key/fill/rim lights.
- ``matte``: Lambert-like materials (roughness 1, no specular, no subsurface).
- ``glossy``: plastic game-engine skin (low roughness, strong specular, clear coat, no subsurface).
- ``filmic``: AgX view transform with its punchy contrast look instead of the Standard transform.
- ``toon``: cel shading: each material's base colour times three flat bands of the key light, as emission.
- ``coloured``: saturated coloured key and rim lights of opposite hues, little ambient light.
- ``wax``: heavy deep subsurface skin without pores and dull, uncoated eyes.

``TRAIN_LOOKS`` are rendered for training; ``HELD_OUT_LOOKS`` are kept for evaluation only, so that a
measurement on them says how the model does on a look it has never seen.
"""
from __future__ import annotations

import colorsys
import dataclasses
from typing import Any, Literal, get_args

import numpy as np

from .variation import Light, Lighting

Look = Literal["studio", "matte", "glossy", "filmic", "toon", "coloured", "wax"]
LOOKS: tuple[str, ...] = get_args(Look)
TRAIN_LOOKS: tuple[str, ...] = ("studio", "matte", "glossy", "filmic")
HELD_OUT_LOOKS: tuple[str, ...] = ("toon", "coloured", "wax")

# Principled BSDF inputs each surface look sets on every material (a callable: by material name)
SURFACE_LOOKS: dict[str, dict[str, Any]] = {
    "matte": {"Roughness": 1.0, "Specular IOR Level": 0.0, "Subsurface Weight": 0.0, "Coat Weight": 0.0},
    "glossy": {"Roughness": 0.22, "Specular IOR Level": 0.8, "Subsurface Weight": 0.0,
               "Coat Weight": lambda material: 0.3 if material == "skin" else 0.0},
}

# Light direction of the toon shader (world space), updated per identity from the key light.
TOON_LIGHT_KEYS = ("look.light_x", "look.light_y", "look.light_z")


def check_look(look: str) -> Look:
    if look not in LOOKS:
        raise ValueError(f"unknown look {look!r}: choose one of {', '.join(LOOKS)}")
    return look  # type: ignore[return-value]


def _principled_nodes(material: Any) -> list[Any]:
    return [n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"]


def _set(node: Any, name: str, value: Any) -> None:
    """Set an input's value, cutting whatever was linked into it first."""
    sock = node.inputs[name]
    for link in list(sock.links):
        sock.id_data.links.remove(link)
    sock.default_value = value


def apply_look(scene: Any, look: str) -> None:
    """Change a built ``FaceScene`` (materials, colour management) to ``look``; lights come per identity."""
    check_look(look)
    materials = list(scene.mesh_obj.data.materials)
    if look in SURFACE_LOOKS:
        for mat in materials:
            for bsdf in _principled_nodes(mat):
                for name, value in SURFACE_LOOKS[look].items():
                    _set(bsdf, name, value(mat.name) if callable(value) else value)
    elif look == "filmic":
        scene.scene.view_settings.view_transform = "AgX"
        scene.scene.view_settings.look = "AgX - Punchy"
    elif look == "wax":
        for mat in materials:
            for bsdf in _principled_nodes(mat):
                if mat.name == "skin":
                    _set(bsdf, "Subsurface Weight", 1.0)
                    _set(bsdf, "Subsurface Radius", (1.0, 0.6, 0.45))
                    _set(bsdf, "Subsurface Scale", 0.02)
                    _set(bsdf, "Roughness", 0.35)
                    for link in list(bsdf.inputs["Normal"].links):  # no pores
                        mat.node_tree.links.remove(link)
                elif mat.name == "eye":
                    _set(bsdf, "Roughness", 0.5)
                    _set(bsdf, "Coat Weight", 0.0)
    elif look == "toon":
        for mat in materials:
            _toonify(scene, mat)


def _toonify(scene: Any, mat: Any) -> None:
    """Replace each Principled BSDF by emission = base colour x a three-band cel ramp of N . L."""
    tree = mat.node_tree
    nodes, links = tree.nodes, tree.links
    for bsdf in _principled_nodes(mat):
        geometry = nodes.new("ShaderNodeNewGeometry")
        light = nodes.new("ShaderNodeCombineXYZ")
        for axis, key in zip(("X", "Y", "Z"), TOON_LIGHT_KEYS):
            value = nodes.new("ShaderNodeValue")
            value.outputs[0].default_value = (0.0, 0.0, 1.0)[TOON_LIGHT_KEYS.index(key)]
            scene.params.setdefault(key, []).append(value)
            links.new(value.outputs[0], light.inputs[axis])
        dot = nodes.new("ShaderNodeVectorMath")
        dot.operation = "DOT_PRODUCT"
        links.new(geometry.outputs["Normal"], dot.inputs[0])
        links.new(light.outputs["Vector"], dot.inputs[1])
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.interpolation = "CONSTANT"
        elements = ramp.color_ramp.elements
        elements[0].position, elements[0].color = 0.0, (0.35, 0.35, 0.35, 1.0)
        elements[1].position, elements[1].color = 0.25, (0.7, 0.7, 0.7, 1.0)
        top = elements.new(0.6)
        top.color = (1.0, 1.0, 1.0, 1.0)
        links.new(dot.outputs["Value"], ramp.inputs["Fac"])
        tint = nodes.new("ShaderNodeMix")
        tint.data_type, tint.blend_type = "RGBA", "MULTIPLY"
        tint.inputs["Factor"].default_value = 1.0
        colour_in = [s for s in tint.inputs if s.type == "RGBA"]
        base = bsdf.inputs["Base Color"]
        if base.links:
            links.new(base.links[0].from_socket, colour_in[0])
        else:
            colour_in[0].default_value = base.default_value
        links.new(ramp.outputs["Color"], colour_in[1])
        emission = nodes.new("ShaderNodeEmission")
        links.new(next(s for s in tint.outputs if s.type == "RGBA"), emission.inputs["Color"])
        emission.inputs["Strength"].default_value = 1.0
        for link in list(bsdf.outputs["BSDF"].links):
            target = link.to_socket
            links.remove(link)
            links.new(emission.outputs["Emission"], target)


def set_toon_light(scene: Any, direction: np.ndarray) -> None:
    """Point the toon shader's light (world-space unit vector towards the light)."""
    d = np.asarray(direction, np.float64)
    d = d / max(float(np.linalg.norm(d)), 1e-9)
    for key, value in zip(TOON_LIGHT_KEYS, d):
        for node in scene.params.get(key, []):
            node.outputs[0].default_value = float(value)


def look_lighting(lighting: Lighting, look: str, index: int, seed: int) -> Lighting:
    """Per-identity lights of ``look`` (only ``coloured`` changes them), drawn from (seed, index) alone."""
    if look != "coloured":
        return lighting
    rng = np.random.default_rng([int(seed), int(index), 7919])
    hue = float(rng.uniform(0, 1))

    def tinted(light: Light, h: float, power: float) -> Light:
        rgb = [float(c) for c in colorsys.hsv_to_rgb(h % 1.0, float(rng.uniform(0.6, 0.9)), 1.0)]
        return dataclasses.replace(light, colour=rgb, power=light.power * power)

    return dataclasses.replace(
        lighting,
        key=tinted(lighting.key, hue, 1.3),
        fill=tinted(lighting.fill, hue + 0.15, 0.5),
        rim=tinted(lighting.rim, hue + 0.5, 2.5 + float(rng.uniform(0, 1.5))),
        ambient=lighting.ambient * 0.3,
    )
