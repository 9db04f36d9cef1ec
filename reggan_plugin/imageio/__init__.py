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

from reggan_plugin.imageio.colour import (
    compose_output,
    detector_rgb,
    non_finite_pixels,
    srgb_decode,
    srgb_encode,
    to_network_rgb,
    write_edit,
)
from reggan_plugin.imageio.frames import describe_unread, list_frames, looks_whole, unread_images
from reggan_plugin.imageio.image import (
    JPEG_QUALITY,
    MAX_PIXELS,
    MAX_SIDE,
    MIN_SIDE,
    SUPPORTED_SUFFIXES,
    ImageData,
    ImageFormat,
)
from reggan_plugin.imageio.png import encode_png
from reggan_plugin.imageio.read import ORIENTATION_TAG, read_image
from reggan_plugin.imageio.write import check_writable, output_format, write_image

__all__ = [
    "JPEG_QUALITY", "MAX_PIXELS", "MAX_SIDE", "MIN_SIDE", "ORIENTATION_TAG", "SUPPORTED_SUFFIXES",
    "ImageData", "ImageFormat", "check_writable", "compose_output", "describe_unread", "detector_rgb", "encode_png",
    "list_frames", "looks_whole", "non_finite_pixels", "output_format", "read_image", "srgb_decode", "srgb_encode",
    "to_network_rgb", "unread_images", "write_edit", "write_image",
]
