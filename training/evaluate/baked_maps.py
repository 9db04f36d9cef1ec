"""Judge baked expression maps on textured heads: the head posed by the expression's blendshapes, drawn with and
without its map, against the model's edit of the neutral head drawn the same way.

The judged region is the face: pixels of the face tile (not the eyes, teeth or back of the head) inside the edited
face's box. A seam measure compares the map across each UV seam with the map a texel inside it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reggan_plugin.config import EditConfig
from reggan_plugin.faces.locate import FaceLocator
from reggan_plugin.imageio.image import ImageData
from reggan_plugin.renderer import ExpressionRenderer
from reggan_plugin.texture_maps.bake import ExpressionMap
from reggan_plugin.texture_maps.mesh import Mesh
from reggan_plugin.texture_maps.views import Camera, draw, framing, sample_texture
from training.synth.face_model import FaceModel
from training.synth.recipes import RecipeTable

from .metrics import psnr
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
    ceiling_psnr: float  # the most any map could give over the face: the skin matched exactly, the eyes and mouth
    # left to the rig (a map that painted them would paint the edit's lids, lip line and teeth on the rig's)

    @property
    def gain(self) -> float:
        return self.map_psnr - self.rig_psnr

    @property
    def skin_gain(self) -> float:
        return self.map_skin_psnr - self.rig_skin_psnr

    @property
    def ceiling_gain(self) -> float:
        return self.ceiling_psnr - self.rig_psnr


def _psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    return psnr(a[region], b[region])


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
    ceiling = np.where(skin[..., None], edit, rig.rgb)
    return MapScore(baked.name, yaw, _psnr(rig.rgb, edit, region), _psnr(with_map.rgb, edit, region),
                    _psnr(neutral.rgb, edit, region), _psnr(rig.rgb, edit, skin), _psnr(with_map.rgb, edit, skin),
                    _psnr(ceiling, edit, region))


FEATURE_MARGIN = 0.06
"""The eyes' and mouth's outlines grown by this share of the face box's width."""


def _features(model: FaceModel, mesh: Mesh, camera: Camera, box: tuple[float, float, float, float]) -> np.ndarray:
    """Pixels of the eyes and the mouth (their landmark outlines, grown by `FEATURE_MARGIN`)."""
    xy, _ = camera.project(mesh.positions[model.landmarks68])
    mask = np.zeros((camera.size, camera.size), np.uint8)
    for ids in (range(36, 42), range(42, 48), range(48, 60)):
        cv2.fillPoly(mask, [np.round(xy[list(ids)] - 0.5).astype(np.int32)], (1,))
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


def lip_texels(model: FaceModel, shape: tuple[int, int]) -> np.ndarray:
    """The lips' texels in the atlas (their outer landmark outline, as `textured_heads` paints them)."""
    from .textured_heads import face_vertex_uvs, texel_px

    uv_of = face_vertex_uvs(model)
    pts = np.array([texel_px(uv_of[int(model.landmarks68[i])]) for i in range(48, 60)], np.float32)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], (1,))
    return mask > 0


