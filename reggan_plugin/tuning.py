"""Every tuned number of the edit after the network, in one place: what it does and where its value came from.

Grouped by the stage or idea it tunes, in the order a face goes through them: the crop (`geometry.align`), the
face's level (`edit.face_level`), the subject (`edit.calibration`, `edit.subject`), the paste (`edit.blend`,
`edit.coverage`), a large face's mouth (`edit.lips`, `edit.interior`) and the picture's grain
(`imaging.filters`). "Commit" names the change that set the value (``git log -S NAME``); "origin not recorded" means
neither the code, the docs nor the history say how it was chosen.

Only literal numbers live here. What follows from them (``align.CANONICAL_5PT``,
``filters.GRAIN_REACH``) is worked out where it is used; standards (the Rec. 601 and Rec. 709 luma weights,
`imaging.tone`), published data (``align.ARCFACE_112``), measurements of the template (``align.CANONICAL_BOX``),
file paths, metadata keys and sizes that change no pixel stay with their modules. Changing a value here retunes
the edit: the golden and quality-gate tests say by how much.
"""
from __future__ import annotations

# --- The crop (reggan_plugin.geometry.align) ---------------------------------------------------------------------
# The ArcFace template, /112, is shrunk about the crop centre by TEMPLATE_SCALE (the ArcFace crop cuts the forehead
# and chin) and moved up by TEMPLATE_SHIFT_Y so that brows-to-chin sits near the middle, leaving room for the paste
# mask to fall to 0 before the border (align's docstring). Set with the first template; origin not recorded beyond that.
TEMPLATE_SCALE = 0.75
TEMPLATE_SHIFT_Y = 0.08
# A large face: face crop px per frame px at or below which paste-back magnifies the crop's paint four times or more
# (a face crop of 512 frame px: a detector box from about 285 px). Its lips move whole (edit.lips), and the drawn
# interior (edit.interior) fades in, wholly from FULL_LARGE_FACE_SCALE (eight times).
# Origin not recorded.
LARGE_FACE_SCALE = 0.25
FULL_LARGE_FACE_SCALE = 0.125

# --- A dark face lifted into the model's range (reggan_plugin.edit.face_level) -----------------------------------
# The face in a crop (centre and radii as fractions of the crop: cheeks, nose and mouth, little hair or background),
# over which a face's level is read; the photo reader's face region too (edit.subject). Origin not recorded.
FACE_ELLIPSE = (0.5, 0.55, 0.28, 0.36)
# Linear luma: the 5th percentile of `face_levels` over the training renders' neutrals (`dataset render`, studio
# look, the face model's data), chosen on their validation split among the 5th, 10th and 25th and none
# (docs/experiments/MODEL_NOTES.md; measured by tools/face_levels.py).
DARKEST_FACE = 0.0536

# --- Gains for photographs (reggan_plugin.edit.calibration) -------------------------------------------------------
# The lower face (centre and radii as fractions of the crop) outside which a photograph's ``upper`` gain scales the
# edit: the ellipse training bounds an expression to by default (TrainConfig.stage1_region_ellipse, which takes it
# from here); an ellipse's edge is a sigmoid ELLIPSE_SOFTNESS wide in units of the normalised radius.
# docs/experiments/MODEL_NOTES.md describes the region; origin of the numbers not recorded.
LOWER_FACE, ELLIPSE_SOFTNESS = (0.5, 0.7, 0.35, 0.25), 0.08

# --- Photograph or render (reggan_plugin.edit.subject) -----------------------------------------------------------
# The photo reader's statistics; its coefficients (models/photo_reader.json, recipes/photo_reader.toml) were fitted
# on these, so changing one needs the reader fitted again (docs/PHOTO_READER.md). Origin of the values not recorded.
BANDS = (0.7, 1.5, 3.0)  # the bands of detail: Gaussian sigmas in px of a REFERENCE_SIZE crop, each band less the next
REFERENCE_SIZE = 128
# the regions read, as fractions of the crop: above the brows (hair or a bald head), the sides (hair, ears, backdrop)
TOP_BAND = (0.22, 0.3)  # rows above 0.22, within 0.3 of the middle
SIDE_BANDS = (0.18, 0.2, 0.75)  # columns within 0.18 of either edge, rows from 0.2 to 0.75
EPS = 1e-4  # keeps the logarithms finite on a flat crop

