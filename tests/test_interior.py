"""An opened mouth's inside drawn from a rendered strip (reggan_plugin.edit.interior, training/interior.py)."""
from __future__ import annotations

import numpy as np
import pytest

from reggan_plugin.edit.interior import (
    STRIPS_FILE,
    MouthInterior,
    amount_for,
    draw,
    gap_opening,
    gap_rows,
    max_gain_for,
    mouth_softness,
    past_lip_rims,
    sliver_share,
    softness,
)
from reggan_plugin.errors import ModelError
from reggan_plugin.imaging.tone import REC709_LUMA
from reggan_plugin.tuning import MAX_GAIN, RIM_COLUMNS, SLIVER, STRIP_SOFTNESS
from training.interior import OPENING, medoid, teeth_balance, unrolled

SIZE = 64
CORNERS = np.array([[20.0, 40.0], [44.0, 40.0]])


def gap_between(top: float, bottom: float, weight: float = 1.0) -> np.ndarray:
    """A crop's gap map open from row ``top`` to ``bottom`` (pixel edges) between the corners."""
    gap = np.zeros((SIZE, SIZE), np.float32)
    rows = np.arange(SIZE)[:, None] + 0.5
    inside = np.clip(np.minimum(rows - top, bottom - rows) + 0.5, 0.0, 1.0)
    gap[:, 22:43] = weight * inside
    return gap


def striped_strip() -> np.ndarray:
    """A strip white above its middle row and black below: where the gap draws its upper and lower halves."""
    strip = np.zeros((32, 128, 3), np.float32)
    strip[:16] = 1.0
    return strip


def test_a_gaps_rows_are_read_per_column() -> None:
    columns, top, bottom, opens = gap_rows(gap_between(36.0, 46.0))
    assert columns[0] == 22 and columns[-1] == 42
    np.testing.assert_allclose(opens, 1.0)
    np.testing.assert_allclose(top, 35.5)  # rows 36 to 45: their outer edges
    np.testing.assert_allclose(bottom, 45.5)


def test_a_gaps_edges_are_read_to_a_fraction_of_a_row() -> None:
    _, top, bottom, opens = gap_rows(gap_between(36.3, 45.6, weight=0.5))
    np.testing.assert_allclose(opens, 0.5)
    np.testing.assert_allclose(top, 35.8, atol=1e-5)  # 36.3 and 45.6 in edge coordinates, pixel centres at integers
    np.testing.assert_allclose(bottom, 45.1, atol=1e-5)


def test_the_strip_is_drawn_into_the_gap_alone_lit_as_the_paint() -> None:
    region = np.full((SIZE, SIZE, 3), 0.3, np.float32)
    region[30:50, 15:50] = (0.2, 0.1, 0.1)  # the paint's dark opening
    before = region.copy()
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # region px = crop px
    draw(region, gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0), striped_strip())
    changed = np.any(region != before, axis=-1)
    rows, cols = np.nonzero(changed)
    assert rows.min() >= 35 and rows.max() <= 47 and cols.min() >= 21 and cols.max() <= 43
    # the strip's white upper half and black lower half, lit to the paint's mean colour
    upper, lower = region[37:40, 26:40].mean(axis=(0, 1)), region[42:45, 26:40].mean(axis=(0, 1))
    np.testing.assert_allclose(upper, (0.4, 0.2, 0.2), atol=0.03)
    np.testing.assert_allclose(lower, 0.0, atol=0.03)
    np.testing.assert_allclose(region[36:46, 26:40].mean(axis=(0, 1)), (0.2, 0.1, 0.1), atol=0.03)
    # a paint far brighter than the strip lights it up MAX_GAIN times at most
    region = np.full((SIZE, SIZE, 3), 0.9, np.float32)
    draw(region, gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0), 0.5 * striped_strip())
    np.testing.assert_allclose(region[37:40, 26:40], 0.5 * MAX_GAIN, atol=0.03)
    np.testing.assert_allclose(region[42:45, 26:40], 0.0, atol=0.03)


def test_a_photographs_paint_darkens_the_strip_but_never_brightens_it() -> None:
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert max_gain_for(0.0) == MAX_GAIN and max_gain_for(1.0) == 1.0
    assert 1.0 < max_gain_for(0.5) < MAX_GAIN
    bright = np.full((SIZE, SIZE, 3), 0.9, np.float32)
    draw(bright, gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0, photo=1.0), 0.5 * striped_strip())
    np.testing.assert_allclose(bright[37:40, 26:40], 0.5, atol=0.03)  # the strip's own white, not the paint's glow
    dark = np.full((SIZE, SIZE, 3), 0.3, np.float32)
    dark[30:50, 15:50] = (0.2, 0.1, 0.1)
    draw(dark, gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0, photo=1.0), striped_strip())
    np.testing.assert_allclose(dark[37:40, 26:40].mean(axis=(0, 1)), (0.4, 0.2, 0.2), atol=0.03)  # still lit darker


