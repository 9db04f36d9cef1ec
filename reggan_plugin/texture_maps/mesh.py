"""A textured triangle mesh read from OBJ or glTF (.gltf/.glb): positions, UVs and the triangles over both.

Only what a bake needs is read: positions, the first UV set and the triangles (polygons are split into fans; glTF
node transforms are applied). Axes are the glTF convention, which Blender's OBJ export writes by default: +Y up and
the face looking along +Z."""
from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Array
from ..errors import InputError

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@dataclass(frozen=True)
class Mesh:
    """positions [V,3] float64; uvs [T,2] float64 (v up, as in the files); triangles [F,3] into positions and
    uv_triangles [F,3] into uvs, corner by corner."""

    positions: Array
    uvs: Array
    triangles: Array
    uv_triangles: Array

    def vertex_normals(self) -> Array:
        """Area-weighted unit normals per position [V,3] (counter-clockwise triangles face outwards)."""
        p = self.positions[self.triangles]
        face = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        normals = np.zeros_like(self.positions)
        for k in range(3):
            np.add.at(normals, self.triangles[:, k], face)
        unit: Array = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        return unit

    def moved(self, positions: Array) -> Mesh:
        """The same layout over other positions (a blendshape's)."""
        return Mesh(np.asarray(positions, np.float64), self.uvs, self.triangles, self.uv_triangles)