# --- The paste (reggan_plugin.edit.blend) ------------------------------------------------------------------------
# The paste mask's ellipse in crop units, sized to the mean face fitted to the template (align's notes: brows
# y ~0.305, chin y ~0.854, jaw x ~0.225 .. 0.782). The mask is 1 inside the ellipse and falls to 0 at (1 + feather)
# times its radii: y 0.205 .. 0.955, x 0.1375 .. 0.8625. Set with the first paste-back; origin not recorded.
MASK_CENTER = (0.5, 0.58)
MASK_RADII = (0.29, 0.30)
MASK_FEATHER = 0.25
# The mask is exactly 0 within this many pixels of the crop border (bilinear warps read one pixel beyond a sample,
# so the warped frame mask is exactly 0 outside the crop); 1 below 64 px crops, where 2 px would cut into the chin's
# falloff.
MASK_BORDER_PX = 2
# Luma under which a pixel's colour is too dark to scale as shading (a texture map's paint, `blend.as_shading`): it is
# lifted to this grey first. Origin not recorded.
SHADING_DARK = 0.02
# The band of the paste mask over which a colour cast is estimated: mask values strictly inside this range (the
# feathered ring). Set with the first paste-back; origin not recorded.
CAST_RING = (0.05, 0.95)

# --- Staying on the head (reggan_plugin.edit.coverage) -----------------------------------------------------------
# Less covered than this and enclosed by the head: a hole, counted as covered (a photograph's pupils and nostrils).
# Set with the coverage model; origin not recorded.
HOLE_LEVEL = 0.95
# A face the model does not see as a head (a stylised face, a texture: it was fitted on renders) is edited as without
# it: coverage is trusted where it covers at least CORE_TRUST of the face's core, an ellipse of CORE_RADII (crop units)
# about the five landmarks' mean (commit "Coverage is trusted where it finds the head over the face's core (half of
# it, between the eyes and the mouth)"); origin of the radii not recorded.
CORE_RADII = (0.15, 0.18)
CORE_TRUST = 0.5
# The face layer (the head above its jaw line) grown by this much (crop px of a 128 px crop) before the edit is kept
# to what reads it: the model predicts it at 64 px, a pixel of which is two of the crop's, and the chin's soft edge
# and the shadow under it move with the jaw.
JAW_MARGIN = 2.0

# --- Lips moved whole (reggan_plugin.edit.lips) ------------------------------------------------------------------
# Crop px per px of the mouth's width (corner to corner): 25 px in the face crop. Set with the lip split (commit
# "Lips moved whole where the motion opens a large face's mouth"); origin not recorded unless given.
BAND = 0.32  # each lip moved whole over this far from the line between them
SEARCH = 0.2  # the line looked for this far above and below the corners' line
# an opening this wide or wider moves the lips wholly; narrower, in part. Against 0.3 and no split on 1080 px renders
# of surprised and fearful at 0.25-1: those score 0.1-0.6 dB more over the mouth by leaving the opening shut and soft,
# which the 1:1 grid shows; this keeps it open
FULL_GAP = 0.08
TAPER = 0.5  # of the mouth's width from each corner over which the lips' split fades in (to the middle)
MARGIN = 3  # columns past each corner that the line is fitted over (crop px)
# a column's line: its uppermost local minimum at most this far from its darkest to its median; chosen on the half
# of the photos' identities below 0.5 of ``training.data.split.identity_unit`` (benchmarks/lip_line.py, docs/LIP_LINE.md)
DARK = 0.6
EDGE = 0.15  # of the mouth's width at each corner where the line is not looked for (the corners fix its ends)
CORNER_WEIGHT = 3.0  # each corner's weight in the line's fit, against a column's 1
CORNER_STEPS = 10  # fixed-point steps to where the motion puts the mouth's corners (commit "Lips moved whole open a lens")

