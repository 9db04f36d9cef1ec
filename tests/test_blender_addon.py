"""The Blender add-on (blender_addon/), headless with bpy from PyPI, and its extension build.

The add-on's operators run off the main thread; here the timer loop is driven by hand
(`JOBS.wait()` / `HOOK.wait()` drain the queue until the job ends). Test models are exported in a
child process so that this process (Blender's) never imports torch.

The add-on under test is the source folder, or, where REGGAN_TEST_ADDON_ZIP names an extension zip, that zip
installed the way Blender's installer installs it (into BLENDER_USER_RESOURCES, which must then be a throw-away
folder) and run from its bundled wheels. `test_the_installed_zip_passes` runs INSTALLED_ZIP_TESTS so, in a child
Python started without the checkout on its path.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_build_script() -> object:
    """blender_addon/build.py is a plain-Python script (no bpy); load it under a name of its own."""
    spec = importlib.util.spec_from_file_location("reggan_addon_build", REPO / "blender_addon" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


addon_build = _load_build_script()

ADDON_ZIP = os.environ.get("REGGAN_TEST_ADDON_ZIP")  # test the add-on installed from this zip
EXTENSION_ID = "reggan_expressions"  # blender_manifest.toml's id
SOURCE_ADDON = "blender_addon"


def extension_site_packages(user: Path) -> Path:
    """Where Blender's installer puts an extension's wheels, under the user resources folder `user`."""
    return user / "extensions" / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


if ADDON_ZIP:  # before bpy is imported: the bundled wheels go ahead of this environment's packages
    USER_RESOURCES = Path(os.environ["BLENDER_USER_RESOURCES"])
    extension_site_packages(USER_RESOURCES).mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(extension_site_packages(USER_RESOURCES)))

try:
    import bpy  # isort: skip (addon_utils is importable only once bpy is)
    import addon_utils
except ImportError:
    bpy = addon_utils = None


def install_extension_zip(archive: Path, user: Path) -> str:
    """Install an extension zip as Blender's installer does (Get Extensions > Install from Disk, into the
    user_default repository under `user`); returns the enabled add-on's module name. The runtime it imports must
    be the zip's, from its wheels."""
    if bpy is None:
        pytest.skip("bpy (Blender as a Python module) is not installed: pip install .[blender]", allow_module_level=True)
    assert Path(bpy.utils.user_resource("EXTENSIONS")).is_relative_to(user), "BLENDER_USER_RESOURCES is not in effect"
    result = bpy.ops.extensions.package_install_files(filepath=str(archive), repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    importlib.invalidate_caches()
    name = f"bl_ext.user_default.{EXTENSION_ID}"
    assert bpy.context.preferences.addons.get(name) is not None, "the extension was not enabled"
    import reggan_plugin

    assert Path(reggan_plugin.__file__).is_relative_to(extension_site_packages(user)), reggan_plugin.__file__
    return name


ADDON = install_extension_zip(Path(ADDON_ZIP), USER_RESOURCES) if ADDON_ZIP else SOURCE_ADDON
TINY64 = """
import dataclasses, sys, torch
from export.onnx_export import export_model
from training.config import TINY
from training.models import RegGAN
torch.manual_seed(0)
model = RegGAN(dataclasses.replace(TINY, image_size=64))
with torch.no_grad():
    model.stage1.bias.normal_(0.0, 0.2)
export_model(model, sys.argv[1], provenance={"training": "random init (tests)", "iterations": 0})
"""


# -- the extension build (no bpy needed) ----------------------------------------------------------
def test_source_manifest_follows_the_schema() -> None:
    manifest = addon_build.read_manifest(REPO / "blender_addon" / "blender_manifest.toml")
    assert addon_build.manifest_problems(manifest) == []
    assert manifest["schema_version"] == "1.0.0" and manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:MIT"] and manifest["permissions"]["files"]
    assert set(manifest["platforms"]) == {"linux-x64", "windows-x64", "macos-arm64"}


def test_manifest_check_catches_mistakes() -> None:
    good = addon_build.read_manifest(REPO / "blender_addon" / "blender_manifest.toml")
    for change, expected in [
        ({"schema_version": None}, "missing required key 'schema_version'"),
        ({"blender_version_min": "4.1.0"}, "blender_version_min"),
        ({"license": ["MIT"]}, "SPDX"),
        ({"permissions": {"files": "Reads files."}}, "trailing period"),
        ({"wheels": ["wheels/x.whl"]}, "./wheels/"),
        ({"platforms": ["amiga-68k"]}, "unknown platform"),
        ({"bl_info": {}}, "unknown key"),
    ]:
        bad = dict(good)
        for key, value in change.items():
            if value is None:
                bad.pop(key)
            else:
                bad[key] = value
        problems = addon_build.manifest_problems(bad)
        assert any(expected in p for p in problems), (change, problems)


def test_staged_manifest_lists_wheels_and_platforms() -> None:
    source = (REPO / "blender_addon" / "blender_manifest.toml").read_text()
    text = addon_build.staged_manifest(source, ["./wheels/a-1.0-py3-none-any.whl"], ["linux-x64"])
    manifest = tomllib.loads(text)
    assert manifest["wheels"] == ["./wheels/a-1.0-py3-none-any.whl"] and manifest["platforms"] == ["linux-x64"]
    assert manifest["permissions"] == tomllib.loads(source)["permissions"]  # tables untouched
    again = tomllib.loads(addon_build.staged_manifest(text, ["./wheels/b-2.0-py3-none-any.whl"], ["windows-x64"]))
    assert again["wheels"] == ["./wheels/b-2.0-py3-none-any.whl"] and again["platforms"] == ["windows-x64"]


def test_runtime_imports_are_all_bundled_or_provided() -> None:
    """Every third-party module the runtime imports is a pyproject dependency (so it gets a wheel)."""
    requirements = {addon_build.requirement_name(r) for r in addon_build.runtime_requirements()}
    assert "numpy" not in requirements  # Blender ships it
    fake_wheels = [Path(f"{name.replace('-', '_')}-1-py3-none-any.whl") for name in requirements]
    assert addon_build.uncovered_imports(fake_wheels) == []


# Wheels are cached per user, outside the checkout (REGGAN_TEST_CACHE moves it), so a second run is offline.
WHEEL_CACHE = Path(os.environ.get("REGGAN_TEST_CACHE", Path.home() / ".cache" / "reggan-plugin")) / "blender-build"


HAS_MODEL = (REPO / "reggan_plugin" / "models" / "default.onnx").is_file()


def build_or_skip(platforms: list[str], out: Path, **kwargs: object) -> object:
    """addon_build.build, skipped (with the reason) where the package index cannot be reached for the wheels."""
    try:
        return addon_build.build(platforms, out, cache=WHEEL_CACHE, require_model=HAS_MODEL, **kwargs)
    except addon_build.BuildError as exc:
        if "pip download" not in str(exc):
            raise
        pytest.skip(f"the package index cannot be reached to fetch the runtime's wheels: {str(exc).splitlines()[-1]}")


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, bool]:
    """The extension zip for this platform, built once."""
    return build_or_skip([addon_build.current_platform()], tmp_path_factory.mktemp("extension")), HAS_MODEL


@pytest.mark.slow
def test_build_zip_for_this_platform(built_zip: tuple[object, bool], tmp_path: Path) -> None:
    result, has_model = built_zip
    platform = addon_build.current_platform()
    (archive,) = result.zips
    assert archive.name == f"reggan_expressions-0.1.0-{platform.replace('-', '_')}.zip"
    manifest, names = addon_build.zip_manifest(archive)
    assert manifest["platforms"] == [platform]
    wheels = {Path(w).name.split("-")[0].lower() for w in manifest["wheels"]}
    assert {"reggan_plugin", "onnxruntime", "pillow", "click"} <= wheels
    assert not wheels & {"numpy", "torch"}
    # one zip for Blender 4.2-5.0 (Python 3.11) and 5.1+ (3.13): the installer picks each Python's wheels
    runtimes = [w for w in manifest["wheels"] if Path(w).name.startswith("onnxruntime-")]
    assert {addon_build.installs(Path(w).name, platform, "3.11") for w in runtimes} == {True, False}
    assert addon_build.installed_runtime_problems(manifest["wheels"], platform) == []
    assert {"__init__.py", "operators.py", "jobs.py", "blender_manifest.toml"} <= names
    assert "build.py" not in names and "build_wheels.py" not in names
    with zipfile.ZipFile(archive) as handle, zipfile.ZipFile(handle.open(next(n for n in names if "reggan_plugin-" in n))) as wheel:
        inner = set(wheel.namelist())
    assert {"reggan_plugin/pipeline.py", "reggan_plugin/renderer.py"} <= inner
    if has_model:
        assert "reggan_plugin/models/default.onnx" in inner
    assert {"reggan_plugin/models/coverage.onnx", "reggan_plugin/models/mouth_interior.npz"} <= inner
    if result.validated_by == "blender_ext":  # Blender's own validator accepts the zip too
        assert addon_build.validate_with_blender(archive) is not None
    # a second build needs no network: everything comes from the cache
    again = addon_build.build([platform], tmp_path, cache=WHEEL_CACHE, offline=True, require_model=has_model)
    assert addon_build.zip_manifest(again.zips[0])[0]["wheels"] == manifest["wheels"]


@pytest.mark.slow
def test_builds_sharing_a_cache_take_turns(tmp_path: Path) -> None:
    """A build waits while another process holds the cache's lock: it starts writing only afterwards."""
    cache, released = tmp_path / "cache", tmp_path / "released"
    holder = subprocess.Popen([sys.executable, "-c", (  # notes, as it lets go, whether the build has begun
        "import sys, time; from pathlib import Path; from reggan_plugin.file_lock import exclusive_lock\n"
        "with exclusive_lock(Path(sys.argv[1]) / '.lock'):\n"
        "    Path(sys.argv[2] + '.held').touch(); time.sleep(1.0)\n"
        "    Path(sys.argv[2]).write_text(str((Path(sys.argv[1]) / 'package').exists()))"),
        str(cache), str(released)])
    for _ in range(600):  # until the holder has the lock
        if Path(str(released) + ".held").exists():
            break
        holder.poll()
        assert holder.returncode is None, "the lock holder ended early"
        time.sleep(0.05)
    with pytest.raises(addon_build.BuildError, match="--offline"):  # an empty cache offline: no wheels to stage
        addon_build.build([addon_build.current_platform()], tmp_path / "out", cache=cache, offline=True,
                          require_model=False)
    holder.wait(60)
    assert released.read_text() == "False"  # nothing of the build while the other held the lock
    assert len(list((cache / "package").glob("reggan_plugin-*.whl"))) == 1  # then it ran


# -- Blender ---------------------------------------------------------------------------------------
needs_bpy = pytest.mark.skipif(bpy is None, reason="bpy (Blender as a Python module) is not installed: pip install .[blender]")


