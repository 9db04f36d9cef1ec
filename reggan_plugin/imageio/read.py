"""Reading PNG, JPEG, TIFF and OpenEXR files into `ImageData`; every failure is an InputError naming the file."""
from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, ImageOps

from reggan_plugin.errors import InputError
from reggan_plugin.imageio.image import (
    _DECODE_ERRORS,
    MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    ImageData,
    _check_declared,
    _check_size,
    _converted,
    _format_for_suffix,
    _one_line,
    _sniff,
    log,
)
from reggan_plugin.imageio.png import _read_png16

from ..arrays import Array

# Pillow's own decompression-bomb guard (about 89 MP) sits below our limit; ours (_check_size, from the
# header, before decoding) is the one that applies.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_PIXELS)


def read_image(path: str | os.PathLike[str], *, report: bool = True) -> ImageData:
    """Read an image file; raises ``InputError`` (naming the file and the reason) on any bad input.

    Conversions made on reading (a palette expanded, EXIF orientation applied...) are listed in
    ``info["converted"]`` and, when ``report``, logged as warnings: off for a second read of the same file."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "broken link (its target does not exist)" if p.is_symlink() else "file not found")
    if not p.is_file():
        raise InputError(p, "not a regular file")
    suffix_fmt = _format_for_suffix(p)
    if suffix_fmt is None:
        raise InputError(p, f"unsupported file type '{p.suffix}' (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(64)
    except OSError as err:
        raise InputError(p, f"cannot read: {_one_line(err)}") from err
    if size == 0:
        raise InputError(p, "empty file (0 bytes)")
    content_fmt = _sniff(head)
    if content_fmt is None:
        raise InputError(p, f"corrupt: not a {suffix_fmt.upper()} file (unrecognised content)")
    if content_fmt != suffix_fmt:
        raise InputError(
            p, f"wrong extension: the content is {content_fmt.upper()} but the name ends in '{p.suffix}'"
        )
    reader: Callable[[Path, bytes], ImageData] = {
        "png": _read_png,
        "jpeg": _read_pillow,
        "tiff": _read_tiff,
        "exr": _read_exr,
    }[content_fmt]
    try:
        image = reader(p, head)
    except InputError:
        raise
    except MemoryError as err:
        raise InputError(p, "not enough memory to decode the image") from err
    except _DECODE_ERRORS as err:
        raise InputError(p, f"corrupt or truncated {content_fmt.upper()}: {_one_line(err)}") from err
    _check_size(p, image.width, image.height)
    if report:
        for what in image.info.get("converted", ()):
            log.warning("%s: %s", p, what)
    return image


def _read_png(path: Path, head: bytes) -> ImageData:
    if len(head) < 29 or head[12:16] != b"IHDR":
        raise InputError(path, "corrupt PNG: no IHDR header")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", head[16:26])
    planes = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}.get(colour_type, 4)  # a palette as RGBA, its widest
    _check_declared(path, width, height, planes * (2 if bit_depth == 16 else 1))
    if bit_depth == 16:
        return _read_png16(path)
    return _read_pillow(path, head)




ORIENTATION_TAG = 0x0112  # EXIF Orientation: 1 = stored upright
_PILLOW_KEEP = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def _read_pillow(path: Path, head: bytes) -> ImageData:
    """8-bit PNG, JPEG, and TIFFs tifffile cannot decode."""
    with Image.open(path) as opened:
        _check_declared(path, *opened.size, max(len(opened.getbands()), 3 if opened.mode in ("P", "PA") else 1)
                        * (2 if opened.mode.startswith("I;16") else 4 if opened.mode in ("I", "F") else 1))
        im: Image.Image = opened
        fmt: str = {"PNG": "png", "JPEG": "jpeg", "TIFF": "tiff"}.get(opened.format or "", _sniff(head) or "png")
        info: dict[str, Any] = {}
        for key in ("icc_profile", "dpi", "exif"):
            if im.info.get(key):
                info[key] = im.info[key]
        im.load()
        orientation = im.getexif().get(ORIENTATION_TAG, 1)
        if orientation != 1:
            im = ImageOps.exif_transpose(im)  # also drops the tag from im.info["exif"]
            info["exif"] = im.info.get("exif") or info.get("exif")
            _converted(info, f"EXIF orientation {orientation} applied (pixels turned upright)")
        mode = im.mode
        if mode in ("P", "PA"):
            has_t = mode == "PA" or "transparency" in im.info
            im = im.convert("RGBA" if has_t else "RGB")
            _converted(info, f"palette image converted to {im.mode}")
        elif mode == "1":
            im = im.convert("L")
            _converted(info, "1-bit image converted to 8-bit grey")
        elif mode == "CMYK":
            im = im.convert("RGB")
            info.pop("icc_profile", None)  # a CMYK profile no longer describes the pixels
            _converted(info, "CMYK image converted to RGB (no colour management)")
        elif mode in ("RGB", "L") and "transparency" in im.info:
            im = im.convert("RGBA" if mode == "RGB" else "LA")
            _converted(info, f"transparent-colour key converted to an alpha channel ({im.mode})")
        arr: Array
        if im.mode in ("I;16", "I;16L", "I;16B"):
            arr = np.asarray(im).astype(np.uint16)[..., None]
        elif im.mode == "F":
            arr = np.asarray(im, dtype=np.float32)[..., None]
        elif im.mode in _PILLOW_KEEP:
            arr = np.asarray(im, dtype=np.uint8)
            if arr.ndim == 2:
                arr = arr[..., None]
        else:
            raise InputError(path, f"unsupported image mode {im.mode}")
    return ImageData(np.ascontiguousarray(arr), path, fmt, fmt == "tiff" and arr.dtype == np.float32, info)


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _read_tiff(path: Path, head: bytes) -> ImageData:
    with tifffile.TiffFile(path) as tf:
        if not tf.pages:
            raise InputError(path, "corrupt TIFF: no image in the file")
        page = tf.pages.first
        shape = page.shape
        axes = page.axes
        if axes not in ("YX", "YXS", "SYX"):
            raise InputError(path, f"unsupported TIFF layout (axes {axes})")
        h, w = (shape[1], shape[2]) if axes == "SYX" else (shape[0], shape[1])
        _check_declared(path, w, h, int(page.samplesperpixel) * max(np.dtype(page.dtype or np.uint8).itemsize, 1))
        photometric = int(page.photometric)
        bits = int(page.bitspersample)
        # 0 min-is-white, 3 palette, 5 CMYK, 6 YCbCr: let Pillow convert (8-bit only).
        if photometric not in (1, 2):
            if bits != 8:
                raise InputError(path, f"unsupported {bits}-bit TIFF with photometric {_name(page.photometric)}")
            return _read_pillow(path, head)
        try:
            arr = page.asarray()
        except ValueError as err:
            if "imagecodecs" not in str(err):
                raise
            if bits == 8:
                return _read_pillow(path, head)
            raise InputError(
                path,
                f"{bits}-bit TIFF with {_name(page.compression)} compression cannot be decoded here; "
                "re-save it with Deflate (zip) or no compression",
            ) from err
        info: dict[str, Any] = {"tiff_compression": int(page.compression)}
        if len(tf.pages) > 1:
            _converted(info, f"read the first of {len(tf.pages)} TIFF pages")
        icc = page.tags.get(34675)
        if icc is not None:
            info["icc_profile"] = bytes(icc.value)
        res = page.get_resolution() if hasattr(page, "get_resolution") else None
        if res and page.tags.get(296) is not None and int(page.tags[296].value) == 2:
            info["dpi"] = (float(res[0]), float(res[1]))
    if axes == "SYX":
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or not 1 <= arr.shape[2] <= 4:
        raise InputError(path, f"unsupported TIFF with {arr.shape[-1] if arr.ndim == 3 else '?'} channels")
    if arr.dtype == np.float16:
        info["tiff_dtype"] = "float16"
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        raise InputError(path, f"unsupported TIFF sample type {arr.dtype} (8/16-bit integer or float only)")
    return ImageData(np.ascontiguousarray(arr), path, "tiff", arr.dtype == np.float32, info)


_EXR_GROUPS = ("RGBA", "RGB")


# scan lines per chunk of a scanline EXR, by compression (OpenEXR's table): NONE, RLE, ZIPS, ZIP, PIZ, PXR24, B44,
# B44A, DWAA, DWAB (others are not checked)
_EXR_LINES_PER_CHUNK = (1, 1, 1, 16, 32, 16, 32, 32, 32, 256)


def _exr_cut_short(path: Path) -> str | None:
    """Why a single-part scanline EXR cannot hold all its image data (cut short, an offset past its end), read from
    its header and offset table alone; None when it can, or for a layout this does not check (tiled, deep,
    multi-part). Asked before OpenEXR decodes, which prints its own errors to stderr for such a file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        data = fh.read(min(size, 1 << 20))
        (version,) = struct.unpack("<i", data[4:8])
        if version & 0x1A00:  # tiled, deep or multi-part
            return None
        pos, window, compression = 8, None, None
        while True:
            end = data.index(b"\0", pos)
            name = data[pos:end]
            if not name:
                pos = end + 1
                break
            type_end = data.index(b"\0", end + 1)
            (length,) = struct.unpack("<i", data[type_end + 1 : type_end + 5])
            value = data[type_end + 5 : type_end + 5 + length]
            if name == b"dataWindow" and length == 16:
                window = struct.unpack("<iiii", value)
            elif name == b"compression" and length == 1:
                compression = value[0]
            pos = type_end + 5 + length
        if window is None or compression is None or compression >= len(_EXR_LINES_PER_CHUNK):
            return None
        chunks = -(-(window[3] - window[1] + 1) // _EXR_LINES_PER_CHUNK[compression])
        table_end = pos + 8 * chunks
        if table_end > size:
            return f"cut short: {size} bytes, its offset table runs to byte {table_end}"
        fh.seek(pos)
        offsets = struct.unpack(f"<{chunks}Q", fh.read(8 * chunks))
        last = max(offsets)
        if min(offsets) < table_end:
            return "its offset table is incomplete (the file was not finished)"
        if last + 8 > size:
            return f"cut short: {size} bytes, its image data runs past byte {last + 8}"
        fh.seek(last)
        (_, packed) = struct.unpack("<ii", fh.read(8))
        if last + 8 + packed > size:
            return f"cut short: {size} bytes, its image data runs to byte {last + 8 + packed}"
    return None


def _read_exr(path: Path, head: bytes) -> ImageData:
    import OpenEXR  # imported here: a compiled module only EXR needs

    try:
        problem = _exr_cut_short(path)
    except (ValueError, struct.error):  # a header this cannot walk: OpenEXR's own reading says what is wrong
        problem = None
    if problem:
        raise InputError(path, f"corrupt or truncated EXR: {problem}")
    hdr = OpenEXR.File(str(path), header_only=True).header()
    (x0, y0), (x1, y1) = hdr["dataWindow"]
    _check_declared(path, int(x1 - x0 + 1), int(y1 - y0 + 1), 4 * max(len(hdr.get("channels") or ()), 1))
    f = OpenEXR.File(str(path))
    chans = f.channels()
    if not chans:
        raise InputError(path, "corrupt EXR: no readable channels")
    key = next((k for k in _EXR_GROUPS if k in chans), None)
    if key is None:  # a layered file: the first group with 3 or 4 channels (Blender's "ViewLayer.Combined")
        key = next((k for k, c in chans.items() if c.pixels.ndim == 3 and c.pixels.shape[2] in (3, 4)), None)
    grey = key is None
    if grey:
        if "Y" not in chans:
            raise InputError(path, f"unsupported EXR: no RGB, RGBA or Y channels (found {', '.join(chans)})")
        key = "Y"
    arr = chans[key].pixels
    arr = arr[..., None] if arr.ndim == 2 else arr
    keys = [key]
    if grey and "A" in chans and chans["A"].pixels.ndim == 2:
        arr = np.concatenate([arr, chans["A"].pixels[..., None].astype(arr.dtype)], axis=2)
        keys.append("A")
    if arr.dtype not in (np.float32, np.float16):
        raise InputError(path, f"unsupported EXR pixel type {arr.dtype} (half or float only)")
    info: dict[str, Any] = {
        "exr_header": hdr,
        "exr_keys": keys,
        "exr_half": arr.dtype == np.float16,
        "exr_other": {k: c.pixels for k, c in chans.items() if k not in keys},
    }
    return ImageData(np.ascontiguousarray(arr, dtype=np.float32), path, "exr", True, info)


