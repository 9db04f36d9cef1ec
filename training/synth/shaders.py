"""Procedural Cycles materials (skin, eyes, lashes, mouth) and their per-identity parameters. bpy only at call time.

Parameter nodes are registered on the scene (``scene.params[key]``) so that a new identity only
updates node values, never rebuilds node trees.
"""
from __future__ import annotations

from typing import Any

from .variation import IdentityParams


class _Graph:
    """Tiny helper over a material node tree."""

    def __init__(self, mat: Any) -> None:
        self.tree = mat.node_tree
        self.nodes = self.tree.nodes
        self.links = self.tree.links

    def node(self, kind: str, **props: Any) -> Any:
        n = self.nodes.new(kind)
        for k, v in props.items():
            setattr(n, k, v)
        return n

    def link(self, out: Any, inp: Any) -> None:
        self.links.new(out, inp)

    def math(self, op: str, a: Any, b: Any = 0.0, clamp: bool = False) -> Any:
        n = self.node("ShaderNodeMath", operation=op, use_clamp=clamp)
        for i, v in enumerate((a, b)):
            if isinstance(v, (int, float)):
                n.inputs[i].default_value = v
            else:
                self.link(v, n.inputs[i])
        return n.outputs[0]

    def smooth(self, x: Any, lo: Any, hi: Any) -> Any:
        """smoothstep(lo, hi, x) (lo > hi gives a falling edge)."""
        n = self.node("ShaderNodeMapRange", interpolation_type="SMOOTHSTEP", clamp=True)
        self.link(x, n.inputs["Value"])
        for sock, v in (("From Min", lo), ("From Max", hi)):
            if isinstance(v, (int, float)):
                n.inputs[sock].default_value = v
            else:
                self.link(v, n.inputs[sock])
        return n.outputs["Result"]

    def mix(self, fac: Any, a: Any, b: Any, blend: str = "MIX") -> Any:
        n = self.node("ShaderNodeMix", data_type="RGBA", blend_type=blend, clamp_result=True)
        ins = [s for s in n.inputs if s.type == "RGBA"]
        for sock, v in ((n.inputs["Factor"], fac), (ins[0], a), (ins[1], b)):
            if isinstance(v, (int, float)):
                sock.default_value = v
            elif isinstance(v, tuple):
                sock.default_value = (*v[:3], 1.0)
            else:
                self.link(v, sock)
        return next(s for s in n.outputs if s.type == "RGBA")

    def noise(self, vector: Any, scale: float, detail: float = 2.0, w: Any = None) -> Any:
        n = self.node("ShaderNodeTexNoise", noise_dimensions="4D")
        n.inputs["Scale"].default_value = scale
        n.inputs["Detail"].default_value = detail
        self.link(vector, n.inputs["Vector"])
        if w is not None:
            self.link(w, n.inputs["W"])
        return n.outputs["Fac"]

    def principled(self, mat_out: Any) -> Any:
        bsdf = self.nodes.get("Principled BSDF") or self.node("ShaderNodeBsdfPrincipled")
        self.link(bsdf.outputs["BSDF"], mat_out)
        return bsdf


def _new_material(name: str) -> tuple[Any, _Graph, Any]:
    import bpy

    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:  # Blender < 5 creates materials without nodes
        mat.use_nodes = True
    g = _Graph(mat)
    out = g.nodes.get("Material Output")
    bsdf = g.nodes.get("Principled BSDF")
    return mat, g, (bsdf, out)


def simple_material(name: str, colour: tuple[float, float, float], roughness: float, subsurface: float = 0.0) -> Any:
    mat, _g, (bsdf, _out) = _new_material(name)
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Subsurface Weight"].default_value = subsurface
    bsdf.inputs["Subsurface Scale"].default_value = 0.003
    return mat


