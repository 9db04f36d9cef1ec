"""Bake an expression's shading change into a head's UV layout.

Each view of the neutral head goes through the model. The model's edit of a face is a motion (which skin point ends
where) and a paint (how that point's colour changes); the motion is the rig's job, so only the paint is kept: as a
multiplier of the linear colour, read where each point came from in the neutral view, it belongs to the texel that
point shows. The views are blended per texel by how squarely they see it, and the map is filled past the UV islands'
edges so that filtering across a seam reads the same values from both sides."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..arrays import Array, FloatArray
from ..config import EditConfig
from ..edit.blend import crop_planes
from ..errors import InputError
from ..faces.locate import FaceLocator
from ..geometry.resample import WarpMode, moved_crop, remap_points
from ..imageio.colour import srgb_decode
from ..imageio.image import ImageData
from ..imaging.tone import smoothstep
from ..renderer import ExpressionRenderer
from .mesh import Mesh
from .raster import rasterize
from .views import View, draw, framing

VIEWS = ((0.0, 0.0), (-30.0, 0.0), (30.0, 0.0), (0.0, 15.0))
"""(yaw, pitch) degrees of the views: the front, both cheeks, and from below (the underside of the nose and jaw)."""
VIEW_SIZE = 640
SQUARENESS = 4.0
"""A view's weight for a texel is (n.v) to this power: the view that sees it most squarely dominates."""
DARKER = (np.log(1.35), np.log(1.8))
"""An expression's creases darken the skin to about x0.74 and a deep fold further; beyond x0.56 a change is something
else showing (the dark of an opened mouth) and is left out, faded out from x0.74."""
BRIGHTER = (np.log(1.1), np.log(1.25))
"""A stretched, lifted cheek brightens by a little; beyond x1.25 a change is teeth or an eye's white showing, left
out, faded out from x1.1."""
STRETCH = (0.45, 0.75)
"""Where the motion spreads a point of the neutral face over more than 1/0.45 of its area (the gap the lips open) the
paint shows what appeared there, not that point: left out, faded in up to 1/0.75."""
DEPTH_TOLERANCE = 0.01
"""A texel is seen by a view when it lies within this share of the head's size of the nearest surface there."""
SMOOTHING = 1.0
"""Gaussian std (crop px) over the paint: the network's pixel noise is not a change of the skin."""
EDGES = (0.02, 0.05)
"""Where the neutral face has an edge (lips, brows, lids: this change of log colour per crop px, smoothed), a change
is as likely the edge moving as the skin changing colour, and the rig moves edges: trusted less, not at all beyond."""
TRUST_SOFTNESS = 3
"""Crop px: the trust is shrunk by this much and then blurred by it, so that where the paint is left out it fades
out rather than stopping at a line, which the map would show as a hard edge on the skin."""
OCCLUSION_STEP = 0.02
"""A jump in a view's depth of this share of the head's size from one pixel to the next is an occluding edge (the
nose before a cheek, the head's outline)..."""
OCCLUSION_FADE = 16.0
"""... and the view's weight fades in over this many view px from it: views take over from each other gradually
there instead of at a line."""
FULL_WEIGHT = 0.2
"""Summed view weight at which a texel's change is trusted fully (its mask reaches 1)."""
KNOWN_WEIGHT = 0.05
"""Below this summed weight a texel's own average rests on the fading edge of a left-out change (teeth at a quarter
of a per cent): its multiplier is taken from the trusted texels around it instead (its mask stays low)."""


@dataclass(frozen=True)
class ExpressionMap:
    """multiplier [H,W,3] of the linear albedo (1 where the edit changes nothing) and mask [H,W] (where it acts)."""

    name: str
    edit: EditConfig
    multiplier: Array
    mask: Array


@dataclass(frozen=True)
class Texels:
    """The UV layout at the texture's size: which texels the mesh covers, and their surface point and normal."""

    covered: Array
    position: Array
    normal: Array


def texels_of(mesh: Mesh, shape: tuple[int, int]) -> Texels:
    height, width = shape
    uv = mesh.uvs[mesh.uv_triangles]
    corners = np.stack([uv[..., 0] * width, (1.0 - uv[..., 1]) * height], axis=-1)
    coverage = rasterize(corners, shape)
    position = coverage.interpolate(mesh.positions[mesh.triangles].astype(np.float32))
    normal = coverage.interpolate(mesh.vertex_normals()[mesh.triangles].astype(np.float32))
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9)
    return Texels(coverage.triangle >= 0, position, normal)


