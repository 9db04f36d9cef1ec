"""Textured ICT heads for judging baked expression maps: a mesh per identity and expression in one UV layout, and a
skin albedo painted in that layout (tone, mottling, freckles, cheek redness, lips, brows).

The layout is an atlas of the face model's own unwrap: its face tile takes the left 4/5 of the texture as it is, the
back of the head the top of the right column, and the eyes, teeth and gums small swatches below it, so one texture
holds the whole head as a game asset would."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reggan_plugin.texture_maps.mesh import Mesh
from training.synth.face_model import FaceModel, eye_coordinates
from training.synth.recipes import RecipeTable
from training.synth.variation import IdentityParams, sample_identity

TEXTURE_SIZE = (1024, 1280)  # rows, cols
FACE_COLUMN = 0.8
SHOWN = ("M_Face", "M_BackHead", "M_GumsTongue", "M_Teeth", "M_ScleraLeft", "M_ScleraRight")
SWATCH = {"M_GumsTongue": (0.85, 0.05), "M_Teeth": (0.95, 0.05)}  # (u, v) of a flat colour
EYE_SWATCH = (0.9, 0.25, 0.08)  # centre u, v and radius of the eye disc


@dataclass(frozen=True)
class TexturedHead:
    """One identity: its parameters, the atlas UVs, the triangles and their atlas UV triangles."""

    params: IdentityParams
    identity: np.ndarray
    mesh: Mesh  # neutral positions
    albedo: np.ndarray  # linear RGB [H,W,3]

    def posed(self, model: FaceModel, weights: dict[str, float]) -> Mesh:
        return self.mesh.moved(model.vertices(self.identity, model.expression_vector(weights)))


def atlas_layout(model: FaceModel, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uvs [T,2], triangles [F,3], uv triangles [F,3]) of the shown materials, polygons split into fans."""
    offsets = model.polygon_offsets()
    shown = [model.face_material_id(n) for n in SHOWN]
    eyes = eye_coordinates(model, vertices)
    uvs: list[np.ndarray] = [model.uvs.astype(np.float64)]
    extra = len(model.uvs)
    tris, uv_tris = [], []
    for f in np.flatnonzero(np.isin(model.face_material, shown)):
        name = model.material_names[model.face_material[f]]
        vi = model.face_vertex_indices[offsets[f] : offsets[f + 1]]
        ti = model.face_uv_indices[offsets[f] : offsets[f + 1]]
        if name == "M_Face":
            mapped = [np.array([model.uvs[t, 0] * FACE_COLUMN, model.uvs[t, 1]]) for t in ti]
        elif name == "M_BackHead":
            mapped = [np.array([FACE_COLUMN + (model.uvs[t, 0] - 1) * (1 - FACE_COLUMN),
                                0.5 + 0.5 * model.uvs[t, 1]]) for t in ti]
        elif name in SWATCH:
            mapped = [np.array(SWATCH[name]) for _ in ti]
        else:
            cu, cv, r = EYE_SWATCH
            mapped = [np.array([cu + r * min(eyes[v, 0], 1.2), cv + r * min(eyes[v, 1], 1.2)]) for v in vi]
        ids = list(range(extra, extra + len(mapped)))
        uvs.append(np.array(mapped))
        extra += len(mapped)
        for k in range(1, len(vi) - 1):
            tris.append((vi[0], vi[k], vi[k + 1]))
            uv_tris.append((ids[0], ids[k], ids[k + 1]))
    return np.concatenate(uvs), np.array(tris, np.int64), np.array(uv_tris, np.int64)


def face_vertex_uvs(model: FaceModel) -> dict[int, np.ndarray]:
    """An atlas UV for each face-tile vertex (the first corner that names it)."""
    offsets = model.polygon_offsets()
    face = model.face_material_id("M_Face")
    out: dict[int, np.ndarray] = {}
    for f in np.flatnonzero(model.face_material == face):
        for v, t in zip(model.face_vertex_indices[offsets[f] : offsets[f + 1]],
                        model.face_uv_indices[offsets[f] : offsets[f + 1]]):
            out.setdefault(int(v), np.array([model.uvs[t, 0] * FACE_COLUMN, model.uvs[t, 1]]))
    return out


def texel_px(uv: np.ndarray) -> np.ndarray:
    h, w = TEXTURE_SIZE
    return np.stack([uv[..., 0] * w, (1 - uv[..., 1]) * h], axis=-1)