def write_report(model_path: Path, seed: int, identities: int, out: Path, yaws: tuple[float, ...] = (0.0, 25.0)
                 ) -> str:
    """Bake the six expressions for each identity of ``seed``, judge them, write report.md (and a picture strip of the
    first identity) into ``out``; the report's text."""
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.expressions import EXPRESSIONS
    from reggan_plugin.imageio.colour import srgb_encode
    from reggan_plugin.texture_maps.bake import bake_maps
    from training.synth.face_model import load_face_model
    from training.synth.recipes import load_recipes

    from .textured_heads import TEXTURE_SIZE, textured_head

    model = load_face_model(model_path)
    recipes = load_recipes()
    renderer = ExpressionRenderer(InferenceConfig(subject="render"))
    names = [e for e in EXPRESSIONS if e != "neutral"]
    lips = lip_texels(model, TEXTURE_SIZE)
    rows: list[MapScore] = []
    seams: list[tuple[float, float]] = []
    ranges: list[tuple[float, float, float]] = []
    out.mkdir(parents=True, exist_ok=True)
    for index in range(identities):
        head = textured_head(model, recipes, seed, index)
        maps = bake_maps(head.mesh, head.albedo, [(n, EditConfig(n)) for n in names], renderer)
        for baked in maps:
            applied = _applied(baked)
            seams.append(seam_steps(head.mesh, applied))
            log = np.abs(np.log(applied)).max(axis=-1)
            ranges.append((float(applied.min()), float(applied.max()), float(np.percentile(log[lips], 99.9))))
            rows.extend(score_map(model, recipes, head, baked, renderer, yaw) for yaw in yaws)
            if index == 0 and baked.name == "happy":
                _write_strip(model, recipes, head, baked, renderer, out / "happy_strip.jpg", srgb_encode)
    lines = ["| expression | yaw | face: blendshapes | + map | gain (dB) | skin: gain (dB) | face: ceiling (dB) |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        for yaw in yaws:
            sel = [r for r in rows if r.expression == name and r.yaw == yaw]
            lines.append(f"| {name} | {yaw:.0f} | {np.mean([r.rig_psnr for r in sel]):.2f} | "
                         f"{np.mean([r.map_psnr for r in sel]):.2f} | {np.mean([r.gain for r in sel]):+.2f} "
                         f"(min {min(r.gain for r in sel):+.2f}) | {np.mean([r.skin_gain for r in sel]):+.2f} | "
                         f"{np.mean([r.ceiling_gain for r in sel]):+.2f} |")
    across, inward = np.array(seams).T
    lo, hi, lip = np.array(ranges).T
    lines += ["", f"{identities} identities of seed {seed}, {len(rows)} views. Applied multiplier over all maps: "
              f"{lo.min():.3f} .. {hi.max():.3f}; on the lips' texels, 99.9th percentile |log multiplier| "
              f"{lip.max():.3f} at most. Seams (99th percentile over seam edges, largest channel step of the applied "
              f"map): across {across.max():.5f}, one texel inwards {inward.max():.5f} (worst maps)."]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def _write_strip(model: FaceModel, recipes: RecipeTable, head: TexturedHead, baked: ExpressionMap,
                 renderer: ExpressionRenderer, path: Path, encode: object) -> None:
    """neutral | the model's edit | blendshapes | blendshapes + map, and the albedo beside the map, as a JPEG."""
    from reggan_plugin.imageio.write import write_image

    camera = framing(head.mesh, 0.0, size=1024)
    posed = head.posed(model, recipes.blendshapes(baked.name))
    neutral = draw(head.mesh, head.albedo, camera).rgb
    picture = ImageData(np.round(neutral * 65535).astype(np.uint16), format="png")
    face = FaceLocator().faces("n", picture)[0]
    edit = renderer.apply_image(picture, [face], baked.edit).pixels / 65535
    rig = draw(posed, head.albedo, camera).rgb
    with_map = draw(posed, head.albedo * _applied(baked), camera).rgb
    x, y, w, h = face.box
    cx, cy = int(x + w / 2), int(y + h / 2)  # a 256 px square around the face, at 1:1
    top = np.hstack([v[cy - 128 : cy + 128, cx - 128 : cx + 128] for v in (neutral, edit, rig, with_map)])
    face_tile = slice(0, int(head.albedo.shape[1] * FACE_COLUMN))
    albedo = cv2.resize(encode(head.albedo[:, face_tile]), (512, 512), interpolation=cv2.INTER_AREA)  # type: ignore[operator]
    shown = cv2.resize(np.clip((_applied(baked)[:, face_tile] - 1) * 2.5 + 0.5, 0, 1), (512, 512),
                       interpolation=cv2.INTER_AREA)
    bottom = np.hstack([albedo[128:384, :], shown[128:384, :]])
    strip = np.vstack([top, bottom])
    write_image(path, ImageData(np.round(np.clip(strip, 0, 1) * 255).astype(np.uint8), format="jpeg"))


def main() -> None:
    """python -m training.evaluate.baked_maps --face-model ict_face_model.npz --seed 9494 --identities 4 --out DIR"""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--face-model", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=9494)
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(write_report(args.face_model, args.seed, args.identities, args.out), end="")


if __name__ == "__main__":
    main()