def skin_material(scene: Any) -> Any:
    """Skin: albedo with mottling, freckles, cheek redness, lips, brows and scalp hair from vertex masks."""
    mat, g, (bsdf, _out) = _new_material("skin")
    p = lambda key, value: scene._value(g.tree, key, value)  # noqa: E731
    coord = g.node("ShaderNodeTexCoord").outputs["Object"]
    regions = g.node("ShaderNodeAttribute", attribute_name="regions", attribute_type="GEOMETRY")
    sep = g.node("ShaderNodeSeparateColor")
    g.link(regions.outputs["Color"], sep.inputs["Color"])
    lips, brows, red = sep.outputs[0], sep.outputs[1], sep.outputs[2]
    scalp = regions.outputs["Alpha"]
    seed = p("skin.noise_seed", 0.0)

    albedo = p("skin.albedo", [0.6, 0.4, 0.3])
    mottle_n = g.noise(coord, 18.0, 3.0, seed)
    mottle = g.math("MULTIPLY", g.math("SUBTRACT", mottle_n, 0.5), p("skin.mottle", 0.1))
    col = g.mix(g.math("ADD", mottle, 0.5, clamp=True), g.mix(1.0, albedo, (0.85, 0.85, 0.85), "MULTIPLY"),
                g.mix(1.0, albedo, (1.1, 0.95, 0.9), "MULTIPLY"))
    redness = g.math("MULTIPLY", red, p("skin.redness", 0.2))
    col = g.mix(redness, col, g.mix(1.0, col, (1.0, 0.62, 0.6), "MULTIPLY"))
    freckle_n = g.noise(coord, 420.0, 1.0, seed)
    freckle = g.math("MULTIPLY", g.smooth(freckle_n, 0.58, 0.68),
                     g.math("MULTIPLY", p("skin.freckles", 0.0), g.math("ADD", red, 0.3, clamp=True)))
    col = g.mix(freckle, col, g.mix(1.0, col, (0.55, 0.42, 0.35), "MULTIPLY"))
    col = g.mix(lips, col, g.mix(1.0, col, p("skin.lip_tint", [0.85, 0.55, 0.58]), "MULTIPLY"))
    hair = p("skin.hair_colour", [0.05, 0.04, 0.03])
    strands = g.smooth(g.noise(coord, 900.0, 0.0, seed), 0.3, 0.6)
    brow_f = g.math("MULTIPLY", g.math("MULTIPLY", brows, p("skin.brow_density", 0.8)),
                    g.math("ADD", g.math("MULTIPLY", strands, 0.3), 0.7))
    col = g.mix(brow_f, col, g.mix(1.0, hair, (0.4, 0.4, 0.4), "MULTIPLY"))
    stubble = g.smooth(g.noise(coord, 1400.0, 0.0, seed), 0.35, 0.55)
    scalp_f = g.math("MULTIPLY", g.math("MULTIPLY", scalp, p("skin.scalp_hair", 0.0)),
                     g.math("ADD", g.math("MULTIPLY", stubble, 0.25), 0.75))
    col = g.mix(scalp_f, col, hair)
    g.link(col, bsdf.inputs["Base Color"])

    rough = g.math("ADD", p("skin.roughness", 0.45), g.math("MULTIPLY", g.math("ADD", brows, scalp), 0.3))
    rough = g.math("SUBTRACT", rough, g.math("MULTIPLY", lips, 0.12))
    g.link(rough, bsdf.inputs["Roughness"])
    bsdf.inputs["Subsurface Weight"].default_value = 0.25
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)
    bsdf.inputs["Subsurface Scale"].default_value = 0.004
    bsdf.inputs["Specular IOR Level"].default_value = 0.35

    bump = g.node("ShaderNodeBump")
    pores = g.noise(coord, 1800.0, 1.0, seed)
    g.link(pores, bump.inputs["Height"])
    g.link(g.math("MULTIPLY", p("skin.pores", 0.2), 0.5), bump.inputs["Strength"])
    bump.inputs["Distance"].default_value = 0.0005
    g.link(bump.outputs["Normal"], bsdf.inputs["Normal"])
    return mat


