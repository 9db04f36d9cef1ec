"""The edit after the network, as a chain of small stages over one record per face (`FaceEdit`).

`ExpressionRenderer.paste` builds a record per face from what the network returned and runs `run_stages` over them:

1. ``BEFORE_PASTE``, picture stages that read the picture as it was, before any face is pasted (how soft each mouth
   is), or run a model over all the faces at once (the head's coverage);
2. ``FACE_STAGES``, each face through every stage in turn, then the next face: a face's lips are read from the
   picture with the faces before it pasted;
3. ``AFTER_FACES``, picture stages over the pasted faces: the drawn mouth interiors.

A face stage takes a record and the shared `PasteContext` and returns the record with what it adds; a stage that
writes the picture writes it in the context (its ``rgb`` and ``mask``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..arrays import Array
from ..geometry.align import Matrix, matrix_scale
from ..geometry.resample import WarpMode, moved_crop
from ..tuning import LARGE_FACE_SCALE
from . import lips
from .blend import crop_planes
from .coverage import FaceCoverage, kept_on_the_head
from .interior import Inside, Opening, amount_for, draw, gap_opening, mouth_softness, past_lip_rims

Paste = Callable[..., tuple[Array, Array]]  # (region, planes, matrix, inplace=...) -> (region, frame mask)


@dataclass(frozen=True)
class FaceEdit:
    """One face after the network, as the stages fill it in. Crop arrays are SxS in the face crop of ``m`` (region
    px -> crop px)."""

    m: Matrix
    crop_in: Array  # SxSx3: the crop the network was given
    crop_out: Array  # SxSx3: the network's edited colour
    motion: Array | None  # SxSx2 crop px (x, y): where each output pixel draws on the input; None without one
    mask: Array  # SxS [0, 1]: where the edit is pasted
    head: Array | None = None  # SxS [0, 1]: how much of each crop pixel the head covers; None without the model
    face_layer: Array | None = None  # SxS [0, 1]: the head above its jaw line, grown a little; None without the model
    moved: Array | None = None  # SxSx3: crop_in moved as the picture will be, where the lips move whole
    gap: Array | None = None  # SxS [0, 1]: the gap opened between the lips; None where the mouth stays closed
    opening: Opening | None = None  # where the mouth shows its inside, for the drawn interior
    amount: float = 0.0  # how much of a drawn inside the face gets (`interior.amount_for`)
    blur: float = 0.0  # how soft the picture is about the mouth (`interior.mouth_softness`), px
    planes: Array | None = None  # SxSx(4, 6 or 7): what `blend.apply_planes` pastes (`blend.crop_planes`)
    withheld: Array | None = None  # SxSx3: the paint the gains for photographs left out (`calibration.calibrated`)
    photo: float = 0.0  # the share of the gains for photographs the face took (`EditedCrops.photo`)

    @property
    def photo_paint_left_out(self) -> float:
        """How far the gains for photographs left this face's paint out: its ``photo`` share where they withheld
        any, else 0."""
        return self.photo if self.withheld is not None else 0.0


@dataclass
class PasteContext:
    """What the stages share: the renderer's masks, models and settings, what the network made of the mouths, and
    the picture being written (``rgb``, with the frame ``mask`` of what is pasted so far)."""

    rgb: Array  # HxWx3 float32: the region being pasted into
    paste: Paste  # `blend.apply_planes`, or the region graphs' paste
    inplace: bool = False  # whether ``rgb`` may be written in place
    lip_corners: Array | None = None  # the face crop's mouth corners (2, 2) where the lips move whole, else None
    coverage: FaceCoverage | None = None
    interior: Inside | None = None  # what the edit draws into the gaps the lips open
    mask: Array | None = None  # HxW [0, 1]: None until a face is pasted
    warp: WarpMode = "bilinear"  # how the model moves its crop (`ModelArtifact.warp`)


Stage = Callable[[FaceEdit, PasteContext], FaceEdit]
PictureStage = Callable[[list[FaceEdit], PasteContext], list[FaceEdit]]


def face_edits(matrices: Sequence[Matrix], crops_in: Array, crops_out: Array, mask: Array,
               withheld: Array | None = None, photo: float = 0.0) -> list[FaceEdit]:
    """A record per face: ``crops_out`` [n,S,S,3 or 5] as `ExpressionRenderer.forward` returns them (the motion
    last), ``mask`` the crop mask every face starts from, ``withheld`` [n,S,S,3] the paint the gains for photographs
    left out (None: none) and ``photo`` the share of those gains the picture's faces took."""
    held = [None] * len(matrices) if withheld is None else list(withheld)
    return [FaceEdit(m, crop_in, crop_out[..., :3], crop_out[..., 3:] if crop_out.shape[-1] == 5 else None, mask,
                     withheld=w, photo=photo)
            for m, crop_in, crop_out, w in zip(matrices, crops_in, crops_out, held)]


# -- before any face is pasted ----------------------------------------------------------------------------------------
def cover_heads(faces: list[FaceEdit], ctx: PasteContext) -> list[FaceEdit]:
    """Where each crop shows the head (`reggan_plugin.edit.coverage`), all faces in one run of the model."""
    if ctx.coverage is None or not faces:
        return faces
    heads, layers = ctx.coverage(np.stack([np.asarray(face.crop_in, np.float32) for face in faces]))
    return [dataclasses.replace(face, head=head, face_layer=layer) for face, head, layer in zip(faces, heads, layers)]


