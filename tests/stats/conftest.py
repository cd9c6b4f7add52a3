"""Fixtures for the statistics tests: the released sandbox results, unpacked into a temp dir.

The shared data sits next to the repository (``../shared``, as on every developer machine and in
CI), so a missing tarball is a broken set-up and fails the tests that need it; it is not skipped.
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SANDBOX_TARBALL = (REPO.parent / "shared" / "data" / "aar-baselines"
                   / "aar-cache-results-chat-math.tar.gz")


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory) -> Path:
    """The sandbox ``cache_results`` directory (fails when ../shared lacks the data)."""
    if not SANDBOX_TARBALL.is_file():
        pytest.fail(f"shared sandbox data not found at {SANDBOX_TARBALL} (expected ../shared "
                    "next to the repository)")
    root = tmp_path_factory.mktemp("aar")
    with tarfile.open(SANDBOX_TARBALL) as tar:
        tar.extractall(root, filter="data")
    return root / "cache_results"