def eye_material(scene: Any) -> Any:
    """Eye shell: white sclera, iris disc with fibres and a soft limbal edge, black pupil, wet gloss."""
    mat, g, (bsdf, _out) = _new_material("eye")
    p = lambda key, value: scene._value(g.tree, key, value)  # noqa: E731
    attr = g.node("ShaderNodeAttribute", attribute_name="eyec", attribute_type="GEOMETRY")
    length = g.node("ShaderNodeVectorMath", operation="LENGTH")
    g.link(attr.outputs["Vector"], length.inputs[0])
    rho = length.outputs["Value"]
    iris_r = p("eyes.iris_radius", 0.42)
    pupil_r = p("eyes.pupil_radius", 0.16)

    sclera = p("eyes.sclera", [0.7, 0.68, 0.65])
    corner = g.smooth(rho, 0.75, 1.0)
    col = g.mix(corner, sclera, g.mix(1.0, sclera, (0.85, 0.62, 0.58), "MULTIPLY"))

    scale = g.node("ShaderNodeVectorMath", operation="SCALE")
    g.link(attr.outputs["Vector"], scale.inputs[0])
    scale.inputs["Scale"].default_value = 25.0
    fib = g.noise(scale.outputs[0], 1.0, 4.0)
    iris_col = p("eyes.iris_colour", [0.1, 0.05, 0.02])
    iris = g.mix(g.math("MULTIPLY", fib, 0.9), g.mix(1.0, iris_col, (0.55, 0.55, 0.55), "MULTIPLY"),
                 g.mix(1.0, iris_col, (1.5, 1.5, 1.5), "MULTIPLY"))
    limbal = g.smooth(rho, g.math("SUBTRACT", iris_r, 0.09), iris_r)
    iris = g.mix(g.math("MULTIPLY", limbal, 0.55), iris, (0.02, 0.015, 0.01))
    iris_mask = g.smooth(rho, iris_r, g.math("SUBTRACT", iris_r, 0.02))
    col = g.mix(iris_mask, col, iris)
    pupil_mask = g.smooth(rho, pupil_r, g.math("SUBTRACT", pupil_r, 0.02))
    col = g.mix(pupil_mask, col, (0.004, 0.004, 0.004))
    g.link(col, bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.08
    bsdf.inputs["Specular IOR Level"].default_value = 0.6
    bsdf.inputs["Coat Weight"].default_value = 0.5
    bsdf.inputs["Coat Roughness"].default_value = 0.02
    return mat


def lash_material(scene: Any) -> Any:
    """Dark lashes; density blends towards transparency so sparse lashes read lighter."""
    mat, g, (bsdf, out) = _new_material("lashes")
    p = lambda key, value: scene._value(g.tree, key, value)  # noqa: E731
    g.link(g.mix(1.0, p("lashes.colour", [0.02, 0.015, 0.01]), (0.6, 0.6, 0.6), "MULTIPLY"), bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.5
    transparent = g.node("ShaderNodeBsdfTransparent")
    mix = g.node("ShaderNodeMixShader")
    g.link(p("lashes.density", 0.8), mix.inputs["Fac"])
    g.link(transparent.outputs[0], mix.inputs[1])
    g.link(bsdf.outputs["BSDF"], mix.inputs[2])
    g.link(mix.outputs[0], out.inputs["Surface"])
    return mat


def apply_params(scene: Any, params: IdentityParams) -> None:
    """Copy one identity's skin/eye/lash parameters into the registered parameter nodes."""
    s, e = params.skin, params.eyes
    values: dict[str, Any] = {
        "skin.albedo": s.albedo, "skin.mottle": s.mottle, "skin.redness": s.redness,
        "skin.freckles": s.freckles, "skin.lip_tint": s.lip_tint, "skin.hair_colour": s.hair_colour,
        "skin.brow_density": s.brow_density, "skin.scalp_hair": s.scalp_hair,
        "skin.roughness": s.roughness, "skin.pores": s.pores, "skin.noise_seed": s.noise_seed % 100.0,
        "eyes.iris_radius": e.iris_radius, "eyes.pupil_radius": e.pupil_radius, "eyes.sclera": e.sclera,
        "eyes.iris_colour": e.iris_colour,
        "lashes.colour": s.hair_colour, "lashes.density": e.lashes,
    }
    for key, value in values.items():
        node = scene.params[key]
        if isinstance(value, (list, tuple)):
            node.outputs[0].default_value = (*value[:3], 1.0)
        else:
            node.outputs[0].default_value = float(value)
