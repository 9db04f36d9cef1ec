"""The quality gate: fixed inputs and floors on what a person sees at 1:1 (``training/evaluate/realism.py``), so a
change that brings back a smear at a turned head's silhouette, a turned head the detector misplaces, washed-out skin,
a pasted white mouth, more green and blue fringes between the lips, teal teeth, an opened mouth smeared shut or a
channel-driven jaw that no longer drops whole fails here.

The turned heads (``tests/data/turned``: two identities rendered 18-35 degrees from the camera, neutral, smiling and
surprised, with the renders' landmarks; never used to fit or choose anything) are scored against their true
expressions; the demo's frontal frames and London's portraits (shared data; people the model never trained on)
against their inputs and, for the mouth, the people's own smiles, the portraits surprised for an opened mouth; four
renders of an opened jaw (``tests/data/jaw``: two identities frontal and turned about 23 degrees, the ARKit jawOpen
blendshape; never fitted or chosen on) against the channel model's edit; two frontal identities smiling and
surprised at half intensity (``tests/data/half``) against the edit at 0.5; two held-out renders smiling, one frontal
and one dark-skinned and turned (``tests/data/teeth``; never fitted on), against their true smiles' teeth. The floors
sit a little beyond the bundled models' figures (in each test), so that a change shows before it is shipped.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reggan_plugin.artifact import channels_model_path
from reggan_plugin.config import InferenceConfig
from reggan_plugin.faces import Face
from reggan_plugin.faces.faces_json import load_faces_json
from reggan_plugin.faces.locate import SharedDetector
from reggan_plugin.geometry.align import crop_matrix_from_landmarks
from reggan_plugin.geometry.resample import warp_to_crop
from reggan_plugin.renderer import ExpressionRenderer
from training.data.split import in_choosing_half
from training.evaluate import metrics, mouth_shape, realism
from training.evaluate.cases import given_face
from training.evaluate.mouth_shape import MouthShapeJudge

HERE = Path(__file__).resolve().parent
TURNED = HERE / "data" / "turned"
JAW = HERE / "data" / "jaw"
HALF = HERE / "data" / "half"
TEETH = HERE / "data" / "teeth"
SAMPLES = HERE.parent / "samples"
# The bundled model's figures on these inputs: spill up to 30 levels (99.9th percentile) and 0.44% of the untouched
# pixels changed by over 16 (a surprised jaw's reach into the neck, next to what its truth changes; 31 and 0.40% with
# flows fitted to the pictures alone, 29 and 0.39% without the face layer, 31 and 0.45% with one flow for every pitch
# of the head, 35 and 0.49% with three turn keys and a 5 x 5 neighbourhood, 44 with one stage-1 fit over every turn,
# 102 and 2.0% before the edit kept to the head); skin detail 0.82 and 0.93 on the demo's frames (0.85 and 0.94 with
# flows fitted to the pictures alone, alike by eye at 4x: what the ratio counts there is the render's sampling grain;
# 0.87 and 0.96 with a 5 x 5 neighbourhood), 0.93 to 1.04 on the portraits (0.67 with bilinear resampling).
TURNED_SPILL, TURNED_SPILL_SHARE = 36.0, 0.5
# The same beyond 2 px of anything the true expression changes (`realism.SPILL_EDGE`: the edit's own ghosts, not an
# edge placed a pixel off): 4-5 levels and none over 16 for three of them, 8 levels and 0.03% for id00002 surprised
# (6 and 0.02% with flows fitted to the pictures alone; 10 and 0.02% without the face layer, the jaw's smear at the
# neck; 14 and 0.06% with one flow for every pitch).
TURNED_FAR_SPILL, TURNED_FAR_SPILL_SHARE = 10.0, 0.04
# Located by the detector rather than by their landmarks, the same turned heads smiling and surprised lose at most 0.36
# dB against their truth (0.73 with the detector's keypoint map fitted on renders facing the camera alone, which read a
# turned head's points 2 px off and its tilt low).
TURNED_DETECTOR_COST = 0.55
FRONTAL_DETAIL = 0.80
PORTRAIT_DETAIL = 0.90
# The mouth's tint (`realism.mouth_tint`) on the five portraits: the bundled model's smiles -22.1 levels on average
# (-6.5 to -28.4; the photographs' own lips moved), the people's own -20.0, their neutral mouths -21.0; the model's
# paint made them -13.2 and a stage-1 filter per colour, whose green and blue fringes between the lips this ceiling
# keeps out, 6-7 levels warmer again.
PORTRAIT_MOUTH_TINT = -10.0
# The mouth's light (`realism.mouth_light`) on the five portraits: the bundled model's smiles 13.6 levels on average
# (closed lips), the people's own 34.6, the model's paint 32.3; the realism acceptance allows 2.5 times the people's
# own, this ceiling 1.5.
PORTRAIT_MOUTH_LIGHT = 1.5
# The same portraits surprised: MediaPipe finds the lips apart on all 5, each with a rendered mouth's inside drawn in
# the gap (`interior`, never brightened on a photograph): its darkest tenth at 0.020-0.052 of the skin's luma (the
# throat) and 0.042-0.093 redder than green and blue, its detail 0.06-0.32, median 0.096 (`realism.opening`; the
# people's own open smiles 0.29-0.58 luma, detail 0.11-0.48; brightened by the paint up to 1.5 times, a glowing
# tongue, median detail 0.12). The gap's paint alone, without the drawn inside, a soft pink or purple blot: detail
# 0.04-0.07, median 0.058 (the paint everywhere, a dark smear across the lips: apart on 2). The dark and red floors
# are about three quarters of the least; the median detail's lies midway between the blot's and the drawn inside's.
# Its glow (the lightest tenth's redness over the skin's luma) 0.17-0.34; brightened, the tongue coral, 0.27-0.60 (the
# people's own smiles' median 0.11): the ceiling lies between the two's most.
PORTRAIT_OPENED = 4
OPENING_DARK, OPENING_RED, OPENING_DETAIL, OPENING_GLOW = 0.015, 0.03, 0.07, 0.45
# The same portraits disgusted: no pixel differs from the edit without a drawn inside; with the strip drawn into the
# sliver (`interior.sliver_share` off) 95-263 pixels differ by more than 8 levels.
SLIVER_DRAWN = 10
# The turned renders surprised: id00000's opening 1.00 of the true render's size with 0.56 of its detail (the teeth's
# and tongue's edges), id00002's 0.74 with 0.16 (0.85 with 0.42 and 0.70 with 0.16 with flows fitted to the pictures
# alone; 0.80 with 0.52 and 0.74 with 0.15 with one flow for every pitch; with three turn keys and a 5 x 5
# neighbourhood more detail, by eye at 3x a ragged red and black fringe inside the lips rather than teeth).
TURNED_OPENING_SIZE, TURNED_OPENING_DETAIL = 0.6, 0.12
# The channel model's jawOpen on the jaw renders (weights 0.8-1): +4.49 dB over the neutral on average (+3.24 to
# +7.38; +4.63 without the face layer, which holds back the neck under the chin; +4.42 without jawOpen's key at 0.5,
# +4.07 fitted on frontal renders alone, +3.73 with a jaw fitted to the pictures alone, its chin pulled to a point and
# its sides left behind); spill up to 97 levels and 0.58% of the untouched pixels (the chin moved over the backdrop
# at the turned head's far silhouette).
JAW_GAIN = 4.4
JAW_SPILL, JAW_SPILL_SHARE = 110.0, 1.0
# The face model at intensity 0.5 on the half-intensity renders: +5.41 dB over the neutral on average (+3.26 to +7.33;
# stage 1's mixed maps instead of its carried paint would make a half surprise's mouth an orange and white patch);
# spill up to 20 levels and 0.19% of the untouched pixels.
HALF_GAIN = 5.0
HALF_SPILL, HALF_SPILL_SHARE = 28.0, 0.4
# Two smiles whose teeth one stage-1 filter for the three colours turned teal (``tests/data/teeth``: a frontal and a
# dark-skinned turned render): the colour inside the true smile's opening (`realism.teeth_colour`, CIELAB a*b*) 5.1 and
# 8.2 from the truth's; 8.1 and 12.3 with that shared filter; 4.3 and 5.9 with filters wholly each colour's own, whose
# cyan and orange fringes average to the truth's cream (the neutral's closed lips: 14.9 and 3.8, a dark mouth's shaded
# teeth near its lips' colour).
TEETH_COLOUR = 9.5


@pytest.fixture(scope="module")
def renderer() -> ExpressionRenderer:
    return ExpressionRenderer(InferenceConfig(backend="cpu"))


@pytest.fixture(scope="module")
def mouth_judge() -> MouthShapeJudge:
    """MediaPipe's lips, an independent landmarker (skips where ai-edge-litert is missing)."""
    reason = mouth_shape.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return MouthShapeJudge()


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _points(path: Path) -> np.ndarray:
    """A render's landmark file: its 68 points."""
    return np.asarray(json.loads(path.read_text())["points"], float)