@pytest.fixture(scope="session")
def addon_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 64 px RegGAN export (random weights that visibly change faces), made in a child process (or the one
    REGGAN_TEST_ADDON_MODEL names: the parent's, for a run on the installed zip)."""
    if os.environ.get("REGGAN_TEST_ADDON_MODEL"):
        return Path(os.environ["REGGAN_TEST_ADDON_MODEL"])
    path = tmp_path_factory.mktemp("addon-model") / "tiny64.onnx"
    result = subprocess.run([sys.executable, "-c", TINY64, str(path)], capture_output=True, text=True)
    if result.returncode and "No module named 'torch'" in result.stderr:
        pytest.skip("torch is needed to export the test model (pip install .[export])")
    assert result.returncode == 0, result.stderr[-2000:]
    return path


def enable_addon() -> object:
    """The add-on under test, enabled: the source folder, or the extension installed from ADDON_ZIP."""
    if not ADDON_ZIP and str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    module = addon_utils.enable(ADDON, default_set=True, handle_error=None)
    assert module is not None and bpy.context.preferences.addons.get(ADDON) is not None
    if ADDON_ZIP:  # the installed copy, not the checkout's
        assert Path(module.__file__).is_relative_to(USER_RESOURCES), module.__file__
    return module


@pytest.fixture
def addon(addon_model: Path) -> object:
    """The add-on enabled on an empty scene, set to the test model, the CPU backend and a face box."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    module = enable_addon()
    settings = bpy.context.scene.reggan
    settings.model_path = str(addon_model)
    settings.backend = "cpu"
    yield module
    module.jobs.JOBS.shutdown()
    addon_utils.disable(ADDON, default_set=True, handle_error=None)


def face_image(name: str, width: int = 128, height: int = 96, *, float_buffer: bool = False) -> object:
    rng = np.random.default_rng(0)
    image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=float_buffer)
    yy, xx = np.mgrid[0:height, 0:width]
    rgba = np.stack([xx / width, yy / height, 0.5 + 0.2 * np.sin(xx / 5.0), np.ones_like(xx, float)], axis=2)
    rgba[..., :3] += rng.uniform(-0.05, 0.05, (height, width, 3))
    values = np.clip(rgba, 0, 1).astype(np.float32)
    if not float_buffer:
        values = np.round(values * 255) / 255
    image.pixels.foreach_set(values.ravel())
    return image


def pixels_top_down(image: object) -> np.ndarray:
    width, height = image.size
    flat = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(height, width, image.channels)[::-1]


def outside(box: tuple[int, int, int, int], shape: tuple[int, ...], grow: float = 2.0) -> np.ndarray:
    """Mask of pixels farther than `grow` x the box from its centre (the crop never reaches there)."""
    x, y, w, h = box
    cx, cy, half = x + w / 2, y + h / 2, grow * max(w, h) / 2
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (np.abs(xx + 0.5 - cx) > half) | (np.abs(yy + 0.5 - cy) > half)


def inside(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros(shape[:2], bool)
    mask[y : y + h, x : x + w] = True
    return mask


@needs_bpy
def test_register_and_unregister_twice() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for _ in range(2):
        module = enable_addon()
        assert hasattr(bpy.types.Scene, "reggan") and bpy.context.scene.reggan.expression
        assert bpy.ops.reggan.apply_image.poll()
        assert module.handlers.on_render_write in bpy.app.handlers.render_write
        assert {"REGGAN_PT_image_editor", "REGGAN_PT_render"} <= set(dir(bpy.types))
        addon_utils.disable(ADDON, default_set=True, handle_error=None)
        assert not hasattr(bpy.types.Scene, "reggan")
        assert not hasattr(bpy.types, "REGGAN_PT_render")
        assert module.handlers.on_render_write not in bpy.app.handlers.render_write


@needs_bpy
def test_property_defaults_come_from_the_runtime_config(addon: object) -> None:
    from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig

    props = bpy.context.scene.reggan.bl_rna.properties
    assert props["expression"].default == EditConfig.expression
    assert props["intensity"].default == pytest.approx(EditConfig.intensity)
    assert props["stage"].default == InferenceConfig.stage
    assert props["subject"].default == "render"  # Blender's pictures are renders, whatever they look like
    assert props["trust_box"].default == (not InferenceConfig.find_in_box)
    assert props["skip_existing"].default == SequenceConfig.skip_existing
    assert props["smooth"].default == pytest.approx(SequenceConfig.smooth)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs_props = prefs.bl_rna.properties
    assert prefs_props["backend"].default == InferenceConfig.backend
    assert prefs_props["precision"].default == InferenceConfig.precision
    assert prefs_props["batch"].default == InferenceConfig.batch
    # untouched settings give exactly the runtime's default configs
    fresh = bpy.data.scenes.new("fresh").reggan
    settings = addon.settings
    assert settings.edit_config(fresh) == EditConfig()
    assert settings.inference_config(fresh, prefs) == InferenceConfig(subject="render")
    assert set(addon.settings.BACKENDS) == {item.identifier for item in prefs_props["backend"].enum_items}


@needs_bpy
def test_apply_image_edits_the_face_only_and_reverts(addon: object) -> None:
    image = face_image("texture")
    before = pixels_top_down(image).copy()
    box = (40, 20, 44, 44)
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", box
    seen = []
    addon.jobs.JOBS.listeners.append(lambda status: seen.append((status.state, status.done, status.total)))
    assert bpy.ops.reggan.apply_image(image_name="texture") == {"FINISHED"}  # in background mode: done on return
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "done", status.message
    assert "1 face(s) edited" in status.message
    assert ("running", 1, 1) in seen or ("done", 1, 1) in seen
    after = pixels_top_down(bpy.data.images["texture"])
    changed = np.abs(after - before).max(axis=2) > 0
    assert changed[inside(box, changed.shape)].mean() > 0.3  # the face changed
    assert not changed[outside(box, changed.shape)].any()  # nothing far from it did
    # undo: the backup restores the original exactly
    assert bpy.ops.reggan.revert_image(image_name="texture") == {"FINISHED"}
    np.testing.assert_array_equal(pixels_top_down(bpy.data.images["texture"]), before)



@needs_bpy
def test_revert_after_several_edits_returns_the_original(addon: object) -> None:
    """Two Applies in a row, then Revert: the picture as it was before the first edit, not the first edit."""
    image = face_image("twice")
    before = pixels_top_down(image).copy()
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", (40, 20, 44, 44)
    edits = []
    for expression in ("happy", "sad"):
        settings.expression = expression
        bpy.ops.reggan.apply_image(image_name="twice")
        assert addon.jobs.JOBS.wait(60).state == "done", addon.jobs.JOBS.status.message
        edits.append(pixels_top_down(bpy.data.images["twice"]).copy())
    assert np.abs(edits[1] - edits[0]).max() > 0  # the second edit changed the first
    assert bpy.ops.reggan.revert_image(image_name="twice") == {"FINISHED"}
    np.testing.assert_array_equal(pixels_top_down(bpy.data.images["twice"]), before)
    assert bpy.data.images.get("twice" + addon.operators.BACKUP_SUFFIX) is None
    # after a Revert the next edit's backup is the picture as it is then
    bpy.ops.reggan.apply_image(image_name="twice")
    assert addon.jobs.JOBS.wait(60).state == "done"
    assert bpy.ops.reggan.revert_image(image_name="twice") == {"FINISHED"}
    np.testing.assert_array_equal(pixels_top_down(bpy.data.images["twice"]), before)

@needs_bpy
def test_trust_box_aligns_on_the_box_as_given(addon: object) -> None:
    """A box is a hint: the face the detector finds inside it is edited, wherever the box sits on that face (two
    boxes a fifth of a face apart give nearly the same edit). With Trust Box the crop follows the box itself (the
    two boxes give clearly different edits). The option shows for Box and From Scene and reaches the runtime."""
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import box_from_landmarks

    frame = REPO / "samples" / "frames" / "shot_0001.png"
    landmarks = np.array(json.loads((REPO / "samples" / "faces.json").read_text())["frames"][frame.name][0]["landmarks"])
    x, y, w, h = box_from_landmarks(landmarks)
    settings = bpy.context.scene.reggan
    prefs = bpy.context.preferences.addons[ADDON].preferences
    assert settings.trust_box is (not InferenceConfig.find_in_box)  # off: as the command line without --trust-box
    edits = {}
    for trust in (False, True):
        settings.trust_box = trust
        assert addon.settings.inference_config(settings, prefs).find_in_box is not trust
        for shift in (0.0, 0.2):
            image = bpy.data.images.load(str(frame), check_existing=False)
            before = pixels_top_down(image).copy()
            settings.face_source, settings.box = "BOX", (round(x + shift * w), round(y), round(w), round(h))
            assert bpy.ops.reggan.apply_image(image_name=image.name) == {"FINISHED"}
            assert addon.jobs.JOBS.status.state == "done", addon.jobs.JOBS.status.message
            edits[trust, shift] = pixels_top_down(image) * 255.0
            assert np.abs(edits[trust, shift] - before * 255.0).mean() > 2.0  # the face was edited
    refined = np.abs(edits[False, 0.0] - edits[False, 0.2]).mean()
    trusted = np.abs(edits[True, 0.0] - edits[True, 0.2]).mean()
    assert trusted > 3.0 * refined and trusted > 2.0, (refined, trusted)
    for settings.face_source in ("BOX", "SCENE"):
        assert "trust_box" in [prop.identifier for kind, prop, _ in draw_panel(addon) if kind == "prop"]


@needs_bpy
def test_apply_image_with_whole_image_on_a_float_texture(addon: object) -> None:
    image = face_image("float-texture", 64, 64, float_buffer=True)
    before = pixels_top_down(image).copy()
    bpy.context.scene.reggan.face_source = "WHOLE"
    bpy.ops.reggan.apply_image(image_name="float-texture")
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "done", status.message
    after = pixels_top_down(bpy.data.images["float-texture"])
    assert np.abs(after - before)[..., :3].max() > 0.01
    np.testing.assert_array_equal(after[..., 3], before[..., 3])  # alpha untouched


def sample_face_box() -> tuple[int, int, int, int]:
    """The box of samples/frames/shot_0001.png's face (samples/faces.json's landmarks)."""
    from reggan_plugin.faces import box_from_landmarks

    faces = json.loads((REPO / "samples" / "faces.json").read_text())
    x, y, w, h = box_from_landmarks(np.array(faces["frames"]["shot_0001.png"][0]["landmarks"]))
    return round(x), round(y), round(w), round(h)


def card_texture(card: object) -> object:
    return card.data.materials[0].node_tree.nodes["Image Texture"].image


def render_pixels(addon: object) -> np.ndarray:
    assert bpy.ops.render.render() == {"FINISHED"}
    return addon.images.render_result_pixels(bpy.context.scene).pixels[..., :3].copy()


def apply_to(addon: object, image: object) -> str:
    assert bpy.ops.reggan.apply_image(image_name=image.name) == {"FINISHED"}
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "done", status.message
    return status.message


@needs_bpy
def test_an_edited_file_texture_renders_packed_and_its_file_stays(addon: object, tmp_path: Path) -> None:
    """A texture loaded from a PNG, edited: the render shows the edit (Cycles reads an unpacked file from disk, and
    a render would free the edited pixels), because the edit is packed into the .blend; the PNG is never written.
    Revert unpacks it: the image is its file again, and so is the next render."""
    texture = tmp_path / "face.png"
    texture.write_bytes((REPO / "samples" / "frames" / "shot_0001.png").read_bytes())
    original = texture.read_bytes()
    image = card_texture(face_card_scene(32, texture))
    file_pixels = pixels_top_down(image).copy()
    unedited = render_pixels(addon)
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", sample_face_box()
    message = apply_to(addon, image)
    edited = pixels_top_down(image).copy()
    assert np.abs(edited - file_pixels).max() > 0.1
    rendered = render_pixels(addon)
    np.testing.assert_array_equal(pixels_top_down(image), edited)  # the render kept the edit
    # the render is that of the edited pixels (a generated image holding them), not the file's
    copy = bpy.data.images.new("edited copy", *image.size, alpha=True)
    copy.pixels.foreach_set(np.ascontiguousarray(edited[::-1]).ravel())
    node = bpy.data.materials["face"].node_tree.nodes["Image Texture"]
    node.image = copy
    expected = render_pixels(addon)
    node.image = image
    assert np.abs(expected - unedited).max() > 0.05  # the edit shows at 32 px
    np.testing.assert_allclose(rendered, expected, atol=1e-4)
    assert "packed into the .blend; the file on disk is unchanged" in message
    assert image.packed_file is not None and image.filepath == str(texture)
    assert texture.read_bytes() == original and sorted(tmp_path.iterdir()) == [texture]

    assert bpy.ops.reggan.revert_image(image_name=image.name) == {"FINISHED"}
    assert "unpacked" in addon.jobs.JOBS.status.message
    assert image.packed_file is None and image.filepath == str(texture)
    np.testing.assert_array_equal(pixels_top_down(image), file_pixels)
    np.testing.assert_allclose(render_pixels(addon), unedited, atol=1e-4)
    assert texture.read_bytes() == original and sorted(tmp_path.iterdir()) == [texture]


@needs_bpy
def test_each_edit_reaches_a_render_with_persistent_data(addon: object, tmp_path: Path) -> None:
    """Cycles' Persistent Data keeps the images it uploaded: each edit (and Revert) is tagged so the next render
    shows it."""
    texture = tmp_path / "face.png"
    texture.write_bytes((REPO / "samples" / "frames" / "shot_0001.png").read_bytes())
    image = card_texture(face_card_scene(32, texture))
    bpy.context.scene.render.use_persistent_data = True
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", sample_face_box()
    renders = [render_pixels(addon)]
    for settings.expression in ("happy", "sad"):
        apply_to(addon, image)
        renders.append(render_pixels(addon))
    assert np.abs(renders[1] - renders[0]).max() > 0.05  # the first edit shows
    assert np.abs(renders[2] - renders[1]).max() > 0.05  # and so does the second
    assert bpy.ops.reggan.revert_image(image_name=image.name) == {"FINISHED"}
    np.testing.assert_allclose(render_pixels(addon), renders[0], atol=1e-4)


@needs_bpy
def test_an_edited_16_bit_texture_is_packed_in_its_colours(addon: object, tmp_path: Path) -> None:
    """A 16-bit PNG loads as a float image in sRGB: its edit is packed as scene-linear OpenEXR and reloaded from
    there in the same colours (its colour space becomes the working space), as the same edit of a generated float
    image gives them. Revert gives back the file and its colour space."""
    from reggan_plugin.imageio.png import encode_png

    rng = np.random.default_rng(3)
    stored = pixels_top_down(face_image("source", 64, 64)) * 65535.0
    stored = np.clip(stored + rng.uniform(-200, 200, stored.shape), 0, 65535).astype(np.uint16)
    path = tmp_path / "face16.png"
    path.write_bytes(encode_png(stored))
    original = path.read_bytes()
    image = bpy.data.images.load(str(path))
    assert image.is_float and image.colorspace_settings.name == "sRGB"
    before = pixels_top_down(image).copy()
    twin = bpy.data.images.new("twin", 64, 64, alpha=True, float_buffer=True)
    twin.pixels.foreach_set(np.ascontiguousarray(before[::-1]).ravel())
    bpy.context.scene.reggan.face_source = "WHOLE"
    assert "packed" in apply_to(addon, image) and "packed" not in apply_to(addon, twin)
    assert bytes(image.packed_file.data[:4]) == b"v/1\x01"  # OpenEXR
    assert image.colorspace_settings.name == addon.images.working_space()
    edited = pixels_top_down(image)
    assert np.abs(edited - before)[..., :3].max() > 0.01
    np.testing.assert_allclose(edited, pixels_top_down(twin), atol=2e-3)
    assert path.read_bytes() == original
    assert bpy.ops.reggan.revert_image(image_name=image.name) == {"FINISHED"}
    assert image.packed_file is None and image.colorspace_settings.name == "sRGB"
    np.testing.assert_array_equal(pixels_top_down(image), before)
    assert path.read_bytes() == original and sorted(tmp_path.iterdir()) == [path]


@needs_bpy
def test_pictures_carry_blenders_colour_spaces_and_the_edit_follows_them(addon: object) -> None:
    """Byte images carry their own colour space (none for Non-Color), float ones the working space; a float picture
    held in ACEScg gets the edit its Linear Rec.709 twin gets, in the same colours (Blender's own OCIO config)."""
    import PyOpenColorIO as ocio

    byte = face_image("byte-colour")
    assert addon.images.read_pixels(byte).colorspace == "sRGB"
    byte.colorspace_settings.name = "Non-Color"
    assert addon.images.read_pixels(byte).colorspace is None
    picture = addon.images.read_pixels(face_image("float-colour", 64, 64, float_buffer=True))
    assert picture.colorspace == addon.images.working_space() == "Linear Rec.709"
    config_path = addon.images.ocio_config()
    config = ocio.Config.CreateFromFile(config_path)

    def convert(rgba: np.ndarray, source: str, target: str) -> np.ndarray:
        flat = np.array(rgba[..., :3], np.float32).reshape(-1, 3)
        config.getProcessor(source, target).getDefaultCPUProcessor().applyRGB(flat)
        return np.concatenate([flat.reshape((*rgba.shape[:2], 3)), rgba[..., 3:]], axis=2)

    bpy.context.scene.reggan.face_source = "WHOLE"
    run = addon.operators.run_settings(bpy.context)
    edit = addon.engine.edit_pixels
    rec709, _ = edit(picture.pixels, linear=True, mode="WHOLE", faces=None, settings=run,
                     colour=addon.images.colour_of(picture))
    aces = np.ascontiguousarray(convert(picture.pixels, "Linear Rec.709", "ACEScg"))
    managed, _ = edit(aces, linear=True, mode="WHOLE", faces=None, settings=run,
                      colour=addon.images.colour_of(addon.images.Picture(aces, True, "ACEScg")))
    unmanaged, _ = edit(aces, linear=True, mode="WHOLE", faces=None, settings=run)
    assert np.abs(rec709 - picture.pixels).max() > 0.01  # the model edited it
    assert np.abs(convert(managed, "ACEScg", "Linear Rec.709") - rec709).max() < 2e-3
    assert np.abs(convert(unmanaged, "ACEScg", "Linear Rec.709") - rec709).max() > 0.02


@needs_bpy
def test_errors_are_reported_not_raised(addon: object, tmp_path: Path) -> None:
    face_image("texture2")
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", (10, 10, 40, 40)
    settings.model_path = str(tmp_path / "missing.onnx")
    bpy.ops.reggan.apply_image(image_name="texture2")
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "failed" and "missing.onnx" in status.message
    assert "model" in status.hint.lower()


def tiny_render_scene(width: int = 64, height: int = 48) -> object:
    """A camera looking at an emissive sphere; Cycles, 1 sample."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.view_settings.view_transform = "Standard"
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(0, 0, 0), segments=16, ring_count=8)
    sphere = bpy.context.active_object
    material = bpy.data.materials.new("glow")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # always on (and deprecated) from Blender 5.0
    nodes = material.node_tree.nodes
    nodes.clear()
    emission, output = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial")
    emission.inputs["Color"].default_value = (0.8, 0.6, 0.4, 1.0)
    material.node_tree.links.new(emission.outputs[0], output.inputs[0])
    sphere.data.materials.append(material)
    camera_data = bpy.data.cameras.new("camera")
    camera = bpy.data.objects.new("camera", camera_data)
    scene.collection.objects.link(camera)
    camera.location = (0.0, -4.0, 0.0)
    camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    return sphere


@needs_bpy
@pytest.mark.slow
def test_apply_to_the_render_result_of_a_cycles_render(addon: object) -> None:
    tiny_render_scene()
    bpy.ops.render.render()
    render = bpy.data.images["Render Result"]
    original = addon.images.render_result_pixels(bpy.context.scene).pixels
    box = (16, 8, 32, 32)
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", box
    assert bpy.ops.reggan.apply_render_result() == {"FINISHED"}
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "done", status.message
    edited = next(i for i in bpy.data.images if i.name.startswith("Render Result (happy"))
    assert edited.is_float and tuple(edited.size) == (64, 48)
    assert bpy.data.images.get("Render Result") is render and render.type == "RENDER_RESULT"  # original kept
    after = pixels_top_down(edited)
    changed = np.abs(after - original).max(axis=2) > 0
    assert changed[inside(box, changed.shape)].mean() > 0.3
    assert not changed[outside(box, changed.shape, grow=1.6)].any()
    np.testing.assert_array_equal(after[outside(box, changed.shape, grow=1.6)], original[outside(box, changed.shape, grow=1.6)])



def output_settings(scene: object) -> dict[str, object]:
    settings = scene.render.image_settings
    keys = ("media_type", "file_format", "color_mode", "color_depth", "exr_codec", "color_management")
    view = settings.view_settings
    return {key: getattr(settings, key) for key in keys} | {
        "linear": settings.linear_colorspace_settings.name, "view": (view.view_transform, view.look, view.exposure)}


@needs_bpy
@pytest.mark.slow
def test_apply_to_the_render_result_whatever_the_scenes_output_format(addon: object, tmp_path: Path) -> None:
    """A scene rendering to FFmpeg, multilayer EXR or an EXR in an overridden linear space: the Render Result is read
    as the same scene-linear pixels, the edit lands in a new image, and the scene's output settings are kept."""
    tiny_render_scene()
    scene = bpy.context.scene
    bpy.ops.render.render()
    reference = addon.images.render_result_pixels(scene).pixels
    settings = scene.reggan
    settings.face_source, settings.box = "BOX", (16, 8, 32, 32)
    image_settings = scene.render.image_settings
    for media, fmt in (("VIDEO", "FFMPEG"), ("MULTI_LAYER_IMAGE", "OPEN_EXR_MULTILAYER"), ("IMAGE", "OPEN_EXR")):
        image_settings.media_type = media
        image_settings.file_format = fmt
        if fmt == "OPEN_EXR":  # an output override: the file would hold ACEScg, not the working space
            image_settings.color_management = "OVERRIDE"
            image_settings.linear_colorspace_settings.name = "ACEScg"
            image_settings.view_settings.view_transform, image_settings.view_settings.exposure = "Standard", 0.5
        before = output_settings(scene)
        np.testing.assert_array_equal(addon.images.render_result_pixels(scene).pixels, reference)
        assert output_settings(scene) == before
        assert bpy.ops.reggan.apply_render_result() == {"FINISHED"}, fmt
        status = addon.jobs.JOBS.wait(60)
        assert status.state == "done" and "1 face(s) edited" in status.message, (fmt, status.message)
        assert output_settings(scene) == before, fmt
        edited = bpy.data.images[status.message.split(":")[0]]
        assert edited.file_format == ("OPEN_EXR" if media != "IMAGE" else fmt)  # a still format of its own
        with bpy.context.temp_override(edit_image=edited):  # and Image > Save As saves it
            assert bpy.ops.image.save_as(filepath=str(tmp_path / f"{fmt}.exr"), copy=True) == {"FINISHED"}
        assert (tmp_path / f"{fmt}.exr").stat().st_size > 0



@needs_bpy
@pytest.mark.slow
def test_apply_to_render_result_without_a_render_says_render_first(addon: object) -> None:
    with pytest.raises(RuntimeError, match="Render a frame first"):  # no Render Result at all: the poll says why
        bpy.ops.reggan.apply_render_result()
    tiny_render_scene()
    bpy.ops.render.render()
    bpy.data.images["Render Result"].render_slots.active_index = 1  # an empty slot: no render in it yet
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", (16, 8, 32, 32)
    assert bpy.ops.reggan.apply_render_result() == {"CANCELLED"}
    status = addon.jobs.JOBS.status
    assert status.state == "failed" and "render a frame first" in status.message, status.message
    assert "image data" not in status.message and status.hint == ""

def saved_png(image: object, path: Path) -> np.ndarray:
    """`image` saved the way Image > Save As saves it (its own format and its default 'Save As Render'), read back."""
    with bpy.context.temp_override(edit_image=image):
        assert bpy.ops.image.save_as(filepath=str(path), copy=True) == {"FINISHED"}
    return read_png(path).astype(np.int16)


@needs_bpy
@pytest.mark.slow
def test_the_edited_render_shows_and_saves_with_the_renders_look(addon: object, tmp_path: Path) -> None:
    """Under AgX (and an exposure), the edited copy of the Render Result is "View as Render": saved as the render is
    saved, it has the render's look wherever the edit did not reach."""
    tiny_render_scene()
    scene = bpy.context.scene
    scene.view_settings.view_transform, scene.view_settings.exposure = "AgX", 0.7
    scene.render.dither_intensity = 0.0
    bpy.ops.render.render()
    settings = scene.reggan
    box = (16, 8, 32, 32)
    settings.face_source, settings.box = "BOX", box
    bpy.ops.reggan.apply_render_result()
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "done", status.message
    edited = bpy.data.images[status.message.split(":")[0]]
    assert edited.use_view_as_render and edited.file_format == "PNG"  # the scene's still format
    bpy.data.images["Render Result"].save_render(filepath=str(tmp_path / "render.png"), scene=scene)
    render = read_png(tmp_path / "render.png").astype(np.int16)
    copy = saved_png(edited, tmp_path / "edited.png")
    far = outside(box, render.shape, grow=1.6)
    assert np.abs(copy - render)[far].max() <= 1  # the render's look, to 8-bit rounding
    assert np.abs(copy - render)[inside(box, render.shape)].max() > 5  # and the edit

def write_frames(folder: Path, count: int, size: int = 96) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    paths = []
    for index in range(1, count + 1):
        pixels = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        pixels[..., 3] = 255
        path = folder / f"shot_{index:04d}.png"
        Image.fromarray(pixels, "RGBA").save(path)
        paths.append(path)
    return paths


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as handle:
        return np.asarray(handle)


@needs_bpy
def test_frame_range_operator_finishes_and_reports_progress(addon: object, tmp_path: Path) -> None:
    frames = write_frames(tmp_path / "frames", 4)
    settings = bpy.context.scene.reggan
    settings.frames_dir, settings.face_source, settings.box = str(tmp_path / "frames"), "BOX", (24, 24, 48, 48)
    progress = []
    addon.jobs.JOBS.listeners.append(lambda status: progress.append(status.done))
    assert bpy.ops.reggan.apply_frames() == {"FINISHED"}
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "done", status.message
    out = tmp_path / "frames_reggan_happy"  # a new sibling folder, like the CLI's --out
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in frames]
    assert status.message.startswith("4 done") and status.total == 4
    assert progress == sorted(progress) and progress[-1] == 4
    for frame in frames:
        before, after = read_png(frame), read_png(out / frame.name)
        changed = (before != after).any(axis=2)
        assert changed[24:72, 24:72].mean() > 0.3 and not changed[outside((24, 24, 48, 48), changed.shape)].any()


