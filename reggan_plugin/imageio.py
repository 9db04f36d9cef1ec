"""Image files in and out: PNG, JPEG, TIFF, OpenEXR, with bit depth, alpha and colour space kept.

Array conventions: a ``Frame`` is HxWxC as stored (uint8, uint16 or float32), C in 1..4,
alpha last when C is 2 or 4. The network sees float32 sRGB-encoded RGB in [0, 1] (``to_network_rgb``);
``compose_output`` writes an edited picture back into a copy of the stored array, touching only the
pixels whose mask is > 0.

Libraries, and why:
- Pillow: reading 8-bit PNG; JPEG; 8-bit TIFF with codecs tifffile lacks (LZW, JPEG). Pillow cannot hold
  16-bit colour (it would drop to 8 bits), so it never reads or writes a 16-bit colour file here.
- Writing PNG (8 and 16 bits): our own numpy encoder (``encode_png``: one vectorised Up filter, then ISA-L's
  deflate from the ``isal`` wheel, zlib where it is missing); 13x faster than Pillow's (benchmarks/png_encode.py).
- 16-bit PNG: our own small numpy codec (zlib + the PNG filters; ``_png_unfilter``/``encode_png``),
  with pypng (pure Python) only for interlaced 16-bit files. Candidates measured for a 1920x1080
  16-bit RGBA frame on this machine: pypng writes in 1.0-1.3 s and reads its own unfiltered files in
  0.25-0.5 s but a libpng file with adaptive (Paeth) filters, e.g. from Blender, in 2.7 s; the numpy
  codec reads that file in 0.6 s. imagecodecs (C, fast) was rejected: its current wheels need
  numpy>=2 (we are pinned <2 by bpy) and weigh ~80 MB installed; OpenCV is heavier still. Both
  pure-Python/numpy routes bundle into the Blender extension on every platform unchanged.
- tifffile: 8/16-bit and float TIFF (uncompressed, Deflate; written with Deflate). Without
  imagecodecs it cannot decode LZW/JPEG TIFFs: 8-bit ones fall back to Pillow; a 16-bit or float one is
  an InputError that says to re-save with Deflate or no compression.
- OpenEXR 3.5 (the numpy API): float32 and half RGB/RGBA/grey, scene-linear. Other channels
  (depth, extra layers) and the header are carried through and written back unchanged.

Decisions for odd input (each logs a warning through ``logging`` and is recorded in ``info``):
- palette PNG/TIFF -> RGB, or RGBA when it has transparency; 1-bit -> 8-bit grey; RGB/grey with a
  tRNS transparent colour -> RGBA/grey+alpha; CMYK JPEG/TIFF -> RGB (Pillow's plain conversion, no
  colour management). The output is then written in the converted layout.
- A suffix that does not match the content (a PNG named .jpg) is an InputError, not a silent read:
  the output would be written in the suffix's format and surprise the user.
- EXIF orientation (phone photos) is applied on read: the pixels are turned upright, so faces are found
  and faces.json coordinates mean what a viewer shows; the EXIF block is written back with orientation 1.
- Float TIFF is taken as scene-linear, like EXR.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import png
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from reggan_plugin.errors import InputError

try:  # ISA-L's deflate: same zlib stream, 3.5x faster than zlib at level 1 on a 1080p frame (benchmarks/png_encode.py)
    from isal.isal_zlib import compress as DEFLATE
except ImportError:  # a platform without an isal wheel: the standard library, slower
    DEFLATE = zlib.compress

log = logging.getLogger(__name__)

ImageFormat = Literal["png", "jpeg", "tiff", "exr"]

SUPPORTED_SUFFIXES: dict[str, ImageFormat] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".exr": "exr",
}
MIN_SIDE = 16
"""Smaller images (either side) are refused: no face fits."""
MAX_SIDE = 16384
MAX_PIXELS = 16384 * 12288
"""Larger images are refused before decoding (decompression bombs, accidental huge files)."""
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1  # fast: see encode_png
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""Rec. 709 weights: how an RGB change is written into a grey image."""

