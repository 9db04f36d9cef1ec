"""Image I/O: round trips of every format, compose_output bit identity, bad input, atomic writes."""
from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from reggan_plugin import imageio as iio
from reggan_plugin.errors import InputError

H, W = 20, 24
SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "exr": ".exr"}


def _random(dtype: type, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        arr = rng.random((H, W, c)).astype(np.float32) * 3.0  # values above 1 too
        if c in (2, 4):
            arr[..., -1] = rng.random((H, W))  # alpha in [0, 1]
        return arr
    return rng.integers(0, np.iinfo(dtype).max + 1, (H, W, c)).astype(dtype)


def _smooth_u8(c: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx * 8, yy * 10, (xx + yy) * 5, np.full_like(xx, 200)], -1)[..., :c]
    return base.astype(np.uint8)


LOSSLESS = (
    [("png", np.uint8, c) for c in (1, 2, 3, 4)]
    + [("png", np.uint16, c) for c in (1, 2, 3, 4)]
    + [("tiff", np.uint8, c) for c in (1, 2, 3, 4)]
    + [("tiff", np.uint16, c) for c in (1, 2, 3, 4)]
    + [("tiff", np.float32, c) for c in (1, 3, 4)]
    + [("exr", np.float32, c) for c in (1, 2, 3, 4)]
)


def _ids(case: tuple[str, type, int]) -> str:
    return f"{case[0]}-{np.dtype(case[1]).name}-{case[2]}ch"


@pytest.mark.parametrize("case", LOSSLESS, ids=_ids)
def test_lossless_round_trip(tmp_path: Path, case: tuple[str, type, int]) -> None:
    fmt, dtype, c = case
    arr = _random(dtype, c)
    path = tmp_path / f"frame{SUFFIX[fmt]}"
    iio.write_image(path, iio.ImageData(arr, None, fmt, dtype == np.float32, {}))
    back = iio.read_image(path)
    assert back.pixels.dtype == arr.dtype and back.pixels.shape == arr.shape
    np.testing.assert_array_equal(back.pixels, arr)
    assert back.format == fmt and back.path == path
    assert back.has_alpha == (c in (2, 4))
    assert back.linear == (dtype == np.float32)


@pytest.mark.parametrize("c", [1, 3])
def test_jpeg_round_trip(tmp_path: Path, c: int) -> None:
    arr = _smooth_u8(c)
    path = tmp_path / "f.jpeg"
    iio.write_image(path, iio.ImageData(arr, None, "jpeg"))
    back = iio.read_image(path)
    assert back.pixels.dtype == np.uint8 and back.pixels.shape == arr.shape and back.format == "jpeg"
    assert np.abs(back.pixels.astype(int) - arr).mean() < 2.0