@needs_bpy
def test_frame_range_operator_cancels_midway_without_partial_files(
    addon: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = write_frames(tmp_path / "frames", 40, size=160)
    settings = bpy.context.scene.reggan
    settings.frames_dir, settings.face_source, settings.box = str(tmp_path / "frames"), "BOX", (40, 40, 80, 80)
    settings.out_dir = str(tmp_path / "edited")
    jobs = addon.jobs.JOBS
    real = addon.engine.render_frames

    def cancel_after_the_first_frame(seq, run, progress, cancel, frame_edits=None):  # the job's own cancel event
        def report(done: int, total: int) -> None:
            progress(done, total)
            if done >= 1:
                cancel.set()

        return real(seq, run, report, cancel, frame_edits=frame_edits)

    monkeypatch.setattr(addon.engine, "render_frames", cancel_after_the_first_frame)
    bpy.ops.reggan.apply_frames()
    status = jobs.status
    assert status.state == "cancelled", status.message
    written = sorted((tmp_path / "edited").iterdir())
    assert 0 < len(written) < len(frames), "cancel should stop the run midway"
    assert {p.name for p in written} <= {p.name for p in frames}  # no temp or partial files left
    for path in written:
        assert read_png(path).shape == (160, 160, 4)  # each written frame is complete


@needs_bpy
@pytest.mark.slow
def test_render_hook_edits_every_written_frame(addon: object, tmp_path: Path) -> None:
    tiny_render_scene()
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.filepath = str(tmp_path / "render" / "####")
    scene.render.image_settings.file_format = "PNG"
    settings = scene.reggan
    settings.face_source, settings.box, settings.auto_apply = "BOX", (16, 8, 32, 32), True
    bpy.ops.render.render(animation=True)
    hook = addon.handlers.HOOK
    hook.wait(60)
    assert hook.failed == []
    edited = tmp_path / "render_reggan_happy"
    assert sorted(p.name for p in edited.iterdir()) == ["0001.png", "0002.png"]
    for name in ("0001.png", "0002.png"):
        before, after = read_png(tmp_path / "render" / name), read_png(edited / name)
        changed = (before != after).any(axis=2)
        assert changed[8:40, 16:48].any() and not changed[outside((16, 8, 32, 32), changed.shape, 1.6)].any()


# -- "From Scene": projecting the head through the camera ----------------------------------------
def scene_faces_module() -> object:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from blender_addon import scene_faces

    return scene_faces


@needs_bpy
def test_projection_matches_world_to_camera_view() -> None:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene_faces = scene_faces_module()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 320, 180, 50
    scene.render.pixel_aspect_x = 1.2
    for kind in ("PERSP", "ORTHO"):
        data = bpy.data.cameras.new(kind)
        data.type, data.lens, data.shift_x, data.shift_y, data.ortho_scale = kind, 42.0, 0.1, -0.05, 3.0
        camera = bpy.data.objects.new(kind, data)
        scene.collection.objects.link(camera)
        camera.location, camera.rotation_euler = (0.3, -5.0, 0.4), (1.45, 0.05, 0.1)
        bpy.context.view_layer.update()
        points = np.random.default_rng(2).uniform(-1, 1, (50, 3))
        ours = scene_faces.camera_view(scene, camera, points)
        theirs = np.array([tuple(world_to_camera_view(scene, camera, Vector(p))) for p in points])
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # mathutils works in float32


@needs_bpy
def test_projection_matches_the_synth_renderer_camera() -> None:
    """The ICT renderer's numpy camera (training/synth/camera.py) and ours agree on a simple mesh."""
    from mathutils import Matrix

    from training.synth.camera import SENSOR_MM, CameraPose, orbit, project

    scene_faces = scene_faces_module()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 200
    bpy.ops.mesh.primitive_ico_sphere_add(radius=0.1, location=(0.02, 0.01, 0.03))
    mesh_obj = bpy.context.active_object
    rotation = orbit(12.0, -7.0, 3.0)
    pose = CameraPose(rotation=rotation, position=rotation @ np.array([0, 0, 0.9]), focal_mm=60.0, target=np.zeros(3))
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.matrix_world = Matrix([list(map(float, row)) for row in pose.matrix_world()])
    camera.data.lens, camera.data.sensor_width, camera.data.sensor_fit = pose.focal_mm, SENSOR_MM, "HORIZONTAL"
    scene.camera = camera
    bpy.context.view_layer.update()
    vertices = np.array([tuple(mesh_obj.matrix_world @ v.co) for v in mesh_obj.data.vertices])
    ours, in_front = scene_faces.project_to_pixels(scene, camera, vertices)
    assert in_front.all()
    np.testing.assert_allclose(ours, project(vertices, pose, 200), atol=1e-4)
    box = scene_faces.scene_face_box(scene, mesh_obj, depsgraph=bpy.context.evaluated_depsgraph_get())
    np.testing.assert_allclose(box, scene_faces.box_from_points(project(vertices, pose, 200)), atol=1e-4)


@needs_bpy
@pytest.mark.slow
def test_projection_matches_a_cycles_render_of_a_marker() -> None:
    """An emissive sphere rendered by Cycles lands where the projection says, to a pixel."""
    scene_faces = scene_faces_module()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sphere = tiny_render_scene(96, 64)
    sphere.location = (0.7, 0.0, -0.3)
    sphere.scale = (0.5, 0.5, 0.5)
    scene = bpy.context.scene
    scene.camera.data.shift_x = 0.05
    scene.cycles.samples = 16
    bpy.context.view_layer.update()
    bpy.ops.render.render()
    sys.path.insert(0, str(REPO))
    from blender_addon import images

    # pixels at least half covered by the sphere (its emission is 0.8 at full coverage)
    alpha = images.render_result_pixels(scene).pixels[..., :3].max(axis=2) > 0.4
    rows, cols = np.nonzero(alpha)
    x, y, w, h = scene_faces.scene_face_box(scene, sphere, depsgraph=bpy.context.evaluated_depsgraph_get())
    # extreme projected points vs the first and last half-covered pixel centres: within a pixel
    np.testing.assert_allclose([x, y, x + w - 1, y + h - 1], [cols.min(), rows.min(), cols.max(), rows.max()], atol=1.0)
    centre, _ = scene_faces.project_to_pixels(scene, scene.camera, np.array([tuple(sphere.matrix_world.translation)]))
    np.testing.assert_allclose(centre[0], [cols.mean(), rows.mean()], atol=0.5)


@needs_bpy
@pytest.mark.slow
def test_scene_face_box_matches_the_landmarks_of_a_rendered_ict_face(ict_model_path: Path, tmp_path: Path) -> None:
    from reggan_plugin.faces import box_from_landmarks
    from training.synth.camera import CM_TO_M, frame_face, project
    from training.synth.face_model import load_face_model
    from training.synth.recipes import load_recipes
    from training.synth.scene import FaceScene
    from training.synth.variation import sample_identity

    scene_faces = scene_faces_module()
    model = load_face_model(ict_model_path)
    size = 128
    face_scene = FaceScene(model, size, samples=2, denoise=False, threads=2)
    params = sample_identity(3, 0, model.n_identities, load_recipes())
    neutral = model.vertices(np.asarray(params.identity_weights, np.float32))
    pose = frame_face(neutral[model.landmarks68] * CM_TO_M, params.camera)
    face_scene.set_identity(params, neutral, pose)
    face_scene.render(tmp_path / "face.png")
    truth = project(neutral[model.landmarks68] * CM_TO_M, pose, size)  # the renderer's own landmarks

    obj = face_scene.mesh_obj
    group = obj.vertex_groups.new(name="landmarks")
    group.add([int(i) for i in model.landmarks68], 1.0, "REPLACE")
    scene = face_scene.scene
    box = scene_faces.scene_face_box(scene, obj, vertex_group="landmarks", depsgraph=bpy.context.evaluated_depsgraph_get())
    expected = scene_faces.box_from_points(truth)
    np.testing.assert_allclose(box, expected, atol=1.0)
    # the box is on the rendered face: the render is opaque where the landmarks are
    rgba = read_png(tmp_path / "face.png")
    points = np.round(truth).astype(int)
    assert (rgba[points[:, 1], points[:, 0], 3] > 200).mean() > 0.9
    # a face box grown like the runtime's (68-point rule) still fits inside the frame
    x, y, w, h = box_from_landmarks(truth)
    assert x >= 0 and y >= 0 and x + w <= size and y + h <= size


@needs_bpy
def test_the_addon_never_imports_torch(addon_model: Path, tmp_path: Path) -> None:
    """Enable the add-on and edit an image in a fresh Blender process: torch stays out of it."""
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, bpy, addon_utils
        sys.path.insert(0, {str(REPO)!r})
        addon = addon_utils.enable({SOURCE_ADDON!r}, default_set=True, handle_error=None)
        image = bpy.data.images.new("t", 64, 64)
        image.pixels.foreach_set(np.random.default_rng(0).random(64 * 64 * 4).astype(np.float32))
        s = bpy.context.scene.reggan
        s.model_path, s.backend, s.face_source = {str(addon_model)!r}, "cpu", "WHOLE"
        bpy.ops.reggan.apply_image(image_name="t")
        status = addon.jobs.JOBS.wait(60)
        print(status.state, "torch" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "done False"


@needs_bpy
def test_faces_json_for_scene_boxes_loads_in_the_runtime(tmp_path: Path) -> None:
    from reggan_plugin.faces import load_faces_json

    sys.path.insert(0, str(REPO))
    from blender_addon import engine

    path = tmp_path / "faces.json"
    path.write_text(json.dumps(engine.faces_json({"shot_0001": (1.5, 2.0, 30.0, 31.0), "shot_0002": None})))
    faces = load_faces_json(path)
    assert faces.faces_for("shot_0001.png")[0].box == (1.5, 2.0, 30.0, 31.0)
    assert list(faces.faces_for("shot_0002.exr")) == []
    assert engine.sibling_dir(Path("/r/shot"), "happy") == Path("/r/shot_reggan_happy")


INSTALL = """
import importlib, os, sys
site = sys.argv[2] + "/extensions/.local/lib/python3.11/site-packages"
os.makedirs(site)  # exists before Python first looks there
sys.path.insert(0, site)  # ahead of the test venv: the bundled wheels must be what runs
import bpy
bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
importlib.invalidate_caches()
name = "bl_ext.user_default.reggan_expressions"
assert name in [a.module for a in bpy.context.preferences.addons], "extension not enabled"
addon = sys.modules[name]
image = bpy.data.images.new("t", 64, 64)
image.pixels.foreach_set([0.5] * 64 * 64 * 4)
s = bpy.context.scene.reggan
s.model_path, s.backend, s.face_source = sys.argv[3], "cpu", "WHOLE"
bpy.ops.reggan.apply_image(image_name="t")
status = addon.jobs.JOBS.wait(60)
import onnxruntime, reggan_plugin
print(status.state, status.message)
print(addon.settings.engine_cache_dir(addon.settings.preferences()))
print(reggan_plugin.__file__)
print(onnxruntime.__file__)
"""


@needs_bpy
@pytest.mark.slow
def test_extension_zip_installs_and_runs_in_blender(built_zip: tuple[object, bool], addon_model: Path, tmp_path: Path) -> None:
    """Blender installs the zip (wheels into its extension site-packages), enables the extension, and
    the add-on edits an image with the runtime from the bundled wheels."""
    result, _ = built_zip
    user = tmp_path / "blender-user"
    # -S: no .pth files, so the editable reggan_plugin of this checkout is not importable; bpy and
    # numpy still come from this environment's site-packages, everything else from the bundled wheels
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user), PYTHONPATH=sysconfig.get_paths()["purelib"])
    run = subprocess.run([sys.executable, "-S", "-c", INSTALL, str(result.zips[0]), str(user), str(addon_model)],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    state, cache_dir, runtime, ort = run.stdout.strip().splitlines()[-4:]
    assert state.startswith("done"), state
    assert cache_dir.startswith(str(user)) and cache_dir.endswith("engines")  # extension_path_user
    assert runtime.startswith(str(user)) and ort.startswith(str(user))


# The behaviour each fix to the add-on promised, run again on the add-on installed from its zip (the user's copy:
# the extension's module name, the files the build staged, the runtime from the bundled wheels).
INSTALLED_ZIP_TESTS = (
    "test_register_and_unregister_twice",
    "test_property_defaults_come_from_the_runtime_config",
    "test_apply_to_the_render_result_whatever_the_scenes_output_format",  # FFmpeg / multilayer EXR output
    "test_from_scene_finds_no_face_the_camera_does_not_see",  # a box only from what the camera sees
    "test_revert_after_several_edits_returns_the_original",  # Revert after a second Apply
    "test_the_edited_render_shows_and_saves_with_the_renders_look",  # View as Render under AgX
    "test_trust_box_aligns_on_the_box_as_given",  # the From Scene / Box option the docs describe
    "test_scripts_and_the_panel_get_blenders_answers",  # scripts' return values, labels, the panel's words
    "test_apply_to_render_result_without_a_render_says_render_first",  # no render yet
    "test_an_edited_file_texture_renders_packed_and_its_file_stays",  # a file texture's edit reaches the render
    "test_each_edit_reaches_a_render_with_persistent_data",  # with Persistent Data too
    "test_bake_expression_maps_refuses_what_it_cannot_bake_and_changes_nothing",  # the bake's refusals
)


@pytest.fixture(scope="module")
def installed_zip_outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """INSTALLED_ZIP_TESTS run by pytest in a child Python on the add-on installed from this platform's zip (built
    here) into a throw-away Blender user folder: {test name: "passed", or what went wrong}. Run once per pytest
    run: xdist workers share the outcome through a file in the run's temp folder."""
    import xml.etree.ElementTree as ElementTree

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    outcomes_file = shared / "installed-zip-outcomes.json"
    with addon_build.exclusive_lock(shared / "installed-zip.lock"):
        if outcomes_file.is_file():
            return json.loads(outcomes_file.read_text())
        result, _ = request.getfixturevalue("built_zip")
        model = request.getfixturevalue("addon_model")
        folder = Path(tempfile.mkdtemp(prefix="installed-zip-", dir=shared))
        report = folder / "report.xml"
        # -S: no .pth files, so the checkout's reggan_plugin is not importable; bpy, numpy and pytest come from this
        # environment's site-packages, the runtime from the bundled wheels. pythonpath= drops pyproject's entry.
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(folder / "blender-user"),
                   PYTHONPATH=sysconfig.get_paths()["purelib"], REGGAN_TEST_ADDON_ZIP=str(result.zips[0]),
                   REGGAN_TEST_ADDON_MODEL=str(model))
        env.pop("PYTEST_ADDOPTS", None)
        run = subprocess.run(
            [sys.executable, "-S", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "pythonpath=",
             "--rootdir", str(REPO), f"--junitxml={report}", *(f"{__file__}::{name}" for name in INSTALLED_ZIP_TESTS)],
            cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        if not report.is_file():
            pytest.fail(f"the run on the installed zip ended without a report (exit {run.returncode}):\n"
                        f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        outcomes = {}
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            problems = [f"{child.tag}: {child.get('message', '')}\n{child.text or ''}" for child in case
                        if child.tag in ("failure", "error", "skipped")]
            outcomes[case.get("name", "")] = "\n".join(problems)[-4000:] if problems else "passed"
        outcomes_file.write_text(json.dumps(outcomes))
        return outcomes


@needs_bpy
@pytest.mark.slow
@pytest.mark.parametrize("name", INSTALLED_ZIP_TESTS)
def test_the_installed_zip_passes(installed_zip_outcomes: dict[str, str], name: str) -> None:
    """The test `name` of this module passes on the extension installed from its zip as on the source folder
    (a skip there is a failure here: the zip must be tested, not passed over)."""
    problems = "; ".join(f"{case}: {text[-1500:]}" for case, text in installed_zip_outcomes.items() if text != "passed")
    outcome = installed_zip_outcomes.get(name, f"not run ({problems or 'no such test'})")  # e.g. the install failed
    assert outcome == "passed", outcome


def cube_head_scene() -> object:
    """A 96 px camera looking at a cube (a stand-in head for 'From Scene')."""
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 96
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -6.0, 0.0), (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    bpy.ops.mesh.primitive_cube_add(size=0.8)
    return bpy.context.active_object


@needs_bpy
def test_frames_from_scene_follow_the_animated_head(addon: object, tmp_path: Path) -> None:
    """'From Scene' on a frame folder: each frame is edited where the head is in THAT frame."""
    scene = bpy.context.scene
    head = cube_head_scene()
    for frame, x in ((1, -0.8), (2, 0.8)):
        head.location = (x, 0.0, 0.0)
        head.keyframe_insert("location", frame=frame)
    folder = tmp_path / "render"
    folder.mkdir()
    from PIL import Image

    rng = np.random.default_rng(3)
    for frame in (1, 2):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(folder / f"{frame:04d}.png")
    settings = scene.reggan
    settings.face_source, settings.head_object, settings.frames_dir = "SCENE", head, str(folder)
    bpy.ops.reggan.apply_frames()
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "done", status.message
    assert scene.frame_current == 1  # the operator stepped through the frames and came back
    scene_faces = addon.scene_faces
    for frame in (1, 2):
        scene.frame_set(frame)
        box = scene_faces.scene_face_box(scene, head, depsgraph=bpy.context.evaluated_depsgraph_get())
        changed = (read_png(folder / f"{frame:04d}.png") != read_png(tmp_path / "render_reggan_happy" / f"{frame:04d}.png")).any(axis=2)
        rows, cols = np.nonzero(changed)
        assert abs(cols.mean() - (box[0] + box[2] / 2 - 0.5)) < 4 and abs(rows.mean() - (box[1] + box[3] / 2 - 0.5)) < 4



@needs_bpy
def test_from_scene_finds_no_face_the_camera_does_not_see(addon: object) -> None:
    """The face group turned away from the camera, a card in front of the head, the head hidden from render (itself
    or its collection), a bone's head behind the card: no face, and Apply to Image reports so instead of painting."""
    scene = bpy.context.scene
    head = cube_head_scene()
    head.vertex_groups.new(name="face").add([v.index for v in head.data.vertices if v.co.y < 0], 1.0, "REPLACE")
    scene_faces = addon.scene_faces

    def box(**kwargs: object) -> object:
        bpy.context.view_layer.update()
        return scene_faces.scene_face_box(scene, head, depsgraph=bpy.context.evaluated_depsgraph_get(), **kwargs)

    assert box(vertex_group="face") is not None and box() is not None  # the face looks at the camera (-y)
    head.rotation_euler.z = np.pi  # turned away: the camera sees the back of the head
    assert box(vertex_group="face") is None
    head.rotation_euler.z = np.pi / 3  # turned partly: still seen
    assert box(vertex_group="face") is not None
    head.rotation_euler.z = 0.0
    bpy.ops.mesh.primitive_plane_add(size=3.0, location=(0.0, -2.0, 0.0), rotation=(np.pi / 2, 0.0, 0.0))
    card = bpy.context.active_object
    assert box(vertex_group="face") is None and box() is None  # behind the card
    card.hide_render = True  # a card that does not render hides nothing
    assert box(vertex_group="face") is not None
    card.hide_render = False
    card.location.x = 2.5  # moved aside
    assert box() is not None
    head.hide_render = True
    assert box() is None
    head.hide_render = False
    hidden = bpy.data.collections.new("hidden")
    scene.collection.children.link(hidden)
    hidden.objects.link(head)
    scene.collection.objects.unlink(head)
    hidden.hide_render = True
    assert box() is None
    hidden.hide_render = False
    assert box() is not None

    armature = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    scene.collection.objects.link(armature)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    bone = armature.data.edit_bones.new("head")
    bone.head, bone.tail = (0.0, 0.0, -0.4), (0.0, 0.0, 0.4)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    assert scene_faces.scene_face_box(scene, armature, bone="head", depsgraph=depsgraph) is not None
    card.location.x = 0.0
    bpy.context.view_layer.update()
    assert scene_faces.scene_face_box(scene, armature, bone="head", depsgraph=bpy.context.evaluated_depsgraph_get()) is None

    face_image("scene-image", 96, 96)  # the operator: no face, nothing painted
    before = pixels_top_down(bpy.data.images["scene-image"]).copy()
    settings = scene.reggan
    settings.face_source, settings.head_object, settings.head_vertex_group = "SCENE", head, "face"
    assert bpy.ops.reggan.apply_image(image_name="scene-image") == {"CANCELLED"}
    assert addon.jobs.JOBS.status.state == "nothing" and "no face found" in addon.jobs.JOBS.status.message
    np.testing.assert_array_equal(pixels_top_down(bpy.data.images["scene-image"]), before)

@needs_bpy
def test_head_bone_box_is_the_projected_bone_sphere() -> None:
    scene_faces = scene_faces_module()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 100
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -8.0, 1.5), (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    armature = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    scene.collection.objects.link(armature)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    bone = armature.data.edit_bones.new("head")
    bone.head, bone.tail = (0.0, 0.0, 1.0), (0.0, 0.0, 2.0)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.view_layer.update()
    x, y, w, h = scene_faces.scene_face_box(scene, armature, bone="head", depsgraph=bpy.context.evaluated_depsgraph_get())
    centre, _ = scene_faces.project_to_pixels(scene, camera, np.array([[0.0, 0.0, 1.5]]))
    assert abs(x + w / 2 - 0.5 - centre[0, 0]) < 0.5 and abs(y + h / 2 - 0.5 - centre[0, 1]) < 0.5
    assert abs(w - h) < 1.0  # a sphere seen head-on projects to a square-ish box
    top, _ = scene_faces.project_to_pixels(scene, camera, np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0]]))
    assert h == pytest.approx(abs(top[1, 1] - top[0, 1]) + 1, abs=1.0)  # the sphere spans head to tail
    with pytest.raises(LookupError, match="no bone 'jaw'"):
        scene_faces.scene_face_box(scene, armature, bone="jaw", depsgraph=bpy.context.evaluated_depsgraph_get())


