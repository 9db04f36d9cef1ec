"""Where the runtime keeps what it derives on this machine (TensorRT engines, preview graphs)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_root() -> Path:
    """$REGGAN_CACHE_DIR, else the platform's user cache dir + reggan-plugin."""
    override = os.environ.get("REGGAN_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "reggan-plugin"