def _skin(renderer: ExpressionRenderer, face: Face, shape: tuple[int, ...]) -> np.ndarray:
    return realism.frame_region(realism.skin_region(renderer.size), renderer.crop_matrix(face, shape), shape)


@pytest.mark.parametrize("identity, expression", [("id00002", "happy"), ("id00000", "surprised"),
                                                  ("id00000", "happy"), ("id00002", "surprised")])
def test_a_turned_head_moves_its_face_and_leaves_the_backdrop(renderer, identity, expression):
    """Closer to the true expression than the neutral by 2 dB or more, and where the true expression changes nothing
    (the backdrop, the far silhouette, the skull) the edit changes next to nothing, least of all away from what it
    changes."""
    neutral, target = _rgb(TURNED / f"{identity}_neutral.png"), _rgb(TURNED / f"{identity}_{expression}.png")
    points = _points(TURNED / f"{identity}_neutral.landmarks.json")
    out = renderer.apply_array(neutral, faces=[given_face(points)], expression=expression)
    assert metrics.psnr(out, target) >= metrics.psnr(neutral, target) + 2.0
    largest, share = realism.spill(out, neutral, target)
    assert largest <= TURNED_SPILL and share <= TURNED_SPILL_SHARE, (largest, share)
    far, far_share = realism.spill(out, neutral, target, margin=realism.SPILL_EDGE)
    assert far <= TURNED_FAR_SPILL and far_share <= TURNED_FAR_SPILL_SHARE, (far, far_share)



