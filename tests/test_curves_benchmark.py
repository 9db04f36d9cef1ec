"""benchmarks/curves.py's measure of a ramp's smoothness: a change whose course bends like a parabola over five
frames scores 0, frame-to-frame noise scores its own deviation, and a key's turn is left out."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.curves import course_departure

FRAMES = 48


def _course(values: np.ndarray) -> np.ndarray:
    """[T] values -> a [T,4,4,3] change that follows them at every pixel."""
    return np.broadcast_to(values[:, None, None, None], (len(values), 4, 4, 3)).astype(np.float64)


def test_a_parabola_scores_nothing_and_noise_scores_its_deviation() -> None:
    t = np.arange(FRAMES, dtype=np.float64)
    smooth = _course(10.0 + 0.01 * t**2)
    assert course_departure(smooth, set())[0] == pytest.approx(0.0, abs=1e-9)

    noise = np.random.default_rng(0).normal(0.0, 0.5, smooth.shape)
    jitter, bending, size, _ = course_departure(smooth + noise, set())
    assert jitter * size == pytest.approx(0.5, rel=0.1)  # the noise's own deviation, in levels
    assert bending * size == pytest.approx(0.5, rel=0.1)


def test_an_edge_crossing_a_pixel_fast_counts_as_jitter_a_slow_one_less() -> None:
    """What a true ramp scores: a lip's edge crossing a pixel in two frames departs from any parabola."""
    t = np.arange(FRAMES, dtype=np.float64)
    fast = _course(20.0 * np.clip((t - 20) / 2, 0, 1))
    slow = _course(20.0 * np.clip((t - 16) / 16, 0, 1))
    assert course_departure(fast, set())[0] > 2 * course_departure(slow, set())[0] > 0


def test_a_keys_turn_is_left_out() -> None:
    t = np.arange(1, FRAMES + 1, dtype=np.float64)
    vee = _course(np.abs(t - 24))  # straight legs turning at frame 24
    assert course_departure(vee, {24})[0] == pytest.approx(0.0, abs=1e-9)
    assert course_departure(vee, set())[0] > 1e-3