@needs_bpy
@pytest.mark.slow
def test_every_from_scene_source_gives_the_edit_of_the_landmark_group(ict_model_path: Path, tmp_path: Path) -> None:
    """A head bone, the whole head mesh and an artist's "face" vertex group each give a box in its own convention;
    the runtime finds the face inside any of them, so the edit is within 1 dB of the 68-landmark group's (PSNR of
    the happy edit against the true happy render, on the face)."""
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import Face, box_from_landmarks
    from reggan_plugin.renderer import ExpressionRenderer
    from training.synth.camera import CM_TO_M, frame_face, project
    from training.synth.face_model import load_face_model
    from training.synth.recipes import load_recipes
    from training.synth.scene import FaceScene
    from training.synth.variation import sample_identity

    scene_faces = scene_faces_module()
    model = load_face_model(ict_model_path)
    size = 256
    face_scene = FaceScene(model, size, samples=8, denoise=True, threads=2)
    recipes = load_recipes()
    params = sample_identity(11, 0, model.n_identities, recipes)
    weights = np.asarray(params.identity_weights, np.float32)
    neutral = model.vertices(weights)
    pose = frame_face(neutral[model.landmarks68] * CM_TO_M, params.camera)
    face_scene.set_identity(params, neutral, pose)
    renders = {}
    for expr in ("neutral", "happy"):
        verts = model.vertices(weights, model.expression_vector({**params.gaze, **recipes.blendshapes(expr, 1.0, params.au_scale)}))
        face_scene.set_vertices(verts)
        renders[expr] = face_scene.render_rgba(tmp_path / f"{expr}.png")[..., :3]
    face_scene.set_vertices(neutral)  # the scene's boxes are taken on the neutral head

    scene, obj = face_scene.scene, face_scene.mesh_obj
    world = neutral * CM_TO_M
    obj.vertex_groups.new(name="landmarks").add([int(i) for i in model.landmarks68], 1.0, "REPLACE")
    nose = world[model.landmarks68[30]]
    near = np.flatnonzero((np.linalg.norm(world - nose, axis=1) < 0.09) & (world[:, 2] > nose[2] - 0.06))
    obj.vertex_groups.new(name="face").add([int(i) for i in near], 1.0, "REPLACE")
    armature = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    scene.collection.objects.link(armature)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    bone = armature.data.edit_bones.new("head")
    chin, crown = world[model.landmarks68[8]], world[np.argmax(world[:, 1])]
    bone.head = (float(nose[0]), float(chin[1] - 0.02), float(nose[2] - 0.08))
    bone.tail = (float(nose[0]), float(crown[1]), float(nose[2] - 0.08))
    bpy.ops.object.mode_set(mode="OBJECT")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    boxes = {
        "landmark group": scene_faces.scene_face_box(scene, obj, vertex_group="landmarks", depsgraph=depsgraph),
        "face group": scene_faces.scene_face_box(scene, obj, vertex_group="face", depsgraph=depsgraph),
        "whole head mesh": scene_faces.scene_face_box(scene, obj, depsgraph=depsgraph),
        "head bone": scene_faces.scene_face_box(scene, armature, bone="head", depsgraph=depsgraph),
    }
    truth = project(neutral[model.landmarks68] * CM_TO_M, pose, size)
    x, y, w, h = (int(round(v)) for v in box_from_landmarks(truth))
    region = (slice(max(y, 0), y + h), slice(max(x, 0), x + w))
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))

    def psnr(box: tuple[float, float, float, float]) -> float:
        out = renderer.apply_array(renders["neutral"], faces=[Face(box=box, source="given")], expression="happy")
        err = (out[region].astype(np.float64) - renders["happy"][region]) ** 2
        return float(10 * np.log10(255.0**2 / err.mean()))

    scores = {name: psnr(box) for name, box in boxes.items()}
    copy = float(10 * np.log10(255.0**2 / ((renders["neutral"][region].astype(np.float64) - renders["happy"][region]) ** 2).mean()))
    assert scores["landmark group"] > copy + 2.0, (scores, copy)
    for name, value in scores.items():
        assert abs(value - scores["landmark group"]) <= 1.0, (name, scores)
    assert boxes["head bone"][2] > 1.3 * boxes["landmark group"][2]  # the boxes really are in other conventions