def test_exif_orientation_is_applied_and_cleared_on_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A phone JPEG stored sideways (orientation 6: turn 90 degrees clockwise to view) is read upright."""
    stored = _smooth_u8(3)
    height, width = stored.shape[:2]
    assert height != width  # so a missed turn shows in the shape
    exif = Image.Exif()
    exif[iio.ORIENTATION_TAG] = 6
    src = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(src, quality=100, subsampling=0, exif=exif)
    with caplog.at_level(logging.WARNING):
        image = iio.read_image(src)
    assert image.pixels.shape == (width, height, 3)
    expected = np.rot90(np.asarray(Image.open(src)), k=-1)  # clockwise
    assert np.abs(image.pixels.astype(int) - expected).mean() < 1.0
    assert "EXIF orientation 6" in caplog.text and "phone.jpg" in caplog.text
    out = tmp_path / "out.jpg"
    iio.write_image(out, image)
    with Image.open(out) as written:
        assert written.getexif().get(iio.ORIENTATION_TAG, 1) == 1 and written.size == (height, width)


def test_exr_half_highlights_alpha_and_extra_layers(tmp_path: Path) -> None:
    import OpenEXR

    rgba = _random(np.float32, 4)
    rgba[0, 0, :3] = [50.0, 1.5, 0.0]
    depth = np.linspace(0, 100, H * W, dtype=np.float32).reshape(H, W)
    src = tmp_path / "in.exr"
    hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(hdr, {"RGBA": rgba.astype(np.float16), "Depth.Z": depth}).write(str(src))
    img = iio.read_image(src)
    assert img.pixels.dtype == np.float32 and img.info["exr_half"] and img.linear
    np.testing.assert_array_equal(img.pixels, rgba.astype(np.float16).astype(np.float32))
    out = tmp_path / "out.exr"
    iio.write_image(out, img)
    chans = OpenEXR.File(str(out)).channels()
    assert chans["RGBA"].pixels.dtype == np.float16  # half stays half
    np.testing.assert_array_equal(chans["RGBA"].pixels, rgba.astype(np.float16))
    np.testing.assert_array_equal(chans["Depth.Z"].pixels, depth)  # other layers carried through


def test_pillow_metadata_carried(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(_smooth_u8(3)).save(src, dpi=(300, 300), icc_profile=b"fake-icc-profile")
    img = iio.read_image(src)
    out = tmp_path / "out.png"
    iio.write_image(out, img)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == b"fake-icc-profile"
        assert round(im.info["dpi"][0]) == 300


# ---------------------------------------------------------------------------------------------
# Odd modes


def test_palette_png_becomes_rgb_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "pal.png"
    Image.fromarray(_smooth_u8(3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(src)
    with caplog.at_level(logging.WARNING, logger="reggan_plugin.imageio"):
        img = iio.read_image(src)
    assert img.pixels.shape == (H, W, 3) and img.pixels.dtype == np.uint8
    assert "palette" in caplog.text and img.info["converted"]


def test_a_quiet_read_records_its_conversions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "pal.png"
    Image.fromarray(_smooth_u8(3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(src)
    with caplog.at_level(logging.WARNING, logger="reggan_plugin.imageio"):
        img = iio.read_image(src, report=False)
    assert "palette" not in caplog.text and img.info["converted"]


def test_palette_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    src = tmp_path / "palt.png"
    im = Image.fromarray(_smooth_u8(3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    im.save(src, transparency=0)
    img = iio.read_image(src)
    assert img.pixels.shape == (H, W, 4) and (img.pixels[..., 3] == 0).any()


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(_smooth_u8(3)).convert("CMYK").save(src, quality=95)
    with caplog.at_level(logging.WARNING, logger="reggan_plugin.imageio"):
        img = iio.read_image(src)
    assert img.pixels.shape == (H, W, 3) and "CMYK" in caplog.text
    assert np.abs(img.pixels.astype(int) - _smooth_u8(3)).mean() < 6


def test_one_bit_png_becomes_grey(tmp_path: Path) -> None:
    src = tmp_path / "bw.png"
    Image.fromarray(_smooth_u8(1)[..., 0] > 100).save(src)
    img = iio.read_image(src)
    assert img.pixels.shape == (H, W, 1) and set(np.unique(img.pixels)) <= {0, 255}


def _png_bytes(ihdr: bytes, raw: bytes) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filtered_png16(arr: np.ndarray, types: list[int]) -> bytes:
    """Encode with the given filter type per row (cycled), the way libpng's adaptive filters do."""
    h, w, c = arr.shape
    bpp = 2 * c
    rows = arr.astype(">u2").reshape(h, -1).view(np.uint8).astype(np.int32)
    raw = bytearray()
    for y in range(h):
        cur = rows[y]
        up = rows[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        t = types[y % len(types)]
        pred = [np.zeros_like(cur), left, up, (left + up) // 2, _paeth(left, up, upleft)][t]
        raw += bytes([t]) + ((cur - pred) % 256).astype(np.uint8).tobytes()
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return _png_bytes(struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0), bytes(raw))


@pytest.mark.parametrize("types", [[0, 1, 2], [4], [3, 4, 1, 0, 2]], ids=["none-sub-up", "paeth", "mixed"])
@pytest.mark.parametrize("c", [1, 4])
def test_filtered_16bit_png_is_read(tmp_path: Path, types: list[int], c: int) -> None:
    # Files from other encoders (libpng: Blender, GIMP, ...) use every filter type.
    arr = _random(np.uint16, c, seed=5)
    src = tmp_path / "f16.png"
    src.write_bytes(_filtered_png16(arr, types))
    np.testing.assert_array_equal(iio.read_image(src).pixels, arr)
    # pypng, an independent decoder, agrees
    _width, _height, rows, _ = png.Reader(filename=str(src)).read()
    np.testing.assert_array_equal(np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(arr.shape), arr)


def test_our_16bit_png_is_standard(tmp_path: Path) -> None:
    arr = _random(np.uint16, 3, seed=6)
    path = tmp_path / "o.png"
    iio.write_image(path, iio.ImageData(arr, None, "png", info={"icc_profile": b"icc", "dpi": (72.0, 72.0)}))
    _width, _height, rows, meta = png.Reader(filename=str(path)).read()
    assert meta["bitdepth"] == 16 and meta["planes"] == 3
    np.testing.assert_array_equal(np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(arr.shape), arr)
    back = iio.read_image(path)
    assert back.info["icc_profile"] == b"icc" and round(back.info["dpi"][0]) == 72


def test_interlaced_16bit_png_is_read(tmp_path: Path) -> None:
    arr = _random(np.uint16, 2, seed=7)
    path = tmp_path / "adam7.png"
    with open(path, "wb") as fh:
        png.Writer(W, H, greyscale=True, alpha=True, bitdepth=16, interlace=True).write(fh, arr.reshape(H, -1))
    np.testing.assert_array_equal(iio.read_image(path).pixels, arr)


# ---------------------------------------------------------------------------------------------
# Network colour and compose_output


def test_to_network_rgb() -> None:
    grey = iio.ImageData(np.full((H, W, 2), [65535, 7], np.uint16), None, "png")
    net = iio.to_network_rgb(grey)
    assert net.shape == (H, W, 3) and net.dtype == np.float32 and (net == 1.0).all()
    lin = np.zeros((H, W, 4), np.float32)
    lin[..., 0] = 0.214041  # sRGB 0.5
    lin[..., 1] = 7.0  # a highlight: clipped to 1
    lin[..., 2] = np.nan  # garbage: 0
    lin[..., 3] = 0.25
    net = iio.to_network_rgb(iio.ImageData(lin, None, "exr", True))
    np.testing.assert_allclose(net[0, 0], [0.5, 1.0, 0.0], atol=1e-4)
    u8 = iio.ImageData(np.full((H, W, 3), 51, np.uint8), None, "png")
    np.testing.assert_allclose(iio.to_network_rgb(u8), 0.2, atol=1e-7)


def test_srgb_curve_round_trip() -> None:
    x = np.array([-2.0, -0.001, 0.0, 0.002, 0.0031308, 0.1, 0.5, 1.0, 10.0], np.float32)
    np.testing.assert_allclose(iio.srgb_decode(iio.srgb_encode(x)), x, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(iio.srgb_encode(np.float32(1.0)), 1.0, atol=1e-6)


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), np.float32)
    mask[5:15, 6:18] = 0.7
    mask[8:12, 9:15] = 1.0
    return mask


