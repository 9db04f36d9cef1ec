"""Expression maps baked in a head's UV layout (reggan_plugin.texture_maps): the rasterizer, the mesh readers, the
seam fill, the paint carried through the motion, and the whole bake on a textured head."""
from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.errors import InputError
from reggan_plugin.texture_maps.bake import fill_outside, paint_in_neutral
from reggan_plugin.texture_maps.mesh import load_mesh
from reggan_plugin.texture_maps.raster import rasterize
from reggan_plugin.texture_maps.views import draw, framing


# -- rasterizer ----------------------------------------------------------------------------------------------------
def test_a_triangle_covers_its_area_and_interpolates_exactly() -> None:
    corners = np.array([[[2.0, 3.0], [40.0, 5.0], [10.0, 37.0]]])
    cover = rasterize(corners, (48, 48))
    area = 0.5 * abs(np.cross(corners[0, 1] - corners[0, 0], corners[0, 2] - corners[0, 0]))
    assert abs((cover.triangle == 0).sum() - area) < 0.05 * area
    # a linear function of position comes back exactly at every covered pixel centre
    values = corners[..., :1] * 2 + corners[..., 1:] * 3
    got = cover.interpolate(values.astype(np.float32))[..., 0]
    rows, cols = np.nonzero(cover.triangle == 0)
    np.testing.assert_allclose(got[rows, cols], (cols + 0.5) * 2 + (rows + 0.5) * 3, rtol=1e-5)
    assert (got[cover.triangle < 0] == 0).all()


def test_the_nearest_triangle_wins_and_big_triangles_are_drawn_whole() -> None:
    square = np.array([[0.0, 0.0], [200.0, 0.0], [0.0, 200.0]])
    corners = np.stack([square, square + 10])
    near_second = rasterize(corners, (64, 64), depth=np.array([[5.0] * 3, [1.0] * 3]))
    near_first = rasterize(corners, (64, 64), depth=np.array([[1.0] * 3, [5.0] * 3]))
    assert near_second.triangle[30, 30] == 1 and near_first.triangle[30, 30] == 0
    assert (near_first.triangle[:60, :60] >= 0).all()  # a triangle larger than the picture, clipped


# -- meshes --------------------------------------------------------------------------------------------------------
def test_obj_polygons_split_into_fans_with_negative_indices(tmp_path: Path) -> None:
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf -4/-4 -3/-3 -2/-2 -1/-1\n")
    mesh = load_mesh(path)
    assert mesh.triangles.tolist() == [[0, 1, 2], [0, 2, 3]] and mesh.uv_triangles.tolist() == [[0, 1, 2], [0, 2, 3]]
    np.testing.assert_allclose(mesh.vertex_normals()[0], [0, 0, 1])


def _gltf(positions: np.ndarray, uvs: np.ndarray, indices: np.ndarray, node: dict) -> dict:
    blob = positions.astype(np.float32).tobytes() + uvs.astype(np.float32).tobytes() + indices.astype(np.uint16).tobytes()
    n, p, u = len(positions), positions.nbytes // 2, uvs.nbytes // 2  # float64 -> float32 sizes
    return {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, **node}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2}]}],
        "buffers": [{"byteLength": len(blob), "uri": "data:application/octet-stream;base64," + base64.b64encode(blob).decode()}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": p}, {"buffer": 0, "byteOffset": p, "byteLength": u},
                        {"buffer": 0, "byteOffset": p + u, "byteLength": indices.size * 2}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": n, "type": "VEC3"},
                      {"bufferView": 1, "componentType": 5126, "count": n, "type": "VEC2"},
                      {"bufferView": 2, "componentType": 5123, "count": indices.size, "type": "SCALAR"}],
    }