def test_a_photographs_sliver_of_an_opening_gets_no_inside() -> None:
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    sliver = gap_between(40.0, 42.0)  # two rows: 0.083 of the 24 px mouth
    dark = np.broadcast_to(np.array([0.2, 0.1, 0.1], np.float32), (8, 32, 3))
    for photo, drawn in ((0.0, True), (1.0, False)):
        region = np.full((SIZE, SIZE, 3), 0.5, np.float32)
        draw(region, gap_opening(m, sliver, CORNERS, 1.0, photo=photo), dark)
        assert (np.abs(region - 0.5).max() > 0.05) == drawn
    assert sliver_share(SLIVER[0]) == 0.0 and sliver_share(SLIVER[1]) == 1.0
    assert 0.0 < sliver_share(sum(SLIVER) / 2) < 1.0


def lip_below_an_opening(rim_rows: slice | None) -> np.ndarray:
    """A magnified region (4 px a crop px, crop row y at region row 4y): the opening's dark inside down to the gap's
    bottom edge (crop row 45.5, `gap_between(36, 46)`), a lip below it, and a dark rim over ``rim_rows``."""
    region = np.full((4 * SIZE, 4 * SIZE, 3), 0.6, np.float32)
    region[4 * 36 : 182] = 0.15
    if rim_rows is not None:
        region[rim_rows] = 0.05
    return region


def test_an_openings_bottom_edge_goes_past_the_dark_rim_the_lower_lip_carries() -> None:
    m = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])
    opening = gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0)
    moved = past_lip_rims(lip_below_an_opening(slice(182, 186)), opening)  # a rim a crop px wide
    # to the rim's lower edge (region row 185.5: crop row 46.375), to the search's step
    np.testing.assert_allclose(moved.bottom, 46.375, atol=0.1)
    assert np.array_equal(moved.columns, opening.columns)
    shadowed = lip_below_an_opening(slice(182, 186))
    shadowed[187:] = 0.05  # the shadow under a thin lower lip, within the search's reach: the edge stops at the lip
    np.testing.assert_allclose(past_lip_rims(shadowed, opening).bottom, 46.375, atol=0.1)
    # a rim in one column alone moves the edge a little over its neighbours, not a notch of its own (moved column by
    # column, a narrow opening's edge zigzags and the strip's teeth with it)
    notched = lip_below_an_opening(None)
    column = int(opening.columns[len(opening.columns) // 2])
    notched[182:186, 4 * column : 4 * column + 4] = 0.05
    down = past_lip_rims(notched, opening).bottom - opening.bottom
    assert down.max() < 0.5 / RIM_COLUMNS + 0.1 and np.count_nonzero(down > 1e-9) >= 3
    # no rim, one past the search's reach, or no lighter lip below it: the edge stays
    for region in (lip_below_an_opening(None), lip_below_an_opening(slice(4 * 48, 4 * 49)),
                   np.full((4 * SIZE, 4 * SIZE, 3), 0.1, np.float32)):
        assert np.array_equal(past_lip_rims(region, opening).bottom, opening.bottom)


def test_an_openings_top_edge_goes_past_the_upper_lips_rim_as_one_curve() -> None:
    m = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])
    opening = gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0)
    edge = 4 * float(opening.top.mean())  # region row of the top edge
    region = np.full((4 * SIZE, 4 * SIZE, 3), 0.6, np.float32)  # the upper lip
    region[int(edge) - 2 :] = 0.15  # the inside, and a dark rim half a crop px above the edge
    moved = past_lip_rims(region, opening, reach=0.0)
    np.testing.assert_allclose(moved.top, opening.top - 0.6, atol=0.1)  # to the lip above the rim, to the step
    assert np.array_equal(moved.bottom, opening.bottom)
    # a rim in one column alone moves the edge a little over its neighbours, not a step of its own
    region = np.full((4 * SIZE, 4 * SIZE, 3), 0.6, np.float32)
    region[int(edge) + 4 :] = 0.15  # the inside starts below the edge: no rim
    column = int(opening.columns[len(opening.columns) // 2])
    region[int(edge) - 2 : int(edge) + 4, 4 * column : 4 * column + 4] = 0.05
    up = opening.top - past_lip_rims(region, opening, reach=0.0).top
    assert up.max() < 0.5 / RIM_COLUMNS + 0.1 and np.count_nonzero(up > 1e-9) >= 3
    # no lighter lip within the reach: the edge stays
    dark = np.full((4 * SIZE, 4 * SIZE, 3), 0.1, np.float32)
    assert np.array_equal(past_lip_rims(dark, opening).top, opening.top)


def test_no_amount_or_no_gap_draws_nothing() -> None:
    region = np.random.default_rng(0).random((SIZE, SIZE, 3)).astype(np.float32)
    before = region.copy()
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    draw(region, gap_opening(m, gap_between(36.0, 46.0), CORNERS, 0.0), striped_strip())
    draw(region, gap_opening(m, np.zeros((SIZE, SIZE), np.float32), CORNERS, 1.0), striped_strip())
    assert np.array_equal(region, before)


def test_a_magnified_crop_is_drawn_at_the_frames_own_pixels() -> None:
    """A crop pixel spanning four region pixels: the strip's edge lands within a region pixel, not a crop pixel."""
    region = np.full((4 * SIZE, 4 * SIZE, 3), 0.5, np.float32)
    m = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])
    draw(region, gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0), striped_strip())
    column = region[:, 4 * 32, 0]
    white, black = np.flatnonzero(column > 0.95), np.flatnonzero(column < 0.05)
    assert len(white) > 10 and len(black) > 10
    assert black.min() - white.max() <= 2  # from white to black within two frame pixels, not a crop pixel's four


