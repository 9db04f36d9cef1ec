"""Shared fixtures. The shared data folder is found through one setting, REGGAN_SHARED_DATA."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("REGGAN_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set REGGAN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def ict_model_path(shared_data: Path) -> Path:
    path = shared_data / "ict-face-model" / "ict_face_model.npz"
    if not path.is_file():
        pytest.skip(f"ICT face model not found at {path}")
    return path


@pytest.fixture(scope="session")
def london_faces(shared_data: Path) -> Path:
    path = shared_data / "london-faces"
    if not (path / "neutral").is_dir():
        pytest.skip(f"London faces not found at {path}")
    return path