def load_mesh(path: Path) -> Mesh:
    """OBJ, glTF or GLB by suffix; an unreadable or untextured mesh is an `InputError` naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".obj", ".gltf", ".glb"):
        raise InputError(path, f"a mesh must be .obj, .gltf or .glb, not {suffix or 'a file without a suffix'}")
    try:
        mesh = _read_obj(path) if suffix == ".obj" else _read_gltf(path)
    except OSError as exc:
        raise InputError(path, f"cannot read the mesh ({exc.strerror or exc})") from None
    except (ValueError, KeyError, IndexError, TypeError, struct.error, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable {suffix[1:].upper()} mesh ({exc})") from None
    if not len(mesh.triangles):
        raise InputError(path, "the mesh has no triangles")
    if not len(mesh.uvs):
        raise InputError(path, "the mesh has no UV coordinates: a bake writes into the UV layout")
    for name, array in (("positions", mesh.positions), ("UVs", mesh.uvs)):
        if not np.isfinite(array).all():
            raise InputError(path, f"the mesh's {name} hold NaN or inf")
    if mesh.triangles.max() >= len(mesh.positions) or mesh.uv_triangles.max() >= len(mesh.uvs):
        raise InputError(path, "a face refers to a vertex or UV the file does not have")
    return mesh


def _read_obj(path: Path) -> Mesh:
    positions: list[list[float]] = []
    uvs: list[list[float]] = []
    tris: list[tuple[int, int, int]] = []
    uv_tris: list[tuple[int, int, int]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            positions.append([float(x) for x in parts[1:4]])
        elif parts[0] == "vt":
            uvs.append([float(x) for x in parts[1:3]])
        elif parts[0] == "f":
            corners = [c.split("/") for c in parts[1:]]
            if any(len(c) < 2 or not c[1] for c in corners):
                raise ValueError("a face without UV indices (f v/vt ...)")
            vi = [_obj_index(c[0], len(positions)) for c in corners]
            ti = [_obj_index(c[1], len(uvs)) for c in corners]
            for k in range(1, len(corners) - 1):  # a polygon as a fan
                tris.append((vi[0], vi[k], vi[k + 1]))
                uv_tris.append((ti[0], ti[k], ti[k + 1]))
    return Mesh(np.array(positions, np.float64).reshape(-1, 3), np.array(uvs, np.float64).reshape(-1, 2),
                np.array(tris, np.int64).reshape(-1, 3), np.array(uv_tris, np.int64).reshape(-1, 3))


def _obj_index(token: str, count: int) -> int:
    index = int(token)
    return index - 1 if index > 0 else count + index


def _read_gltf(path: Path) -> Mesh:
    data = path.read_bytes()
    binary: bytes | None = None
    if path.suffix.lower() == ".glb":
        magic, _version, _length = struct.unpack_from("<4sII", data, 0)
        if magic != b"glTF":
            raise ValueError("no glTF header")
        at, doc = 12, None
        while at < len(data):
            size, kind = struct.unpack_from("<I4s", data, at)
            chunk = data[at + 8 : at + 8 + size]
            if kind == b"JSON":
                doc = json.loads(chunk)
            elif kind == b"BIN\x00":
                binary = chunk
            at += 8 + size
        if doc is None:
            raise ValueError("no JSON chunk")
    else:
        doc = json.loads(data)
    buffers = [_buffer(path, b, binary) for b in doc.get("buffers", [])]

    def accessor(index: int) -> Array:
        acc = doc["accessors"][index]
        view = doc["bufferViews"][acc["bufferView"]]
        dtype = np.dtype(_COMPONENTS[acc["componentType"]])
        width = _WIDTH[acc["type"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        stride = view.get("byteStride") or dtype.itemsize * width
        raw = np.frombuffer(buffers[view["buffer"]], np.uint8, count=stride * (acc["count"] - 1) + dtype.itemsize * width,
                            offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, (acc["count"], dtype.itemsize * width), (stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(acc["count"], width)

    positions, uvs, tris = [], [], []
    count = 0
    for mesh_index, matrix in _mesh_nodes(doc):
        for primitive in doc["meshes"][mesh_index]["primitives"]:
            if primitive.get("mode", 4) != 4 or "TEXCOORD_0" not in primitive["attributes"]:
                continue
            p = accessor(primitive["attributes"]["POSITION"]).astype(np.float64)
            uv = accessor(primitive["attributes"]["TEXCOORD_0"]).astype(np.float64)
            idx = (accessor(primitive["indices"]).reshape(-1, 3).astype(np.int64) if "indices" in primitive
                   else np.arange(len(p)).reshape(-1, 3))
            positions.append(p @ matrix[:3, :3].T + matrix[:3, 3])
            uvs.append(np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1))  # glTF's v runs down; OBJ's, up
            tris.append(idx + count)
            count += len(p)
    if not positions:
        raise ValueError("no triangle primitive with TEXCOORD_0")
    triangles = np.concatenate(tris)
    return Mesh(np.concatenate(positions), np.concatenate(uvs), triangles, triangles)


def _buffer(path: Path, spec: dict[str, Any], binary: bytes | None) -> bytes:
    uri: str | None = spec.get("uri")
    if uri is None:
        if binary is None:
            raise ValueError("a buffer without data")
        return binary
    if uri.startswith("data:"):
        return base64.b64decode(uri.split(",", 1)[1])
    return (path.parent / uri).read_bytes()


def _mesh_nodes(doc: dict[str, Any]) -> list[tuple[int, Array]]:
    """(mesh index, world matrix) for every node of the default scene that holds a mesh."""
    nodes = doc.get("nodes", [])
    scenes = doc.get("scenes", [])
    roots = scenes[doc.get("scene", 0)]["nodes"] if scenes else range(len(nodes))
    found: list[tuple[int, Array]] = []
    stack = [(i, np.eye(4)) for i in roots]
    seen = 0
    while stack:
        index, parent = stack.pop()
        seen += 1
        if seen > 100_000:
            raise ValueError("the node tree is cyclic or too deep")
        node = nodes[index]
        world = parent @ _node_matrix(node)
        if "mesh" in node:
            found.append((node["mesh"], world))
        stack.extend((child, world) for child in node.get("children", []))
    if not nodes and doc.get("meshes"):
        found = [(i, np.eye(4)) for i in range(len(doc["meshes"]))]
    return found


def _node_matrix(node: dict[str, Any]) -> Array:
    if "matrix" in node:
        return np.array(node["matrix"], np.float64).reshape(4, 4).T  # column-major
    x, y, z, w = node.get("rotation", (0.0, 0.0, 0.0, 1.0))
    rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3] = rotation * np.array(node.get("scale", (1.0, 1.0, 1.0)))
    m[:3, 3] = node.get("translation", (0.0, 0.0, 0.0))
    return m