def test_the_gaps_edges_are_sharp_at_the_frames_pixels_where_the_lips_open_whole() -> None:
    """The strip's edge against the picture above the gap: within a frame pixel where the column opens whole, over
    about a crop pixel's four where it barely opens (a sharp edge at a faint gap would be a line)."""
    m = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])
    def rise(weight: float) -> int:
        region = np.full((4 * SIZE, 4 * SIZE, 3), 0.5, np.float32)
        draw(region, gap_opening(m, gap_between(36.0, 46.0, weight), CORNERS, 1.0), striped_strip())
        change = region[:, 4 * 32, 0] - 0.5
        column = change[120:160] / change[4 * 38]  # rows about the top edge at 4 * 35.5, against the white inside
        return int(np.count_nonzero((column > 0.02) & (column < 0.98)))
    assert rise(1.0) <= 1
    assert rise(0.02) >= 3


def test_the_interior_fades_in_with_the_faces_magnification() -> None:
    def at(scale: float) -> float:
        return amount_for(np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]]))
    assert at(0.5) == 0.0 and at(0.25) == 0.0 and at(0.125) == pytest.approx(1.0) and at(0.05) == 1.0
    assert 0.0 < at(0.2) < at(0.15) < 1.0


def test_the_shipped_strips_cover_the_expressions_that_open_the_mouth() -> None:
    interior = MouthInterior.load()
    assert set(interior.strips) == set(OPENING)
    assert interior.inside_for("sad") is None
    assert interior.inside_for("happy") is None and interior.inside_for({"happy": 0.7, "angry": 0.3}) is None
    surprised = interior.inside_for("surprised")
    assert surprised is not None and surprised.strip is interior.strips["surprised"]
    mix = interior.inside_for("happy=0.6,disgusted=0.1,fearful=0.3", intensity=0.5)
    assert mix is not None and mix.strip is interior.strips["fearful"] and mix.weight == pytest.approx(0.15)


def test_a_broken_strips_file_is_refused_with_its_path(tmp_path) -> None:
    bad = tmp_path / "interior.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"interior\.npz"):
        MouthInterior.load(bad)
    flat = tmp_path / "flat.npz"
    np.savez(flat, surprised=np.zeros((4, 4), np.uint8))
    with pytest.raises(ModelError, match="HxWx3"):
        MouthInterior.load(flat)
    assert STRIPS_FILE.is_file()