def paint_in_neutral(crop_in: Array, crop_out: Array, face_mask: Array, warp: WarpMode = "bilinear"
                     ) -> tuple[Array, Array]:
    """(log multiplier [S,S,3], trust [S,S]) of the model's paint, on the neutral crop's grid: the change each point of
    the neutral face takes with it. ``crop_out``: [S,S,5], the edit then its motion. The paint is taken as a change of
    shading alone, its colour cast removed (`reggan_plugin.edit.blend.crop_planes`), so the skin keeps its own colour;
    the colours the model paints in the mouth and eyes are of teeth and irises.
    ``warp``: how the model moves its crop (`ModelArtifact.warp`)."""
    s = crop_in.shape[0]
    motion = crop_out[..., 3:]
    gy, gx = np.mgrid[0:s, 0:s].astype(np.float32)
    moved = moved_crop(crop_in, motion, warp)
    delta = crop_planes(crop_in, crop_out[..., :3], face_mask, motion=motion, shading=True,
                        moved=moved)[..., :3]
    floor = 1e-3
    log_change = (np.log(np.maximum(srgb_decode(moved + delta), floor))
                  - np.log(np.maximum(srgb_decode(moved), floor)))
    log_change = cv2.GaussianBlur(log_change, (0, 0), SMOOTHING)
    trust = face_mask * (1.0 - _smoothstep(*DARKER, -log_change.min(axis=-1))) * (
        1.0 - _smoothstep(*BRIGHTER, log_change.max(axis=-1)))
    dx = np.gradient(motion, axis=1)
    dy = np.gradient(motion, axis=0)
    area = (1 + dx[..., 0]) * (1 + dy[..., 1]) - dx[..., 1] * dy[..., 0]  # neutral area per output pixel
    trust = trust * _smoothstep(*STRETCH, area)
    log_in = cv2.GaussianBlur(np.log(np.maximum(srgb_decode(crop_in), floor)).mean(axis=-1), (0, 0), 1.5)
    edge = np.hypot(cv2.Sobel(log_in, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(log_in, cv2.CV_32F, 0, 1, ksize=3)) / 8
    trust = trust * (1.0 - _smoothstep(*EDGES, cv2.dilate(edge, np.ones((5, 5), np.uint8))))
    shrink = np.ones((2 * TRUST_SOFTNESS + 1, 2 * TRUST_SOFTNESS + 1), np.uint8)
    trust = cv2.GaussianBlur(cv2.erode(trust.astype(np.float32), shrink), (0, 0), TRUST_SOFTNESS)
    # output pixel p shows neutral point p + motion(p): find, for each neutral point q, the p that shows it
    px, py = gx.copy(), gy.copy()
    for _ in range(6):
        at = cv2.remap(motion, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        px, py = gx - at[..., 0], gy - at[..., 1]
    back = cv2.remap(np.dstack([log_change, trust]), px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return back[..., :3], back[..., 3]


def _smoothstep(lo: float, hi: float, x: Array) -> Array:
    """`tone.smoothstep` of ``x`` from ``lo`` to ``hi``, float32."""
    return smoothstep((x - lo) / (hi - lo)).astype(np.float32)


def away_from_occlusions(view: View, radius: float) -> FloatArray:
    """[H,W] 0 at the view's occluding edges (depth jumps, the head's outline), rising to 1 `OCCLUSION_FADE` px away."""
    depth = np.where(np.isfinite(view.depth), view.depth, np.float32(1e9))
    jump = np.zeros(depth.shape, bool)
    step = OCCLUSION_STEP * radius
    jump[:, 1:] |= np.abs(np.diff(depth, axis=1)) > step
    jump[:, :-1] |= np.abs(np.diff(depth, axis=1)) > step
    jump[1:] |= np.abs(np.diff(depth, axis=0)) > step
    jump[:-1] |= np.abs(np.diff(depth, axis=0)) > step
    distance = cv2.distanceTransform((~jump).astype(np.uint8), cv2.DIST_L2, 3)
    return _smoothstep(0.0, OCCLUSION_FADE, distance)


def _as_picture(view: View) -> ImageData:
    return ImageData(np.round(np.clip(view.rgb, 0, 1) * 65535).astype(np.uint16), format="png")


def bake_maps(mesh: Mesh, albedo_linear: Array, edits: Sequence[tuple[str, EditConfig]],
              renderer: ExpressionRenderer, views: Sequence[tuple[float, float]] = VIEWS,
              progress: Callable[[str], None] | None = None) -> list[ExpressionMap]:
    """One `ExpressionMap` per (name, edit), at the albedo's size. Views where the detector finds no face add
    nothing; none at all is an `InputError`."""
    shape = (int(albedo_linear.shape[0]), int(albedo_linear.shape[1]))
    texels = texels_of(mesh, shape)
    radius = float(np.linalg.norm(mesh.positions.max(axis=0) - mesh.positions.min(axis=0)) / 2)
    sums = np.zeros((len(edits), *shape, 3), np.float32)
    weights = np.zeros((len(edits), *shape), np.float32)
    seen_any = False
    for yaw, pitch in views:
        view = draw(mesh, albedo_linear, framing(mesh, yaw, pitch, VIEW_SIZE))
        picture = _as_picture(view)
        faces = FaceLocator().faces(f"view {yaw:+.0f}/{pitch:+.0f}", picture)
        if progress:
            progress(f"view yaw {yaw:+.0f} pitch {pitch:+.0f}: {'a face' if faces else 'no face found'}")
        if not faces:
            continue
        seen_any = True
        prepared = renderer.prepare_image(picture, faces[:1])
        edited = renderer.forward_images([prepared] * len(edits), [e for _, e in edits])
        rows, cols = prepared.roi
        to_crop = prepared.matrices[0].astype(np.float64)
        # each covered texel: where the view sees it, whether it is the nearest surface there, and how squarely
        xy, depth = view.camera.project(texels.position)
        nearest = remap_points(view.depth, xy[..., 0] - 0.5, xy[..., 1] - 0.5, border=cv2.BORDER_CONSTANT)[..., 0]
        visible = texels.covered & (np.abs(depth - nearest) < DEPTH_TOLERANCE * radius)
        # squareness: the normal against the way to the camera from the texel itself
        towards = view.camera.position - texels.position
        towards /= np.maximum(np.linalg.norm(towards, axis=-1, keepdims=True), 1e-9)
        facing = np.clip((texels.normal * towards).sum(-1), 0, 1)
        away = remap_points(away_from_occlusions(view, radius), xy[..., 0] - 0.5, xy[..., 1] - 0.5,
                            border=cv2.BORDER_CONSTANT)[..., 0]
        view_weight = np.where(visible, facing ** SQUARENESS * away, 0).astype(np.float32)
        cx = to_crop[0, 0] * (xy[..., 0] - 0.5 - cols.start) + to_crop[0, 1] * (xy[..., 1] - 0.5 - rows.start) + to_crop[0, 2]
        cy = to_crop[1, 0] * (xy[..., 0] - 0.5 - cols.start) + to_crop[1, 1] * (xy[..., 1] - 0.5 - rows.start) + to_crop[1, 2]
        for k, crops in enumerate(edited):
            log_change, trust = paint_in_neutral(prepared.crops[0], crops.faces[0], renderer.mask,
                                                renderer.artifact.warp)
            sampled = remap_points(np.dstack([log_change * trust[..., None], trust]), cx, cy, border=cv2.BORDER_CONSTANT)
            w = view_weight * sampled[..., 3]
            sums[k] += view_weight[..., None] * sampled[..., :3]
            weights[k] += w
    if not seen_any:
        raise InputError(None, "no view of the mesh shows a face the detector finds: is the face towards +Z with +Y up?")
    out = []
    for k, (name, edit) in enumerate(edits):
        log_map = sums[k] / np.maximum(weights[k], 1e-6)[..., None]
        mask = np.clip(weights[k] / FULL_WEIGHT, 0, 1)
        known = (weights[k] > KNOWN_WEIGHT) & texels.covered
        log_map = fill_outside(log_map, known)
        out.append(ExpressionMap(name, edit, np.exp(log_map).astype(np.float32),
                                 fill_outside(mask[..., None], texels.covered)[..., 0].astype(np.float32)))
    return out


SEAM_MARGIN = 16
"""Texels past an island's edge that take the mean of their known neighbours, ring by ring (a bake's margin); the
rest of the gutter takes the pull-push average."""


def fill_outside(values: Array, known: Array) -> Array:
    """``values`` [H,W,C] kept where ``known``; elsewhere, up to `SEAM_MARGIN` texels out, the mean of the known
    neighbours, ring by ring, and beyond the average of the nearest known values over an image pyramid (pull-push):
    the gutter between UV islands takes its own island's edge, so filtering across a seam never reads a stranger."""
    weight = known.astype(np.float32)
    filled = (values * weight[..., None]).astype(np.float32)
    for _ in range(SEAM_MARGIN):
        total = cv2.blur(filled * weight[..., None], (3, 3)).reshape(filled.shape)
        count = cv2.blur(weight, (3, 3))
        grow = (weight == 0) & (count > 0)
        filled[grow] = total[grow] / count[grow][..., None]
        weight = np.where(grow, 1.0, weight).astype(np.float32)
    return np.where(weight[..., None] > 0, filled, _pull_push(filled, weight)).astype(np.float32)


def _pull_push(values: Array, known: Array) -> Array:
    """Every texel: the weighted average of the known ones nearest it, coarse levels filling what fine ones lack."""
    levels = [(values * known[..., None], known)]
    while min(levels[-1][1].shape) > 2:
        v, w = levels[-1]
        h2, w2 = (v.shape[0] + 1) // 2, (v.shape[1] + 1) // 2
        v = cv2.resize(v, (w2, h2), interpolation=cv2.INTER_AREA).reshape(h2, w2, -1)
        w = cv2.resize(w, (w2, h2), interpolation=cv2.INTER_AREA).astype(np.float32)
        levels.append((v, w))
    v, w = levels[-1]
    filled: Array = v / np.maximum(w, 1e-8)[..., None]
    for v, w in reversed(levels[:-1]):
        up = cv2.resize(filled, (v.shape[1], v.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(v.shape)
        own = v / np.maximum(w, 1e-8)[..., None]
        share = np.clip(w, 0, 1)[..., None]
        filled = share * own + (1 - share) * up
    return filled