def render_with_hook_then_apply(addon: object, tmp_path: Path, obj: object, keys: tuple, last: int) -> list[str]:
    """Render frames 1..last of `obj` moving along x through `keys` (frame, x) with the hook on, then run
    "Apply to Frames" on those renders; asserts the two give the same files and returns their names."""
    scene = bpy.context.scene
    for frame, x in keys:
        obj.location = (x, 0.0, 0.0)
        obj.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, last
    scene.frame_set(1)
    scene.render.filepath = str(tmp_path / "render" / "####")
    scene.render.image_settings.file_format = "PNG"
    settings = scene.reggan
    settings.auto_apply = True
    bpy.ops.render.render(animation=True)
    hook = addon.handlers.HOOK
    hook.wait(120)
    assert hook.failed == []
    settings.auto_apply = False
    settings.frames_dir, settings.out_dir = str(tmp_path / "render"), str(tmp_path / "applied")
    bpy.ops.reggan.apply_frames()
    status = addon.jobs.JOBS.wait(120)
    assert status.state == "done", status.message
    names = [f"{i:04d}.png" for i in range(1, last + 1)]
    assert sorted(p.name for p in (tmp_path / "render_reggan_happy").iterdir()) == names
    for name in names:
        hooked, applied = read_png(tmp_path / "render_reggan_happy" / name), read_png(tmp_path / "applied" / name)
        assert np.array_equal(hooked, applied), name
    return names


@needs_bpy
@pytest.mark.slow
def test_render_hook_from_scene_equals_apply_to_frames(addon: object, tmp_path: Path) -> None:
    """An animated head rendered with the hook: each frame is edited where the head is in THAT frame,
    exactly as "Apply to Frames" edits the same rendered frames afterwards."""
    head = tiny_render_scene(96, 96)
    settings = bpy.context.scene.reggan
    settings.face_source, settings.head_object = "SCENE", head
    names = render_with_hook_then_apply(addon, tmp_path, head, ((1, -0.9), (2, 0.0), (3, 0.9)), 3)
    centres = []
    for name in names:
        changed = (read_png(tmp_path / "render_reggan_happy" / name) != read_png(tmp_path / "render" / name)).any(axis=2)
        centres.append(np.nonzero(changed)[1].mean())
    assert centres[0] + 15 < centres[1] < centres[2] - 15  # the edit follows the head across the frames


@needs_bpy
def test_a_file_load_during_a_job_recovers(addon: object) -> None:
    """The drain timer survives opening a file: the job still ends and the add-on is free again."""
    release = threading.Event()
    job = addon.jobs.Job("slow job", lambda progress, cancel: release.wait(30), lambda result: "finished")
    addon.jobs.JOBS.start(job, total=1)
    addon.operators.ensure_timer()
    bpy.ops.wm.read_homefile(use_empty=True)  # File > New while the job runs
    assert bpy.app.timers.is_registered(addon.operators._tick)
    release.set()
    status = addon.jobs.JOBS.wait(30)
    assert status.state == "done" and not addon.jobs.JOBS.busy


SCRIPT = """
import sys
from pathlib import Path
import addon_utils, bpy
sys.path.insert(0, sys.argv[1])
addon_utils.enable("blender_addon", default_set=True, handle_error=None)
s = bpy.context.scene.reggan
s.model_path, s.backend, s.face_source, s.box = sys.argv[2], "cpu", "BOX", (24, 24, 48, 48)
s.frames_dir, s.out_dir = sys.argv[3], sys.argv[4]
print(bpy.ops.reggan.apply_frames())
"""


@needs_bpy
def test_a_script_run_completes(addon_model: Path, tmp_path: Path) -> None:
    """`bpy.ops.reggan.apply_frames()` from a script (background mode) returns with the frames written."""
    frames = write_frames(tmp_path / "frames", 3)
    out = tmp_path / "edited"
    result = subprocess.run([sys.executable, "-c", "import bpy\n" + SCRIPT, str(REPO), str(addon_model),
                             str(tmp_path / "frames"), str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RegGAN: 0/3" in result.stdout and "3 done" in result.stdout and "{'FINISHED'}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in frames]


@needs_bpy
def test_image_edits_keep_honest_books(addon: object, tmp_path: Path) -> None:
    """No backup without an edit, a box off the image is no face, 'no image' gets no face-source hint,
    Revert waits for a running job, and no temp faces.json outlives a 'From Scene' run."""
    face_image("plain")
    settings = bpy.context.scene.reggan
    settings.face_source, settings.box = "BOX", (5000, 5000, 40, 40)
    bpy.ops.reggan.apply_image(image_name="plain")
    status = addon.jobs.JOBS.wait(60)
    assert status.state == "nothing" and "no face found" in status.message
    assert bpy.data.images.get("plain" + addon.operators.BACKUP_SUFFIX) is None

    assert bpy.ops.reggan.apply_image(image_name="no such image") == {"CANCELLED"}
    assert "no image" in addon.jobs.JOBS.status.message and addon.jobs.JOBS.status.hint == ""

    release = threading.Event()
    addon.jobs.JOBS.start(addon.jobs.Job("busy", lambda progress, cancel: release.wait(30), lambda r: "ok"))
    assert not bpy.ops.reggan.revert_image.poll()
    release.set()
    addon.jobs.JOBS.wait(30)
    assert bpy.ops.reggan.show_preferences() == {"CANCELLED"}  # no window to open it in: said, not raised

    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("reggan-faces-*.json"))
    cube_head_scene()
    frames = tmp_path / "render"
    write_frames(frames, 2)
    for i, frame in enumerate(sorted(frames.iterdir())):
        frame.rename(frames / f"{i + 1:04d}.png")
    settings.face_source, settings.head_object, settings.frames_dir = "SCENE", bpy.context.active_object, str(frames)
    bpy.ops.reggan.apply_frames()
    assert addon.jobs.JOBS.wait(60).state == "done", addon.jobs.JOBS.status.message
    assert set(Path(tempfile.gettempdir()).glob("reggan-faces-*.json")) == before



class RecordingLayout:
    """Stands in for Blender's UILayout (which only exists while a window draws): records what the panel draws."""

    def __init__(self, drawn: list[tuple[str, object, str | None]]) -> None:
        self.drawn = drawn
        self.use_property_split = self.use_property_decorate = False

    def _sub(self, *args: object, **kwargs: object) -> RecordingLayout:
        return RecordingLayout(self.drawn)

    row = column = box = split = grid_flow = _sub

    def panel(self, idname: str, default_closed: bool = False) -> tuple[RecordingLayout, RecordingLayout]:
        """A layout panel (Blender 4.1+), drawn open: its header and its body."""
        return RecordingLayout(self.drawn), RecordingLayout(self.drawn)

    def prop(self, data: object, name: str, text: str | None = None, **kwargs: object) -> None:
        self.drawn.append(("prop", data.bl_rna.properties[name], text))

    def prop_search(self, data: object, name: str, *args: object, text: str | None = None, **kwargs: object) -> None:
        self.prop(data, name, text=text)

    def label(self, text: str = "", icon: str = "NONE", **kwargs: object) -> None:
        self.drawn.append(("label", icon, text))

    def operator(self, idname: str, text: str | None = None, **kwargs: object) -> None:
        self.drawn.append(("operator", idname, text))

    def progress(self, **kwargs: object) -> None:
        self.drawn.append(("progress", None, str(kwargs.get("text"))))


def draw_panel(addon: object) -> list[tuple[str, object, str | None]]:
    drawn: list[tuple[str, object, str | None]] = []
    layout = RecordingLayout(drawn)
    addon.panels.draw_settings(layout, bpy.context)
    addon.panels.draw_frames(layout, bpy.context)
    addon.panels.draw_job(layout)
    return drawn


@needs_bpy
def test_scripts_and_the_panel_get_blenders_answers(addon: object, tmp_path: Path) -> None:
    """A script sees CANCELLED when nothing was edited and FINISHED (with a warning) when some frames were; a failed
    Revert replaces the panel's old message; every drop-down has a label; the panel speaks of its own fields,
    never of the command line's options."""
    settings = bpy.context.scene.reggan
    face_image("blank")
    settings.face_source, settings.box = "BOX", (5000, 5000, 40, 40)
    assert bpy.ops.reggan.apply_image(image_name="blank") == {"CANCELLED"}  # no face: nothing was done
    assert addon.jobs.JOBS.status.state == "nothing" and "no face found" in addon.jobs.JOBS.status.message
    assert "Box" in addon.jobs.JOBS.status.message

    frames = write_frames(tmp_path / "frames", 3)
    frames[1].write_bytes(b"not a png")  # one frame fails, the others are edited
    settings.box, settings.frames_dir, settings.out_dir = (24, 24, 48, 48), str(tmp_path / "frames"), str(tmp_path / "out")
    assert bpy.ops.reggan.apply_frames() == {"FINISHED"}
    status = addon.jobs.JOBS.status
    assert status.state == "partial" and "1 failed" in status.message, status.message
    assert ("label", "ERROR", status.message) in draw_panel(addon)  # a warning, not a tick

    settings.out_dir = str(tmp_path / "frames" / "edited")  # inside the frames folder: refused, in the panel's words
    assert bpy.ops.reggan.apply_frames() == {"CANCELLED"}
    status = addon.jobs.JOBS.status
    assert status.state == "failed" and "Output folder" in status.message and "--" not in status.message, status.message
    texts = [text or "" for kind, _, text in draw_panel(addon) if kind == "label"]
    assert status.message in texts and not any("--" in text for text in texts)
    from reggan_plugin.render_summary import RenderSummary

    no_face_line = addon.jobs.panel_words(RenderSummary(total=1, done=1, no_face=[Path("a.png")]).lines()[1])
    assert "no face found" in no_face_line and "--" not in no_face_line and "Box" in no_face_line

    assert bpy.ops.reggan.revert_image(image_name="blank") == {"CANCELLED"}  # never edited: nothing to revert
    assert "no RegGAN backup" in addon.jobs.JOBS.status.message  # not the Output folder error any more
    assert any("no RegGAN backup" in (text or "") for kind, _, text in draw_panel(addon) if kind == "label")

    for settings.face_source in ("AUTO", "SCENE", "BOX"):
        for kind, prop, text in draw_panel(addon):
            if kind == "prop" and prop.type == "ENUM":
                assert text is None or text.strip(), (prop.identifier, "a drop-down without a label")