def test_a_render_is_unrolled_between_its_inner_lip_contours() -> None:
    """A picture whose channels are its own x and y: each strip pixel says where it was read."""
    ys, xs = np.mgrid[0:200, 0:300].astype(np.float32)
    picture = np.stack([xs, ys, np.zeros_like(xs)], axis=-1)
    points = np.zeros((68, 2))
    points[60], points[64] = (100.0, 100.0), (200.0, 100.0)
    points[61:64] = [(125.0, 95.0), (150.0, 95.0), (175.0, 95.0)]  # upper inner lip 5 px above the corners' line
    points[65:68] = [(175.0, 115.0), (150.0, 115.0), (125.0, 115.0)]  # lower 15 px below
    strip = unrolled(picture, points, shape=(20, 100))
    middle = strip[:, 50]
    np.testing.assert_allclose(middle[:, 0], 150.5, atol=0.01)  # column 50 of 100: half-way between the corners
    np.testing.assert_allclose(middle[0, 1], 95.0 + 0.5 / 20 * 20, atol=0.01)
    np.testing.assert_allclose(middle[-1, 1], 115.0 - 0.5 / 20 * 20, atol=0.01)
    assert np.all(np.diff(strip[:, 50, 1]) > 0)


def test_the_medoid_is_the_strip_nearest_the_others() -> None:
    pattern = np.indices((4, 8)).sum(axis=0)[..., None] % 2 * np.ones(3, np.float32)  # a checkerboard
    # a pattern growing in contrast, each strip in its own colour (taken away): the middle contrast is the medoid
    strips = [pattern * a + colour for a, colour in ((0.0, 0.1), (1.0, 0.7), (2.0, 0.0), (4.0, 0.3))]
    assert medoid(strips) == 2


def test_a_strip_is_white_balanced_on_its_teeth() -> None:
    strip = np.full((20, 40, 3), (0.3, 0.1, 0.1), np.float32)  # a warm-lit render: red gums
    strip[:5] = (0.9, 0.7, 0.5)  # and its teeth, yellow under the same light
    gains = teeth_balance(strip)
    teeth = strip[0, 0] * gains
    np.testing.assert_allclose(teeth, teeth.mean(), atol=1e-6)  # grey
    np.testing.assert_allclose(teeth @ np.asarray(REC709_LUMA), np.asarray((0.9, 0.7, 0.5)) @ np.asarray(REC709_LUMA),
                               atol=1e-6)  # at their own luma
    assert (strip[10, 10] * gains)[0] < 0.3  # the gums still red, less so


def test_the_renderer_draws_the_inside_of_a_large_mouth_that_shows_it_only() -> None:
    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.renderer import ExpressionRenderer

    drawn = ExpressionRenderer(InferenceConfig(backend="cpu"))
    plain = ExpressionRenderer(InferenceConfig(backend="cpu"))
    plain.interior = None
    pixels, box = face_frame(1200, 900, 640)
    faces = [Face(box=box)]
    for expression, shows in (("disgusted", True), ("sad", False)):
        a = drawn.apply_array(pixels, faces=faces, expression=expression)
        b = plain.apply_array(pixels, faces=faces, expression=expression)
        differ = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 2
        if not shows:
            assert np.array_equal(a, b)
            continue
        assert differ.sum() > 500
        x, y, w, h = (int(v) for v in box)
        rows, cols = np.nonzero(differ)
        assert rows.min() > y + 0.55 * h and rows.max() < y + h and cols.min() > x and cols.max() < x + w
        assert rows.max() - rows.min() < 0.15 * h  # the gap between the lips, not the lips or the jaw
    assert ExpressionRenderer(InferenceConfig(backend="cpu", lip_split=False)).interior is None


def test_every_shipped_model_file_goes_into_the_wheel() -> None:
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["reggan_plugin"]
    for path in (root / "reggan_plugin" / "models").iterdir():
        name = f"models/{path.name}"
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} is not in the wheel's package data"


def blurred_edges(blur: float, size: int = 96) -> np.ndarray:
    """A grey picture of vertical step edges every 24 px, each blurred by a Gaussian of std ``blur`` px."""
    from math import erf, sqrt

    x = np.arange(size) + 0.5
    profile = sum(np.array([0.5 * (1 + erf((xi - edge) / (sqrt(2) * blur))) for xi in x]) * (-1) ** k
                  for k, edge in enumerate(range(12, size, 24)))
    return np.tile(0.3 + 0.4 * np.abs(profile), (size, 1)).astype(np.float32)


def test_a_pictures_softness_is_the_blur_of_its_edges() -> None:
    for blur in (0.8, 1.5, 3.0):
        assert softness(blurred_edges(blur)) == pytest.approx(blur, rel=0.15)
    assert softness(np.full((20, 20), 0.5, np.float32)) == 0.0  # no edge to read


