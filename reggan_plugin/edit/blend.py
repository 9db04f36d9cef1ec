"""Paste-back: feathered crop mask, delta warp back into the frame, colour matching.

Arrays: a ``Mask`` is HxW (or SxS in crop space) float32 in [0, 1]. Frames and crops here are
float32 RGB, sRGB-encoded, [0, 1] (``imageio.to_network_rgb``). Matrices are ``align.Matrix`` (frame
px -> crop px).

Why a delta: only what the model CHANGED (crop_out - crop_in) goes back into the frame, so the
frame keeps its own resolution and detail wherever the model did nothing, and a pixel whose mask is
0 is returned bit for bit.

Why a motion: a model that MOVES features (a lip corner 5 px up) makes a delta that is an edge minus a
shifted edge; pasted at the crop's resolution onto a sharper frame, the frame's own lip stays under a
blurred new one (ghosting). When the model says where each output pixel came from (its motion output,
crop px), the frame is moved by it at its own resolution (bicubic: its pixel-scale detail kept,
``resample.sample_planes_cubic``), and only the rest, ``crop_out - moved crop_in``, is pasted as a delta. The
motion fades with the mask, so the frame outside the face never moves.

Colour matching: a generator trained largely on renders tends to add a colour cast to the whole
crop. That cast shows most in the mask's feathered band, where it fades from full to none and draws
a visible ring. ``paste_back`` estimates the cast as the per-channel median of the delta over that
band (robust to a real change, such as a jaw drop, that reaches part of the band) and removes it
from the whole delta. A model that only moves features has a median delta of ~0 there, and nothing
is changed.

A picture gets the paint as the model paints it. A texture map takes it as a change of shading (``shading``,
`as_shading`: each moved pixel scaled by its luma's change), the texture's own colours kept, since a map is baked
once and lit again by the renderer.
"""
from __future__ import annotations

import numpy as np

from reggan_plugin.geometry.align import CANONICAL_5PT, Matrix, invert_affine
from reggan_plugin.geometry.resample import (
    WarpMode,
    moved_crop,
    sample_planes,
    sample_planes_cubic,
    warp_planes_from_crop,
)
from reggan_plugin.imaging.filters import GRAIN_REACH, gaussian_blurred, grain_level, moving_structure
from reggan_plugin.imaging.tone import REC709_LUMA, luma, smootherstep

from ..arrays import Array, FloatArray
from ..tuning import (
    CAST_RING,
    MASK_BORDER_PX,
    MASK_CENTER,
    MASK_FEATHER,
    MASK_RADII,
    SHADING_DARK,
)

# The mask's ellipse and the colour cast's band: reggan_plugin.tuning.


def feather_mask(
    size: int,
    *,
    center: tuple[float, float] = MASK_CENTER,
    radii: tuple[float, float] = MASK_RADII,
    feather: float = MASK_FEATHER,
) -> Array:
    """Face blend mask in crop space: size x size float32 in [0, 1].

    1 inside the ellipse (``center``, ``radii`` in crop units, covering brows to chin and cheek to
    cheek), falling smoothly (smootherstep of the normalised elliptical radius) to exactly 0 at
    ``1 + feather`` times the radii. Raises ValueError if the falloff would not reach 0 at least
    the border (``MASK_BORDER_PX``; 1 px below 64 px crops) inside the crop border.
    """
    if size < 8:
        raise ValueError(f"crop size {size} is too small for a feathered mask")
    if feather <= 0 or min(radii) <= 0:
        raise ValueError("feather and radii must be positive")
    cx, cy = center
    rx, ry = radii
    reach = 1.0 + feather
    border = MASK_BORDER_PX if size >= 64 else 1
    lo_px = border / size
    if cx - rx * reach < lo_px or cx + rx * reach > 1 - lo_px or cy - ry * reach < lo_px or cy + ry * reach > 1 - lo_px:
        raise ValueError(
            f"mask ellipse centre {center} radii {radii} feather {feather} reaches the crop border; "
            f"it must fall to 0 {border} px inside it ({size} px crops)"
        )
    u = (np.arange(size, dtype=np.float64) + 0.5) / size
    dx = (u[None, :] - cx) / rx
    dy = (u[:, None] - cy) / ry
    rho = np.sqrt(dx * dx + dy * dy)
    mask = 1.0 - smootherstep((rho - 1.0) / feather)
    mask = mask.astype(np.float32)
    b = border
    mask[:b] = 0.0
    mask[-b:] = 0.0
    mask[:, :b] = 0.0
    mask[:, -b:] = 0.0
    return mask