COMPOSE_CASES = (
    [("png", np.uint8, c) for c in (1, 2, 3, 4)]
    + [("png", np.uint16, c) for c in (1, 2, 3, 4)]
    + [("jpeg", np.uint8, c) for c in (1, 3)]
    + [("tiff", np.uint8, 3), ("tiff", np.uint16, 4), ("tiff", np.float32, 3)]
    + [("exr", np.float32, c) for c in (1, 2, 3, 4)]
)


@pytest.mark.parametrize("case", COMPOSE_CASES, ids=_ids)
def test_compose_output_outside_mask_bit_identical(tmp_path: Path, case: tuple[str, type, int]) -> None:
    fmt, dtype, c = case
    img = iio.ImageData(_random(dtype, c), None, fmt, dtype == np.float32, {})
    net = iio.to_network_rgb(img)
    edited = np.clip(net + 0.2 * np.array([1.0, -0.5, 0.3], np.float32), 0, 1)
    mask = _mask()
    out = iio.compose_output(img, edited, mask)
    assert out.pixels.dtype == img.pixels.dtype and out.pixels.shape == img.pixels.shape
    assert out.format == fmt and out.linear == img.linear
    outside = mask == 0
    assert out.pixels[outside].tobytes() == img.pixels[outside].tobytes()
    if c in (2, 4):
        assert out.pixels[..., -1].tobytes() == img.pixels[..., -1].tobytes()
    assert (out.pixels[mask > 0] != img.pixels[mask > 0]).any()
    assert img.pixels is not out.pixels
    # and the network sees the edit (where not clipped by the stored range)
    if dtype != np.float32 and c >= 3:
        got = iio.to_network_rgb(out)[mask > 0]
        ok = (edited[mask > 0] > 0.01) & (edited[mask > 0] < 0.99)
        assert np.abs(got - edited[mask > 0])[ok].max() <= 0.5 / 255 + 1e-6
    # the file written from it keeps the outside pixels (lossless formats)
    if fmt != "jpeg":
        path = tmp_path / f"o{SUFFIX[fmt]}"
        iio.write_image(path, out)
        back = iio.read_image(path)
        assert back.pixels[outside].tobytes() == img.pixels[outside].tobytes()