_MAGIC: list[tuple[bytes, ImageFormat]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"v/1\x01", "exr"),
]
# What decoders raise on a broken file. OpenEXR raises RuntimeError/ValueError, pypng png.Error,
# Pillow OSError/SyntaxError/UnidentifiedImageError, tifffile ValueError/struct.error/IndexError;
# parsers fed corrupt headers also stumble into TypeError/AttributeError/OverflowError.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    OverflowError,
    NotImplementedError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    RuntimeError,
    struct.error,
    zlib.error,
    png.Error,
    IndexError,
    KeyError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


@dataclass(frozen=True)
class ImageData:
    """One image as stored.

    pixels: HxWxC uint8, uint16 or float32; C in 1..4, alpha last when C is 2 or 4.
    path: the file it was read from (None if made in memory); ``write_image`` refuses to write there.
    format: 'png', 'jpeg', 'tiff' or 'exr'.
    linear: True for scene-linear float data (EXR, float TIFF); False for sRGB-encoded data.
    info: what to carry to the written file (ICC profile, dpi, EXIF, EXR header and extra channels,
        pixel type of half EXR, conversions applied on reading under 'converted').
    """

    pixels: np.ndarray
    path: Path | None = None
    format: str = "png"
    linear: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        px = self.pixels
        if px.ndim != 3 or not 1 <= px.shape[2] <= 4:
            raise ValueError(f"pixels must be HxWxC with C in 1..4, got shape {px.shape}")
        if px.dtype not in (np.uint8, np.uint16, np.float32):
            raise ValueError(f"pixels must be uint8, uint16 or float32, got {px.dtype}")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def colour_channels(self) -> int:
        return 3 if self.channels >= 3 else 1


# --------------------------------------------------------------------------------------------------
# Reading


def _format_for_suffix(path: Path) -> ImageFormat | None:
    return SUPPORTED_SUFFIXES.get(path.suffix.lower())