def paint_albedo(model: FaceModel, params: IdentityParams, seed: int) -> np.ndarray:
    """A linear-RGB skin albedo [H,W,3] in the atlas from the identity's skin parameters."""
    h, w = TEXTURE_SIZE
    rng = np.random.default_rng([seed, params.index, 7])
    skin = params.skin
    base = np.array(skin.albedo, np.float32)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 24)
    noise = noise / max(float(noise.std()), 1e-6)
    albedo = base * (1 + 0.06 * (0.5 + skin.mottle) * noise[..., None])
    uv_of = face_vertex_uvs(model)
    lm = model.landmarks68

    def polygon(ids: range | list[int]) -> np.ndarray:
        pts = np.array([texel_px(uv_of[int(lm[i])]) for i in ids if int(lm[i]) in uv_of], np.float32)
        mask = np.zeros((h, w), np.float32)
        if len(pts) >= 3:
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], (1.0,))
        return mask

    def blob(ids: list[int], sigma: float) -> np.ndarray:
        mask = np.zeros((h, w), np.float32)
        for i in ids:
            if int(lm[i]) in uv_of:
                x, y = texel_px(uv_of[int(lm[i])])
                cv2.circle(mask, (int(x), int(y)), int(sigma), (1.0,), -1)
        return cv2.GaussianBlur(mask, (0, 0), sigma)

    cheeks = blob([2, 14, 3, 13], 40)
    albedo = albedo * (1 + skin.redness * 0.5 * cheeks[..., None] * np.array([0.25, -0.1, -0.1], np.float32))
    freckles = np.zeros((h, w), np.float32)
    for x, y in rng.uniform([0, 0], [w * FACE_COLUMN, h], (int(4000 * skin.freckles) + 300, 2)):
        cv2.circle(freckles, (int(x), int(y)), int(rng.integers(1, 3)), (float(rng.uniform(0.3, 1)),), -1)
    albedo = albedo * (1 - 0.35 * cv2.GaussianBlur(freckles, (0, 0), 0.8)[..., None])
    lips = cv2.GaussianBlur(polygon(range(48, 60)), (0, 0), 3)
    albedo = albedo * (1 + lips[..., None] * (np.array(skin.lip_tint, np.float32) - 1))
    brows = cv2.GaussianBlur(cv2.dilate(_brow_lines(h, w, lm, uv_of), np.ones((9, 9), np.uint8)), (0, 0), 3)
    hair = np.array(skin.hair_colour, np.float32)
    albedo = albedo * (1 - brows[..., None] * skin.brow_density) + hair * brows[..., None] * skin.brow_density
    albedo[:, int(w * FACE_COLUMN):] = albedo[:, int(w * FACE_COLUMN):] * 0 + base
    for name, colour in (("M_GumsTongue", [0.45, 0.12, 0.12]), ("M_Teeth", [0.60, 0.56, 0.50])):
        x, y = texel_px(np.array(SWATCH[name]))
        cv2.circle(albedo, (int(x), int(y)), 40, colour, -1)
    cu, cv, r = EYE_SWATCH
    centre = texel_px(np.array([cu, cv]))
    radius = r * w
    yy, xx = np.mgrid[0:h, 0:w]
    rho = np.hypot(xx - centre[0], yy - centre[1]) / radius
    eyes = params.eyes
    eye = np.where((rho < eyes.iris_radius)[..., None], np.array(eyes.iris_colour, np.float32),
                   np.array(eyes.sclera, np.float32))
    eye = np.where((rho < eyes.pupil_radius)[..., None], np.float32(0.005), eye)
    albedo = np.where((rho < 1.3)[..., None], eye, albedo)
    return np.clip(albedo, 0, 1).astype(np.float32)


def _brow_lines(h: int, w: int, lm: np.ndarray, uv_of: dict[int, np.ndarray]) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    for ids in ((17, 18, 19, 20, 21), (22, 23, 24, 25, 26)):
        pts = np.array([texel_px(uv_of[int(lm[i])]) for i in ids if int(lm[i]) in uv_of], np.int32)
        cv2.polylines(mask, [pts], False, (1.0,), 5)
    return mask


def textured_head(model: FaceModel, recipes: RecipeTable, seed: int, index: int) -> TexturedHead:
    """Identity ``index`` of ``seed``: the dataset's identity sampling, its skin painted into the atlas."""
    params = sample_identity(seed, index, model.n_identities, recipes)
    identity = np.array(params.identity_weights, np.float32)
    vertices = model.vertices(identity)
    uvs, tris, uv_tris = atlas_layout(model, vertices)
    mesh = Mesh(vertices.astype(np.float64), uvs, tris, uv_tris)
    return TexturedHead(params, identity, mesh, paint_albedo(model, params, seed))


def write_obj(mesh: Mesh, path: str) -> None:
    """The mesh as OBJ (positions, UVs, triangles)."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"v {x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in mesh.positions)
        f.writelines(f"vt {u:.6f} {v:.6f}\n" for u, v in mesh.uvs)
        f.writelines(f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}\n"
                     for (a, b, c), (ta, tb, tc) in zip(mesh.triangles, mesh.uv_triangles))