def template_ellipse(size: int, template: Array | None, anchor: tuple[int, ...], radii: tuple[float, float],
                     drop: float = 0.0, *, feather: float) -> Array:
    """`feather_mask` of an ellipse about points of a crop's 5-point ``template`` (crop units; None:
    ``align.CANONICAL_5PT``): centred ``drop`` below the mean of the points indexed by ``anchor`` ((3, 4): the mouth
    corners' midpoint), ``radii`` and ``drop`` in crop units at the canonical template's eye distance, scaled to the
    template's."""
    points = CANONICAL_5PT if template is None else np.asarray(template, np.float64)
    k = float(np.linalg.norm(points[1] - points[0]) / np.linalg.norm(CANONICAL_5PT[1] - CANONICAL_5PT[0]))
    centre = points[list(anchor)].mean(axis=0) + np.array([0.0, drop * k])
    return feather_mask(size, center=(float(centre[0]), float(centre[1])), radii=(radii[0] * k, radii[1] * k),
                        feather=feather)


def as_shading(delta: Array, base: Array) -> Array:
    """``delta``'s change of luma as a change of ``base``'s shading: ``base`` scaled by the ratio of its luma's
    change, so the result has ``delta``'s luma and ``base``'s colour (near-black pixels lifted to a grey of luma
    ``SHADING_DARK`` first, where their colour says nothing)."""
    base_luma = luma(base, REC709_LUMA)  # written out, not ``base @ REC709_LUMA``: see imaging.tone.luma
    ratio = luma(delta, REC709_LUMA) / np.maximum(base_luma, SHADING_DARK)
    shaded: Array = (base + np.maximum(SHADING_DARK - base_luma, 0.0)[..., None]) * ratio[..., None]
    return shaded


def colour_cast(delta: Array, mask_crop: Array) -> FloatArray:
    """Per-channel colour cast of a crop delta: its median over the mask's feathered band, shape (3,).

    Zero when the band is empty (a mask with no falloff)."""
    ring = (mask_crop > CAST_RING[0]) & (mask_crop < CAST_RING[1])
    if ring.sum() < 16:
        return np.zeros(delta.shape[-1], np.float32)
    cast: FloatArray = np.median(delta[ring], axis=0).astype(np.float32)
    return cast