@pytest.mark.parametrize("identity, expression", [("id00000", "happy"), ("id00000", "surprised"),
                                                  ("id00002", "happy"), ("id00002", "surprised")])
def test_a_turned_head_found_by_the_detector_is_edited_as_if_its_landmarks_were_given(renderer, identity, expression):
    """No face given: the detector's five points put the crop, the turn and the tilt where the renders' landmarks do,
    so the edit comes within ``TURNED_DETECTOR_COST`` of the landmarks' edit against the true expression."""
    neutral, target = _rgb(TURNED / f"{identity}_neutral.png"), _rgb(TURNED / f"{identity}_{expression}.png")
    points = _points(TURNED / f"{identity}_neutral.landmarks.json")
    given = metrics.psnr(renderer.apply_array(neutral, faces=[given_face(points)], expression=expression), target)
    found = metrics.psnr(renderer.apply_array(neutral, expression=expression), target)
    assert given - found <= TURNED_DETECTOR_COST, (given, found)

def test_a_frontal_render_keeps_its_skin(renderer):
    """The demo's frames at full intensity: the skin away from the mouth and eyes keeps its fine detail."""
    faces = load_faces_json(SAMPLES / "faces.json")
    for name in ("shot_0001.png", "shot_0006.png"):
        frame = _rgb(SAMPLES / "frames" / name)
        face = faces.faces_for(name)[0]
        out = renderer.apply_array(frame, faces=[face], expression="happy")
        assert realism.detail_kept(frame, out, _skin(renderer, face, frame.shape)) >= FRONTAL_DETAIL


