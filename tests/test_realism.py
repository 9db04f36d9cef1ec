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
