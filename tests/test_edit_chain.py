"""The paste after the network as stages over one record per face (reggan_plugin.edit.chain)."""
from __future__ import annotations

import numpy as np
import pytest

from reggan_plugin.edit import chain, interior
from reggan_plugin.edit.blend import apply_planes, crop_planes, feather_mask
from reggan_plugin.edit.chain import PasteContext, face_edits, run_stages
from reggan_plugin.geometry.align import large_face_share

S = 64


def _face(seed: int, shape: tuple[int, int] = (96, 120)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.random((*shape, 3), dtype=np.float32)
    m = np.array([[0.9, 0.1, -10.0], [-0.1, 0.9, 4.0]])
    crop_in = rng.random((S, S, 3), dtype=np.float32)
    crop_out = np.clip(crop_in + 0.1 * rng.standard_normal((S, S, 3)).astype(np.float32), 0.0, 1.0)
    return rgb, m, crop_in, crop_out


def test_no_faces_leave_the_picture_and_mask_nothing() -> None:
    rgb = np.full((10, 12, 3), 0.5, np.float32)
    out, mask = run_stages([], PasteContext(rgb, apply_planes))
    assert out is rgb and not mask.any() and mask.shape == (10, 12)


def test_a_face_without_motion_is_crop_planes_then_apply_planes() -> None:
    rgb, m, crop_in, crop_out = _face(0)
    mask = feather_mask(S)
    want, want_mask = apply_planes(rgb, crop_planes(crop_in, crop_out, mask), m)
    got, got_mask = run_stages(face_edits([m], crop_in[None], crop_out[None], mask), PasteContext(rgb.copy(), apply_planes))
    assert np.array_equal(got, want) and np.array_equal(got_mask, want_mask)


def test_faces_run_through_every_stage_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each face goes through all the face stages before the next face starts (its lips read the picture with the
    faces before it pasted)."""
    seen: list[tuple[int, str]] = []

    def recorded(stage: chain.Stage) -> chain.Stage:
        def run(face: chain.FaceEdit, ctx: PasteContext) -> chain.FaceEdit:
            seen.append((int(face.m[0, 2]), stage.__name__))
            return stage(face, ctx)
        return run

    monkeypatch.setattr(chain, "FACE_STAGES", tuple(recorded(stage) for stage in chain.FACE_STAGES))
    rgb, m, crop_in, crop_out = _face(1)
    second = m.copy()
    second[0, 2] = -12.0
    faces = face_edits([m, second], np.stack([crop_in, crop_in]), np.stack([crop_out, crop_out]), feather_mask(S))
    run_stages(faces, PasteContext(rgb, apply_planes))
    names = ["keep_on_head", "lips_whole", "find_opening", "to_planes", "paste_face"]
    assert seen == [(x, name) for x in (-10, -12) for name in names]


def test_large_face_share_is_the_interior_fade() -> None:
    """One definition of a large face: the interior's amount, a linear fade from four to eight times magnified."""
    for scale in np.linspace(0.05, 0.7, 131):
        m = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
        s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        assert interior.amount_for(m) == float(np.clip((0.25 - s) / (0.25 - 0.125), 0.0, 1.0))
        assert large_face_share(m) == interior.amount_for(m)


def test_a_photographs_face_gets_the_drawn_inside_at_any_size_as_far_as_it_took_the_gains() -> None:
    """A small face: a render's gets no drawn inside, a photograph's (its paint withheld) as much as it took the gains
    for photographs, so its gap shows a mouth's inside rather than the withheld paint's soft blot."""
    crop_in = np.full((64, 64, 3), 0.5, np.float32)
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # 1:1, far below a large face
    ctx = PasteContext(np.zeros((64, 64, 3), np.float32), apply_planes)
    render = face_edits([m], crop_in[None], crop_in[None], feather_mask(64))
    photos = [face_edits([m], crop_in[None], crop_in[None], feather_mask(64), np.zeros_like(crop_in)[None],
                         photo=share) for share in (0.4, 1.0)]
    assert [f.amount for f in chain.measure_mouths(render, ctx)] == [0.0]
    assert [chain.measure_mouths(f, ctx)[0].amount for f in photos] == [0.4, 1.0]


def test_a_photographs_lips_move_whole_at_any_size_and_only_the_gap_shows_the_withheld_paint() -> None:
    """A face edited without paint: the lips split (on a small face too), nothing pasted but the picture moved by the
    split where the lips are, and in the gap the network's own opening, the withheld paint back."""
    from test_lips import CORNERS, SIZE, closed_mouth, opening_motion

    from reggan_plugin.geometry.resample import moved_crop

    crop_in, motion = closed_mouth(), opening_motion()
    picture = np.zeros((SIZE, SIZE, 3), np.float32)
    picture[:] = crop_in  # the picture is the crop, 1:1 (a small face: no split without the withheld paint)
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    moved = moved_crop(crop_in, motion)
    paint = np.zeros_like(crop_in)
    paint[80:96, 50:80] = -0.3  # the network's dark opening
    crop_out = np.concatenate([moved, motion], -1)[None]  # calibrated: the paint left out ...
    ctx = PasteContext(picture.copy(), apply_planes, lip_corners=CORNERS)
    plain = chain.lips_whole(face_edits([m], crop_in[None], crop_out, feather_mask(SIZE))[0], ctx)
    assert plain.gap is None and plain.moved is None  # a render's small face: as the model moves it
    face = face_edits([m], crop_in[None], crop_out, feather_mask(SIZE), paint[None], photo=1.0)[0]  # ... withheld
    split = chain.lips_whole(face, ctx)
    assert split.gap is not None and split.gap.max() == 1.0 and split.moved is not None
    outside = split.gap < 1e-6
    assert np.allclose(split.crop_out[outside], split.moved[outside], atol=1e-5)  # the picture's lips, moved whole
    inside = split.gap > 0.999
    assert np.allclose(split.crop_out[inside], (moved + paint)[inside], atol=1e-5)  # the network's opening
    half = chain.lips_whole(face_edits([m], crop_in[None], crop_out, feather_mask(SIZE), paint[None], photo=0.5)[0],
                            ctx)
    assert half.gap is not None and np.isclose(half.gap.max(), 0.5)  # split as far as it took the gains
