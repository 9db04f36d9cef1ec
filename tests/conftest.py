"""Shared fixtures. The shared data folder is found through one setting, REGGAN_SHARED_DATA."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What the runtime derives and caches per user (preview graphs, engines) goes to a temp dir, not ~/.cache."""
    os.environ["REGGAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("user-cache"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    # Imported here: the installed-add-on run loads this file without the repository on its path.
    from training.shared_data import shared_data_dir

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


def make_tiny_model(path: Path, seed: int = 0, exposure_reference: float = 0.0,
                    expressions: tuple[str, ...] | None = None, mix: str = "maps") -> Path:
    """Export a randomly initialised tiny RegGAN (64 px; TINY's expressions or those given) to `path`; it visibly
    changes faces (with ``mix`` "carried", its expressions' flows move them too)."""
    torch = pytest.importorskip("torch", reason="torch is needed to build test models (pip install .[export])")
    import dataclasses

    from export.onnx_export import export_model
    from training.config import TINY
    from training.models import RegGAN

    torch.manual_seed(seed)
    model = RegGAN(dataclasses.replace(TINY, image_size=64,  # 64: room for the paste-back feather
                                       exposure_reference=exposure_reference,
                                       expressions=expressions or TINY.expressions, mix=mix))
    with torch.no_grad():
        model.stage1.bias.normal_(0.0, 0.2)
        if mix == "carried":  # a carried mix differs from mixed maps only where the flows differ
            model.stage1.flow.normal_(0.0, 0.03)
    return export_model(model, path, provenance={"training": "random init (tests)", "iterations": 0})


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny exported RegGAN ONNX artifact (64 px, 7 expressions) for runtime tests."""
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_onnx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backend tests' model: `tiny_model` (an exported RegGAN) where torch can export it, else the
    onnx.helper model of test_backends (no torch needed)."""
    try:
        return Path(request.getfixturevalue("tiny_model"))
    except pytest.skip.Exception:  # no torch to export it
        from test_backends import build_tiny_onnx

        return build_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")