@needs_bpy
def test_the_blender_docs_name_the_panels_options(addon: object) -> None:
    """docs/BLENDER.md and the panel agree: every option the panel draws, under every face source and head kind, is
    named in the docs (in bold; the Mix and Channel sliders in their lists), and every option the docs' list of settings names in
    bold is one the panel draws."""
    import re

    text = (REPO / "docs" / "BLENDER.md").read_text(encoding="utf-8")
    settings_list = text.split("## Use", 1)[1].split("\nOperators:", 1)[0]
    settings_list = settings_list[settings_list.index("- **Expression**"):]
    mesh = cube_head_scene()
    rig = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    bpy.context.scene.collection.objects.link(rig)
    settings = bpy.context.scene.reggan
    drawn: dict[str, str] = {}
    for settings.use_mix, settings.use_channels in ((False, False), (True, False), (False, True)):
        for source, head in (("AUTO", None), ("WHOLE", None), ("BOX", None), ("SCENE", None), ("SCENE", mesh),
                             ("SCENE", rig)):
            settings.face_source, settings.head_object = source, head
            drawn |= {prop.name: prop.identifier for kind, prop, _ in draw_panel(addon) if kind == "prop"}
    assert {"Trust Box", "Vertex Group", "Bone", "Smoothing", "Happy", "Jaw Open"} <= set(drawn)  # every branch drawn
    sliders = {name for name, identifier in drawn.items() if identifier.startswith(("mix_", "channel_"))}
    undocumented = [name for name in drawn if f"**{name}**" not in text and not (name in sliders and name in settings_list)]
    assert undocumented == [], f"options the panel draws that docs/BLENDER.md does not name: {undocumented}"
    # the boxes holding Use Mix Sliders, Use Channel Sliders and their sliders, and the Channel sliders' groups
    groups = {"Mix", "Channels", *(group for group, _ in addon.mix.CHANNEL_GROUPS)}
    unknown = sorted(set(re.findall(r"\*\*([^*]+)\*\*", settings_list)) - set(drawn) - groups)
    assert unknown == [], f"docs/BLENDER.md names options the panel does not draw: {unknown}"


def test_the_blender_docs_say_what_the_gpu_zip_leaves_out() -> None:
    """The GPU zips bundle the runtime's dependencies with onnxruntime-gpu and nothing of the TensorRT backend's
    packages (pyproject's `tensorrt` extra), which docs/BLENDER.md tells users to install; Blender's own packages are
    the ones the docs name."""
    text = (REPO / "docs" / "BLENDER.md").read_text(encoding="utf-8")
    gpu_section = text.split("### GPU zips", 1)[1].split("\n## ", 1)[0]
    bundled = {addon_build.requirement_name(r) for r in addon_build.runtime_requirements(gpu=True)}
    with open(REPO / "pyproject.toml", "rb") as handle:
        tensorrt_extra = tomllib.load(handle)["project"]["optional-dependencies"]["tensorrt"]
    for requirement in tensorrt_extra:
        name = addon_build.requirement_name(requirement)
        assert name not in bundled, name
        assert f"`{name}`" in gpu_section, f"docs/BLENDER.md does not tell GPU users to install {name}"
    assert "onnxruntime-gpu" in bundled and "torch" not in bundled
    assert {"numpy", "opencolorio"} == addon_build.PROVIDED_BY_BLENDER  # "less numpy and OpenColorIO"
    assert "less numpy and OpenColorIO" in gpu_section


def test_gpu_variant_swaps_the_runtime() -> None:
    cpu, gpu = addon_build.runtime_requirements(), addon_build.runtime_requirements(gpu=True)
    names = {addon_build.requirement_name(r) for r in gpu}
    assert "onnxruntime-gpu" in names and "onnxruntime" not in names
    assert len(cpu) == len(gpu)
    fake = [Path(f"{addon_build.requirement_name(r).replace('-', '_')}-1-py3-none-any.whl") for r in gpu]
    assert addon_build.uncovered_imports(fake) == []
    with pytest.raises(addon_build.BuildError, match="linux-x64, windows-x64"):
        addon_build.build(["macos-arm64"], Path("unused"), gpu=True)


@pytest.mark.slow
def test_build_the_gpu_zip_for_linux(tmp_path: Path) -> None:
    """The onnxruntime-gpu variant builds, and its zip carries onnxruntime-gpu and no CPU onnxruntime."""
    result = build_or_skip(["linux-x64"], tmp_path, gpu=True)
    (archive,) = result.zips
    assert archive.name.endswith("linux_x64_gpu.zip")
    manifest, _ = addon_build.zip_manifest(archive)
    wheels = {Path(w).name.split("-")[0].lower() for w in manifest["wheels"]}
    assert "onnxruntime_gpu" in wheels and "onnxruntime" not in wheels
    assert not wheels & {"tensorrt", "cuda_python", "onnx", "torch"}  # the TensorRT backend's packages: the user's
    assert manifest["platforms"] == ["linux-x64"]


@pytest.mark.parametrize("wheel, platform, python, expected", [
    ("pillow-12.0.0-cp311-cp311-manylinux_2_28_x86_64.whl", "linux-x64", "3.11", True),
    ("pillow-12.0.0-cp311-cp311-manylinux_2_28_x86_64.whl", "linux-x64", "3.13", False),
    ("pillow-13.0.0-cp313-cp313-win_amd64.whl", "windows-x64", "3.13", True),
    ("pillow-13.0.0-cp313-cp313-win_amd64.whl", "linux-x64", "3.13", False),
    ("protobuf-7.36.2-cp310-abi3-manylinux2014_x86_64.whl", "linux-x64", "3.11", True),  # the stable ABI
    ("protobuf-7.36.2-cp310-abi3-manylinux2014_x86_64.whl", "linux-x64", "3.13", True),
    ("isal-1.9.1-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", "linux-x64", "3.13", True),
    ("click-8.5.1-py3-none-any.whl", "macos-arm64", "3.13", True),
    ("onnxruntime-1.32.0-cp313-cp313-macosx_14_0_arm64.whl", "macos-arm64", "3.11", False),
])
def test_which_wheels_blenders_installer_installs(wheel, platform, python, expected) -> None:
    assert addon_build.installs(wheel, platform, python) is expected


def test_a_zip_missing_a_python_is_caught() -> None:
    """A platform's wheels for Python 3.11 only leave Blender 5.1+ (Python 3.13) without a runtime."""
    wheels = [f"./wheels/{addon_build.requirement_name(r).replace('-', '_')}-1-cp311-cp311-manylinux_2_28_x86_64.whl"
              for r in addon_build.runtime_requirements()]
    problems = addon_build.installed_runtime_problems(wheels, "linux-x64")
    assert problems and all("Python 3.13" in p for p in problems)
    both = wheels + [w.replace("cp311", "cp313") for w in wheels]
    assert addon_build.installed_runtime_problems(both, "linux-x64") == []


@pytest.mark.slow
def test_every_platforms_zip_installs_a_whole_runtime_on_every_admitted_blender(tmp_path: Path) -> None:
    """For each zip: under each Python that Blender 4.2+ embeds (3.11 up to 5.0, 3.13 from 5.1), the wheels its
    installer picks cover every import of the runtime, none twice; and Blender's validator accepts the zip."""
    result = build_or_skip(list(addon_build.PLATFORMS), tmp_path)
    assert len(result.zips) == 3
    for archive in result.zips:
        manifest, _ = addon_build.zip_manifest(archive)
        (platform,) = manifest["platforms"]
        assert manifest["blender_version_min"] == "4.2.0" and "blender_version_max" not in manifest
        assert addon_build.installed_runtime_problems(manifest["wheels"], platform) == []
        for python in addon_build.PYTHONS:
            assert any(Path(w).name.startswith("onnxruntime-") and addon_build.installs(Path(w).name, platform, python)
                       for w in manifest["wheels"]), (archive.name, python)
        if result.validated_by == "blender_ext":
            assert addon_build.validate_with_blender(archive) is not None


def face_card_scene(size: int = 192, picture: Path = REPO / "samples" / "frames" / "shot_0001.png") -> object:
    """A camera looking at a plane that shows a rendered face (samples/frames), lit by its own emission."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.device = 1, False, "CPU"
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    bpy.ops.mesh.primitive_plane_add(size=2.0, rotation=(np.pi / 2, 0.0, 0.0))
    card = bpy.context.active_object
    material = bpy.data.materials.new("face")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture, emission, output = (nodes.new("ShaderNodeTexImage"), nodes.new("ShaderNodeEmission"),
                                 nodes.new("ShaderNodeOutputMaterial"))
    texture.image = bpy.data.images.load(str(picture))
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs[0], output.inputs[0])
    card.data.materials.append(material)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -2.6, 0.0), (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    return card


@needs_bpy
@pytest.mark.slow
def test_render_hook_with_the_detector_uses_the_tracks_of_apply_to_frames(addon: object, tmp_path: Path) -> None:
    """Auto (the detector) in the render hook: each frame's face smoothed over its neighbours as the CLI and
    'Apply to Frames' do, so the hook's frames equal theirs byte for byte."""
    card = face_card_scene()
    settings = bpy.context.scene.reggan
    settings.face_source, settings.smooth = "AUTO", 0.5
    for name in render_with_hook_then_apply(addon, tmp_path, card, ((1, -0.12), (6, 0.12)), 6):
        edited = read_png(tmp_path / "render_reggan_happy" / name)
        assert (edited != read_png(tmp_path / "render" / name)).any(), name  # a face was found and edited


# -- the Mix sliders: keyframed expression weights ------------------------------------------------
def key_happy(scene: object, keys: tuple[tuple[int, float], ...]) -> None:
    settings = scene.reggan
    settings.use_mix = True
    for frame, weight in keys:
        settings.mix_happy = weight
        settings.keyframe_insert("mix_happy", frame=frame)


@needs_bpy
def test_mix_sliders_are_read_at_each_frame_without_moving_the_scene(addon: object) -> None:
    scene = bpy.context.scene
    scene.frame_set(3)
    key_happy(scene, ((1, 0.0), (10, 1.0)))
    mix = addon.mix
    values = [mix.slider_values(scene, frame)["happy"] for frame in (1, 5, 10, 20)]
    assert values[0] == 0.0 and 0.0 < values[1] < 1.0 and values[2] == values[3] == 1.0
    assert scene.frame_current == 3  # evaluated from the F-curve: the playhead stays where the user left it
    settings = scene.reggan
    assert mix.frame_edit(scene, 1).intensity == 0.0  # all sliders at 0: the frame as rendered
    assert mix.frame_edit(scene, 10) == addon.settings.EditConfig({"happy": 1.0}, 1.0)
    settings.intensity = 0.5
    assert mix.frame_edit(scene, 10).intensity == 0.5  # the panel's Intensity scales the sliders' sum
    settings.mix_sad = 0.25  # not animated: its value at every frame
    edit = mix.frame_edit(scene, 1)
    assert edit.expression == {"sad": 1.0} and edit.intensity == pytest.approx(0.125)
    settings.use_mix = False
    assert mix.frame_edit(scene, 10) == addon.settings.edit_config(settings)  # the single expression, as before


@needs_bpy
def test_mix_sliders_over_one_are_refused_in_the_panel_and_by_apply(addon: object, tmp_path: Path) -> None:
    write_frames(tmp_path / "frames", 2)
    scene = bpy.context.scene
    settings = scene.reggan
    settings.frames_dir, settings.face_source, settings.box = str(tmp_path / "frames"), "BOX", (24, 24, 48, 48)
    settings.use_mix, settings.mix_sad = True, 0.5
    key_happy(scene, ((1, 0.2), (2, 0.8)))
    scene.frame_set(2)
    labels = [text for kind, _, text in draw_panel(addon) if kind == "label"]
    assert any("frame 2: the Mix sliders sum to 1.30" in (text or "") for text in labels), labels
    assert ("prop", settings.bl_rna.properties["mix_happy"], None) in draw_panel(addon)
    scene.frame_set(1)
    assert bpy.ops.reggan.apply_frames() == {"CANCELLED"}  # frame 2 is over 1, whichever frame the UI shows
    status = addon.jobs.JOBS.status
    assert status.state == "failed" and "frame 2: the Mix sliders sum to 1.30" in status.message, status.message
    assert not (tmp_path / "frames_reggan_mix").exists()


def _hook_then_apply(addon: object, scene: object, tmp_path: Path, hooked_dir: str) -> tuple[list[str], Path]:
    """Render frames 1, 5 and 10 through the render hook, then Apply to Frames on the same renders into
    tmp_path/applied: the frame names and the hook's output folder."""
    settings = scene.reggan
    settings.auto_apply = True
    hook = addon.handlers.HOOK
    for frame in (1, 5, 10):  # three one-frame animation renders: the hook at frames 1, 5 and 10
        scene.frame_start = scene.frame_end = frame
        bpy.ops.render.render(animation=True)
    hook.wait(120)
    assert hook.failed == []
    settings.auto_apply = False
    names = ["0001.png", "0005.png", "0010.png"]
    hooked = tmp_path / hooked_dir
    assert sorted(p.name for p in hooked.iterdir()) == names
    settings.frames_dir, settings.out_dir = str(tmp_path / "render"), str(tmp_path / "applied")
    assert bpy.ops.reggan.apply_frames() == {"FINISHED"}
    assert addon.jobs.JOBS.status.state == "done", addon.jobs.JOBS.status.message
    return names, hooked


