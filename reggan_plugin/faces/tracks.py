"""The smoothed faces of one frame of a sequence: the one rule the CLI, the add-on's frame folders and its
render hook share.

Frame k's faces are smoothed over its neighbours within `window_reach` frames, up to a cut on either side
(`reggan_plugin.sequence.shots`), and over nothing else: the result does not depend on where a run starts or stops.
"""
from __future__ import annotations

from collections.abc import Mapping

from reggan_plugin.faces.face import Face
from reggan_plugin.faces.smoothing import smooth_frame, window_reach
from reggan_plugin.sequence.shots import Thumb, is_cut


def smoothed_faces(found: Mapping[int, list[Face]], thumbs: Mapping[int, Thumb | None], k: int, n_frames: int,
                   strength: float) -> list[Face]:
    """found/thumbs: faces and thumbnails by frame index (at least the window around k); n_frames: the
    sequence length (the window stops at its ends)."""
    reach = window_reach(strength)
    if not reach:
        return list(found.get(k, []))
    start = k
    while start > max(0, k - reach) and not is_cut(thumbs.get(start - 1), thumbs.get(start)):
        start -= 1
    stop = k
    while stop < min(n_frames - 1, k + reach) and not is_cut(thumbs.get(stop), thumbs.get(stop + 1)):
        stop += 1
    window = [found.get(i, []) for i in range(start, stop + 1)]
    return smooth_frame(window, k - start, strength)