def test_the_inside_is_drawn_as_soft_as_the_picture_about_the_mouth() -> None:
    m = np.array([[1.0 / 6, 0.0, 0.0], [0.0, 1.0 / 6, 0.0]])  # a crop px spans six frame px: drawn at the frame's own
    picture = np.repeat(blurred_edges(3.0, 384)[..., None], 3, axis=2)
    assert mouth_softness(picture, m, CORNERS) == pytest.approx(3.0, rel=0.15)

    def edge_energy(blur: float) -> float:
        region = np.full((SIZE * 6, SIZE * 6, 3), 0.3, np.float32)
        draw(region, gap_opening(m, gap_between(36.0, 46.0), CORNERS, 1.0), striped_strip(), blur=blur)
        return float((np.diff(region[:, 150], axis=0) ** 2).sum())

    assert edge_energy(0.0) == pytest.approx(edge_energy(STRIP_SOFTNESS))  # as soft as the strips: drawn as it is
    assert edge_energy(3.0) < 0.5 * edge_energy(0.0)


def test_an_opening_covers_each_pixel_as_much_as_it_opens_there() -> None:
    """An opening of no height draws nothing; one a fraction of a pixel high covers that fraction of the pixel, and a
    thick one the whole pixel."""
    from reggan_plugin.edit.interior import Opening

    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    columns = np.arange(22.0, 43.0)

    def drawn(top: float, bottom: float) -> np.ndarray:
        region = np.zeros((SIZE, SIZE, 3), np.float32)
        # a paint of two colours in alternate columns: a plain strip, lit as the paint's mean, changes each pixel
        region[30:50, 0::2], region[30:50, 1::2] = (0.8, 0.2, 0.5), (0.4, 0.1, 0.25)
        before = region.copy()
        opening = Opening(m, columns, np.full_like(columns, top), np.full_like(columns, bottom),
                          np.ones_like(columns), CORNERS, 1.0)
        draw(region, opening, np.ones((32, 128, 3), np.float32))
        return np.abs(region - before).sum(axis=2)[:, 26:40]

    assert drawn(40.0, 40.0).max() == 0.0  # fails with the ramps multiplied: a quarter of a pixel either side
    thin, thick = drawn(39.85, 40.15), drawn(36.0, 44.0)
    assert thin[40].mean() == pytest.approx(0.3 * thick[40].mean(), rel=0.05)  # pixel rows centred on integers
    assert thick[37:43].min() > 0.1 and thin[:40].max() == 0.0 and thin[41:].max() == 0.0


@pytest.mark.slow  # large faces through the bundled model: the fast tier stays under 2 minutes
def test_intensity_zero_leaves_a_large_face_as_it_was() -> None:
    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.renderer import ExpressionRenderer

    pixels, box = face_frame(1200, 900, 640)
    for subject in ("render", "photo"):
        renderer = ExpressionRenderer(InferenceConfig(backend="cpu", subject=subject))
        for expression in ("happy", "surprised"):
            out = renderer.apply_array(pixels, faces=[Face(box=box)], expression=expression, intensity=0.0)
            assert np.array_equal(out, pixels), (subject, expression)




@pytest.mark.slow  # 600 px faces, sharp and soft, as renders and photographs
def test_a_smile_draws_no_inside_while_an_opened_mouth_does() -> None:
    """A smile on a large face, sharp or soft, as a render or a photograph, is pasted bit for bit as with no interior:
    no drawn strip between its lips; an opened mouth's inside is drawn on both pictures."""
    from PIL import Image, ImageFilter

    from benchmarks.face_sizes import face_frame
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import Face
    from reggan_plugin.renderer import ExpressionRenderer

    sharp, box = face_frame(960, 720, 600, noise=2.0)
    soft = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(4)))

    def changed(renderer: ExpressionRenderer, pixels: np.ndarray, expression: str) -> np.ndarray:
        """|with the interior - without it|, per pixel, largest over the channels."""
        interior = renderer.interior
        assert interior is not None
        drawn = renderer.apply_array(pixels, faces=[Face(box=box)], expression=expression)
        renderer.interior = None
        try:
            plain = renderer.apply_array(pixels, faces=[Face(box=box)], expression=expression)
        finally:
            renderer.interior = interior
        return np.abs(drawn.astype(int) - plain.astype(int)).max(axis=2)

    for subject in ("render", "photo"):
        renderer = ExpressionRenderer(InferenceConfig(backend="cpu", subject=subject))
        for pixels in (sharp, soft):
            assert changed(renderer, pixels, "happy").max() == 0, subject
            assert (changed(renderer, pixels, "surprised") > 8).sum() > 200, subject