@needs_bpy
@pytest.mark.slow
def test_render_hook_with_keyed_sliders_equals_apply_to_frames(addon: object, tmp_path: Path) -> None:
    """happy keyed 0 at frame 1 and 1 at frame 10: the hook leaves frame 1 as rendered (bit for bit), edits frame 10
    as the single happy expression does, frame 5 between; "Apply to Frames" with the same keys gives the same files."""
    tiny_render_scene()
    scene = bpy.context.scene
    scene.render.filepath = str(tmp_path / "render" / "####")
    scene.render.image_settings.file_format = "PNG"
    settings = scene.reggan
    settings.face_source, settings.box = "BOX", (16, 8, 32, 32)
    key_happy(scene, ((1, 0.0), (10, 1.0)))
    names, hooked = _hook_then_apply(addon, scene, tmp_path, "render_reggan_mix")
    settings.use_mix, settings.expression, settings.out_dir = False, "happy", str(tmp_path / "single")
    assert bpy.ops.reggan.apply_frames() == {"FINISHED"}
    assert addon.jobs.JOBS.status.state == "done", addon.jobs.JOBS.status.message
    for name in names:
        assert np.array_equal(read_png(hooked / name), read_png(tmp_path / "applied" / name)), name
    render = {name: read_png(tmp_path / "render" / name).astype(np.int16) for name in names}
    edit = {name: read_png(hooked / name).astype(np.int16) for name in names}
    single = {name: read_png(tmp_path / "single" / name).astype(np.int16) for name in names}
    assert np.array_equal(edit["0001.png"], render["0001.png"])  # happy 0: the frame as rendered
    assert np.array_equal(edit["0010.png"], single["0010.png"])  # happy 1: the single-expression edit
    moved, full = (np.abs(x["0005.png"] - render["0005.png"]).sum() for x in (edit, single))
    assert 0 < moved < full  # between: part of the way to the happy edit


@needs_bpy
def test_import_curves_csv_keys_the_sliders_as_the_runtime_reads_the_file(addon: object, tmp_path: Path) -> None:
    from reggan_plugin.sequence.curves import read_curves

    scene = bpy.context.scene
    key_happy(scene, ((3, 0.7),))  # old keys: replaced by the file's
    path = tmp_path / "shot.csv"
    path.write_text("frame,Happy,surprised\n1,0,0\n10,1,0\n20,0.25,0.75\n")
    assert bpy.ops.reggan.import_mix_curves(filepath=str(path)) == {"FINISHED"}
    assert scene.reggan.use_mix and "3 key(s)" in addon.jobs.JOBS.status.message
    curves = read_curves(path)
    for frame in (0, 1, 3, 5, 10, 15, 20, 30):
        values = addon.mix.slider_values(scene, frame)
        expected = {name: 0.0 for name in addon.mix.MIX_EXPRESSIONS} | curves.mix_at(frame)
        assert values == pytest.approx(expected, abs=1e-6), frame
    for bad, words in (("happy\n0.5\n", "'frame' column"), ("frame,happy,sad\n1,0.8,0.5\n", "sum to 1.3"),
                       ("frame,happy,jawOpen\n1,0.5,0.5\n", "not an ARKit blendshape")):
        path.write_text(bad)
        assert bpy.ops.reggan.import_mix_curves(filepath=str(path)) == {"CANCELLED"}
        status = addon.jobs.JOBS.status
        assert status.state == "failed" and words in status.message, status.message


# -- the Channel sliders: keyframed ARKit channels on the channel model ------------------------------------
def key_channels(addon: object, scene: object, keys: dict[str, tuple[tuple[int, float], ...]]) -> None:
    settings = scene.reggan
    settings.use_channels = True
    for channel, points in keys.items():
        prop = addon.mix.channel_prop(channel)
        for frame, weight in points:
            setattr(settings, prop, weight)
            settings.keyframe_insert(prop, frame=frame)


@needs_bpy
def test_channel_sliders_are_read_at_each_frame_without_moving_the_scene(addon: object, addon_model: Path) -> None:
    from reggan_plugin.artifact import channels_model_path, load_artifact
    from reggan_plugin.config import EditConfig

    mix = addon.mix
    assert set(mix.MODELLED_CHANNELS) == set(load_artifact(channels_model_path()).names) - {"neutral"}
    assert len(mix.MODELLED_CHANNELS) == 51 and "tongueOut" not in mix.MODELLED_CHANNELS
    groups = mix.grouped_channels()
    assert sorted(c for names in groups.values() for c in names) == sorted(mix.MODELLED_CHANNELS)  # each channel once
    assert "browInnerUp" in groups["Brows"] and "eyeBlinkLeft" in groups["Eyes"] and "jawOpen" in groups["Jaw"]
    assert {"cheekPuff", "noseSneerLeft"} <= set(groups["Cheeks and Nose"]) and "mouthClose" in groups["Mouth"]

    scene = bpy.context.scene
    settings = scene.reggan
    scene.frame_set(3)
    settings.use_mix = True
    key_channels(addon, scene, {"jawOpen": ((1, 0.0), (11, 1.0))})
    assert settings.use_channels and not settings.use_mix  # one toggle turns the other off
    values = [mix.channel_values(scene, frame)["jawOpen"] for frame in (1, 6, 11, 20)]
    assert values == pytest.approx([0.0, 0.5, 1.0, 1.0], abs=1e-6)
    assert scene.frame_current == 3  # evaluated from the F-curve: the playhead stays where the user left it
    assert mix.frame_edit(scene, 1).intensity == 0.0  # every channel at 0: the frame as rendered
    settings.mix_happy = 0.9  # the Mix sliders do not drive the edit now
    setattr(settings, mix.channel_prop("mouthSmileLeft"), 1.0)  # not animated: its value at every frame
    setattr(settings, mix.channel_prop("browDownRight"), 0.25)
    settings.intensity = 0.75
    edit = mix.frame_edit(scene, 11)  # channels add: 2.25 in all
    assert edit == EditConfig({"jawOpen": 1.0, "mouthSmileLeft": 1.0, "browDownRight": 0.25}, 0.75)
    assert mix.frame_edit(scene, 6).expression == pytest.approx({"jawOpen": 0.5, "mouthSmileLeft": 1.0,
                                                                 "browDownRight": 0.25}, abs=1e-6)

    drawn = draw_panel(addon)
    shown = {prop.identifier for kind, prop, _ in drawn if kind == "prop"}
    assert {mix.channel_prop(c) for c in mix.MODELLED_CHANNELS} <= shown and "expression" not in shown
    labels = [text for kind, _, text in drawn if kind == "label"]
    assert {"Brows (1 on)", "Eyes", "Mouth (1 on)"} <= set(labels), labels
    assert "Frame 3: 3 channel(s) on, on the channel model" in labels  # jawOpen 0.2 at frame 3

    run = addon.operators.run_settings(bpy.context)
    assert run.inference.model == addon_model  # the scene's own Model File is used as it is
    settings.model_path = ""
    assert addon.operators.run_settings(bpy.context).inference.model == channels_model_path()
    assert addon.operators.output_tag(settings) == "channels"
    settings.use_channels = False
    assert addon.operators.run_settings(bpy.context).inference.model is None  # the bundled face model
    assert mix.frame_edit(scene, 11) == addon.settings.edit_config(settings)  # the single expression, as before


@needs_bpy
def test_channel_sliders_at_zero_leave_the_frame_bit_identical(addon: object, tmp_path: Path) -> None:
    """Apply to Frames with the Channel sliders: the frame whose channels are all 0 is written as it was, bit for
    bit; the other is the channel model's edit of those channels, as the runtime renders it."""
    from reggan_plugin.artifact import channels_model_path
    from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
    from reggan_plugin.faces import parse_region
    from reggan_plugin.pipeline import render_sequence

    frames = write_frames(tmp_path / "frames", 2)
    scene = bpy.context.scene
    settings = scene.reggan
    settings.model_path = ""  # the bundled channel model
    settings.frames_dir, settings.face_source, settings.box = str(tmp_path / "frames"), "BOX", (24, 24, 48, 48)
    key_channels(addon, scene, {"jawOpen": ((1, 0.0), (2, 1.0)), "mouthSmileLeft": ((1, 0.0), (2, 0.5))})
    assert bpy.ops.reggan.apply_frames() == {"FINISHED"}
    assert addon.jobs.JOBS.status.state == "done", addon.jobs.JOBS.status.message
    out = tmp_path / "frames_reggan_channels"
    assert np.array_equal(read_png(out / frames[0].name), read_png(frames[0]))  # all 0: untouched
    edited = read_png(out / frames[1].name)
    changed = (edited != read_png(frames[1])).any(axis=2)
    assert changed[24:72, 24:72].any() and not changed[outside((24, 24, 48, 48), changed.shape)].any()
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / frames[1].name).write_bytes(frames[1].read_bytes())
    seq = SequenceConfig(frames=tmp_path / "second", out=tmp_path / "runtime", region=parse_region("24,24,48,48"))
    render_sequence(seq, EditConfig({"jawOpen": 1.0, "mouthSmileLeft": 0.5}, 1.0),
                    InferenceConfig(model=channels_model_path(), backend="cpu", subject="render"))
    assert np.array_equal(edited, read_png(tmp_path / "runtime" / frames[1].name))


@needs_bpy
def test_channel_sliders_without_a_channel_model_are_refused(addon: object, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import reggan_plugin.artifact

    write_frames(tmp_path / "frames", 1)
    monkeypatch.setattr(reggan_plugin.artifact, "channels_model_path", lambda: tmp_path / "no" / "channels.onnx")
    settings = bpy.context.scene.reggan
    settings.model_path, settings.use_channels = "", True
    settings.frames_dir, settings.face_source, settings.box = str(tmp_path / "frames"), "BOX", (24, 24, 48, 48)
    assert bpy.ops.reggan.apply_frames() == {"CANCELLED"}
    status = addon.jobs.JOBS.status
    assert status.state == "failed" and "channel model" in status.message and "Model File" in status.message
    assert "model" in status.hint.lower()
    assert not (tmp_path / "frames_reggan_channels").exists()


@needs_bpy
@pytest.mark.slow
def test_render_hook_with_keyed_channel_sliders_equals_apply_to_frames(addon: object, tmp_path: Path) -> None:
    """Channels keyed 0 at frame 1 and jawOpen 0.5, mouthSmileLeft 1, browDownRight 0.25 at frame 10: the hook leaves
    frame 1 as rendered (bit for bit) and edits frame 10 as the runtime edits those channels on the channel model;
    "Apply to Frames" with the same keys gives the same files."""
    from reggan_plugin.artifact import channels_model_path
    from reggan_plugin.config import EditConfig, InferenceConfig, SequenceConfig
    from reggan_plugin.faces import parse_region
    from reggan_plugin.pipeline import render_sequence

    tiny_render_scene()
    scene = bpy.context.scene
    scene.render.filepath = str(tmp_path / "render" / "####")
    scene.render.image_settings.file_format = "PNG"
    settings = scene.reggan
    settings.model_path = ""  # the bundled channel model
    settings.face_source, settings.box, settings.intensity = "BOX", (16, 8, 32, 32), 0.75
    key_channels(addon, scene, {"jawOpen": ((1, 0.0), (10, 0.5)), "mouthSmileLeft": ((1, 0.0), (10, 1.0)),
                                "browDownRight": ((1, 0.0), (10, 0.25))})
    names, hooked = _hook_then_apply(addon, scene, tmp_path, "render_reggan_channels")
    for name in names:
        assert np.array_equal(read_png(hooked / name), read_png(tmp_path / "applied" / name)), name
    assert np.array_equal(read_png(hooked / "0001.png"), read_png(tmp_path / "render" / "0001.png"))
    assert (read_png(hooked / "0005.png") != read_png(tmp_path / "render" / "0005.png")).any()
    (tmp_path / "last").mkdir()
    (tmp_path / "last" / "0010.png").write_bytes((tmp_path / "render" / "0010.png").read_bytes())
    seq = SequenceConfig(frames=tmp_path / "last", out=tmp_path / "runtime", region=parse_region("16,8,32,32"))
    render_sequence(seq, EditConfig({"jawOpen": 0.5, "mouthSmileLeft": 1.0, "browDownRight": 0.25}, 0.75),
                    InferenceConfig(model=channels_model_path(), backend="cpu", subject="render"))
    assert np.array_equal(read_png(hooked / "0010.png"), read_png(tmp_path / "runtime" / "0010.png"))


LIVE_LINK_ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
                       "RightEyePitch", "RightEyeRoll")


@needs_bpy
def test_import_live_link_csv_keys_the_channel_sliders_as_the_runtime_reads_the_file(addon: object,
                                                                                       tmp_path: Path) -> None:
    """A Live Link Face capture (a row per captured frame, capitalised names, tongueOut and the head's rotations)
    keys the Channel sliders from the scene's first frame on; an ARKit CSV with a frame column keys those frames.
    Each slider reads, at each frame, what the runtime reads from the file for the channel model."""
    from reggan_plugin.artifact import channels_model_path, load_artifact
    from reggan_plugin.expressions import ARKIT_BLENDSHAPES
    from reggan_plugin.sequence.curves import read_curves

    mix = addon.mix
    channels = load_artifact(channels_model_path()).expressions
    scene = bpy.context.scene
    scene.frame_start = 5
    key_channels(addon, scene, {"cheekPuff": ((1, 0.8), (40, 0.1))})  # old keys: replaced by the file's
    scene.reggan.use_mix = True
    rng = np.random.default_rng(2)
    rows = 6
    weights = np.round(rng.uniform(0.0, 1.0, (rows, len(ARKIT_BLENDSHAPES))), 4)
    rotations = np.round(rng.uniform(-0.6, 0.6, (rows, len(LIVE_LINK_ROTATIONS))), 4)  # past [0, 1]: not channels
    header = ["Timecode", "BlendShapeCount", *(n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES), *LIVE_LINK_ROTATIONS]
    lines = [",".join(header)] + [",".join([f"00:00:00:{i:02d}.000", "61", *map(str, weights[i]), *map(str, rotations[i])])
                                  for i in range(rows)]
    path = tmp_path / "live_link.csv"
    path.write_text("\n".join(lines) + "\n")
    assert bpy.ops.reggan.import_mix_curves(filepath=str(path)) == {"FINISHED"}
    assert scene.reggan.use_channels and not scene.reggan.use_mix
    assert "6 key(s) on the Channel sliders (frames 5-10)" in addon.jobs.JOBS.status.message
    curves = read_curves(path, channels)
    assert curves.keys is None and "tongueOut" not in curves.names and len(curves.names) == 51
    for row in range(rows):  # row i at the scene's frame_start + i
        assert mix.channel_values(scene, 5 + row) == pytest.approx(curves.mix_at(row), abs=1e-6), row
    assert mix.channel_values(scene, 1) == pytest.approx(curves.mix_at(0), abs=1e-6)  # held before the first row
    assert mix.channel_values(scene, 40) == pytest.approx(curves.mix_at(rows - 1), abs=1e-6)  # and after the last

    path.write_text("frame,JawOpen,mouthSmileLeft\n1,0,0.5\n11,1,0.25\n21,0.5,0\n")  # some channels, keyed frames
    assert bpy.ops.reggan.import_mix_curves(filepath=str(path)) == {"FINISHED"}
    curves = read_curves(path, channels)
    for frame in (0, 1, 4, 6, 11, 16, 21, 30):
        expected = {name: 0.0 for name in mix.MODELLED_CHANNELS} | curves.mix_at(frame)  # the others: 0, their keys gone
        assert mix.channel_values(scene, frame) == pytest.approx(expected, abs=1e-6), frame
    assert not [fc.data_path for fc in mix.scene_fcurves(scene) if fc.data_path == mix.channel_data_path("cheekPuff")]
    path.write_text("frame,jawOpen\n1,1.5\n")
    assert bpy.ops.reggan.import_mix_curves(filepath=str(path)) == {"CANCELLED"}
    status = addon.jobs.JOBS.status
    assert status.state == "failed" and "outside [0, 1]" in status.message, status.message


