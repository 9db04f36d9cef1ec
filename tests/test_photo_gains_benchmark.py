"""The photo-gains benchmark: its rule, its halves, and a run on real photos."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.photo_gains import CENTRE, IDENTITY_LIMIT, Row, Score, choose, chosen_half, measure, write
from reggan_plugin.edit.calibration import Gains


def _row(name: str, p: float, identity: float) -> Row:
    return Row(name, Gains(), Score(p, identity), Score(0.0, 0.0), Score(0.0, 0.0))


def test_the_rule_takes_the_strongest_smile_that_keeps_the_person_on_the_chosen_half() -> None:
    rows = [_row("weak", 0.6, 0.25), _row("strong", 0.9, IDENTITY_LIMIT + 0.01), _row("kept", 0.8, IDENTITY_LIMIT)]
    chosen = choose(rows)
    assert chosen is not None and chosen.name == "kept"
    assert choose([_row("strong", 0.9, 0.4)]) is None


def test_the_halves_split_people_by_identity_alone() -> None:
    names = [f"london-faces/{i:03d}" for i in range(1, 71)]
    first = [n for n in names if chosen_half(n)]
    assert 25 <= len(first) <= 45  # about half, decided by the name alone
    assert [chosen_half(n) for n in names] == [chosen_half(n) for n in names]


@pytest.mark.slow  # several renders with the bundled model: the fast tier stays under 2 minutes
def test_on_real_photos_a_candidates_gains_are_measured_on_both_halves(london_faces: Path, tmp_path: Path) -> None:
    rows = measure(london_faces, (("none", Gains()), ("centre", CENTRE)), limit=2)
    none, centre = rows
    for row in rows:
        for score in (row.chosen_half, row.check_half, row.everyone):
            assert 0.0 <= score.p <= 1.0 and 0.0 <= score.identity < 0.6
    assert none.everyone != centre.everyone  # the gains change the edit
    text = write(rows, tmp_path, london_faces).read_text()
    rows_named = {line.split("|")[1].strip(" *") for line in text.splitlines() if line.startswith("| ")}
    assert {"none", "centre"} <= rows_named and ("Chosen by the rule" in text or "No candidate" in text)
