"""Camera and light placement, and landmark projection, in numpy (no bpy).

World space is the face model's own frame scaled to metres (+Y up, +Z out of the face). A Blender
camera with this world matrix and ``sensor_fit='HORIZONTAL'``, ``sensor_width=SENSOR_MM`` and a square
image sees exactly what :func:`project` computes. Pixel convention: (x, y), origin at the centre of
the top-left pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .variation import Camera

SENSOR_MM = 36.0
CM_TO_M = 0.01


def rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def orbit(yaw: float, elevation: float, roll: float = 0.0) -> np.ndarray:
    """Rotation whose -Z axis looks back at the origin from yaw/elevation (degrees) on the +Z side."""
    return rot_y(yaw) @ rot_x(-elevation) @ rot_z(roll)


@dataclass(frozen=True)
class CameraPose:
    rotation: np.ndarray   # (3, 3), columns = camera x, y, z axes in world
    position: np.ndarray   # (3,) metres
    focal_mm: float
    target: np.ndarray     # (3,) metres, the point the camera orbits

    def matrix_world(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.position
        return m


def frame_face(landmarks_m: np.ndarray, cam: Camera) -> CameraPose:
    """Camera for one identity: frames its neutral landmarks (metres, (68, 3)) per the jittered params."""
    lo, hi = landmarks_m.min(0), landmarks_m.max(0)
    height = float(hi[1] - lo[1])
    centre = (lo + hi) / 2
    centre[1] += 0.12 * height     # leave room for the forehead
    centre[2] = float(landmarks_m[:, 2].mean())
    frame = height / cam.fill      # frame height in metres at the target
    distance = frame * cam.focal_mm / SENSOR_MM
    rotation = orbit(cam.yaw, cam.pitch, cam.roll)
    target = centre + rotation @ np.array([cam.shift_x * frame, cam.shift_y * frame, 0.0])
    position = target + rotation @ np.array([0.0, 0.0, distance])
    return CameraPose(rotation=rotation, position=position, focal_mm=cam.focal_mm, target=target)


def project(points_m: np.ndarray, pose: CameraPose, size: int) -> np.ndarray:
    """World points (N, 3) metres -> pixel coordinates (N, 2) of a square ``size`` image."""
    pc = (np.asarray(points_m, np.float64) - pose.position) @ pose.rotation
    depth = -pc[:, 2]
    s = pose.focal_mm / SENSOR_MM
    u = 0.5 + s * pc[:, 0] / depth
    v = 0.5 + s * pc[:, 1] / depth
    return np.stack([u * size - 0.5, (1.0 - v) * size - 0.5], axis=1)