def crop_planes(
    crop_in: Array,
    crop_out: Array,
    mask_crop: Array,
    *,
    motion: Array | None = None,
    colour_match: bool = True,
    shading: bool = False,
    moved: Array | None = None,
    gap: Array | None = None,
    paint_blur: float = 0.0,
    warp: WarpMode = "bilinear",
) -> Array:
    """The crop-space half of paste-back: SxSx(4, 6 or 7) float32 planes, the difference to paste (crop_out less the
    moved crop_in, less its colour cast when ``colour_match``, as a change of its shading when ``shading``: a texture
    map's), the mask, the motion when there is one and the gap when there is one. Arguments as in `paste_back`;
    ``moved``: ``crop_in`` moved by ``motion`` as the caller has it (`reggan_plugin.edit.lips.moved_in_picture`),
    instead of moving it here; ``gap`` (SxS [0, 1], with a motion): where the paste shows crop_out alone, none of the
    moved frame (`reggan_plugin.edit.lips.split_at_lips`: the gap opened between the lips reads one row of the
    picture, whose detail, drawn down the gap, would stand in it as streaks); ``paint_blur``: the difference is pasted
    blurred by a Gaussian of this std (crop px), its finest part left out; ``warp``: how the model moved its crop
    (`ModelArtifact.warp`), the way ``crop_in`` is moved here. A regression's paint is smoother than its input, so that
    part is mostly the input's own texture taken away: pasted onto a frame finer than the crop, it airbrushes the skin
    and lips at the crop's scale."""
    crop_in = np.asarray(crop_in, dtype=np.float32)
    crop_out = np.asarray(crop_out, dtype=np.float32)
    mask_crop = np.asarray(mask_crop, dtype=np.float32)
    s = mask_crop.shape[0]
    if crop_in.shape != (s, s, 3) or crop_out.shape != (s, s, 3) or mask_crop.shape != (s, s):
        raise ValueError(
            f"crop_in {crop_in.shape}, crop_out {crop_out.shape} and mask {mask_crop.shape} must be SxSx3, SxSx3, SxS"
        )
    layers = [mask_crop[..., None]]
    if motion is not None:
        motion = np.asarray(motion, dtype=np.float32)
        if motion.shape != (s, s, 2):
            raise ValueError(f"motion {motion.shape} must be SxSx2 like the mask {mask_crop.shape}")
        crop_in = moved_crop(crop_in, motion, warp) if moved is None else moved
        layers.append(motion)
    delta = crop_out - crop_in
    if colour_match:
        delta = delta - colour_cast(delta, mask_crop)
    if shading:
        delta = as_shading(delta, crop_in)
    if paint_blur > 0:
        delta = gaussian_blurred(delta, paint_blur)
    if gap is not None and motion is not None:
        gap = np.asarray(gap, np.float32)
        delta = delta + gap[..., None] * crop_in  # apply_planes takes as much of the moved frame away
        layers.append(gap[..., None])
    return np.concatenate([delta, *layers], axis=2)


def paste_back(
    frame_rgb: Array,
    crop_in: Array,
    crop_out: Array,
    m: Matrix,
    mask_crop: Array,
    *,
    motion: Array | None = None,
    colour_match: bool = True,
    inplace: bool = False,
) -> tuple[Array, Array]:
    """Blend one face's edit back into the frame: `crop_planes`, then `apply_planes`.

    Args:
        frame_rgb: HxWx3 float32 sRGB [0, 1] frame (not modified).
        crop_in: SxSx3 crop the model was given (``resample.warp_to_crop(frame_rgb, m, S)``).
        crop_out: SxSx3 model output for that crop, same range.
        m: frame px -> crop px map used to make ``crop_in``.
        mask_crop: SxS float32 [0, 1] (``feather_mask(S)``), 0 at the crop border.
        motion: SxSx2 float32 crop px (x, y), or None: crop_out(q) draws on crop_in(q + motion(q)). The
            frame is moved by it (through ``m``, scaled by the mask) and the delta is taken against the
            moved crop_in.
        colour_match: remove the delta's colour cast (``colour_cast``) before blending.
        inplace: write into ``frame_rgb`` itself (the caller's own copy) instead of a new array.

    Returns:
        ``(new_rgb, frame_mask)``: HxWx3 float32 and HxW float32 [0, 1]. ``new_rgb`` is
        ``moved_frame + frame_mask * warped_delta`` clipped to [0, 1] where ``frame_mask > 0`` and
        bit-identical to ``frame_rgb`` elsewhere. For several faces call again with the returned
        frame and combine masks with ``np.maximum``.
    """
    planes = crop_planes(crop_in, crop_out, mask_crop, motion=motion, colour_match=colour_match)
    return apply_planes(frame_rgb, planes, m, inplace=inplace)