def test_gltf_and_glb_read_with_node_transforms_and_flipped_v(tmp_path: Path) -> None:
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float64)
    uvs = np.array([[0, 0], [1, 0], [0, 0.25]], np.float64)
    doc = _gltf(positions, uvs, np.array([0, 1, 2]), {"translation": [0, 0, 2], "scale": [2, 2, 2]})
    path = tmp_path / "tri.gltf"
    path.write_text(json.dumps(doc))
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.positions, positions * 2 + [0, 0, 2])
    np.testing.assert_allclose(mesh.uvs[:, 1], [1, 1, 0.75])  # glTF's v runs down the image
    # the same as a GLB: the buffer in the binary chunk
    blob = base64.b64decode(doc["buffers"][0].pop("uri").split(",", 1)[1])
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    glb = tmp_path / "tri.glb"
    glb.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(blob))
                    + struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(blob), b"BIN\x00") + blob)
    np.testing.assert_allclose(load_mesh(glb).positions, mesh.positions)


@pytest.mark.parametrize(("name", "text", "reason"), [
    ("flat.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "without UV indices"),
    ("nan.obj", "v nan 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1\n", "NaN or inf"),
    ("far.obj", "v 0 0 0\nvt 0 0\nf 1/1 2/1 9/1\n", "does not have"),
    ("empty.obj", "# nothing\n", "no triangles"),
    ("junk.glb", "not a glb at all", "not a readable GLB"),
    ("head.fbx", "", "must be .obj, .gltf or .glb"),
])
def test_a_bad_mesh_is_one_clear_error_naming_the_file(tmp_path: Path, name: str, text: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=reason) as err:
        load_mesh(path)
    assert name in str(err.value)


# -- seams and the paint -------------------------------------------------------------------------------------------
def test_the_gutter_takes_its_islands_edge_values() -> None:
    values = np.zeros((64, 64, 1), np.float32)
    known = np.zeros((64, 64), bool)
    values[10:30, 10:30], known[10:30, 10:30] = 2.0, True
    values[40:60, 40:60], known[40:60, 40:60] = -1.0, True
    filled = fill_outside(values, known)
    np.testing.assert_array_equal(filled[known], values[known])
    assert abs(filled[31, 20, 0] - 2.0) < 0.05 and abs(filled[38, 50, 0] + 1.0) < 0.05  # a texel past each edge
    assert filled.min() >= -1.0 and filled.max() <= 2.0


def test_the_paint_goes_back_to_the_neutral_point_it_belongs_to() -> None:
    """A model that moves the face 4 px left and darkens one square: the darkening is found where the square came
    from, and a uniform change of shading is read as that multiplier in linear light."""
    s = 96
    rng = np.random.default_rng(0)
    crop_in = np.full((s, s, 3), 0.6, np.float32) + rng.normal(0, 0.002, (s, s, 3)).astype(np.float32)
    mask = np.ones((s, s), np.float32)
    out = np.zeros((s, s, 5), np.float32)
    out[..., 3] = 4.0  # output pixel p shows the neutral point p + (4, 0)
    from reggan_plugin.imageio.colour import srgb_decode, srgb_encode

    darker = srgb_encode(srgb_decode(crop_in) * 0.8)
    out[..., :3] = crop_in
    out[40:56, 40:56, :3] = darker[40:56, 40:56]
    log_change, trust = paint_in_neutral(crop_in, out, mask)
    assert trust[48, 52] > 0.9
    np.testing.assert_allclose(log_change[46:50, 50:54], np.log(0.8), atol=0.02)  # found 4 px to the right
    assert abs(log_change[46:50, 38:42]).max() < 0.02  # not where the output showed it


def test_a_change_too_large_for_skin_is_not_trusted() -> None:
    s = 64
    crop_in = np.full((s, s, 3), 0.3, np.float32)
    out = np.zeros((s, s, 5), np.float32)
    out[..., :3] = crop_in
    out[20:44, 20:44, :3] = 0.95  # teeth where the lips were
    _, trust = paint_in_neutral(crop_in, out, np.ones((s, s), np.float32))
    assert trust[32, 32] < 0.01 and trust[5, 5] > 0.99


# -- the whole bake on a textured head (the ICT face model) --------------------------------------------------------
@pytest.fixture(scope="module")
def head_files(ict_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("torch", reason="the textured heads are built with the training package")
    from reggan_plugin.imageio.colour import srgb_encode
    from reggan_plugin.imageio.image import ImageData
    from reggan_plugin.imageio.write import write_image
    from training.evaluate.textured_heads import textured_head, write_obj
    from training.synth.face_model import load_face_model
    from training.synth.recipes import load_recipes

    folder = tmp_path_factory.mktemp("head")
    head = textured_head(load_face_model(ict_model_path), load_recipes(), 4242, 0)
    write_obj(head.mesh, str(folder / "head.obj"))
    write_image(folder / "albedo.png", ImageData(np.round(srgb_encode(head.albedo) * 65535).astype(np.uint16)))
    return folder / "head.obj", folder / "albedo.png"


@pytest.mark.slow  # builds a textured head from the face model (5 s)
def test_a_head_is_drawn_with_its_face_towards_the_camera(head_files: tuple[Path, Path]) -> None:
    from reggan_plugin.faces.locate import FaceLocator
    from reggan_plugin.imageio import read_image, to_network_rgb
    from reggan_plugin.imageio.colour import srgb_decode

    mesh = load_mesh(head_files[0])
    albedo = srgb_decode(to_network_rgb(read_image(head_files[1])))
    view = draw(mesh, albedo, framing(mesh, 0.0, size=320))
    assert np.isfinite(view.depth[view.coverage.triangle >= 0]).all()
    assert FaceLocator().detector.detect(view.rgb)  # the detector reads the drawn head as a face


@pytest.mark.slow
def test_bake_maps_writes_maps_an_engine_can_load(head_files: tuple[Path, Path], tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from reggan_plugin.imageio import read_image
    from reggan_plugin.texture_maps.manifest import SCHEMA_PATH, read_multiplier
    from tests.test_cli import cli

    mesh_path, albedo_path = head_files
    before = albedo_path.read_bytes()
    proc = cli("bake-maps", "--mesh", mesh_path, "--texture", albedo_path, "--out", tmp_path / "maps", "-e", "happy")
    assert proc.returncode == 0, proc.stderr
    assert albedo_path.read_bytes() == before
    manifest = json.loads((tmp_path / "maps" / "maps.json").read_text())
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    entry = manifest["maps"][0]
    multiplier = read_multiplier(tmp_path / "maps" / entry["multiplier"])
    mask = read_image(tmp_path / "maps" / entry["mask"]).pixels
    assert multiplier.shape[:2] == mask.shape[:2] == tuple(reversed(manifest["size"]))
    # a shading change, never teeth or an opening: within the range a skin's colour takes
    assert multiplier.min() > 0.55 and multiplier.max() < 1.85
    assert mask.max() == 65535 and mask.min() == 0
    # the cheeks change where the face smiles; the back of the head (the atlas's right column) does not
    face = multiplier[:, : int(0.8 * multiplier.shape[1])]
    assert np.abs(face - 1).max() > 0.05
    back = mask[: mask.shape[0] // 2, int(0.82 * mask.shape[1]) :]
    assert back.mean() < 0.01 * 65535 and back.max() < 0.1 * 65535


@pytest.mark.slow
def test_texture_refuses_a_uv_unwrap_and_still_edits_a_face_picture(head_files: tuple[Path, Path], tmp_path: Path
                                                                    ) -> None:
    from tests.test_cli import cli

    proc = cli("texture", head_files[1], "--out", tmp_path / "unwrap_happy.png")
    assert proc.returncode == 2 and "bake-maps" in proc.stderr and not (tmp_path / "unwrap_happy.png").exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "albedo.png" in errors[0]
    decal = Path(__file__).resolve().parents[1] / "samples" / "frames" / "shot_0001.png"
    proc = cli("texture", decal, "--out", tmp_path / "decal_happy.png")
    assert proc.returncode == 0, proc.stderr
