"""The in-memory image (`ImageData`), the formats and limits, and what every reader shares."""
from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from reggan_plugin.errors import InputError

from ..arrays import Array

log = logging.getLogger("reggan_plugin.imageio")

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
BOMB_BYTES = 256 * 2**20
BOMB_RATIO = 256
"""A file that declares more than BOMB_BYTES of decoded pixels at over BOMB_RATIO times its own size is refused before
decoding, as a decompression bomb (a 390 KB PNG declaring 10000x10000 16-bit grey+alpha, 400 MB). A picture with any
content compresses far less (rendered frames 2-5x, a flat 14000x13000 grey PNG 220x), and a small one costs little."""
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1  # fast: see encode_png

_MAGIC: list[tuple[bytes, ImageFormat]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"v/1\x01", "exr"),
]
try:  # pypng reads only interlaced 16-bit PNGs (imageio.png): the rest of the runtime works without it
    import png

    PNG_ERRORS: tuple[type[BaseException], ...] = (png.Error,)
except ImportError:
    PNG_ERRORS = ()

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
    *PNG_ERRORS,
    IndexError,
    KeyError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)




class FrameColour(Protocol):
    """A frame's own colour space and the way to the network's: scene-linear Rec.709 (sRGB primaries, D65) and
    back (``reggan_plugin.imageio.ocio`` builds these from OpenColorIO). Arrays are (..., 3) float32: the stored
    values as they are encoded (8/16-bit ones scaled to [0, 1]); the result is a new array."""

    name: str

    def to_linear(self, rgb: Array) -> Array: ...

    def from_linear(self, rgb: Array) -> Array: ...


@dataclass(frozen=True)
class ImageData:
    """One image as stored.

    pixels: HxWxC uint8, uint16 or float32; C in 1..4, alpha last when C is 2 or 4.
    path: the file it was read from (None if made in memory); ``write_image`` refuses to write there.
    format: 'png', 'jpeg', 'tiff' or 'exr'.
    linear: True for scene-linear float data (EXR, float TIFF); False for sRGB-encoded data.
    info: what to carry to the written file (ICC profile, dpi, EXIF, EXR header and extra channels,
        pixel type of half EXR, conversions applied on reading under 'converted').
    colour: the frame's colour space when it is not the default (None: 8/16-bit values sRGB-encoded, float values
        scene-linear, both with sRGB's Rec.709 primaries); set by the caller (``ocio.FrameColours.attach``), never
        by a reader.
    """

    pixels: Array
    path: Path | None = None
    format: str = "png"
    linear: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    colour: FrameColour | None = None

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


def _check_declared(path: Path, width: int, height: int, pixel_bytes: int) -> None:
    """`_check_size`, then the decompression-bomb limit (BOMB_BYTES, BOMB_RATIO) on what the header declares:
    ``pixel_bytes`` per pixel as the picture will be held decoded."""
    _check_size(path, width, height)
    decoded = width * height * pixel_bytes
    stored = max(path.stat().st_size, 1)
    if decoded > BOMB_BYTES and decoded > BOMB_RATIO * stored:
        raise InputError(
            path, f"declares {width}x{height} pixels, {decoded / 1e6:.0f} MB decoded, from a {stored / 1e3:.0f} KB file "
                  f"({decoded // stored}:1): refused as a decompression bomb (limit: {BOMB_BYTES // 2**20} MiB "
                  f"decoded at over {BOMB_RATIO}:1)")


def _converted(info: dict[str, Any], what: str) -> None:
    """Record a conversion made on reading; `read_image` reports it."""
    info.setdefault("converted", []).append(what)