def test_compose_identity_edit_changes_nothing() -> None:
    for dtype in (np.uint8, np.uint16):
        img = iio.ImageData(_random(dtype, 4), None, "png")
        out = iio.compose_output(img, iio.to_network_rgb(img), np.ones((H, W), np.float32))
        np.testing.assert_array_equal(out.pixels, img.pixels)
    lin = _random(np.float32, 3)
    img = iio.ImageData(lin, None, "exr", True)
    out = iio.compose_output(img, iio.to_network_rgb(img), np.ones((H, W), np.float32))
    np.testing.assert_array_equal(out.pixels, lin)


def test_compose_exr_highlight_keeps_headroom() -> None:
    lin = np.full((H, W, 3), 0.18, np.float32)
    lin[10, 10] = [4.0, 4.0, 4.0]  # a highlight under the mask
    img = iio.ImageData(lin, None, "exr", True)
    net = iio.to_network_rgb(img)
    edited = net.copy()
    edited[8:13, 8:13] -= 0.05  # darken a patch (the highlight's seen value drops 1.0 -> 0.95)
    mask = np.zeros((H, W), np.float32)
    mask[8:13, 8:13] = 1
    out = iio.compose_output(img, edited, mask).pixels
    # the highlight is darkened a little in encoded space, not clamped to 1.0
    expected = iio.srgb_decode(iio.srgb_encode(np.float32(4.0)) - 0.05)
    np.testing.assert_allclose(out[10, 10], expected, rtol=1e-5)
    assert out[10, 10, 0] > 3.0
    np.testing.assert_allclose(out[9, 9], iio.srgb_decode(iio.srgb_encode(np.float32(0.18)) - 0.05), rtol=1e-5)


def test_compose_grey_gets_luminance_of_change() -> None:
    img = iio.ImageData(np.full((H, W, 1), 100, np.uint8), None, "png")
    edited = iio.to_network_rgb(img)
    edited[0, 0] += np.array([0.1, 0.0, 0.0], np.float32)
    mask = np.zeros((H, W), np.float32)
    mask[0, 0] = 1
    out = iio.compose_output(img, edited, mask).pixels
    assert out[0, 0, 0] == round(100 + 0.2126 * 0.1 * 255)


def test_compose_rejects_wrong_shapes() -> None:
    img = iio.ImageData(_random(np.uint8, 3), None, "png")
    with pytest.raises(ValueError):
        iio.compose_output(img, np.zeros((H, W, 4), np.float32), np.zeros((H, W), np.float32))
    with pytest.raises(ValueError):
        iio.compose_output(img, np.zeros((H, W, 3), np.float32), np.zeros((H + 1, W), np.float32))


# ---------------------------------------------------------------------------------------------
# Bad input


def _good_png(path: Path, size: tuple[int, int] = (W, H)) -> Path:
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)
    return path