# -- Bake Expression Maps ----------------------------------------------------------------------------------
def bpy_head(name: str, positions: np.ndarray, triangles: np.ndarray, uvs: np.ndarray | None,
             albedo_linear: np.ndarray | None, *, scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
             location: tuple[float, float, float] = (0.0, 0.0, 0.0), float_image: bool = False) -> object:
    """A mesh object from positions in the bake's axes (+Y up, the face towards +Z; Blender's are (x, -z, y) of
    them), per-corner UVs [F,3,2] (None: no UV map) and a Principled material whose Base Color is an Image Texture
    of ``albedo_linear`` (None: no image linked): a byte sRGB image, or a float one. The object is made active."""
    from reggan_plugin.imageio.colour import srgb_encode

    blender = np.stack([positions[:, 0], -positions[:, 2], positions[:, 1]], axis=1)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(blender.tolist(), [], np.asarray(triangles).tolist())
    if uvs is not None:
        mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", np.asarray(uvs, np.float32).ravel())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.scale, obj.location = scale, location
    material = bpy.data.materials.new(f"{name} skin")
    mesh.materials.append(material)
    if albedo_linear is not None:
        height, width = albedo_linear.shape[:2]
        image = bpy.data.images.new(f"{name} albedo", width, height, alpha=True, float_buffer=float_image)
        rgb = albedo_linear if float_image else np.round(srgb_encode(np.clip(albedo_linear, 0, 1)) * 255) / 255
        rgba = np.dstack([rgb, np.ones((height, width, 1), np.float32)]).astype(np.float32)
        image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())  # Blender's rows start at the bottom
        tree = material.node_tree
        texture = tree.nodes.new("ShaderNodeTexImage")
        texture.image = image
        tree.links.new(texture.outputs["Color"], tree.nodes["Principled BSDF"].inputs["Base Color"])
    bpy.context.view_layer.objects.active = obj
    return obj


def material_state(material: object) -> tuple[list[tuple[str, ...]], list[str]]:
    tree = material.node_tree
    links = sorted((lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier)
                   for lk in tree.links)
    return links, sorted(n.name for n in tree.nodes)


QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float64)  # bake axes: facing +Z
QUAD_TRIANGLES = np.array([[0, 1, 2], [0, 2, 3]])
QUAD_UVS = QUAD[QUAD_TRIANGLES][..., :2]  # u = x, v = y


@needs_bpy
def test_bake_reads_the_evaluated_head_in_world_space_and_its_albedo_as_linear(addon: object) -> None:
    from reggan_plugin.imageio.colour import srgb_decode

    maps = addon.expression_maps
    rng = np.random.default_rng(1)
    albedo = rng.uniform(0.02, 0.9, (24, 32, 3)).astype(np.float32)
    albedo[0] = (0.8, 0.05, 0.05)  # the top row is red
    obj = bpy_head("Head", QUAD, QUAD_TRIANGLES, QUAD_UVS, albedo, scale=(2.0, 2.0, 2.0), location=(1.0, 2.0, 3.0))
    array = obj.modifiers.new("copies", "ARRAY")
    array.count, array.relative_offset_displace = 2, (1.0, 0.0, 0.0)
    mesh, uv_name = maps.head_mesh(obj, bpy.context.evaluated_depsgraph_get())
    assert uv_name == "UVMap" and mesh.triangles.shape == (4, 3)  # the modifier's copy is there
    # world space in the bake's axes: Blender (x, y, z) = local * 2 + (1, 2, 3), seen as (x, z, -y)
    assert mesh.positions[:, 0].min() == pytest.approx(1.0) and mesh.positions[:, 0].max() == pytest.approx(5.0)
    assert mesh.positions[:, 1].min() == pytest.approx(3.0) and mesh.positions[:, 1].max() == pytest.approx(5.0)
    np.testing.assert_allclose(mesh.positions[:, 2], -2.0)
    local = (mesh.positions[mesh.triangles] - [1.0, 3.0, -2.0]) / 2.0  # each corner's UV is its local (x mod 1, y)
    corner_uv = mesh.uvs[mesh.uv_triangles]
    np.testing.assert_allclose(corner_uv[..., 1], local[..., 1], atol=1e-6)
    assert np.isin(np.round(local[..., 0] - corner_uv[..., 0], 6), (0.0, 1.0)).all()
    assert (mesh.vertex_normals()[:, 2] > 0.99).all()  # the face looks along +Z
    obj.scale = (-2.0, 2.0, 2.0)  # mirrored: the triangles are wound back, still facing +Z
    mirrored, _ = maps.head_mesh(obj, bpy.context.evaluated_depsgraph_get())
    assert (mirrored.vertex_normals()[:, 2] > 0.99).all()

    image = maps.find_albedo(obj.active_material).image_node.image
    assert not image.is_float
    read = maps.albedo_linear(image)  # byte sRGB: decoded, the top row first
    np.testing.assert_allclose(read, srgb_decode(np.round(srgb_decode_inverse(albedo) * 255) / 255), atol=1e-4)
    assert read[0, :, 0].min() > 0.7 and read[-1, :, 0].max() < 0.95
    np.testing.assert_allclose(read, albedo, atol=0.01)
    floating = bpy_head("Float", QUAD, QUAD_TRIANGLES, QUAD_UVS, albedo, float_image=True)
    np.testing.assert_allclose(maps.albedo_linear(floating.active_material.node_tree.nodes["Image Texture"].image),
                               albedo, atol=1e-6)  # float images hold linear values
    data = bpy.data.images.new("data", 32, 24, alpha=True)
    data.colorspace_settings.is_data = True  # Non-Color: the stored values, as the shader reads them
    stored = np.round(srgb_decode_inverse(albedo) * 255) / 255
    data.pixels.foreach_set(np.dstack([stored, np.ones((24, 32, 1))])[::-1].astype(np.float32).ravel())
    np.testing.assert_allclose(maps.albedo_linear(data), stored, atol=1e-5)


def srgb_decode_inverse(linear: np.ndarray) -> np.ndarray:
    from reggan_plugin.imageio.colour import srgb_encode

    return srgb_encode(np.clip(linear, 0, 1))


@needs_bpy
def test_bake_expression_maps_refuses_what_it_cannot_bake_and_changes_nothing(addon: object, tmp_path: Path) -> None:
    """No active mesh, an unsaved file, no UV map, no albedo image, no face in any view: CANCELLED with one line
    saying what to fix, the material as it was and no maps written."""
    status = addon.jobs.JOBS
    albedo = np.full((32, 32, 3), 0.4, np.float32)
    head = bpy_head("Head", QUAD, QUAD_TRIANGLES, QUAD_UVS, albedo)
    bpy.context.view_layer.objects.active = None
    assert bpy.ops.reggan.bake_expression_maps() == {"CANCELLED"}
    assert status.status.state == "failed" and "no active mesh" in status.status.message
    bpy.context.view_layer.objects.active = head
    assert bpy.ops.reggan.bake_expression_maps() == {"CANCELLED"}  # never saved: nowhere beside it
    assert "save the blend file" in status.status.message
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))

    bare = bpy_head("Bare", QUAD, QUAD_TRIANGLES, None, albedo)
    before = material_state(bare.active_material)
    assert bpy.ops.reggan.bake_expression_maps() == {"CANCELLED"}
    assert "no UV map" in status.status.message and "Bare" in status.status.message
    assert material_state(bare.active_material) == before

    plain = bpy_head("Plain", QUAD, QUAD_TRIANGLES, QUAD_UVS, None)
    before = material_state(plain.active_material)
    assert bpy.ops.reggan.bake_expression_maps() == {"CANCELLED"}
    assert "no albedo image" in status.status.message and "Base Color" in status.status.message
    assert material_state(plain.active_material) == before

    bpy.context.view_layer.objects.active = head  # a flat grey card: no view shows a face
    bpy.context.scene.reggan.bake_expressions = {"happy"}
    before = material_state(head.active_material)
    assert bpy.ops.reggan.bake_expression_maps() == {"CANCELLED"}
    assert status.status.state == "failed" and "no view of the mesh shows a face" in status.status.message
    assert "\n" not in status.status.message
    assert material_state(head.active_material) == before
    assert not any(bpy.data.node_groups) and not (tmp_path / "Head_expression_maps" / "maps.json").exists()
    drawn: list[tuple[str, object, str | None]] = []
    addon.panels.draw_bake(RecordingLayout(drawn), bpy.context)  # the button, and the sliders of what it bakes
    assert ("operator", "reggan.bake_expression_maps", None) in drawn
    assert [prop.identifier for kind, prop, _ in drawn if kind == "prop"] == ["bake_expressions", "mix_happy"]


@pytest.fixture(scope="module")
def ict_head(ict_model_path: Path) -> object:
    """A textured ICT head (its mesh in the bake's axes, centimetres; linear albedo at 320x256)."""
    import cv2

    from training.evaluate.textured_heads import textured_head
    from training.synth.face_model import load_face_model
    from training.synth.recipes import load_recipes

    head = textured_head(load_face_model(ict_model_path), load_recipes(), 0, 0)
    return head.mesh, cv2.resize(head.albedo, (320, 256), interpolation=cv2.INTER_AREA)


@needs_bpy
@pytest.mark.slow
def test_bake_expression_maps_writes_the_maps_and_drives_one_group_from_the_sliders(
        addon: object, ict_head: tuple[object, np.ndarray], tmp_path: Path) -> None:
    from reggan_plugin.texture_maps.manifest import read_multiplier

    maps = addon.expression_maps
    mesh, albedo = ict_head
    obj = bpy_head("Head", mesh.positions, mesh.triangles, mesh.uvs[mesh.uv_triangles], albedo,
                   scale=(0.01, 0.01, 0.01), location=(0.3, -0.2, 1.6))  # centimetres to metres, standing
    material = obj.active_material
    image = material.node_tree.nodes["Image Texture"].image
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    scene = bpy.context.scene
    scene.reggan.model_path = ""  # the bundled model: a random one's changes are too large to be taken for skin

    assert bpy.ops.reggan.bake_expression_maps() == {"FINISHED"}, addon.jobs.JOBS.status.message
    folder = tmp_path / "Head_expression_maps"
    manifest = json.loads((folder / "maps.json").read_text())
    assert [m["name"] for m in manifest["maps"]] == list(addon.mix.MIX_EXPRESSIONS)  # the six, by default
    assert manifest["size"] == [320, 256] and manifest["mesh"] == "Head" and manifest["texture"] == image.name
    for entry in manifest["maps"]:
        assert (folder / entry["multiplier"]).is_file() and (folder / entry["mask"]).is_file()
    happy = read_multiplier(folder / "happy_multiplier.png")
    assert np.abs(happy - 1).max() > 0.05  # the smile changes the skin somewhere

    def group_nodes() -> list[object]:
        return [n for n in material.node_tree.nodes if n.type == "GROUP"]

    (node,) = group_nodes()
    base = material.node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    assert base.links[0].from_node == node and node.inputs["Albedo"].links[0].from_node.image == image
    assert [s.name for s in node.inputs] == ["Albedo", "Happy", "Sad", "Surprised", "Angry", "Disgusted", "Fearful"]
    # the group reads the PNG's multiplier: Blender's value / 65535 times the group's scale is the written value
    loaded = next(n.image for n in node.node_tree.nodes if n.type == "TEX_IMAGE" and n.image.name.startswith("happy_mult"))
    assert loaded.colorspace_settings.is_data and Path(bpy.path.abspath(loaded.filepath)) == folder / "happy_multiplier.png"
    np.testing.assert_allclose(pixels_top_down(loaded)[..., :3] * maps.MULTIPLIER_SCALE, happy, atol=1e-4)

    scene.reggan.bake_expressions = {"sad", "happy"}  # bake again: the images are read again, the group rebuilt
    assert bpy.ops.reggan.bake_expression_maps() == {"FINISHED"}, addon.jobs.JOBS.status.message
    assert len([g for g in bpy.data.node_groups if g.name.startswith(maps.GROUP_PREFIX)]) == 1
    (node,) = group_nodes()
    assert base.links[0].from_node == node and node.inputs["Albedo"].links[0].from_node.image == image
    assert [s.name for s in node.inputs] == ["Albedo", "Happy", "Sad"]
    assert len([i for i in bpy.data.images if i.name.startswith("happy_multiplier")]) == 1
    drivers = material.node_tree.animation_data.drivers
    assert len(drivers) == 2  # the first bake's six are gone with its node
    for curve in drivers:
        (variable,) = curve.driver.variables
        assert variable.targets[0].id == scene
    # the sliders drive the weights
    scene.reggan.mix_happy, scene.reggan.mix_sad = 0.7, 0.2
    evaluate_drivers()
    assert node.inputs["Happy"].default_value == pytest.approx(0.7)
    assert node.inputs["Sad"].default_value == pytest.approx(0.2)
    scene.reggan.mix_happy = 0.1
    evaluate_drivers()
    assert node.inputs["Happy"].default_value == pytest.approx(0.1)


def evaluate_drivers() -> None:
    """Evaluate the scene's drivers as Blender's UI does after a change. Headless bpy re-runs a driver on a property
    change only until the first operator call; after one, the depsgraph runs them again once its relations are
    rebuilt, which adding and removing an object asks for."""
    scene = bpy.context.scene
    empty = bpy.data.objects.new("relations", None)
    scene.collection.objects.link(empty)
    bpy.data.objects.remove(empty)
    bpy.context.view_layer.update()
