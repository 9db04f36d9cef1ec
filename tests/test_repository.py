"""What the repository carries: every tracked file together stays under 50 MiB (the bundled models are most of it)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 50 * 1024 * 1024


def test_tracked_files_stay_under_50_mib() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no tracked files to weigh")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    sizes = {name: (REPO / name).stat().st_size for name in listed.decode().split("\0")
             if name and (REPO / name).is_file()}
    total = sum(sizes.values())
    largest = ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in
                        sorted(sizes.items(), key=lambda item: -item[1])[:3])
    assert total < LIMIT_BYTES, f"tracked files weigh {total / 2**20:.1f} MiB (largest: {largest})"