def _expect_input_error(path: Path, *words: str) -> InputError:
    with pytest.raises(InputError) as info:
        iio.read_image(path)
    msg = str(info.value)
    assert path.name in msg and "\n" not in msg
    for word in words:
        assert word in msg.lower(), msg
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    _expect_input_error(tmp_path / "nope.png", "not found")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    _expect_input_error(tmp_path / "d.png", "not a regular file")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".exr"])
def test_zero_byte(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    _expect_input_error(path, "empty")


def _encoded_file(tmp_path: Path, fmt: str) -> Path:
    if fmt == "png16":
        path = tmp_path / "full16.png"
        iio.write_image(path, iio.ImageData(_random(np.uint16, 4), None, "png"))
        return path
    path = tmp_path / f"full{SUFFIX[fmt]}"
    if fmt == "exr":
        iio.write_image(path, iio.ImageData(_random(np.float32, 3), None, "exr", True))
    elif fmt == "tiff":
        iio.write_image(path, iio.ImageData(_random(np.uint16, 3), None, "tiff"))
    else:
        iio.write_image(path, iio.ImageData(_random(np.uint8, 3), None, fmt))
    return path


@pytest.mark.parametrize("fmt", ["png", "png16", "jpeg", "tiff", "exr"])
def test_truncated(tmp_path: Path, fmt: str) -> None:
    full = _encoded_file(tmp_path, fmt)
    cut = full.with_name("cut" + full.suffix)
    cut.write_bytes(full.read_bytes()[: max(40, full.stat().st_size // 2)])
    _expect_input_error(cut, "corrupt")


@pytest.mark.parametrize("fmt", ["png", "png16", "jpeg", "tiff", "exr"])
def test_corrupt_body(tmp_path: Path, fmt: str) -> None:
    full = _encoded_file(tmp_path, fmt)
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(3)
    start = 8 if fmt == "exr" else 34
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    bad = full.with_name("bad" + full.suffix)
    bad.write_bytes(bytes(data))
    _expect_input_error(bad, "corrupt")


def test_garbage_content(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(b"this is not an image at all" * 10)
    _expect_input_error(path, "corrupt", "png")


def test_wrong_extension(tmp_path: Path) -> None:
    png_file = _good_png(tmp_path / "a.png")
    wrong = tmp_path / "a.jpg"
    wrong.write_bytes(png_file.read_bytes())
    _expect_input_error(wrong, "wrong extension", "png", ".jpg")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "a.bmp"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    _expect_input_error(path, "unsupported", ".bmp")


@pytest.mark.parametrize("size", [(1, 1), (15, 40), (40, 15)])
def test_too_small(tmp_path: Path, size: tuple[int, int]) -> None:
    _expect_input_error(_good_png(tmp_path / "small.png", size), "too small")


def test_too_small_exr(tmp_path: Path) -> None:
    path = tmp_path / "px.exr"
    iio.write_image(path, iio.ImageData(np.ones((1, 1, 3), np.float32), None, "exr", True))
    _expect_input_error(path, "too small")


@pytest.mark.parametrize("depth", [8, 16])
def test_huge_png_refused_before_decoding(tmp_path: Path, depth: int) -> None:
    # A header claiming 40000 x 40000 with almost no data: refused from the header alone.
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, depth, 2, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(ihdr, b"\0" * 1000))
    _expect_input_error(path, "too large")


def test_huge_tiff_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, np.zeros((16, iio.MAX_SIDE + 1), np.uint8))
    _expect_input_error(path, "too large")


def test_unsupported_sample_type(tmp_path: Path) -> None:
    path = tmp_path / "int32.tif"
    tifffile.imwrite(path, np.zeros((H, W), np.int32))
    _expect_input_error(path, "unsupported")


def test_lzw_16bit_tiff_says_how_to_fix(tmp_path: Path) -> None:
    path = tmp_path / "lzw16.tif"
    Image.fromarray(np.full((H, W), 1000, np.uint16)).save(path, compression="tiff_lzw")
    _expect_input_error(path, "re-save")


def test_lzw_8bit_tiff_falls_back_to_pillow(tmp_path: Path) -> None:
    path = tmp_path / "lzw8.tif"
    Image.fromarray(_smooth_u8(3)).save(path, compression="tiff_lzw")
    img = iio.read_image(path)
    np.testing.assert_array_equal(img.pixels, _smooth_u8(3))
    assert img.format == "tiff"


# ---------------------------------------------------------------------------------------------
# Writing


def test_write_refuses_to_overwrite_source(tmp_path: Path) -> None:
    src = _good_png(tmp_path / "in.png")
    before = src.read_bytes()
    img = iio.read_image(src)
    with pytest.raises(InputError, match="overwrite"):
        iio.write_image(tmp_path / "." / "in.png", img)
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    "fmt,dtype,c,suffix",
    [("png", np.uint8, 4, ".jpg"), ("png", np.uint16, 3, ".jpg"), ("exr", np.float32, 3, ".png"), ("png", np.uint8, 3, ".exr")],
)
def test_write_refuses_lossy_format_change(tmp_path: Path, fmt: str, dtype: type, c: int, suffix: str) -> None:
    img = iio.ImageData(_random(dtype, c), None, fmt, dtype == np.float32)
    with pytest.raises(InputError, match="choose another output format"):
        iio.write_image(tmp_path / f"o{suffix}", img)
    assert list(tmp_path.iterdir()) == []


def test_write_missing_directory(tmp_path: Path) -> None:
    img = iio.ImageData(_random(np.uint8, 3), None, "png")
    with pytest.raises(InputError, match="does not exist"):
        iio.write_image(tmp_path / "no" / "o.png", img)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_interrupted_write_leaves_old_target_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]
) -> None:
    target = tmp_path / "frame.png"
    target.write_bytes(b"previous complete frame")
    real_write = iio.write._write_png

    def write_half_then_fail(tmp: Path, image: iio.ImageData) -> None:
        tmp.write_bytes(b"\x89PNG\r\n\x1a\n partial")
        raise exc("disk went away")

    monkeypatch.setattr(iio.write, "_write_png", write_half_then_fail)
    img = iio.ImageData(_random(np.uint16, 4), None, "png")
    expected = KeyboardInterrupt if exc is KeyboardInterrupt else InputError
    with pytest.raises(expected):
        iio.write_image(target, img)
    assert target.read_bytes() == b"previous complete frame"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png"]
    monkeypatch.setattr(iio.write, "_write_png", real_write)
    iio.write_image(target, img)
    np.testing.assert_array_equal(iio.read_image(target).pixels, img.pixels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png"]


def test_write_failure_in_encoder_is_input_error(tmp_path: Path) -> None:
    # A target name that is an existing directory: the rename fails after encoding.
    (tmp_path / "out.png").mkdir()
    img = iio.ImageData(_random(np.uint8, 3), None, "png")
    with pytest.raises(InputError, match="cannot write"):
        iio.write_image(tmp_path / "out.png", img)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


# ---------------------------------------------------------------------------------------------
# Directories


def test_list_frames_natural_order_and_filter(tmp_path: Path) -> None:
    for name in ["frame10.png", "frame2.png", "frame1.PNG", "Frame3.exr", "notes.txt", ".frame4.png.tmp.png", "f.bmp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    names = [p.name for p in iio.list_frames(tmp_path)]
    assert names == ["frame1.PNG", "frame2.png", "Frame3.exr", "frame10.png"]
    assert [p.name for p in iio.unread_images(tmp_path)] == ["f.bmp"]  # an image left out; notes.txt is not one


def test_a_folder_of_unread_formats_says_what_it_holds(tmp_path: Path) -> None:
    for name in ["shot_2.TGA", "shot_10.tga", "shot_1.webp", ".hidden.tga"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in iio.unread_images(tmp_path)] == ["shot_1.webp", "shot_2.TGA", "shot_10.tga"]
    with pytest.raises(InputError, match=r"no images found .*3 files in formats not read \(\.tga, \.webp; "
                                         r"e\.g\. shot_1\.webp\): convert to PNG, TIFF or EXR"):
        iio.list_frames(tmp_path)


def test_list_frames_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as info:
        iio.list_frames(tmp_path / "missing")
    assert "missing" in str(info.value)
    f = _good_png(tmp_path / "a.png")
    with pytest.raises(InputError, match="not a directory"):
        iio.list_frames(f)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(InputError, match="no images") as info:
        iio.list_frames(empty)
    assert "empty" in str(info.value)


def test_looks_whole_without_decoding(tmp_path):
    """--skip-existing's check: whole files of each format pass; empty, cut-off or misnamed ones do not."""
    px = (np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3)
    for suffix in (".png", ".jpg", ".tiff"):
        path = tmp_path / f"a{suffix}"
        iio.write_image(path, iio.ImageData(px, None, suffix[1:], False, {}))
        assert iio.looks_whole(path), suffix
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        if suffix != ".tiff":  # TIFF has no end marker: its check is the signature
            assert not iio.looks_whole(cut), suffix
    exr = tmp_path / "a.exr"
    iio.write_image(exr, iio.ImageData(px.astype(np.float32) / 255, None, "exr", True, {}))
    assert iio.looks_whole(exr)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "misnamed.jpg").write_bytes((tmp_path / "a.png").read_bytes())
    assert not iio.looks_whole(tmp_path / "empty.png") and not iio.looks_whole(tmp_path / "misnamed.jpg")
    assert not iio.looks_whole(tmp_path / "missing.png")
