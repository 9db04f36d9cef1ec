"""bpy images <-> numpy arrays (main thread only).

Blender keeps pixels bottom row first as float32 RGBA. The runtime wants the top row first
(reggan_plugin.imageio's conventions), so rows are flipped on the way in and out. Byte images (8-bit
textures) come back as uint8 (exactly the stored bytes: Blender's float view is byte / 255), so
untouched pixels stay bit-identical; float images come back as scene-linear float32.

The Render Result's pixels cannot be read directly: `render_result_pixels` saves it to a temporary
OpenEXR file with `Image.save_render` (scene-linear, full float), loads that, and deletes it.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np


@dataclass
class Picture:
    """pixels: HxWxC top row first; uint8 (sRGB-encoded bytes) or float32 (scene-linear when `linear`).
    colorspace: the pixels' colour space in Blender's OCIO config (float images: the blend file's working space;
    byte images: the image's own), None for non-colour data or a Blender without one."""

    pixels: np.ndarray
    linear: bool
    colorspace: str | None = None


def ocio_config() -> str | None:
    """The OCIO config Blender runs with: $OCIO where set (Blender reads it too), else the one it ships."""
    if os.environ.get("OCIO"):
        return os.environ["OCIO"]
    path = os.path.join(bpy.utils.resource_path("LOCAL"), "datafiles", "colormanagement", "config.ocio")
    return path if os.path.isfile(path) else None


def working_space() -> str:
    """The space Blender keeps float pixels and renders in: the blend file's working space (Blender 5.0), else
    its config's scene_linear role."""
    colorspace = getattr(bpy.data, "colorspace", None)
    return str(getattr(colorspace, "working_space", "") or "scene_linear")


def colour_of(picture: Picture) -> Any:
    """The `ColourConfig` of a picture's pixels (what `engine.edit_pixels` takes): the edit is made in sRGB and
    put back in the picture's own space. The view transform (AgX, Filmic) is not applied: the network sees
    the picture as the Standard view shows it."""
    from reggan_plugin.config import ColourConfig

    config = ocio_config()
    if picture.colorspace is None or config is None:
        return ColourConfig()
    return ColourConfig(picture.colorspace, config)


def read_pixels(image: Any) -> Picture:
    width, height = image.size
    channels = image.channels
    if width == 0 or height == 0 or (not image.has_data and not _load(image)):
        raise RuntimeError(f"image {image.name!r} has no pixels (is its file missing?)")
    flat = np.empty(width * height * channels, np.float32)
    image.pixels.foreach_get(flat)
    pixels = flat.reshape(height, width, channels)[::-1]
    if image.is_float:  # Blender holds float buffers in its working space, whatever the file's space
        return Picture(np.ascontiguousarray(pixels), linear=True, colorspace=working_space())
    settings = image.colorspace_settings
    space = None if settings.is_data else settings.name
    return Picture(np.round(pixels * 255.0).astype(np.uint8), linear=False, colorspace=space)


def _load(image: Any) -> bool:
    image.pixels[0:1]  # touching the pixels loads a file-backed image
    return bool(image.has_data)


def write_pixels(image: Any, pixels: np.ndarray) -> None:
    """Top-row-first pixels (as `read_pixels` gives them) into an image of the same size."""
    width, height = image.size
    if pixels.shape[:2] != (height, width) or pixels.shape[2] != image.channels:
        raise RuntimeError(f"image {image.name!r} is {width}x{height}x{image.channels}, the edit is {pixels.shape}")
    values = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)
    image.pixels.foreach_set(np.ascontiguousarray(values[::-1]).ravel())
    image.update()


# Custom properties on an edited image's backup (see operators.keep_backup): what Revert undoes besides the pixels.
PACKED_BY_EDIT = "reggan_packed_by_edit"  # the image was an unpacked file before its first edit: Revert unpacks it
SETTINGS_BEFORE = {"colorspace": "reggan_colorspace_before", "alpha_mode": "reggan_alpha_mode_before"}
PACKED_NOTE = "edited image packed into the .blend; the file on disk is unchanged"


def keep_edit(image: Any, backup: Any) -> str:
    """After an edit of `image` (pixels written): make renders and the saved .blend show it. A file-backed image's
    edited pixels are packed into the .blend (PNG for 8-bit, OpenEXR for float images; the file on disk is never
    written): Cycles reads an unpacked file from disk, not the edited pixels, and a render frees them. A float
    image is packed as scene-linear, premultiplied OpenEXR, so its colour space becomes the working space and its
    alpha premultiplied (the settings it had are kept on `backup` for Revert). Returns a note for the report ('' where
    nothing was packed)."""
    if image.source != "FILE":
        refresh(image)
        return ""
    if image.packed_file is None:
        backup[PACKED_BY_EDIT] = True
    image.pack()
    settings = image.colorspace_settings
    if image.is_float and not settings.is_data and settings.name != working_space():
        backup[SETTINGS_BEFORE["colorspace"]] = backup.get(SETTINGS_BEFORE["colorspace"], settings.name)
        settings.name = working_space()  # reloads the packed (linear) pixels as they are
    if image.is_float and image.alpha_mode == "STRAIGHT":
        backup[SETTINGS_BEFORE["alpha_mode"]] = backup.get(SETTINGS_BEFORE["alpha_mode"], image.alpha_mode)
        image.alpha_mode = "PREMUL"
    refresh(image)
    return PACKED_NOTE