def mask_box(mask_crop: Array) -> tuple[int, int, int, int] | None:
    """The crop px box (x0, y0, x1, y1, end exclusive) outside which ``mask_crop`` is 0; None when it is 0 everywhere."""
    rows, cols = np.nonzero(mask_crop.any(axis=1))[0], np.nonzero(mask_crop.any(axis=0))[0]
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def apply_planes(frame_rgb: Array, planes: Array, m: Matrix, *, inplace: bool = False,
                 grain: float | None = None) -> tuple[Array, Array]:
    """The frame-space half of paste-back: `crop_planes`' planes warped into the frame, the frame moved by the
    motion at its own resolution (none of it in the gap, where the planes have one) and the difference added under
    the mask. Returns ``(new_rgb, frame_mask)`` as `paste_back`. ``grain``: the frame's grain level under the mask's
    box (`filters.grain_level`) when the caller has measured it already."""
    frame = np.asarray(frame_rgb, dtype=np.float32)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be HxWx3, got {frame.shape}")
    has_motion = planes.shape[-1] >= 6
    # One warp for the delta, the mask and the motion together, over the frame region the mask's support
    # covers only (about half the crop's): they count only where the mask is > 0.
    box = mask_box(planes[..., 3])
    if box is None:
        return frame.copy(), np.zeros(frame.shape[:2], np.float32)
    roi, warped = warp_planes_from_crop(planes, m, frame.shape, box)
    m_w = warped[3]
    np.clip(m_w, 0.0, 1.0, out=m_w)

    new = frame if inplace else frame.copy()
    frame_mask = np.zeros(frame.shape[:2], np.float32)
    frame_mask[roi] = m_w
    sel = m_w > 0
    if sel.any():
        region = new[roi]  # a view into new
        weight = m_w[sel]
        if not has_motion:
            base = np.stack([region[..., c][sel] for c in range(3)])
        else:
            # only where the mask is > 0: crop px -> frame px through the inverse of m's linear part, faded
            # out with the mask, then the frame itself sampled there
            inv = invert_affine(m)[:, :2].astype(np.float32)
            mx, my = warped[4][sel] * weight, warped[5][sel] * weight
            sx, sy = inv[0, 0] * mx + inv[0, 1] * my, inv[1, 0] * mx + inv[1, 1] * my
            ys = np.broadcast_to(np.arange(roi[0].start, roi[0].stop, dtype=np.float32)[:, None], sel.shape)[sel]
            xs = np.broadcast_to(np.arange(roi[1].start, roi[1].stop, dtype=np.float32)[None, :], sel.shape)[sel]
            # the structure moves, the grain stays (reggan_plugin.imaging.filters), over the region the motion reads
            reach = int(np.ceil(max(np.abs(sx).max(), np.abs(sy).max()))) + GRAIN_REACH + 1
            y0, x0 = max(roi[0].start - reach, 0), max(roi[1].start - reach, 0)
            area = frame[y0 : roi[0].stop + reach, x0 : roi[1].stop + reach]
            level = grain_level(frame[roi]) if grain is None else grain
            smooth = moving_structure(area, level)  # measured on the face: the same however far the
            # frame around it reaches (a region of a frame or the whole frame)
            if smooth is area:  # a clean picture moves as it is, its pixel-scale detail kept
                base = sample_planes_cubic(area, xs - x0 + sx, ys - y0 + sy)
            else:
                iy, ix = ys.astype(np.intp) - y0, xs.astype(np.intp) - x0
                # the frame's own pixel plus how its structure moved: exactly the frame where nothing moves
                base = sample_planes(smooth, xs - x0 + sx, ys - y0 + sy) - smooth[iy, ix].T + area[iy, ix].T
        if planes.shape[-1] == 7:  # the gap (crop_planes): none of the moved frame there
            base *= 1.0 - weight * warped[6][sel]
        for c in range(3):  # channel by channel: see resample._bilinear
            base[c] += weight * warped[c][sel]
            region[..., c][sel] = np.clip(base[c], 0.0, 1.0)
    return new, frame_mask