def test_portraits_keep_their_skin_and_smile_in_the_mouths_shade(renderer, london_faces):
    """Five of London's people the model never trained on, every 7th of that half (default options): the skin keeps
    its pores and freckles, the smile's mouth is no brighter against the skin than 1.5 times the people's own smiles
    (a pasted white band is four times), and its colours stray toward green and blue no further than today's."""
    detector = SharedDetector()
    kept, edited, real, tint = [], [], [], []
    for path in _held_out_portraits(london_faces):
        neutral, smiling = _rgb(path), _rgb(london_faces / "happy" / path.name)
        face, own = detector.detect(neutral)[0], detector.detect(smiling)[0]
        out = renderer.apply_array(neutral, faces=[face], expression="happy")
        kept.append(realism.detail_kept(neutral, out, _skin(renderer, face, neutral.shape)))
        edited.append(realism.mouth_light(_crop(out, face)))
        real.append(realism.mouth_light(_crop(smiling, own)))
        tint.append(realism.mouth_tint(_crop(out, face)))
    assert min(kept) >= PORTRAIT_DETAIL, kept
    assert np.mean(edited) <= PORTRAIT_MOUTH_LIGHT * np.mean(real), (edited, real)
    assert np.mean(tint) <= PORTRAIT_MOUTH_TINT, tint


def test_portraits_open_their_mouths_when_surprised(renderer, london_faces, mouth_judge):
    """The same five portraits surprised (default options): an independent landmarker (MediaPipe's inner lip contour)
    finds the lips apart on ``PORTRAIT_OPENED`` of them, the opening's darkest tenth is a mouth's shade, not a black
    hole or a grey smear, it has a mouth's edges (teeth, tongue) where a soft blot has none, and its lightest parts
    do not glow coral (`realism.opening`)."""
    detector = SharedDetector()
    openings = []
    for path in _held_out_portraits(london_faces):
        neutral = _rgb(path)
        face = detector.detect(neutral)[0]
        crop = _crop(renderer.apply_array(neutral, faces=[face], expression="surprised"), face)
        openings.append(realism.opening(crop, mouth_judge.inner_lips(crop)))
    found = [o for o in openings if o is not None]
    assert len(found) >= PORTRAIT_OPENED, openings
    assert min(o.dark for o in found) >= OPENING_DARK and min(o.red for o in found) >= OPENING_RED, found
    assert np.median([o.detail for o in found]) >= OPENING_DETAIL, found
    assert max(o.glow for o in found) <= OPENING_GLOW, found


def test_a_disgusted_portraits_sliver_of_a_gap_gets_no_drawn_teeth(renderer, london_faces):
    """The same five portraits disgusted: the lips part by a sliver, and nothing is drawn into it (a rendered inside
    squashed into it shows as orange dashes along the lower lip): the edit is the one without the drawn inside to
    within ``SLIVER_DRAWN`` pixels changed by more than 8 levels."""
    plain = ExpressionRenderer(InferenceConfig(backend="cpu"))
    plain.interior = None
    detector = SharedDetector()
    drawn = []
    for path in _held_out_portraits(london_faces):
        neutral = _rgb(path)
        face = detector.detect(neutral)[0]
        a, b = (r.apply_array(neutral, faces=[face], expression="disgusted").astype(int) for r in (renderer, plain))
        drawn.append(int((np.abs(a - b).max(axis=-1) > 8).sum()))
    assert max(drawn) <= SLIVER_DRAWN, drawn


@pytest.mark.parametrize("identity", ["id00000", "id00002"])
def test_a_turned_heads_surprised_mouth_opens_as_a_mouth(renderer, mouth_judge, identity):
    """A turned head surprised: its opening, found by an independent landmarker, takes ``TURNED_OPENING_SIZE`` of the
    true render's and keeps ``TURNED_OPENING_DETAIL`` of its detail (an opening smeared into a soft blot fails)."""
    edit, true = _edit_and_truth(renderer, TURNED / identity, "surprised")
    opened, real = (realism.opening(crop, mouth_judge.inner_lips(crop)) for crop in (edit, true))
    assert opened is not None and real is not None, (opened, real)
    assert opened.share >= TURNED_OPENING_SIZE * real.share, (opened, real)
    assert opened.detail >= TURNED_OPENING_DETAIL * real.detail, (opened, real)