def refresh(image: Any) -> None:
    """Renders see the image's pixels as they are now. Cycles' Persistent Data keeps the images it uploaded, even
    tagged for update: a scene rendering with it gets its persistent data freed (switched off and on again), so
    its next render uploads the image again."""
    image.update_tag()
    for scene in bpy.data.scenes:
        if scene.render.use_persistent_data:
            scene.render.use_persistent_data = False  # frees the render's persistent data
            scene.render.use_persistent_data = True


def restore(image: Any, backup: Any) -> str:
    """Revert: the image as before its first edit. One packed by an edit is unpacked and reloaded from its file
    (never written) where that file is still there; otherwise the backup's pixels are written back (and packed
    again where the image is packed). Returns what was done, for the report."""
    pixels = read_pixels(backup).pixels
    path = bpy.path.abspath(image.filepath, library=image.library)
    if backup.get(PACKED_BY_EDIT) and image.packed_file is not None and os.path.isfile(path):
        image.unpack(method="REMOVE")  # removes the packed copy only: no file is written
        if SETTINGS_BEFORE["colorspace"] in backup:
            image.colorspace_settings.name = backup[SETTINGS_BEFORE["colorspace"]]
        if SETTINGS_BEFORE["alpha_mode"] in backup:
            image.alpha_mode = backup[SETTINGS_BEFORE["alpha_mode"]]
        image.reload()
        if not np.array_equal(read_pixels(image).pixels, pixels):  # unsaved changes made before the first edit
            write_pixels(image, pixels)
        refresh(image)
        return "unpacked: it shows its file again"
    write_pixels(image, pixels)
    if image.source == "FILE" and image.packed_file is not None:
        image.pack()
    refresh(image)
    return ""


def new_image(name: str, picture: Picture) -> Any:
    """A new image datablock holding `picture` (float images are scene-linear)."""
    height, width = picture.pixels.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=picture.pixels.shape[2] == 4, float_buffer=picture.linear)
    if picture.pixels.shape[2] != image.channels:
        raise RuntimeError(f"cannot hold {picture.pixels.shape[2]} channels in a new image")
    write_pixels(image, picture.pixels)
    return image


def look_like_the_render(image: Any, scene: Any) -> None:
    """Make an edited copy of the Render Result show and save as the render does: "View as Render" (the scene's view
    transform, look, exposure and curves, as for the Render Result itself; Image > Save As then saves "as render"), and
    a still file format of its own: the scene's when its output is a still image, else OpenEXR (a movie or multilayer
    output is no format for one image)."""
    image.use_view_as_render = True
    output = scene.render.image_settings
    still = getattr(output, "media_type", "IMAGE") == "IMAGE" and output.file_format not in ("FFMPEG", "OPEN_EXR_MULTILAYER")
    image.file_format = output.file_format if still else "OPEN_EXR"


def render_result(name: str = "Render Result") -> Any:
    image = bpy.data.images.get(name)
    if image is None or image.type != "RENDER_RESULT":
        raise RuntimeError(NO_RENDER)
    return image


NO_RENDER = "there is no render to edit yet: render a frame first (F12)"

# What `render_result_pixels` sets on the scene's output settings for its temporary file, in this order (in Blender 5.0
# the media type comes first: it decides which file formats exist), and restores afterwards in the same order.
EXR_SETTINGS = (
    ("media_type", "IMAGE"),  # Blender 5.0+: "VIDEO" (FFmpeg) or "MULTI_LAYER_IMAGE" would refuse OPEN_EXR
    ("file_format", "OPEN_EXR"),
    ("color_mode", "RGBA"),
    ("color_depth", "32"),
    ("exr_codec", "ZIP"),
)


def render_result_pixels(scene: Any) -> Picture:
    """The Render Result as scene-linear float32 RGBA, via a temporary OpenEXR file. Whatever the scene's output
    (FFmpeg, multilayer EXR, an overridden colour space) its settings are changed for that file and then restored.
    An output colour management override keeps its view settings: only its linear space is set to the working space
    for the file (switching the override off and on again would reset them to the scene's)."""
    image = render_result()
    settings = scene.render.image_settings
    wanted = [(key, value) for key, value in EXR_SETTINGS if hasattr(settings, key)]  # media_type: Blender 5.0+
    saved = [(key, getattr(settings, key)) for key, _ in wanted]
    linear = getattr(settings, "linear_colorspace_settings", None)
    if linear is not None and getattr(settings, "color_management", "") == "OVERRIDE":
        saved.append(("name", linear.name))
        wanted.append(("name", working_space()))
    handle, path = tempfile.mkstemp(prefix="reggan-render-", suffix=".exr")
    os.close(handle)
    try:
        for key, value in wanted:
            setattr(linear if key == "name" else settings, key, value)
        try:
            image.save_render(filepath=path, scene=scene)
        except RuntimeError:  # an empty render slot, a render cancelled before its first tile
            raise RuntimeError(f"{NO_RENDER}: the Render Result's active slot holds none") from None
        loaded = bpy.data.images.load(path, check_existing=False)
        try:
            picture = read_pixels(loaded)
        finally:
            bpy.data.images.remove(loaded)
    finally:
        for key, value in saved:
            setattr(linear if key == "name" else settings, key, value)
        os.unlink(path)
    if not picture.linear:
        raise RuntimeError("the Render Result came back as 8-bit; expected float OpenEXR")
    return picture
