"""The photo-gains benchmark: its rule, its halves, and a run on real photos."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.photo_gains import (
    IDENTITY_LIMIT,
    LIPS_LIMIT,
    LOWER,
    References,
    Row,
    Score,
    choose,
    measure,
    write,
)
from reggan_plugin.edit.calibration import Gains
from training.data.split import in_choosing_half


def _row(name: str, p: float, identity: float, lips: float = 1.0) -> Row:
    return Row(name, Gains(), Score(p, identity, lips), Score(0.0, 0.0, 0.0), Score(0.0, 0.0, 0.0))


def test_the_rule_takes_the_least_change_that_is_as_happy_as_the_real_smiles_on_the_chosen_half() -> None:
    refs = References(neutral=_row("neutral", 0.1, 0.0, lips=2.0), real=_row("real smiles", 0.45, 0.2, lips=0.0))
    lips_off = 2.0 * LIPS_LIMIT + 0.01
    rows = [_row("too weak", 0.44, 0.20), _row("strong", 0.9, IDENTITY_LIMIT + 0.01), _row("happier", 0.7, 0.28),
            _row("as happy", 0.46, 0.25), _row("lips off", 0.5, 0.22, lips=lips_off)]
    chosen = choose(rows, refs)
    assert chosen is not None and chosen.name == "as happy"  # happier is not better: the least change that is happy
    assert choose([_row("strong", 0.9, 0.4), _row("too weak", 0.3, 0.2), _row("lips off", 0.5, 0.2, lips=lips_off)],
                  refs) is None


def test_the_halves_split_people_by_identity_alone() -> None:
    names = [f"london-faces/{i:03d}" for i in range(1, 71)]
    first = [n for n in names if in_choosing_half(n)]
    assert 25 <= len(first) <= 45  # about half, decided by the name alone
    assert [in_choosing_half(n) for n in names] == [in_choosing_half(n) for n in names]


@pytest.mark.slow  # several renders with the bundled model: the fast tier stays under 2 minutes
def test_on_real_photos_a_candidates_gains_are_measured_on_both_halves(london_faces: Path, tmp_path: Path) -> None:
    rows, refs = measure(london_faces, (("none", Gains()), ("lower face", LOWER)), limit=2)
    none, lower = rows
    for row in (*rows, refs.neutral, refs.real):
        for score in (row.chosen_half, row.check_half, row.everyone):
            assert 0.0 <= score.p <= 1.0 and 0.0 <= score.identity < 0.6 and 0.0 <= score.lips < 10.0
    assert none.everyone != lower.everyone  # the gains change the edit
    assert refs.real.everyone.lips == 0.0 and refs.neutral.everyone.identity == 0.0  # each judged against itself
    assert refs.neutral.everyone.lips > 0.0 and refs.real.everyone.identity > 0.0
    text = write(rows, refs, tmp_path, london_faces).read_text()
    rows_named = {line.split("|")[1].strip(" *") for line in text.splitlines() if line.startswith("| ")}
    assert {"none", "lower face", "neutral (no edit) (reference)", "real smiles (reference)"} <= rows_named
    assert "Chosen by the rule" in text or "No candidate" in text
