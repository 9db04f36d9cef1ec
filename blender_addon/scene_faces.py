"""Face boxes from the 3-D scene: project a head (object, bone or vertex group) through the scene camera.

No detector is involved: the box is exact for every frame, whatever the avatar looks like. Main
thread only (reads bpy data and evaluates the depsgraph).

Conventions: points are (x, y) pixels of the rendered frame, y DOWN, pixel centres at
integer coordinates; boxes are (x, y, w, h) in pixel-index terms (a box covering columns a..b has
x = a, w = b - a + 1), the convention of ``reggan_plugin.faces.box_from_landmarks``.
The projection is ``bpy_extras.object_utils.world_to_camera_view`` vectorised with numpy (shift,
lens, sensor fit, orthographic cameras and pixel aspect all come from ``Camera.view_frame``).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

SPHERE_DIRECTIONS = 26  # sample points on a bone's head sphere (the 26 neighbours of a cube cell)


def render_size(scene: Any) -> tuple[int, int]:
    """(width, height) in pixels of the scene's render output."""
    scale = scene.render.resolution_percentage / 100.0
    return int(scene.render.resolution_x * scale), int(scene.render.resolution_y * scale)


def camera_view(scene: Any, camera: Any, points: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> (N, 3) of (x, y, depth) exactly as ``world_to_camera_view`` computes them:
    (0, 0) the bottom-left and (1, 1) the top-right of the camera frame, depth > 0 in front of it."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    world_to_cam = np.array(camera.matrix_world.normalized().inverted())
    local = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    depth = -local[:, 2]
    frame = np.array([tuple(v) for v in camera.data.view_frame(scene=scene)[:3]])  # top-right, bottom-right, bottom-left
    if camera.data.type != "ORTHO":
        scale = np.where(depth == 0.0, np.nan, depth) / -frame[0, 2]  # frame corners scaled to each depth
    else:
        scale = np.ones_like(depth)
    min_x, max_x = frame[2, 0] * scale, frame[1, 0] * scale
    min_y, max_y = frame[1, 1] * scale, frame[0, 1] * scale
    x = (local[:, 0] - min_x) / (max_x - min_x)
    y = (local[:, 1] - min_y) / (max_y - min_y)
    return np.stack([x, y, depth], axis=1)


def project_to_pixels(scene: Any, camera: Any, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> ((N, 2) pixel points, y down, pixel centres at integers; (N,) in-front mask)."""
    view = camera_view(scene, camera, points)
    width, height = render_size(scene)
    pixels = np.stack([view[:, 0] * width - 0.5, (1.0 - view[:, 1]) * height - 0.5], axis=1)
    return pixels, np.isfinite(view[:, 2]) & (view[:, 2] > 0)


def box_from_points(points: np.ndarray, margin: float = 0.0) -> tuple[float, float, float, float]:
    """The box covering the pixels under the points, grown by `margin` (0.1 = 10% wider and taller)."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0) + 1.0
    w, h = (x1 - x0) * (1.0 + margin), (y1 - y0) * (1.0 + margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return (float(cx - w / 2), float(cy - h / 2), float(w), float(h))


def _mesh_points(obj: Any, depsgraph: Any, vertex_group: str = "") -> tuple[np.ndarray, np.ndarray]:
    """World positions and unit normals of the evaluated mesh's vertices (modifiers, armature and shape keys applied),
    only those with weight > 0 in `vertex_group` when one is named."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float64)
        normals = np.empty(len(mesh.vertices) * 3, np.float64)
        mesh.vertices.foreach_get("co", co)
        mesh.vertices.foreach_get("normal", normals)
        co, normals = co.reshape(-1, 3), normals.reshape(-1, 3)
        if vertex_group:
            group = obj.vertex_groups.get(vertex_group)
            if group is None:
                raise LookupError(f"object {obj.name!r} has no vertex group {vertex_group!r}")
            index = group.index
            keep = [v.index for v in mesh.vertices if any(g.group == index and g.weight > 0 for g in v.groups)]
            co, normals = co[keep], normals[keep]
        matrix = np.array(evaluated.matrix_world)
    finally:
        evaluated.to_mesh_clear()
    normals = normals @ np.linalg.inv(matrix[:3, :3])  # normals go by the inverse transpose
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return co @ matrix[:3, :3].T + matrix[:3, 3], normals


def _sphere_points(centre: np.ndarray, radius: float) -> np.ndarray:
    grid = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)], float)
    return centre + radius * grid / np.linalg.norm(grid, axis=1, keepdims=True)


def _bone_points(obj: Any, bone: str) -> np.ndarray:
    """A sphere through the posed bone's head and tail (a head bone spans neck to crown)."""
    pose_bone = obj.pose.bones.get(bone) if obj.pose is not None else None
    if pose_bone is None:
        raise LookupError(f"armature {obj.name!r} has no bone {bone!r}")
    matrix = np.array(obj.matrix_world)
    ends = np.array([tuple(pose_bone.head), tuple(pose_bone.tail)]) @ matrix[:3, :3].T + matrix[:3, 3]
    return _sphere_points(ends.mean(axis=0), float(np.linalg.norm(ends[1] - ends[0])) / 2.0)


def head_points(obj: Any, depsgraph: Any, *, bone: str = "", vertex_group: str = "") -> np.ndarray:
    """World points (N, 3) that outline the head: a bone's sphere, a vertex group's vertices, the mesh's
    vertices, or (other object types) the corners of the evaluated bounding box."""
    if bone:
        if obj.type != "ARMATURE":
            raise LookupError(f"a head bone needs an armature; {obj.name!r} is a {obj.type.lower()}")
        return _bone_points(obj, bone)
    if obj.type == "MESH":
        return _mesh_points(obj, depsgraph, vertex_group)[0]
    evaluated = obj.evaluated_get(depsgraph)
    matrix = np.array(evaluated.matrix_world)
    corners = np.array([tuple(c) for c in evaluated.bound_box])
    return corners @ matrix[:3, :3].T + matrix[:3, 3]


def scene_face_box(
    scene: Any, obj: Any, *, bone: str = "", vertex_group: str = "", margin: float = 0.0, depsgraph: Any = None
) -> tuple[float, float, float, float] | None:
    """The head's face box in the current frame's render, or None when it is behind the camera or off-frame."""
    camera = scene.camera
    if camera is None:
        raise LookupError(f"scene {scene.name!r} has no active camera to project the head through")
    if depsgraph is None:
        import bpy

        depsgraph = bpy.context.evaluated_depsgraph_get()
    points = head_points(obj, depsgraph, bone=bone, vertex_group=vertex_group)
    if not seen_by_camera(scene, camera, depsgraph, obj, bone=bone, vertex_group=vertex_group, points=points):
        return None
    pixels, in_front = project_to_pixels(scene, camera, points)
    pixels = pixels[in_front]
    if len(pixels) == 0:
        return None
    box = box_from_points(pixels, margin)
    width, height = render_size(scene)
    x, y, w, h = box
    if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
        return None
    return box


def renders(obj: Any, scene: Any) -> bool:
    """Whether `obj` appears in the scene's renders: not hidden from render itself, and in a collection reachable
    from the scene's collection through collections none of which is hidden from render or excluded from the view
    layer."""
    if obj.hide_render:
        return False
    users = set(obj.users_collection)

    def reach(collection: Any, layer: Any) -> bool:
        if collection.hide_render or (layer is not None and layer.exclude):
            return False
        if collection in users:
            return True
        return any(reach(child, layer.children.get(child.name) if layer is not None else None) for child in collection.children)

    if scene.collection in users:
        return True
    layer = bpy_view_layer_collection(scene)
    return any(reach(child, layer.children.get(child.name) if layer is not None else None) for child in scene.collection.children)


def bpy_view_layer_collection(scene: Any) -> Any:
    import bpy

    view_layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
    return view_layer.layer_collection if view_layer is not None else None


def seen_by_camera(scene: Any, camera: Any, depsgraph: Any, obj: Any, *, bone: str = "", vertex_group: str = "",
                   points: np.ndarray | None = None) -> bool:
    """Whether the camera sees the head, so that a box from the scene is a face in the picture: a head mesh must
    appear in renders, and at least `MIN_SEEN` of its points (a vertex group's: the face's) must face the camera
    (their normals) with nothing that renders between them and the camera (a ray cast in the evaluated depsgraph).
    A bone's sphere counts as seen when rays reach its surface from the camera. A whole mesh without a face group
    cannot tell the back of the head from the face: name the face's vertex group for that."""
    if bone:
        sphere = np.asarray(points if points is not None else head_points(obj, depsgraph, bone=bone), np.float64)
        centre = sphere.mean(axis=0)
        radius = float(np.linalg.norm(sphere[0] - centre))
        return _seen_fraction(scene, camera, depsgraph, np.vstack([centre, sphere]), None, stop_short=radius) >= MIN_SEEN
    if obj.type == "MESH":
        if not renders(obj, scene):
            return False
        co, normals = _mesh_points(obj, depsgraph, vertex_group)
        return len(co) > 0 and _seen_fraction(scene, camera, depsgraph, co, normals) >= MIN_SEEN
    return renders(obj, scene)


MIN_SEEN = 0.1  # of the head's points facing the camera unoccluded, for "the camera sees the face"
MAX_RAYS = 256  # points sampled for the ray casts (evenly through the list)


def _seen_fraction(scene: Any, camera: Any, depsgraph: Any, points: np.ndarray, normals: np.ndarray | None, *,
                   stop_short: float = 0.0) -> float:
    """The fraction of `points` that face the camera (when `normals` are given) and that a ray from the camera reaches
    with no rendered object in the way, stopping `stop_short` (plus a hair) before the point."""
    from mathutils import Vector

    pick = np.unique(np.linspace(0, len(points) - 1, min(len(points), MAX_RAYS)).round().astype(int))
    points = points[pick]
    cam = np.array(camera.matrix_world.translation)
    forward = -np.array(camera.matrix_world.to_3x3().col[2]).astype(np.float64)
    forward /= np.linalg.norm(forward)
    if camera.data.type == "ORTHO":  # parallel rays, from behind the camera plane
        origins = points - forward * (np.dot(points - cam, forward)[:, None] + camera.data.clip_start)
    else:
        origins = np.broadcast_to(cam, points.shape)
    seen = 0
    for index, (origin, point) in enumerate(zip(origins, points)):
        ray = point - origin
        length = float(np.linalg.norm(ray))
        if length <= 0:
            continue
        if normals is not None and np.dot(normals[pick[index]], -ray) <= 0:
            continue  # faces away from the camera
        limit = length - stop_short - max(1e-4, 1e-4 * length)
        if limit <= 0 or not _blocked(scene, depsgraph, Vector(origin), Vector(ray / length), limit):
            seen += 1
    return seen / len(points)


def _blocked(scene: Any, depsgraph: Any, origin: Any, direction: Any, distance: float) -> bool:
    """Whether a rendered object lies on the ray within `distance` (objects hidden from render are looked through)."""
    travelled = 0.0
    for _ in range(16):
        hit, location, _normal, _index, obj, _matrix = scene.ray_cast(depsgraph, origin, direction, distance=distance - travelled)
        if not hit:
            return False
        if obj is None or renders(obj.original, scene):
            return True
        step = (location - origin).length + 1e-5
        travelled += step
        origin = origin + direction * step
        if travelled >= distance:
            return False
    return True


def scene_face_boxes(scene: Any, frames: Iterable[int], obj: Any, **kwargs: Any) -> dict[int, tuple[float, float, float, float] | None]:
    """`scene_face_box` for each frame (sets the scene's frame, then restores it)."""
    import bpy

    current, subframe = scene.frame_current, scene.frame_subframe
    boxes = {}
    try:
        for frame in frames:
            scene.frame_set(frame)
            boxes[frame] = scene_face_box(scene, obj, depsgraph=bpy.context.evaluated_depsgraph_get(), **kwargs)
    finally:
        scene.frame_set(current, subframe=subframe)
    return boxes
