"""Writing `ImageData` in the format of the file name, atomically, with bit depth, alpha and metadata kept."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from reggan_plugin.atomic import atomic_path
from reggan_plugin.errors import InputError
from reggan_plugin.imageio.image import (
    JPEG_QUALITY,
    PNG_ERRORS,
    SUPPORTED_SUFFIXES,
    ImageData,
    ImageFormat,
    _format_for_suffix,
    _one_line,
)
from reggan_plugin.imageio.png import encode_png
from reggan_plugin.sequence.shards import same_file

from ..arrays import Array

WRITE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, *PNG_ERRORS)


def write_image(path: str | os.PathLike[str], image: ImageData) -> None:
    """Write ``image`` in the format of ``path``'s suffix, atomically.

    Bit depth, channels and alpha are kept; a format that cannot hold them (alpha or 16 bits in a
    JPEG, float in a PNG) is an InputError rather than a silent conversion. The file is written to a
    hidden temporary file in the same directory and renamed over the target, so an interrupted run
    never leaves a half-written image (the temporary is removed on failure). Refuses to overwrite
    the image's own source file.
    """
    target = Path(path)
    fmt = output_format(target)
    if image.path is not None and same_file(target, image.path):
        raise InputError(target, "refusing to overwrite the input image")
    if not target.parent.is_dir():
        raise InputError(target, f"output directory {target.parent} does not exist")
    _check_writable(target, fmt, image)
    writer = {"png": _write_png, "jpeg": _write_jpeg, "tiff": _write_tiff, "exr": _write_exr}[fmt]
    try:
        with atomic_path(target, mkdir=False) as tmp:
            writer(tmp, image)
    except WRITE_ERRORS as err:
        raise InputError(target, f"cannot write: {_one_line(err)}") from err


def output_format(path: str | os.PathLike[str]) -> ImageFormat:
    """The format an output file's name asks for; InputError for a suffix no writer has (ask before working)."""
    target = Path(path)
    fmt = _format_for_suffix(target)
    if fmt is None:
        raise InputError(target, f"unsupported output type '{target.suffix}' (use {', '.join(SUPPORTED_SUFFIXES)})")
    return fmt


def check_writable(path: str | os.PathLike[str], image: ImageData) -> None:
    """InputError unless ``image`` (as read, before any edit: an edit keeps dtype and channels) can be written to
    ``path`` in the format its name asks for: asked before the model loads."""
    _check_writable(Path(path), output_format(path), image)


def _check_writable(target: Path, fmt: ImageFormat, image: ImageData) -> None:
    dt, c = image.pixels.dtype, image.channels
    problem = None
    if fmt == "jpeg":
        if dt != np.uint8:
            problem = f"JPEG holds 8-bit data only, this image is {dt}"
        elif c in (2, 4):
            problem = "JPEG cannot store an alpha channel"
    elif fmt == "png" and dt == np.float32:
        problem = "PNG cannot store float data"
    elif fmt == "exr" and dt != np.float32:
        problem = f"EXR output needs float data, this image is {dt}"
    if problem:
        raise InputError(target, f"{problem}; choose another output format (.png, .tiff, .exr)")


def _write_png(tmp: Path, image: ImageData) -> None:
    data = encode_png(image.pixels, image.info)
    with open(tmp, "wb") as fh:
        fh.write(data)


def _write_jpeg(tmp: Path, image: ImageData) -> None:
    px = image.pixels
    im = Image.fromarray(px[..., 0] if px.shape[2] == 1 else px, mode="L" if px.shape[2] == 1 else "RGB")
    kwargs = {k: image.info[k] for k in ("icc_profile", "dpi", "exif") if image.info.get(k)}
    im.save(tmp, format="JPEG", quality=JPEG_QUALITY, subsampling=0, **kwargs)


def _write_tiff(tmp: Path, image: ImageData) -> None:
    px = image.pixels
    if px.dtype == np.float32 and image.info.get("tiff_dtype") == "float16":
        px = px.astype(np.float16)
    c = px.shape[2]
    kwargs: dict[str, Any] = {}
    if image.info.get("icc_profile"):
        kwargs["iccprofile"] = image.info["icc_profile"]
    if image.info.get("dpi"):
        kwargs["resolution"] = tuple(image.info["dpi"])
        kwargs["resolutionunit"] = "INCH"
    tifffile.imwrite(
        tmp,
        px if c > 1 else px[..., 0],
        photometric="rgb" if c >= 3 else "minisblack",
        extrasamples=("unassalpha",) if c in (2, 4) else None,
        compression="zlib",
        **kwargs,
    )


def _write_exr(tmp: Path, image: ImageData) -> None:
    import OpenEXR

    px = image.pixels
    if image.info.get("exr_half"):
        px = px.astype(np.float16)
    header = dict(image.info.get("exr_header") or {})
    header.pop("channels", None)
    header.setdefault("compression", OpenEXR.ZIP_COMPRESSION)
    header.setdefault("type", OpenEXR.scanlineimage)
    keys = image.info.get("exr_keys")
    c = px.shape[2]
    channels: dict[str, Array] = {}
    if keys and len(keys) == 2 and c == 2:  # grey + alpha stored as Y and A
        channels[keys[0]] = np.ascontiguousarray(px[..., 0])
        channels[keys[1]] = np.ascontiguousarray(px[..., 1])
    elif keys and len(keys) == 1 and ((c == 1 and keys[0] == "Y") or (c in (3, 4) and keys[0] != "Y")):
        channels[keys[0]] = np.ascontiguousarray(px[..., 0] if c == 1 else px)
    else:
        names = {1: ["Y"], 2: ["Y", "A"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}[c]
        for i, name in enumerate(names):
            channels[name] = np.ascontiguousarray(px[..., i])
    for k, v in (image.info.get("exr_other") or {}).items():
        channels.setdefault(k, v)
    OpenEXR.File(header, channels).write(str(tmp))


