"""The measures of what a person sees at 1:1 (training/evaluate/realism.py), on pictures whose answer is known."""
from __future__ import annotations

import numpy as np

from training.evaluate import realism

S = 256


def _mouth(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """A skin-coloured crop whose inside of the mouth is vertical stripes of ``colours``."""
    crop = np.full((S, S, 3), (200, 160, 140), np.uint8)
    inside = realism.mouth_region(S)
    columns = np.arange(S)[None, :].repeat(S, axis=0)
    for i, colour in enumerate(colours):
        crop[inside & (columns // 3 % len(colours) == i)] = colour
    return crop


def test_a_mouth_of_lips_and_teeth_is_warm_and_green_and_blue_fringes_are_not() -> None:
    real = realism.mouth_tint(_mouth([(190, 90, 100), (235, 218, 200), (60, 30, 30)]))  # lips, teeth, shade
    fringed = realism.mouth_tint(_mouth([(190, 90, 100), (150, 200, 150), (140, 170, 220), (235, 225, 210)]))
    assert real < -10 and fringed > 10


def test_a_white_band_is_bright_against_the_skin_and_teeth_in_shade_are_not() -> None:
    band = realism.mouth_light(_mouth([(250, 250, 250)]))
    shade = realism.mouth_light(_mouth([(175, 150, 135), (90, 60, 60)]))
    assert band > 60 and shade < 10


def test_spill_beyond_the_truths_edges_counts_a_ghost_and_not_an_edge_placed_a_pixel_off() -> None:
    source = np.full((64, 64, 3), 100, np.uint8)
    source[20:40, 20:30] = 200  # a feature the true expression moves 4 px right
    target = source.copy()
    target[20:40, 20:34] = 200
    target[20:40, 20:24] = 100
    edit = source.copy()  # moved 5 px: its edges a pixel past the truth's
    edit[20:40, 20:35] = 200
    edit[20:40, 20:25] = 100
    near, near_share = realism.spill(edit, source, target)
    far, far_share = realism.spill(edit, source, target, margin=realism.SPILL_EDGE)
    assert near_share > 0 and near == 100  # the pixel-off edge is spill to the plain measure
    assert far == 0 and far_share == 0
    edit[50:56, 5:15] = 140  # a ghost on the backdrop, far from anything the truth changes
    far, far_share = realism.spill(edit, source, target, margin=realism.SPILL_EDGE)
    assert far_share > 0 and far == 40


def test_an_opening_is_measured_inside_the_inner_lips_its_glow_apart_and_a_closed_mouth_has_none() -> None:
    ys, xs = np.nonzero(realism.mouth_region(S))
    centre, half = np.array([xs.mean(), ys.mean()]), np.array([np.ptp(xs), np.ptp(ys)]) / 2 / np.sqrt(2)
    box = (centre + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])) / S  # inside the stripes' ellipse
    shade = realism.opening(_mouth([(120, 50, 50), (230, 215, 200)]), box)  # tongue's shade and teeth
    blot = realism.opening(_mouth([(25, 20, 30)]), box)
    assert shade is not None and blot is not None
    assert shade.dark > 2.5 * blot.dark and shade.red > 0.3 and abs(blot.red) < 0.05
    assert shade.detail > 0.5 and blot.detail < 0.01  # the teeth's edges against a featureless blot
    assert abs(shade.share - _box_share(box)) < 0.01 and shade.share == blot.share
    glowing = realism.opening(_mouth([(60, 20, 25), (240, 120, 100)]), box)  # a throat and a tongue lit coral
    assert glowing is not None and glowing.glow > 0.5 and abs(shade.glow) < 0.15  # teeth in the shade are near grey
    line = np.array([[0.4, 0.7], [0.6, 0.7], [0.6, 0.701], [0.4, 0.701]])  # a closed mouth's contour: a lip line
    assert realism.opening(_mouth([(25, 20, 30)]), line) is None


def test_teeth_colour_reads_teal_teeth_against_cream_ones_and_nothing_where_the_truth_is_closed() -> None:
    ys, xs = np.nonzero(realism.mouth_region(S))
    centre, half = np.array([xs.mean(), ys.mean()]), np.array([np.ptp(xs), np.ptp(ys)]) / 2 / np.sqrt(2)
    box = (centre + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])) / S
    true = _mouth([(230, 215, 190), (230, 215, 190), (70, 30, 35)])  # cream teeth, two thirds; the mouth's shade
    assert realism.teeth_colour(true, true, box) == 0.0
    same = realism.teeth_colour(_mouth([(200, 186, 165), (70, 30, 35)]), true, box)  # the same teeth, a little darker
    teal = realism.teeth_colour(_mouth([(170, 215, 215), (70, 30, 35)]), true, box)
    lips = realism.teeth_colour(_mouth([(190, 90, 100)]), true, box)  # closed lips where the truth shows teeth
    assert same is not None and teal is not None and lips is not None
    assert same < 3 and teal > 15 and lips > 30
    line = np.array([[0.4, 0.7], [0.6, 0.7], [0.6, 0.701], [0.4, 0.701]])
    assert realism.teeth_colour(true, true, line) is None


def _box_share(box: np.ndarray) -> float:
    (x0, y0), (x1, y1) = box.min(axis=0), box.max(axis=0)
    return float((x1 - x0) * (y1 - y0))
