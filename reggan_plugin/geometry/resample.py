"""Resampling between a frame and its crops: bilinear warps into and out of a crop (mean-pooled first on a strong
downscale), scattered bilinear and bicubic samples, and the frame region a crop covers (numpy, OpenCV for bicubic).

Conventions as in `reggan_plugin.geometry.align`: pixel centres at integer coordinates, a ``Matrix`` maps frame pixels to
crop pixels, images are HxWxC float32 (any C), values not range-limited here.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from ..arrays import Array, FloatArray
from .align import Matrix, apply_affine, invert_affine, matrix_scale

WarpMode = Literal["bilinear", "bicubic"]  # how a model moves its crop by its motion (GridSample's mode)
WARP_MODES: tuple[WarpMode, ...] = ("bilinear", "bicubic")


def _box_downsample(img: Array, k: int, *, pad: Literal["edge", "constant"] = "edge") -> FloatArray:
    """Mean-pool HxWxC by an integer factor k (padded to a multiple of k with ``pad``: "edge" or
    "constant" zeros).

    Output pixel j covers source pixels j*k .. j*k+k-1, i.e. its centre is source x = k*j + (k-1)/2.
    """
    h, w = img.shape[:2]
    ph, pw = (-h) % k, (-w) % k
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode=pad)
    hh, ww, c = img.shape[0] // k, img.shape[1] // k, img.shape[2]
    # rows first (k whole rows added at once), then the k-wide column groups of the k-times smaller result:
    # one reduction over axes (1, 3) walks three values at a time and is several times slower
    rows = img.reshape(hh, k, ww * k * c).sum(axis=1, dtype=np.float32)
    pooled: FloatArray = rows.reshape(hh, ww, k, c).sum(axis=2) / np.float32(k * k)
    return pooled


def prefilter_window(m: Matrix, shape: tuple[int, ...], out_shape: tuple[int, int]) -> tuple[int, int, int, int, int]:
    """The anti-alias plan for a map: (k, x0, y0, x1, y1), the mean-pool factor (1: none) and the part of the
    picture the output sees. k = floor(1/scale) when the map shrinks by 2x or more."""
    scale = matrix_scale(m)
    h, w = int(shape[0]), int(shape[1])
    if scale > 0.5:
        return 1, 0, 0, w, h
    k = int(np.floor(1.0 / scale))
    oh, ow = out_shape
    corners = np.array([[-0.5, -0.5], [ow - 0.5, -0.5], [-0.5, oh - 0.5], [ow - 0.5, oh - 0.5]])
    src = apply_affine(invert_affine(m), corners)
    x0 = int(np.clip(np.floor(src[:, 0].min()) - 2 * k, 0, w - 1))
    y0 = int(np.clip(np.floor(src[:, 1].min()) - 2 * k, 0, h - 1))
    x1 = int(np.clip(np.ceil(src[:, 0].max()) + 2 * k + 1, x0 + 1, w))
    y1 = int(np.clip(np.ceil(src[:, 1].max()) + 2 * k + 1, y0 + 1, h))
    return k, x0, y0, x1, y1


def pooled_matrix(m: Matrix, k: int, x0: int, y0: int) -> Matrix:
    """``m`` re-based on the k-pooled picture whose pixel (0, 0) averages the k x k block at (x0, y0)."""
    # source x = x0 + k * x' + (k - 1) / 2
    t = np.array([[k, 0.0, x0 + (k - 1) / 2.0], [0.0, k, y0 + (k - 1) / 2.0], [0.0, 0.0, 1.0]])
    out: Matrix = np.asarray(m, dtype=np.float64) @ t
    return out


def prefilter(img: Array, m: Matrix, out_shape: tuple[int, int]) -> tuple[Array, Matrix]:
    """Anti-alias a strong downscale: crop ``img`` to what the output sees, mean-pool it by
    k = floor(1/scale) when the map shrinks by 2x or more, and return the map adjusted to match.
    Without this, bilinear sampling of a 4K face into a 256 crop would alias."""
    k, x0, y0, x1, y1 = prefilter_window(m, img.shape, out_shape)
    if k == 1:
        return img, m
    return _box_downsample(img[y0:y1, x0:x1], k), pooled_matrix(m, k, x0, y0)


def _bilinear(img: Array, xs: Array, ys: Array, *, zero_outside: bool) -> Array:
    """Sample HxWxC ``img`` at float coordinates (any equal shapes) -> (C,) + shape float32, one plane per channel.

    ``zero_outside`` False: edge replication. True: samples outside the image count as 0, so the
    result fades linearly to 0 over the last pixel and is exactly 0 one pixel beyond the edge.
    Planes, not shape + (C,): numpy runs arithmetic on N x 3 arrays three values at a time (several times
    slower), so each channel is interpolated on its own.
    """
    h, w, c = img.shape
    if zero_outside:
        fx, fy = np.floor(xs), np.floor(ys)
    else:
        xs = np.clip(xs, 0.0, w - 1)
        ys = np.clip(ys, 0.0, h - 1)
        fx = np.minimum(np.floor(xs), w - 2) if w > 1 else np.zeros_like(xs)
        fy = np.minimum(np.floor(ys), h - 2) if h > 1 else np.zeros_like(ys)
    wx = (xs - fx).astype(np.float32)
    wy = (ys - fy).astype(np.float32)
    x0 = fx.astype(np.intp)
    y0 = fy.astype(np.intp)
    flat = np.ascontiguousarray(img, np.float32).reshape(h * w, c)  # one flat gather per corner
    corners = []
    if zero_outside:
        for yi, xi in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
            values = np.take(flat, np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1), axis=0)
            values[(xi < 0) | (xi >= w) | (yi < 0) | (yi >= h)] = 0.0
            corners.append(values)
    else:  # the coordinates were clipped above: every corner is inside (a 1-pixel side repeats its pixel)
        index = y0 * w + x0
        right, down = int(w > 1), w * int(h > 1)
        corners = [np.take(flat, index + offset, axis=0) for offset in (0, right, down, right + down)]
    out = np.empty((c, *wx.shape), np.float32)
    for k in range(c):
        top_left, top_right, bottom_left, bottom_right = (v[..., k] for v in corners)
        top = top_left + wx * (top_right - top_left)
        bottom = bottom_left + wx * (bottom_right - bottom_left)
        out[k] = top + wy * (bottom - top)
    return out


def _as_hwc(img: Array) -> tuple[Array, bool]:
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr[..., None], True
    if arr.ndim != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {arr.shape}")
    return arr, False


def crop_coordinates(m: Matrix, size: int) -> tuple[Array, Array]:
    """Where each pixel of the size x size crop of map ``m`` lies in the picture: (xs, ys), float64 size x size."""
    inv = invert_affine(m)
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float64)
    return inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2], inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]


def warp_to_crop(rgb: Array, m: Matrix, size: int) -> Array:
    """Resample a frame into the size x size crop of map ``m`` (frame px -> crop px).

    Bilinear, edge-replicated (parts of the crop outside the frame repeat the frame's border), with
    mean-pool anti-aliasing when the face is shrunk by 2x or more. Returns size x size x C float32.
    """
    img, was_2d = _as_hwc(rgb)
    img = img.astype(np.float32, copy=False)
    img, m = prefilter(img, m, (size, size))
    planes = _bilinear(img, *crop_coordinates(m, size), zero_outside=False)
    return planes[0] if was_2d else np.ascontiguousarray(np.moveaxis(planes, 0, -1))


def sample(img: Array, xs: Array, ys: Array) -> Array:
    """HxWxC ``img`` at float pixel coordinates (any equal shapes) -> shape + (C,) float32: bilinear,
    edge-replicated. Integer coordinates return the pixels exactly."""
    return np.moveaxis(sample_planes(img, xs, ys), 0, -1)


def sample_planes(img: Array, xs: Array, ys: Array) -> Array:
    """`sample` with the channels first: (C,) + shape, for per-channel arithmetic that follows."""
    return _bilinear(np.asarray(img, np.float32), xs, ys, zero_outside=False)


def _cubic_weights(t: Array) -> list[Array]:
    """Keys' cubic (a = -0.75, torch's and ONNX GridSample's) weights of the four taps about a fraction ``t``."""
    a = -0.75
    def near(d: Array) -> Array:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    def far(d: Array) -> Array:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def bicubic(img: Array, xs: Array, ys: Array) -> FloatArray:
    """HxWxC ``img`` at float pixel coordinates (any equal shapes) -> shape + (C,) float32: bicubic (Keys, a = -0.75:
    torch's and ONNX GridSample's), edge-replicated, at the exact coordinates (OpenCV's remap rounds them to 1/32 px,
    too coarse to match a model's own warp)."""
    img = np.asarray(img, np.float32)
    h, w = img.shape[:2]
    fx, fy = np.floor(xs), np.floor(ys)
    wx, wy = _cubic_weights((xs - fx).astype(np.float32)), _cubic_weights((ys - fy).astype(np.float32))
    ix, iy = fx.astype(np.intp), fy.astype(np.intp)
    flat = img.reshape(h * w, -1)
    out = np.zeros((*np.shape(xs), flat.shape[1]), np.float32)
    for j in range(4):  # edge replication: a tap beyond the border reads the border
        row = np.clip(iy + j - 1, 0, h - 1) * w
        for i in range(4):
            out += (wy[j] * wx[i])[..., None] * flat[row + np.clip(ix + i - 1, 0, w - 1)]
    return out


def moved_crop(crop: Array, motion: Array, mode: WarpMode = "bilinear") -> Array:
    """SxSxC ``crop`` moved by SxSx2 ``motion`` (crop px, x then y: output p reads crop p + motion(p)), edge-replicated,
    by the kernel the model moves it with: the paste subtracts this from the model's output, so the two agree to
    float precision."""
    crop = np.asarray(crop, np.float32)
    gy, gx = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]].astype(np.float32)
    xs, ys = gx + motion[..., 0], gy + motion[..., 1]
    return sample(crop, xs, ys) if mode == "bilinear" else bicubic(crop, xs, ys)


