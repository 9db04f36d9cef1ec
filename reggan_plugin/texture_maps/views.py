"""Views of a textured head: a perspective camera orbiting the head's centre, and the head drawn through it with its
albedo under a soft light from the camera (no shadows, no highlights), as the bake edits it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ..arrays import Array, Float64Array
from ..geometry.resample import remap_points
from ..imageio.colour import srgb_encode
from .mesh import Mesh
from .raster import Coverage, rasterize

FIELD_OF_VIEW = 30.0
"""Degrees across the picture: a portrait lens, as the training renders' cameras."""
FILL = 0.80
"""Share of the picture's height the head's bounding sphere takes: the face is about half the picture."""
HEADLIGHT = 0.3
"""Shading 1 - HEADLIGHT * (1 - n.v): light from the camera, enough for the face's shape to read, with no shadow."""
BACKGROUND = 0.5


@dataclass(frozen=True)
class Camera:
    """Looks at ``centre`` from ``distance`` away, turned ``yaw`` degrees about +Y and ``pitch`` about +X from +Z."""

    centre: Array
    distance: float
    yaw: float
    pitch: float
    size: int

    @property
    def rotation(self) -> Float64Array:
        """World -> camera axes (x right, y up, z towards the camera)."""
        a, b = np.radians(self.yaw), np.radians(self.pitch)
        turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        tilt = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        axes: Float64Array = (turn @ tilt).T
        return axes

    @property
    def focal(self) -> float:
        return float(0.5 * self.size / np.tan(np.radians(FIELD_OF_VIEW) / 2))

    @property
    def position(self) -> Array:
        where: Array = self.centre + self.rotation.T @ np.array([0.0, 0.0, self.distance])
        return where

    def project(self, points: Array) -> tuple[Array, Array]:
        """World points [...,3] -> (pixels [...,2] with x right and y down, depth [...] along the view)."""
        q = (np.asarray(points, np.float64) - self.centre) @ self.rotation.T
        depth = self.distance - q[..., 2]
        safe = np.where(depth > 1e-9, depth, 1e-9)
        x = self.focal * q[..., 0] / safe + self.size / 2
        y = -self.focal * q[..., 1] / safe + self.size / 2
        return np.stack([x, y], axis=-1), depth


def framing(mesh: Mesh, yaw: float, pitch: float = 0.0, size: int = 640) -> Camera:
    """A camera that holds the whole head: its bounding sphere fills `FILL` of the picture."""
    lo, hi = mesh.positions.min(axis=0), mesh.positions.max(axis=0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo) / 2)
    half = np.radians(FIELD_OF_VIEW) / 2 * FILL
    return Camera(centre, radius / np.sin(half), yaw, pitch, size)


class View(NamedTuple):
    """A drawn view: sRGB [0,1] picture, which triangle each pixel sees and its depth (inf where none)."""

    camera: Camera
    rgb: Array
    coverage: Coverage
    depth: Array


def sample_texture(texture: Array, uv: Array) -> Array:
    """Bilinear samples of ``texture`` [H,W,C] at OBJ-style UVs [...,2] (v up; repeating)."""
    height, width = texture.shape[:2]
    u = np.mod(uv[..., 0], 1.0) * width - 0.5
    v = (1.0 - np.mod(uv[..., 1], 1.0)) * height - 0.5
    return remap_points(texture, u, v, border=cv2.BORDER_WRAP)


def draw(mesh: Mesh, albedo_linear: Array, camera: Camera) -> View:
    """The head through ``camera``: linear albedo [H,W,3] times the headlight, encoded sRGB, on a grey ground."""
    xy, depth = camera.project(mesh.positions)
    coverage = rasterize(xy[mesh.triangles], (camera.size, camera.size), depth[mesh.triangles])
    hit = coverage.triangle >= 0
    uv = coverage.interpolate(mesh.uvs[mesh.uv_triangles].astype(np.float32))
    normals = mesh.vertex_normals()[mesh.triangles].astype(np.float32)
    n = coverage.interpolate(normals)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    towards = camera.rotation[2]  # the camera's +z in world axes: from the head to the camera
    facing = np.clip(n @ towards, 0.0, 1.0)
    shade = 1.0 - HEADLIGHT * (1.0 - facing)
    linear = np.where(hit[..., None], sample_texture(albedo_linear, uv) * shade[..., None], 0.0)
    rgb = np.where(hit[..., None], srgb_encode(np.clip(linear, 0, 1)), BACKGROUND).astype(np.float32)
    z = coverage.interpolate(depth[mesh.triangles][..., None].astype(np.float32))[..., 0]
    return View(camera, rgb, coverage, np.where(hit, z, np.inf).astype(np.float32))
