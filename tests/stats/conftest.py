"""Fixtures for the statistics tests: the released sandbox results, unpacked into a temp dir."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

SANDBOX_TARBALL = Path("/work/shared/data/aar-baselines/aar-cache-results-chat-math.tar.gz")


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory) -> Path:
    """The sandbox ``cache_results`` directory (skips when the shared data is absent)."""
    if not SANDBOX_TARBALL.is_file():
        pytest.skip(f"shared sandbox data not found at {SANDBOX_TARBALL}")
    root = tmp_path_factory.mktemp("aar")
    with tarfile.open(SANDBOX_TARBALL) as tar:
        tar.extractall(root, filter="data")
    return root / "cache_results"