_REMAP_ROW = 1024  # cv2.remap takes maps of under 32767 rows and columns: scattered samples go in rows of this


def remap_points(img: Array, xs: Array, ys: Array, interpolation: int = cv2.INTER_LINEAR,
                 border: int = cv2.BORDER_REPLICATE) -> FloatArray:
    """HxW or HxWxC ``img`` at float pixel coordinates (any equal shapes) -> shape + (C,) float32, by OpenCV's remap
    with ``interpolation`` and ``border`` (BORDER_CONSTANT: 0 outside); any number of points."""
    img = np.ascontiguousarray(img, np.float32)
    n, c = xs.size, (img.shape[2] if img.ndim == 3 else 1)
    rows = max(1, -(-n // _REMAP_ROW))
    maps = np.zeros((2, rows * _REMAP_ROW), np.float32)
    maps[0, :n], maps[1, :n] = np.ravel(xs), np.ravel(ys)
    out = cv2.remap(img, maps[0].reshape(rows, _REMAP_ROW), maps[1].reshape(rows, _REMAP_ROW), interpolation,
                    borderMode=border)
    points: FloatArray = np.asarray(out, np.float32).reshape(-1, c)[:n].reshape((*np.shape(xs), c))
    return points


def sample_planes_cubic(img: Array, xs: Array, ys: Array) -> Array:
    """`sample_planes` that keeps the picture's pixel-scale detail: bicubic (Keys, a = -0.75, OpenCV's and onnx
    GridSample's), edge-replicated. Bilinear interpolation averages neighbours: a half-pixel shift keeps about a third
    of a portrait's Laplacian energy, so a face moved by fractions of a pixel loses its pores and freckles; bicubic
    keeps about 0.7 of it and places a smooth ramp exactly. Integer coordinates return the pixels exactly. OpenCV
    places samples to 1/32 px (13x faster than `bicubic` here; the ramp's jitter is the same either way)."""
    return np.ascontiguousarray(np.moveaxis(remap_points(img, xs, ys, cv2.INTER_CUBIC), -1, 0))


def crop_roi(m: Matrix, size: int, frame_shape: tuple[int, int],
             box: tuple[int, int, int, int] | None = None) -> tuple[slice, slice]:
    """Frame region (ys, xs) that the size x size crop of ``m`` covers, one pixel of margin, clipped;
    with ``box`` (x0, y0, x1, y1 crop px, end exclusive) only the region that part of the crop covers."""
    h, w = int(frame_shape[0]), int(frame_shape[1])
    bx0, by0, bx1, by1 = box if box is not None else (0, 0, size, size)
    corners = np.array([[bx0 - 1.0, by0 - 1.0], [bx1, by0 - 1.0], [bx0 - 1.0, by1], [bx1, by1]])
    pts = apply_affine(invert_affine(m), corners)
    x0 = int(np.clip(np.floor(pts[:, 0].min()), 0, w))
    x1 = int(np.clip(np.ceil(pts[:, 0].max()) + 1, 0, w))
    y0 = int(np.clip(np.floor(pts[:, 1].min()), 0, h))
    y1 = int(np.clip(np.ceil(pts[:, 1].max()) + 1, 0, h))
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def warp_from_crop(
    values: Array, m: Matrix, frame_shape: tuple[int, ...], box: tuple[int, int, int, int] | None = None
) -> tuple[tuple[slice, slice], Array]:
    """`warp_planes_from_crop` with the channels last: hxwxK (or hxw for SxS values)."""
    roi, planes = warp_planes_from_crop(values, m, frame_shape, box)
    return roi, (planes[0] if np.ndim(values) == 2 else np.moveaxis(planes, 0, -1))


def warp_planes_from_crop(
    values: Array, m: Matrix, frame_shape: tuple[int, ...], box: tuple[int, int, int, int] | None = None
) -> tuple[tuple[slice, slice], Array]:
    """Map crop-space values (SxSxK, or SxS) back into the frame through the inverse of ``m``.

    Only the frame region the crop covers is computed: returns ``(roi, planes)`` where
    ``roi = (ys, xs)`` slices of the frame and ``planes`` is Kxhxw float32 for that region.
    Bilinear; crop values outside the crop count as 0, so frame points that map outside the crop get
    exactly 0 (the contribution fades to 0 over the crop's last pixel). Mean-pooled first when the
    crop is 2x or more larger than the face in the frame. ``box`` (crop px, as in `crop_roi`): the caller
    knows the values are 0 outside it, so only the frame region it covers is computed.
    """
    vals, _ = _as_hwc(values)
    vals = vals.astype(np.float32, copy=False)
    size = vals.shape[0]
    if vals.shape[1] != size:
        raise ValueError(f"crop must be square, got shape {vals.shape}")
    roi = crop_roi(m, size, (frame_shape[0], frame_shape[1]), box)
    ys, xs = roi
    hh, ww = ys.stop - ys.start, xs.stop - xs.start
    m = np.asarray(m, dtype=np.float64)
    inv = invert_affine(m)
    # The crop -> frame map is inv; anti-alias when it shrinks by 2x or more.
    if matrix_scale(inv) <= 0.5:
        k = int(np.floor(1.0 / matrix_scale(inv)))
        vals = _box_downsample(vals, k, pad="constant")
        # crop x = k * x' + (k - 1) / 2  =>  x' = (crop x - (k - 1) / 2) / k
        t = np.array([[1.0 / k, 0.0, -(k - 1) / (2.0 * k)], [0.0, 1.0 / k, -(k - 1) / (2.0 * k)], [0.0, 0.0, 1.0]])
        m = t @ np.vstack([m, [0.0, 0.0, 1.0]])
        m = m[:2]
    if hh == 0 or ww == 0:
        warped = np.zeros((vals.shape[2], hh, ww), np.float32)
    else:
        # A crop coarser than the frame is a smooth field at the frame's scale: sampled exactly on a grid of
        # about two points per crop pixel and filled in linearly between them (a separable upsampling, rows
        # and columns copied whole), it costs a fraction of a bilinear gather at every frame pixel.
        step = max(1, int(1.0 / (2.0 * matrix_scale(m))))
        rows = np.arange(ys.start, ys.stop + step - 1, step, dtype=np.float64)[: -(-hh // step) + 1]
        cols = np.arange(xs.start, xs.stop + step - 1, step, dtype=np.float64)[: -(-ww // step) + 1]
        gy, gx = rows[:, None], cols[None, :]
        warped = _bilinear(vals, m[0, 0] * gx + m[0, 1] * gy + m[0, 2], m[1, 0] * gx + m[1, 1] * gy + m[1, 2],
                           zero_outside=True)
        if step > 1:  # plane by plane: the full-size temporaries of one plane at a time
            coarse, warped = warped, np.empty((warped.shape[0], hh, ww), np.float32)
            for k, plane in enumerate(coarse):
                warped[k] = _upsample_linear(_upsample_linear(plane, step, ww, axis=1), step, hh, axis=0)
    return roi, warped


def _upsample_linear(coarse: Array, step: int, n: int, axis: int) -> Array:
    """``n`` samples along ``axis`` at 0, 1, ..., n - 1 of a signal sampled at 0, step, 2 step, ...: linear."""
    pos = np.arange(n, dtype=np.float64) / step
    i0 = np.minimum(pos.astype(np.intp), coarse.shape[axis] - 1)
    i1 = np.minimum(i0 + 1, coarse.shape[axis] - 1)
    shape = [1] * coarse.ndim
    shape[axis] = n
    t = (pos - i0).astype(np.float32).reshape(shape)
    lo = np.take(coarse, i0, axis=axis)
    hi = np.take(coarse, i1, axis=axis)
    hi -= lo
    hi *= t
    hi += lo
    return hi
