"""Convert the ICT-FaceKit OBJ folder (FaceXModel/) into the packed npz that the renderer reads.

Upstream layout: ``generic_neutral_mesh.obj`` (topology, UVs, ``usemtl`` materials), ``identityNNN.obj``
(one identity mode each, full meshes) and one OBJ per expression blendshape (``jawOpen.obj``, ...; full
meshes). Deltas are stored relative to the neutral mesh as float16, as in the packed file of
``../shared/data/ict-face-model`` (its README documents every array).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reggan_plugin.errors import InputError

NEUTRAL_NAME = "generic_neutral_mesh.obj"
IDENTITY_RE = re.compile(r"^identity(\d+)\.obj$")

LANDMARKS68 = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
    268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
    4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695,
    2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517,
    5966,
)
"""Multi-PIE 68-point landmark vertex ids of the full ICT topology (upstream README)."""

SKIP_SHAPES = ("PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R")
"""Shapes of some upstream versions that the 53-shape 'light' model leaves out (kept with keep_all=True)."""


@dataclass(frozen=True)
class ObjMesh:
    vertices: np.ndarray      # (V, 3) float32
    uvs: np.ndarray           # (T, 2) float32
    face_vertex_indices: np.ndarray
    face_uv_indices: np.ndarray
    face_sizes: np.ndarray
    face_material: np.ndarray
    material_names: tuple[str, ...]


def read_obj(path: Path, vertices_only: bool = False) -> ObjMesh:
    """A minimal OBJ reader: v, vt, usemtl and f (v, v/vt, v/vt/vn, v//vn; 1-based or negative)."""
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    fv: list[int] = []
    ft: list[int] = []
    sizes: list[int] = []
    mats: list[int] = []
    names: list[str] = []
    current = -1
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(path, f"cannot read OBJ: {err}") from err
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        tag = parts[0]
        try:
            if tag == "v":
                verts.append([float(x) for x in parts[1:4]])
            elif vertices_only:
                continue
            elif tag == "vt":
                uvs.append([float(x) for x in parts[1:3]])
            elif tag == "usemtl":
                name = parts[1] if len(parts) > 1 else ""
                if name not in names:
                    names.append(name)
                current = names.index(name)
            elif tag == "f":
                corners = parts[1:]
                for c in corners:
                    fields = c.split("/")
                    vi = int(fields[0])
                    fv.append(vi - 1 if vi > 0 else len(verts) + vi)
                    ti = int(fields[1]) if len(fields) > 1 and fields[1] else 0
                    ft.append(ti - 1 if ti > 0 else (len(uvs) + ti if ti < 0 else -1))
                sizes.append(len(corners))
                mats.append(current)
        except (ValueError, IndexError) as err:
            raise InputError(path, f"line {lineno}: cannot parse {line.strip()!r}") from err
    if not verts:
        raise InputError(path, "no vertices in OBJ")
    return ObjMesh(
        vertices=np.asarray(verts, np.float32), uvs=np.asarray(uvs, np.float32).reshape(-1, 2),
        face_vertex_indices=np.asarray(fv, np.int32), face_uv_indices=np.asarray(ft, np.int32),
        face_sizes=np.asarray(sizes, np.int8), face_material=np.asarray(mats, np.int8),
        material_names=tuple(names),
    )


def convert_obj_folder(folder: Path, out: Path, landmarks: tuple[int, ...] | None = None,
                       keep_all: bool = False) -> Path:
    """Pack ``folder`` (FaceXModel/) into ``out`` (.npz). Returns ``out``.

    ``landmarks`` defaults to the upstream 68 ids when the mesh has the full ICT vertex count, and
    must be given for other meshes (tests use tiny ones).
    """
    folder = Path(folder)
    neutral_path = folder / NEUTRAL_NAME
    if not neutral_path.is_file():
        raise InputError(folder, f"no {NEUTRAL_NAME}: not an ICT-FaceKit FaceXModel folder")
    base = read_obj(neutral_path)
    n = len(base.vertices)
    identities: list[tuple[int, Path]] = []
    expressions: list[Path] = []
    for p in sorted(folder.glob("*.obj")):
        m = IDENTITY_RE.match(p.name)
        if m:
            identities.append((int(m.group(1)), p))
        elif p.name != NEUTRAL_NAME and (keep_all or p.stem not in SKIP_SHAPES):
            expressions.append(p)
    identities.sort()
    if not identities or not expressions:
        raise InputError(folder, "need identityNNN.obj files and expression blendshape OBJs")

    def deltas(paths: list[Path]) -> np.ndarray:
        out_arr = np.empty((len(paths), n, 3), np.float16)
        for i, p in enumerate(paths):
            v = read_obj(p, vertices_only=True).vertices
            if len(v) != n:
                raise InputError(p, f"has {len(v)} vertices, the neutral mesh has {n}")
            out_arr[i] = (v - base.vertices).astype(np.float16)
        return out_arr

    if landmarks is None:
        if n <= max(LANDMARKS68):
            raise InputError(folder, f"mesh has {n} vertices; pass the landmark vertex ids explicitly")
        landmarks = LANDMARKS68
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.npz")
    np.savez_compressed(
        tmp,
        neutral_vertices=base.vertices,
        identity_deltas=deltas([p for _, p in identities]),
        identity_names=np.array([p.stem for _, p in identities]),
        expression_deltas=deltas(expressions),
        expression_names=np.array([p.stem for p in expressions]),
        face_vertex_indices=base.face_vertex_indices,
        face_uv_indices=base.face_uv_indices,
        face_sizes=base.face_sizes,
        face_material=base.face_material,
        material_names=np.array(base.material_names),
        uvs=base.uvs,
        landmarks68=np.asarray(landmarks, np.int32),
    )
    tmp.replace(out)
    return out