def measure_mouths(faces: list[FaceEdit], ctx: PasteContext) -> list[FaceEdit]:
    """How much of a drawn inside each face gets (none on a small render's face) and how soft its mouth is, read from
    the picture before the faces are pasted; the softness only where an inside may be drawn."""
    corners = ctx.lip_corners if ctx.interior is not None else None
    out = []
    for face in faces:
        amount = amount_for(face.m, face.photo_paint_left_out)
        blur = mouth_softness(ctx.rgb, face.m, corners) if corners is not None and amount > 0 else 0.0
        out.append(dataclasses.replace(face, amount=amount, blur=blur))
    return out


# -- each face --------------------------------------------------------------------------------------------------------
def keep_on_head(face: FaceEdit, ctx: PasteContext) -> FaceEdit:
    """The mask kept where the head covers the crop and where the motion reads from it, and where that is the face
    above the jaw: the edit never drags the backdrop into a cheek, a cheek into the backdrop, or the neck down with
    the chin (`coverage.kept_on_the_head`)."""
    if face.head is None:
        return face
    return dataclasses.replace(face, mask=kept_on_the_head(face.mask, face.head, face.motion, face.face_layer))


def lips_whole(face: FaceEdit, ctx: PasteContext) -> FaceEdit:
    """On a large face, where paste-back keeps the frame's pixel-scale detail, the lips keep theirs: they move whole
    and the motion's stretch becomes a gap between them (`lips.lips_whole`). A face whose paint the gains for
    photographs left out is split at every size, as far as it took those gains, and its gap gets that paint back:
    the photograph moved has no pixels for the inside of an opened mouth (moved, its lips would stretch across the
    opening), the model's paint does."""
    large = matrix_scale(face.m) <= LARGE_FACE_SCALE
    if face.motion is None or ctx.lip_corners is None or not (large or face.withheld is not None):
        return face
    motion, moved, gap = lips.lips_whole(face.crop_in, face.motion, ctx.lip_corners, ctx.rgb, face.m, ctx.warp,
                                         amount=1.0 if large else face.photo)
    crop_out = face.crop_out
    if face.withheld is not None:
        # the paint the gains kept goes onto the lips as the split moves them (none: the picture's own lips, whole),
        # the gap shows the network's own opening, the withheld paint back
        kept = crop_out - moved_crop(face.crop_in, face.motion, ctx.warp)
        opened = np.zeros((*crop_out.shape[:2], 1), np.float32) if gap is None else gap[..., None]
        crop_out = (1.0 - opened) * (moved + kept) + opened * (crop_out + face.withheld)
    return dataclasses.replace(face, crop_out=crop_out, motion=motion, moved=moved, gap=gap)


def find_opening(face: FaceEdit, ctx: PasteContext) -> FaceEdit:
    """Where the gap the lips open shows the mouth's inside, for the drawn interior (`interior.gap_opening`: on a
    photograph, how much of it and how lit)."""
    if face.gap is None or ctx.lip_corners is None:
        return face
    opening = gap_opening(face.m, face.gap, ctx.lip_corners, face.amount, face.photo_paint_left_out)
    return dataclasses.replace(face, opening=opening)


def to_planes(face: FaceEdit, ctx: PasteContext) -> FaceEdit:
    """The crop-space half of paste-back: the difference to paste, the mask, the motion and the gap
    (`blend.crop_planes`)."""
    planes = crop_planes(face.crop_in, face.crop_out, face.mask, motion=face.motion,
                         moved=face.moved, gap=face.gap, warp=ctx.warp)
    return dataclasses.replace(face, planes=planes)


def paste_face(face: FaceEdit, ctx: PasteContext) -> FaceEdit:
    """The planes pasted into the picture (`blend.apply_planes` or the region graphs'), the frame mask grown by
    the face's; from the first face on the picture is this paste's own array, written in place."""
    if face.planes is None:
        raise ValueError("paste_face needs the face's planes (to_planes)")
    ctx.rgb, face_mask = ctx.paste(ctx.rgb, face.planes, face.m, inplace=ctx.inplace)
    ctx.inplace = True
    ctx.mask = face_mask if ctx.mask is None else np.maximum(ctx.mask, face_mask, out=ctx.mask)
    return face


# -- after the faces --------------------------------------------------------------------------------------------------
def draw_interiors(faces: list[FaceEdit], ctx: PasteContext) -> list[FaceEdit]:
    """The edit's mouth interior drawn into each opening at the frame's own pixels (`interior.draw`), past the dark
    rims the lips carry apart with them (`interior.past_lip_rims`)."""
    if ctx.interior is None:
        return faces
    for face in faces:
        if face.opening is not None:
            draw(ctx.rgb, past_lip_rims(ctx.rgb, face.opening), ctx.interior.strip, face.blur)
    return faces


BEFORE_PASTE: tuple[PictureStage, ...] = (cover_heads, measure_mouths)
FACE_STAGES: tuple[Stage, ...] = (keep_on_head, lips_whole, find_opening, to_planes, paste_face)
AFTER_FACES: tuple[PictureStage, ...] = (draw_interiors,)


def run_stages(faces: list[FaceEdit], ctx: PasteContext) -> tuple[Array, Array]:
    """The faces pasted into ``ctx.rgb`` through the stages: (new rgb, frame mask; zeros where there is no face)."""
    for picture_stage in BEFORE_PASTE:
        faces = picture_stage(faces, ctx)
    for i, face in enumerate(faces):
        for stage in FACE_STAGES:
            face = stage(face, ctx)
        faces[i] = face
    if ctx.mask is None:
        return ctx.rgb, np.zeros(ctx.rgb.shape[:2], np.float32)
    for picture_stage in AFTER_FACES:
        faces = picture_stage(faces, ctx)
    return ctx.rgb, ctx.mask
