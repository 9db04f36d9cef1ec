"""Where the shared data lives (photographs and the face model that fit and judge, never shipped): one setting,
$REGGAN_SHARED_DATA, else the ``shared/data`` folder beside the checkout."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("REGGAN_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
