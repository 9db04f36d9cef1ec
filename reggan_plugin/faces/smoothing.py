"""Temporal smoothing of detected faces over a frame sequence, so that crops do not jitter.

Faces are linked into tracks frame to frame by box overlap (IoU), then each track's box and landmarks
are filtered with a bilateral filter in time: a weighted straight-line fit over neighbouring frames,
with Gaussian weights in time that also fall off with how different the neighbour's face is (relative
to the face size). Small detector jitter is averaged away, a steady move comes out exactly (no lag,
also at the ends of a shot), and a real move (the head turns) is kept sharp because the frames on the
other side of it look too different to be averaged in.

Only faces with source 'detector' are smoothed; faces given by the caller, a region or the whole
image are exact and pass through untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reggan_plugin.faces.face import Face, iou

from ..arrays import Array

LINK_IOU = 0.3  # a face continues a track when its box overlaps the track's last box this much
MAX_GAP = 2  # frames a track may miss (detector failures) and still continue
TIME_SIGMA = 12.0  # frames, at strength 1 (the default 0.5: 6 frames; benchmarks/temporal.py, docs/TEMPORAL.md)
RANGE_SIGMA = 0.05  # difference between two frames' faces, as a fraction of the face size


@dataclass
class _Track:
    members: list[tuple[int, int]] = field(default_factory=list)  # (frame index, face index)
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    last_frame: int = -1


def smooth_tracks(per_frame: list[list[Face]], strength: float = 1.0) -> list[list[Face]]:
    """Smooth detector faces over a sequence: same structure back (same number and order of faces per frame).

    ``strength`` scales the temporal window (Gaussian sigma = 12 x strength frames); 0 returns the
    input unchanged. Tracks are matched by IoU >= 0.3 with the previous box, bridging up to 2 frames
    without a detection.
    """
    if strength < 0 or not np.isfinite(strength):
        raise ValueError(f"smoothing strength must be >= 0, got {strength}")
    result = [list(faces) for faces in per_frame]
    if strength == 0:
        return result
    for track in _link_tracks(per_frame):
        if len(track.members) > 1:
            _smooth_track(track, per_frame, result, TIME_SIGMA * strength)
    return result


def window_reach(strength: float) -> int:
    """Frames on each side that the smoothed face of a frame depends on (`smooth_frame`)."""
    return 0 if strength <= 0 else int(np.ceil(3.0 * TIME_SIGMA * strength)) + MAX_GAP + 1


def smooth_frame(window: list[list[Face]], index: int, strength: float = 1.0) -> list[Face]:
    """The smoothed faces of frame `index` of `window` (that frame and up to `window_reach` frames each side).

    Tracks are linked and smoothed inside the window alone, so a frame's result is a function of its
    neighbours only: the same however a sequence is split into shards or resumed."""
    return smooth_tracks(window, strength)[index]


def _link_tracks(per_frame: list[list[Face]]) -> list[_Track]:
    tracks: list[_Track] = []
    for t, faces in enumerate(per_frame):
        alive = [tr for tr in tracks if t - tr.last_frame <= MAX_GAP + 1]
        candidates = sorted(
            ((iou(tr.last_box, face.box), ti, fi) for ti, tr in enumerate(alive) for fi, face in enumerate(faces) if face.source == "detector"),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_faces: set[int] = set()
        for overlap, ti, fi in candidates:  # greedy: best overlaps first
            if overlap < LINK_IOU:
                break
            if ti in used_tracks or fi in used_faces:
                continue
            used_tracks.add(ti)
            used_faces.add(fi)
            alive[ti].members.append((t, fi))
            alive[ti].last_box = faces[fi].box
            alive[ti].last_frame = t
        for fi, face in enumerate(faces):
            if face.source == "detector" and fi not in used_faces:
                tracks.append(_Track(members=[(t, fi)], last_box=face.box, last_frame=t))
    return tracks


def _local_linear(dt: Array, weight: Array, values: Array) -> Array:
    """The value at dt = 0 of a weighted straight-line fit through (dt, values): a steady move comes out
    exactly, also where the window is cut short (a sequence's ends, a cut), which a weighted mean would bias."""
    sw, swt, swtt = weight.sum(), weight @ dt, weight @ (dt * dt)
    det = sw * swtt - swt * swt
    mean: Array = weight @ values / sw
    if det <= 1e-9 * sw * sw:  # one frame, or all on one side at one time: the weighted mean
        return mean
    slope = (sw * (weight * dt) @ values - swt * (weight @ values)) / det
    fitted: Array = mean - slope * swt / sw
    return fitted


def _smooth_track(track: _Track, per_frame: list[list[Face]], result: list[list[Face]], time_sigma: float) -> None:
    faces = [per_frame[t][i] for t, i in track.members]
    frames = np.array([t for t, _ in track.members], dtype=np.float64)
    boxes = np.array([f.box for f in faces], dtype=np.float64)
    # Box as centre + size, so that averaging keeps the centre where the boxes' centres are.
    state = np.concatenate([boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:]], axis=1)
    size = np.sqrt(boxes[:, 2] * boxes[:, 3])
    shapes = {None if f.landmarks is None else f.landmarks.shape for f in faces}
    same_landmarks = len(shapes) == 1 and None not in shapes
    if same_landmarks:
        points = np.stack([f.landmarks for f in faces if f.landmarks is not None]).reshape(len(faces), -1)
        state = np.concatenate([state, points], axis=1)
    radius = 3.0 * time_sigma
    smoothed = np.empty_like(state)
    for k in range(len(faces)):
        near = np.abs(frames - frames[k]) <= radius
        diff = np.sqrt(np.mean((state[near] - state[k]) ** 2, axis=1)) / size[k]
        dt = frames[near] - frames[k]
        weight = np.exp(-0.5 * (dt / time_sigma) ** 2 - 0.5 * (diff / RANGE_SIGMA) ** 2)
        smoothed[k] = _local_linear(dt, weight, state[near])
    for k, (t, i) in enumerate(track.members):
        cx, cy, w, h = smoothed[k, :4]
        landmarks = smoothed[k, 4:].reshape(-1, 2) if same_landmarks else faces[k].landmarks
        result[t][i] = Face(box=(cx - w / 2, cy - h / 2, w, h), landmarks=landmarks, score=faces[k].score, source=faces[k].source)