# --- The drawn mouth interior (reggan_plugin.edit.interior) ------------------------------------------------------
MIN_WEIGHT = 1e-3  # gap weights below this are no gap (the strip is not drawn); origin not recorded
# px: the softest of the renders the strips are cut from, at their own size (measured 0.49-0.76)
STRIP_SOFTNESS = 0.75
SOFTNESS_PROBE = 1.0  # px: the blur by which a picture's softness is read; origin not recorded
SOFTNESS_REACH = 0.35  # mouth widths about the mouth corners' line where it is read; origin not recorded
# A narrow opening's paint is mostly lip, which would light the inside up as glare: unlimited, surprised kept 1.14
# of the neutral's mouth detail on the validation renders (0.91 limited), with glare at part intensities. On a
# photograph none (`interior.max_gain_for`): shown blind, surprised and fearful, the inside never brightened was
# preferred for 10 of 10 people each of the photographs' half that chooses and 9 of 10 each of the half that checks
# (brightened, the rendered tongue and teeth glow).
MAX_GAIN = 1.5
RIM_REACH = 1.0  # crop px below an opening's bottom edge searched for the lower lip's dark rim (`past_lip_rims`)
UPPER_RIM_REACH = 0.75  # crop px above its top edge searched for the upper lip's
# crop columns each edge's move is averaged over: moved column by column, a fearful slit's lower teeth zigzag (shown
# blind on photographs, averaged preferred for 18 of 20 people fearful, 10 of 20 surprised)
RIM_COLUMNS = 9
# Of the mouth's width: on a photograph the drawn inside fades in as an opening's tallest column goes from the first
# to the second (`interior.sliver_share`). On the photographs' half that chooses, disgusted opens 0.093-0.109 (the
# strip squashed into it: white and red dashes along the lower lip), fearful 0.124-0.156, surprised 0.31-0.35. Renders
# keep the strip in a sliver: on a large face it is several pixels tall and a disgusted mouth's teeth show there.
SLIVER = (0.11, 0.12)
RIM_STEPS = 10  # samples a crop px along that search: a frame px or finer on a face the pass magnifies eight times
RIM_CONTRAST = 0.05  # how much lighter than the column's darkest the lip below must be for a rim to be there
# (the rims' reaches, columns and contrast: origin not recorded beyond the commits that set them, "Large mouths: an
# opening is drawn past the dark rim the lower lip carries" and "--subject auto, the default")

# --- Grain stays, structure moves (reggan_plugin.imaging.filters; docs/FILTERS.md) --------------------------------
# px of the picture: a pixel is averaged with those of its 5 x 5 window (grain is a pixel-scale thing whatever the
# face size; a 7 x 7 window was no better under render noise and slower)
SEARCH_RADIUS = 2
# noise stds: how unlike two 3 x 3 patches may be and still be averaged (``nonlocal_mean``). Sigma 10 noise was best
# taken out at 2-2.8, a 4-sample render's (heavy-tailed, so underrated by ``noise_levels``) at 2.8-4
STRENGTH = 2.8
# px: what moves of a grainy picture is its structure less its pixel-scale part (``moving_structure``). The
# non-local mean leaves some grain in the structure, and whatever it leaves moves with the face: held back this way,
# edits of renders of 4 and 8 samples without a denoiser, of Gaussian noise of sigma 3-6 and of JPEG 50 gained up to
# 0.16 dB (sad most, happy -0.01 to 0), sigma 10 -0.02 to +0.09; a 0.7 px Gaussian cost angry 0.13 dB at sigma 10
MOVED_SIGMA = 0.5
# a pixel this many noise stds from its neighbourhood's median is a firefly (Gaussian noise: 1 in 16000). On renders
# of 4 and 16 samples without a denoiser, taking them out first gained angry's edit 1.2 and 0.25 dB; under Gaussian
# noise of sigma 10 it cost 0.1
FIREFLY_STDS = 4.0
# chroma noise (``noise_level``) from which a picture counts as grainy: clean renders and photos measure 0.2-0.8
# levels, renders with noise of sigma 3 levels 3.0 (JPEG photos keep their chroma smooth)
NOISE_FLOOR = 1.5 / 255
# ``blockiness`` from which a picture's blocks count as grain: clean renders and the London photos (JPEG) measure
# 1.01-1.10, a photo pasted square into a grey frame 1.13, renders saved at JPEG quality 90 1.08-1.22, at 75
# 1.33-1.64, at 50 1.70-2.17
BLOCKY = 1.3
# px: a smaller picture (a face of under about 100 px) is not judged for blocks (``blockiness``): too few blocks to
# tell a face's edges from a grid (commit "blockiness: a picture under 128 px a side is not judged")
BLOCKS_MIN_SIDE = 128
