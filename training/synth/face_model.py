"""The ICT Face Model in its packed npz form: load it, build meshes, find landmarks and eye frames.

A face is ``neutral + identity_weights @ identity_deltas + expression_weights @ expression_deltas``
(centimetres, +Y up, +Z out of the face). This module needs numpy only (no bpy), so the CLI, the
tests and the converter can use it anywhere.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reggan_plugin.errors import ModelError, UsageError

ENV_VAR = "REGGAN_ICT_MODEL"
"""Environment variable naming the packed model when ``--face-model`` is not given."""

GET_MODEL_HINT = (
    "get the ICT Face Model from the public ICT-FaceKit repository (github.com/ICT-VGL/ICT-FaceKit, MIT), "
    "then pack its FaceXModel/ folder with `reggan-plugin dataset convert-obj FaceXModel/ ict_face_model.npz` "
    f"and pass --face-model ict_face_model.npz (or set {ENV_VAR})"
)

REQUIRED_ARRAYS = (
    "neutral_vertices", "identity_deltas", "expression_deltas", "expression_names", "face_vertex_indices",
    "face_uv_indices", "face_sizes", "face_material", "material_names", "uvs", "landmarks68",
)

HIDDEN_MATERIALS = ("M_LacrimalFluid", "M_EyeBlend", "M_EyeOcclusion")
"""Shading helpers of real-time engines; an offline render hides them (they show as dark rings)."""

MOUTH_SOCKET = (11248, 13293)
"""Vertex id range of the mouth socket (inside of the lips and cheeks), upstream README."""

EYEBALL_SHELLS = {"left": ("M_ScleraLeft", "M_IrisLeft"), "right": ("M_ScleraRight", "M_IrisRight")}
"""Per eye: the outer shell (cornea bulge, shaded as the visible eye) and the inner eyeball (hidden)."""


@dataclass(frozen=True)
class FaceModel:
    """The packed model. Arrays as documented in the data folder's README."""

    path: Path
    neutral: np.ndarray            # (V, 3) float32
    identity_deltas: np.ndarray    # (I, V, 3) float32
    expression_deltas: np.ndarray  # (E, V, 3) float32
    expression_names: tuple[str, ...]
    face_vertex_indices: np.ndarray  # (sum sizes,) int32
    face_uv_indices: np.ndarray
    face_sizes: np.ndarray         # (F,) int
    face_material: np.ndarray      # (F,) int
    material_names: tuple[str, ...]
    uvs: np.ndarray                # (T, 2) float32
    landmarks68: np.ndarray        # (68,) int

    @property
    def n_identities(self) -> int:
        return int(self.identity_deltas.shape[0])

    def vertices(self, identity: np.ndarray, expression: np.ndarray | None = None) -> np.ndarray:
        """Mesh vertices (V, 3) float32 for identity weights (I,) and expression weights (E,) in [0, 1]."""
        v = self.neutral + np.tensordot(np.asarray(identity, np.float32), self.identity_deltas, axes=1)
        if expression is not None:
            v = v + np.tensordot(np.asarray(expression, np.float32), self.expression_deltas, axes=1)
        return v.astype(np.float32)

    def expression_vector(self, weights: dict[str, float]) -> np.ndarray:
        """Blendshape weights by name -> (E,) vector in the model's order. Unknown names are an error."""
        out = np.zeros(len(self.expression_names), np.float32)
        index = {n: i for i, n in enumerate(self.expression_names)}
        for name, w in weights.items():
            if name not in index:
                raise UsageError(f"blendshape {name!r} is not in the face model {self.path}")
            out[index[name]] = w
        return out

    def face_material_id(self, name: str) -> int:
        return self.material_names.index(name)

    def polygon_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.face_sizes.astype(np.int64))])

    def material_vertices(self, name: str) -> np.ndarray:
        """Sorted ids of the vertices used by polygons of one material."""
        mask = np.repeat(self.face_material == self.face_material_id(name), self.face_sizes.astype(np.int64))
        return np.unique(self.face_vertex_indices[mask])


def resolve_model_path(path: str | Path | None) -> Path:
    """The model path from ``--face-model`` or the environment; a clear error says where to get it."""
    if path is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise UsageError(f"no face model given: {GET_MODEL_HINT}")
        path = env
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(p, f"face model not found; {GET_MODEL_HINT}")
    return p


def load_face_model(path: str | Path) -> FaceModel:
    """Load the packed npz (never pickles). Raises ModelError naming the file when it is not one."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as d:
            missing = [k for k in REQUIRED_ARRAYS if k not in d.files]
            if missing:
                raise ModelError(p, f"not a packed ICT face model (missing {', '.join(missing)})")
            arrays = {k: d[k] for k in REQUIRED_ARRAYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # an empty or cut-off file ends early
        raise ModelError(p, f"cannot read face model: {err or type(err).__name__}") from err
    return FaceModel(
        path=p,
        neutral=arrays["neutral_vertices"].astype(np.float32),
        identity_deltas=arrays["identity_deltas"].astype(np.float32),
        expression_deltas=arrays["expression_deltas"].astype(np.float32),
        expression_names=tuple(str(n) for n in arrays["expression_names"]),
        face_vertex_indices=arrays["face_vertex_indices"].astype(np.int32),
        face_uv_indices=arrays["face_uv_indices"].astype(np.int32),
        face_sizes=arrays["face_sizes"].astype(np.int32),
        face_material=arrays["face_material"].astype(np.int32),
        material_names=tuple(str(n) for n in arrays["material_names"]),
        uvs=arrays["uvs"].astype(np.float32),
        landmarks68=arrays["landmarks68"].astype(np.int64),
    )


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points (N, 3): (centre, radius)."""
    a = np.c_[2 * points, np.ones(len(points))]
    b = (points**2).sum(1)
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    centre = x[:3]
    return centre, float(np.sqrt(x[3] + centre @ centre))


def eye_coordinates(model: FaceModel, vertices: np.ndarray) -> np.ndarray:
    """Per-vertex 2-D coordinates on each visible eye shell, (V, 2) float32.

    The value is ``sin(angle from the gaze axis)`` split into x/y, so the iris is a disc around (0, 0)
    whatever the UV layout. The gaze axis is found from the cornea bulge (the shell's farthest points
    from its sphere centre). Vertices that are not on an eye shell get (9, 9).
    """
    out = np.full((len(vertices), 2), 9.0, np.float32)
    for shell, _inner in EYEBALL_SHELLS.values():
        ids = model.material_vertices(shell)
        p = vertices[ids].astype(np.float64)
        centre, _ = fit_sphere(p)
        d = p - centre
        r = np.linalg.norm(d, axis=1)
        bulge = r >= np.quantile(r, 0.93)
        axis = (d[bulge] / r[bulge, None]).mean(0)
        axis /= np.linalg.norm(axis)
        up = np.array([0.0, 1.0, 0.0])
        side = np.cross(up, axis)
        side /= np.linalg.norm(side)
        up = np.cross(axis, side)
        unit = d / r[:, None]
        out[ids, 0] = unit @ side
        out[ids, 1] = unit @ up
        behind = unit @ axis < 0
        out[ids[behind]] = 9.0
    return out