@pytest.mark.parametrize("stem", ["frontal_id00001", "turned_id00007"])
def test_a_smiles_teeth_keep_the_colour_of_teeth(renderer, mouth_judge, stem):
    """A smile on a render: what it shows inside the true smile's opening (the lightest third, its teeth) stays within
    ``TEETH_COLOUR`` of the truth's colour (teeth painted teal or grey-blue fail)."""
    edit, true = _edit_and_truth(renderer, TEETH / stem, "happy")
    colour = realism.teeth_colour(edit, true, mouth_judge.inner_lips(true))
    assert colour is not None and colour <= TEETH_COLOUR, colour


def test_a_channel_driven_jaw_drops_whole_and_stays_on_the_face():
    """jawOpen on four renders: the edit closer to the true render than the neutral by ``JAW_GAIN`` on average, and
    next to nothing changed where the true jaw changes nothing."""
    renderer = ExpressionRenderer(InferenceConfig(model=channels_model_path(), backend="cpu"))
    gains = []
    for stem, mix in json.loads((JAW / "mixes.json").read_text()).items():
        neutral, target = _rgb(JAW / f"{stem}_neutral.png"), _rgb(JAW / f"{stem}_jawOpen.png")
        points = _points(JAW / f"{stem}_neutral.landmarks.json")
        out = renderer.apply_array(neutral, faces=[given_face(points)], expression=mix)
        gains.append(metrics.psnr(out, target) - metrics.psnr(neutral, target))
        largest, share = realism.spill(out, neutral, target)
        assert largest <= JAW_SPILL and share <= JAW_SPILL_SHARE, (stem, largest, share)
    assert np.mean(gains) >= JAW_GAIN, gains


def _held_out_portraits(london_faces: Path) -> list[Path]:
    """Five of London's neutral portraits of people the model never trained on: every 7th of that half."""
    held_out = [p for p in sorted((london_faces / "neutral").glob("*.jpg"))
                if not in_choosing_half(f"{london_faces.name}/{p.stem}")]
    return held_out[::7][:5]


def _edit_and_truth(renderer: ExpressionRenderer, stem: Path, expression: str) -> tuple[np.ndarray, np.ndarray]:
    """A render's edit into ``expression`` and its true render (``<stem>_neutral.png``, its landmarks and
    ``<stem>_<expression>.png``), as 256 px canonical crops of the neutral's face."""
    neutral = _rgb(stem.with_name(f"{stem.name}_neutral.png"))
    face = given_face(_points(stem.with_name(f"{stem.name}_neutral.landmarks.json")))
    edit = renderer.apply_array(neutral, faces=[face], expression=expression)
    return _crop(edit, face), _crop(_rgb(stem.with_name(f"{stem.name}_{expression}.png")), face)


def _crop(pixels: np.ndarray, face: Face, size: int = 256) -> np.ndarray:
    m = crop_matrix_from_landmarks(face.landmarks5(), size)
    return np.clip(np.rint(warp_to_crop(pixels.astype(np.float32), m, size)), 0, 255).astype(np.uint8)


def test_half_an_expression_is_half_the_way_to_it(renderer):
    """At intensity 0.5 the edit comes as close to the renders at half intensity as the expression at half weight
    does: an edit that fades the paint faster than the motion falls short, and it stays on the face."""
    gains = []
    for identity in ("id09450", "id09451"):
        neutral = _rgb(HALF / f"{identity}_neutral.png")
        points = _points(HALF / f"{identity}_neutral.landmarks.json")
        for expression in ("happy", "surprised"):
            target = _rgb(HALF / f"{identity}_{expression}_050.png")
            out = renderer.apply_array(neutral, faces=[given_face(points)], expression=expression, intensity=0.5)
            gains.append(metrics.psnr(out, target) - metrics.psnr(neutral, target))
            largest, share = realism.spill(out, neutral, target)
            assert largest <= HALF_SPILL and share <= HALF_SPILL_SHARE, (identity, expression, largest, share)
    assert np.mean(gains) >= HALF_GAIN, gains