def _sniff(head: bytes) -> ImageFormat | None:
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _check_size(path: Path, width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(path, f"image is too small ({width}x{height}; each side must be at least {MIN_SIDE} px)")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise InputError(
            path, f"image is too large ({width}x{height}; limit {MAX_SIDE} px a side and {MAX_PIXELS} pixels)"
        )


def _converted(info: dict[str, Any], path: Path, what: str) -> None:
    log.warning("%s: %s", path, what)
    info.setdefault("converted", []).append(what)


def read_image(path: str | os.PathLike[str]) -> ImageData:
    """Read an image file; raises ``InputError`` (naming the file and the reason) on any bad input."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
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
    return image


def _read_png(path: Path, head: bytes) -> ImageData:
    if len(head) < 29 or head[12:16] != b"IHDR":
        raise InputError(path, "corrupt PNG: no IHDR header")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", head[16:26])
    _check_size(path, width, height)
    if bit_depth == 16:
        return _read_png16(path)
    return _read_pillow(path, head)


def _read_png16(path: Path) -> ImageData:
    """16-bit PNG: our numpy decoder; pypng for interlaced files (rare, slow in pure Python)."""
    data = path.read_bytes()
    width, height, _, colour_type, interlace = struct.unpack(">IIBBxxB", data[16:29])
    if interlace:
        return _read_png16_pypng(path)
    planes = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type)
    if planes is None:
        raise InputError(path, f"unsupported 16-bit PNG colour type {colour_type}")
    info: dict[str, Any] = {}
    idat = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            raise ValueError(f"truncated {tag.decode('latin-1')} chunk")
        if tag == b"IDAT":
            idat.append(body)
        elif tag == b"iCCP":
            name_end = body.index(b"\0")
            info["icc_profile"] = zlib.decompress(body[name_end + 2 :])
        elif tag == b"pHYs" and length == 9 and body[8] == 1:  # pixels per metre
            ppm_x, ppm_y = struct.unpack(">II", body[:8])
            info["dpi"] = (ppm_x * 0.0254, ppm_y * 0.0254)
        elif tag == b"tRNS":
            _converted(info, path, "ignored a 16-bit tRNS transparent colour (kept the pixels as stored)")
        elif tag == b"IEND":
            break
        pos += 12 + length
    inflater = zlib.decompressobj()
    raw = inflater.decompress(b"".join(idat))
    if not inflater.eof:
        raise ValueError("image data is truncated")
    rows = _png_unfilter(raw, height, width, 2 * planes)
    arr = rows.view(">u2").astype(np.uint16).reshape(height, width, planes)
    return ImageData(arr, path, "png", False, info)


def _read_png16_pypng(path: Path) -> ImageData:
    width, height, rows, meta = png.Reader(filename=str(path)).read()
    planes = int(meta["planes"])
    arr = np.empty((height, width * planes), np.uint16)
    for i, row in enumerate(rows):
        arr[i] = row
    return ImageData(arr.reshape(height, width, planes), path, "png", False, {})


def _png_unfilter(raw: bytes, h: int, w: int, bpp: int) -> np.ndarray:
    """Undo PNG scanline filters (None/Sub/Up/Average/Paeth); returns h x (w*bpp) uint8.

    Files with only None/Sub/Up rows are undone row by row, vectorised along the row. Average and
    Paeth depend on the reconstructed left, upper and upper-left bytes, so those files are undone
    along anti-diagonals x + y = d, all pixels of one diagonal at once (W + H numpy steps). For a
    1920x1080 RGBA16 libpng file this takes ~0.6 s against pypng's 2.7 s.
    """
    stride = w * bpp
    buf = np.frombuffer(raw, np.uint8)
    if buf.size < h * (stride + 1):
        raise ValueError("image data is truncated")
    rows = buf[: h * (stride + 1)].reshape(h, stride + 1)
    ftype = rows[:, 0]
    filt = rows[:, 1:]
    if (ftype > 4).any():
        raise ValueError(f"invalid PNG filter type {int(ftype.max())}")
    if not (ftype >= 3).any():
        out = np.empty((h, stride), np.uint8)
        prev = np.zeros(stride, np.uint8)
        for y in range(h):
            if ftype[y] == 0:
                out[y] = filt[y]
            elif ftype[y] == 1:
                out[y] = filt[y].reshape(w, bpp).cumsum(axis=0, dtype=np.uint8).reshape(-1)
            else:
                np.add(filt[y], prev, out=out[y])
            prev = out[y]
        return out
    rec = np.zeros((h + 1, w + 1, bpp), np.int16)  # one row and column of zero padding
    f3 = filt.reshape(h, w, bpp).astype(np.int16)
    types = ftype.astype(np.intp)
    for d in range(h + w - 1):
        ys = np.arange(max(0, d - w + 1), min(h, d + 1))
        xs = d - ys
        a = rec[ys + 1, xs]  # left
        b = rec[ys, xs + 1]  # up
        c = rec[ys, xs]  # up-left
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        preds = np.stack([np.zeros_like(a), a, b, (a + b) >> 1, paeth])
        rec[ys + 1, xs + 1] = (f3[ys, xs] + preds[types[ys], np.arange(len(ys))]) & 255
    return rec[1:, 1:].astype(np.uint8).reshape(h, stride)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def encode_png(px: np.ndarray, info: dict[str, Any] | None = None, level: int = PNG_COMPRESS_LEVEL,
               deflate: Callable[[bytes, int], bytes] = DEFLATE) -> bytes:
    """8- or 16-bit PNG bytes with the Up filter on every row, deflated at ``level`` (0-3: ISA-L's range).

    Why not Pillow for 8 bits: its encoder picks filters per row and deflates harder; on a 1920x1080 RGBA
    frame this writer took 19 ms (67 ms with zlib) against Pillow's 244 ms at compress_level 3, for a file 3%
    larger (`python benchmarks/png_encode.py`), and in a render farm the encoder, not the network, is what
    bounds frames per second."""
    info = info or {}
    h, w, c = px.shape
    depth = 16 if px.dtype == np.uint16 else 8
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = (px.astype(">u2") if depth == 16 else np.ascontiguousarray(px)).reshape(h, w * c).view(np.uint8)
    filt = np.empty((h, rows.shape[1] + 1), np.uint8)
    filt[:, 0] = 2
    filt[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filt[1:, 1:])  # uint8 arithmetic wraps mod 256
    parts = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0))]
    if info.get("icc_profile"):
        parts.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(bytes(info["icc_profile"]))))
    if info.get("dpi"):
        ppm = [int(round(float(v) / 0.0254)) for v in info["dpi"]]
        parts.append(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    parts.append(_png_chunk(b"IDAT", deflate(filt.tobytes(), level)))
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


ORIENTATION_TAG = 0x0112  # EXIF Orientation: 1 = stored upright
_PILLOW_KEEP = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def _read_pillow(path: Path, head: bytes) -> ImageData:
    """8-bit PNG, JPEG, and TIFFs tifffile cannot decode."""
    with Image.open(path) as opened:
        _check_size(path, *opened.size)
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
            _converted(info, path, f"EXIF orientation {orientation} applied (pixels turned upright)")
        mode = im.mode
        if mode in ("P", "PA"):
            has_t = mode == "PA" or "transparency" in im.info
            im = im.convert("RGBA" if has_t else "RGB")
            _converted(info, path, f"palette image converted to {im.mode}")
        elif mode == "1":
            im = im.convert("L")
            _converted(info, path, "1-bit image converted to 8-bit grey")
        elif mode == "CMYK":
            im = im.convert("RGB")
            info.pop("icc_profile", None)  # a CMYK profile no longer describes the pixels
            _converted(info, path, "CMYK image converted to RGB (no colour management)")
        elif mode in ("RGB", "L") and "transparency" in im.info:
            im = im.convert("RGBA" if mode == "RGB" else "LA")
            _converted(info, path, f"transparent-colour key converted to an alpha channel ({im.mode})")
        arr: np.ndarray
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
        _check_size(path, w, h)
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
            _converted(info, path, f"read the first of {len(tf.pages)} TIFF pages")
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


def _read_exr(path: Path, head: bytes) -> ImageData:
    import OpenEXR  # imported here: a compiled module only EXR needs

    hdr = OpenEXR.File(str(path), header_only=True).header()
    (x0, y0), (x1, y1) = hdr["dataWindow"]
    _check_size(path, int(x1 - x0 + 1), int(y1 - y0 + 1))
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


# --------------------------------------------------------------------------------------------------
# Writing


def write_image(path: str | os.PathLike[str], image: ImageData) -> None:
    """Write ``image`` in the format of ``path``'s suffix, atomically.

    Bit depth, channels and alpha are kept; a format that cannot hold them (alpha or 16 bits in a
    JPEG, float in a PNG) is an InputError rather than a silent conversion. The file is written to a
    hidden temporary file in the same directory and renamed over the target, so an interrupted run
    never leaves a half-written image (the temporary is removed on failure). Refuses to overwrite
    the image's own source file.
    """
    target = Path(path)
    fmt = _format_for_suffix(target)
    if fmt is None:
        raise InputError(target, f"unsupported output type '{target.suffix}' (use {', '.join(SUPPORTED_SUFFIXES)})")
    if image.path is not None and _same_file(target, image.path):
        raise InputError(target, "refusing to overwrite the input image")
    if not target.parent.is_dir():
        raise InputError(target, f"output directory {target.parent} does not exist")
    _check_writable(target, fmt, image)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}"
    writer = {"png": _write_png, "jpeg": _write_jpeg, "tiff": _write_tiff, "exr": _write_exr}[fmt]
    try:
        # Create it ourselves so that the umask applies (mkstemp would make it 0600).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        writer(tmp, image)
        os.replace(tmp, target)
    except BaseException as err:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(err, (OSError, ValueError, RuntimeError, png.Error)):
            raise InputError(target, f"cannot write: {_one_line(err)}") from err
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


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
    channels: dict[str, np.ndarray] = {}
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


# --------------------------------------------------------------------------------------------------
# Directories


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_frames(directory: str | os.PathLike[str]) -> list[Path]:
    """Image files of a directory (supported suffixes, no hidden files), in natural order (2 before 10)."""
    d = Path(directory)
    if not d.exists():
        raise InputError(d, "directory not found")
    if not d.is_dir():
        raise InputError(d, "not a directory")
    frames = [
        p
        for p in d.iterdir()
        if p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    if not frames:
        raise InputError(d, f"no images found (looked for {', '.join(SUPPORTED_SUFFIXES)})")
    return sorted(frames, key=_natural_key)


# --------------------------------------------------------------------------------------------------
# Colour: stored pixels <-> network RGB


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> sRGB-encoded (IEC 61966-2-1 piecewise curve), not clipped: values above 1
    follow the same power law, negatives are mirrored."""
    x = np.asarray(linear, dtype=np.float32)
    a = np.abs(x)
    enc = np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1.0 / 2.4, dtype=np.float32) - 0.055)
    return (np.sign(x) * enc).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of ``srgb_encode``."""
    e = np.asarray(encoded, dtype=np.float32)
    a = np.abs(e)
    lin = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4, dtype=np.float32))
    return (np.sign(e) * lin).astype(np.float32)


def _encoded(pixels: np.ndarray, linear: bool) -> np.ndarray:
    """Colour channels of stored pixels (N x C or HxWxC) -> float32 sRGB-encoded, unclipped."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535)
    v = np.nan_to_num(pixels.astype(np.float32, copy=False), nan=0.0, posinf=65504.0, neginf=-65504.0)
    return srgb_encode(v) if linear else v


