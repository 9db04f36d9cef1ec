"""Judge baked expression maps on textured heads: the head posed by the expression's blendshapes, drawn with and
without its map, against the model's edit of the neutral head drawn the same way.

The judged region is the face: pixels of the face tile (not the eyes, teeth or back of the head) inside the edited
face's box. A seam measure compares the map across each UV seam with the map a texel inside it."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reggan_plugin.config import EditConfig
from reggan_plugin.faces.locate import FaceLocator
from reggan_plugin.imageio.colour import srgb_decode
from reggan_plugin.imageio.image import ImageData
from reggan_plugin.renderer import ExpressionRenderer
from reggan_plugin.texture_maps.bake import ExpressionMap
from reggan_plugin.texture_maps.mesh import Mesh
from reggan_plugin.texture_maps.views import Camera, draw, framing, sample_texture
from training.synth.face_model import FaceModel
from training.synth.recipes import RecipeTable

from .textured_heads import FACE_COLUMN, TexturedHead


@dataclass(frozen=True)
class MapScore:
    expression: str
    yaw: float
    rig_psnr: float   # blendshapes alone against the model's edit, dB over the face
    map_psnr: float   # blendshapes and the baked map
    copy_psnr: float  # the neutral head
    rig_skin_psnr: float  # the same over the face's skin: the face less the eyes and mouth, whose look the rig's
    map_skin_psnr: float  # geometry decides (lids, lips, teeth), not the texture

    @property
    def gain(self) -> float:
        return self.map_psnr - self.rig_psnr

    @property
    def skin_gain(self) -> float:
        return self.map_skin_psnr - self.rig_skin_psnr


def _psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    mse = float(np.mean((a[region] - b[region]) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def score_map(model: FaceModel, recipes: RecipeTable, head: TexturedHead, baked: ExpressionMap,
              renderer: ExpressionRenderer, yaw: float) -> MapScore:
    camera = framing(head.mesh, yaw)
    posed = head.posed(model, recipes.blendshapes(baked.name))
    neutral = draw(head.mesh, head.albedo, camera)
    rig = draw(posed, head.albedo, camera)
    with_map = draw(posed, head.albedo * _applied(baked), camera)
    picture = ImageData(np.round(np.clip(neutral.rgb, 0, 1) * 65535).astype(np.uint16), format="png")
    faces = FaceLocator().faces("neutral", picture)
    if not faces:
        raise ValueError(f"no face found in the neutral view at yaw {yaw}")
    edit = renderer.apply_image(picture, faces[:1], baked.edit).pixels.astype(np.float32) / 65535
    region = _face_region(head.mesh, rig, faces[0].box) | _face_region(head.mesh, neutral, faces[0].box)
    features = _features(model, head.mesh, camera, faces[0].box) | _features(model, posed, camera, faces[0].box)
    skin = region & ~features
    return MapScore(baked.name, yaw, _psnr(rig.rgb, edit, region), _psnr(with_map.rgb, edit, region),
                    _psnr(neutral.rgb, edit, region), _psnr(rig.rgb, edit, skin), _psnr(with_map.rgb, edit, skin))


FEATURE_MARGIN = 0.06
"""The eyes' and mouth's outlines grown by this share of the face box's width."""


def _features(model: FaceModel, mesh: Mesh, camera: Camera, box: tuple[float, float, float, float]) -> np.ndarray:
    """Pixels of the eyes and the mouth (their landmark outlines, grown by `FEATURE_MARGIN`)."""
    xy, _ = camera.project(mesh.positions[model.landmarks68])
    mask = np.zeros((camera.size, camera.size), np.uint8)
    for ids in (range(36, 42), range(42, 48), range(48, 60)):
        cv2.fillPoly(mask, [np.round(xy[list(ids)] - 0.5).astype(np.int32)], 1)
    grow = max(1, int(round(FEATURE_MARGIN * box[2])))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))) > 0


def _applied(baked: ExpressionMap) -> np.ndarray:
    """The albedo multiplier as the manifest says an engine blends it, at full weight."""
    return 1.0 + (baked.multiplier - 1.0) * baked.mask[..., None]


def _face_region(mesh: Mesh, view: object, box: tuple[float, float, float, float]) -> np.ndarray:
    coverage = view.coverage  # type: ignore[attr-defined]
    hit = coverage.triangle >= 0
    uv = coverage.interpolate(mesh.uvs[mesh.uv_triangles].astype(np.float32))
    face_tile = hit & (uv[..., 0] < FACE_COLUMN * 0.999)
    x, y, w, h = box
    rows, cols = np.mgrid[0 : hit.shape[0], 0 : hit.shape[1]]
    inside = (cols >= x) & (cols < x + w) & (rows >= y) & (rows < y + h)
    return face_tile & inside


def seam_steps(mesh: Mesh, image: np.ndarray) -> tuple[float, float]:
    """(change across UV seams, change one texel inwards), each the 99th percentile over seam edges of the largest
    channel difference of ``image`` (the applied map). A seam: a mesh edge whose two triangles give it different UVs."""
    height, width = image.shape[:2]
    edges: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for tri, uvt in zip(mesh.triangles, mesh.uv_triangles):
        for k in range(3):
            a, b = int(tri[k]), int(tri[(k + 1) % 3])
            ua, ub, uc = mesh.uvs[uvt[k]], mesh.uvs[uvt[(k + 1) % 3]], mesh.uvs[uvt[(k + 2) % 3]]
            key = (a, b) if a < b else (b, a)
            if a > b:
                ua, ub = ub, ua
            edges.setdefault(key, []).append((ua, ub, uc))
    across, inward = [], []
    texel = 1.0 / max(height, width)
    for sides in edges.values():
        if len(sides) != 2:
            continue
        (a1, b1, c1), (a2, b2, _c2) = sides
        if np.allclose(a1, a2) and np.allclose(b1, b2):
            continue
        m1, m2 = (a1 + b1) / 2, (a2 + b2) / 2
        towards = c1 - m1
        inner = m1 + towards / max(np.linalg.norm(towards), 1e-12) * texel
        across.append((m1, m2))
        inward.append((m1, inner))
    if not across:
        return 0.0, 0.0

    def diffs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
        p = np.array(pairs)
        one, two = sample_texture(image, p[:, 0]), sample_texture(image, p[:, 1])
        return float(np.percentile(np.abs(one - two).max(axis=-1), 99))

    return diffs(across), diffs(inward)


def edit_for(name: str) -> EditConfig:
    return EditConfig(name)


__all__ = ["MapScore", "score_map", "seam_steps", "srgb_decode"]