def to_network_rgb(image: ImageData) -> np.ndarray:
    """HxWx3 float32 sRGB-encoded in [0, 1]: grey replicated, linear data encoded, alpha dropped, clipped."""
    nc = image.colour_channels
    enc = _encoded(image.pixels[..., :nc], image.linear)
    if nc == 1:
        enc = np.repeat(enc, 3, axis=2)
    return np.clip(enc, 0.0, 1.0)


def compose_output(image: ImageData, new_rgb: np.ndarray, mask: np.ndarray) -> ImageData:
    """Write an edited picture into a copy of ``image``: same dtype, channels, format and info.

    new_rgb: HxWx3 float32 sRGB [0, 1] (the edited ``to_network_rgb(image)``); mask: HxW float32,
    only pixels with mask > 0 are written. Every pixel with mask == 0 is bit-identical to the input,
    and alpha is never touched.

    The change is applied as a delta in sRGB-encoded space to the UNCLIPPED stored values: for EXR a
    highlight above 1.0 (which the network saw clipped to 1) keeps its value plus the edit instead of
    being clamped; the result is decoded back to linear. Grey images receive the Rec. 709 luminance of
    the change. 8/16-bit results are rounded to the nearest level and clipped to the range.
    """
    h, w = image.height, image.width
    new_rgb = np.asarray(new_rgb, dtype=np.float32)
    mask = np.asarray(mask)
    if new_rgb.shape != (h, w, 3):
        raise ValueError(f"new_rgb must be {h}x{w}x3, got {new_rgb.shape}")
    if mask.shape != (h, w):
        raise ValueError(f"mask must be {h}x{w}, got {mask.shape}")
    out = image.pixels.copy()
    sel = mask > 0
    if sel.any():
        nc = image.colour_channels
        orig = image.pixels[sel][:, :nc]  # N x nc as stored
        enc = _encoded(orig, image.linear)  # unclipped
        seen = np.clip(enc if nc == 3 else np.repeat(enc, 3, axis=1), 0.0, 1.0)
        delta = new_rgb[sel] - seen  # N x 3
        if nc == 1:
            delta = (delta @ LUMA)[:, None]
        changed = enc + delta
        dt = image.pixels.dtype
        if dt == np.float32:
            changed = np.maximum(changed, np.minimum(enc, 0.0))  # an edit never makes a pixel negative
            vals = srgb_decode(changed) if image.linear else changed
            unchanged = delta == 0  # keep exact bits where the edit did nothing
            vals = np.where(unchanged, orig, vals).astype(np.float32)
        else:
            top = 255 if dt == np.uint8 else 65535
            vals = np.clip(np.rint(changed * top), 0, top).astype(dt)
        block = out[sel]
        block[:, :nc] = vals
        out[sel] = block
    return dataclasses.replace(image, pixels=out)
