"""Shared test fixtures. Kept minimal and lazy: nothing here imports prefect unless a test asks."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Under pytest-xdist each worker gets its own cache root (models, features, the default store,
# the jail's code copies): two workers never build or lease the same entry, and tests that measure
# every byte of the cache (tests/security/) see only their own worker's writes. Set here, at
# import, before any of our code reads W2S_CACHE_DIR.
_CACHE = os.environ.get("W2S_CACHE_DIR") or str(Path.home() / ".cache" / "w2s-transfer")
# The jail's code copies likewise (by default they are per host, in /var/tmp, shared by every
# checkout on the machine): beside this run's own caches, which are local to the checkout.
_JAIL = os.environ.get("W2S_JAIL_CACHE_DIR") or str(Path(_CACHE) / "jail")
if os.environ.get("PYTEST_XDIST_WORKER"):
    _worker = f"xdist-{os.environ['PYTEST_XDIST_WORKER']}"
    os.environ["W2S_CACHE_DIR"] = str(Path(_CACHE) / _worker)
    _JAIL = str(Path(_JAIL) / _worker)
os.environ["W2S_JAIL_CACHE_DIR"] = _JAIL


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Prefect test server (temporary SQLite database) for the whole session.

    Started only when a test requests it, on a copy of a migrated database (~10 s; creating
    the schema takes 20 s more, and a first start on a loaded 2-core machine that did so took
    over 60 s once, and every test of that worker then errored: hence 180 s); PREFECT_HOME
    points at a temporary directory
    and analytics are off, so tests never touch the user's Prefect profile or the network.
    """
    home = tmp_path_factory.mktemp("prefect-home")
    saved = {key: os.environ.get(key)
             for key in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    import tempfile
    from unittest import mock

    import prefect.testing.utilities as harness
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings

    sys.path.insert(0, str(Path(__file__).parent / "flows"))
    from prefect_server import seed_database

    def seeded_temporary_directory() -> str:
        # The harness keeps its database in a new temporary directory; a migrated copy there
        # saves the ~20 s of creating the schema (prefect_server.template_database).
        return str(seed_database(Path(tempfile.mkdtemp()), "prefect-test.db"))

    try:
        with temporary_settings({PREFECT_HOME: str(home), PREFECT_SERVER_ANALYTICS_ENABLED: False}):
            with mock.patch.object(harness, "mkdtemp", seeded_temporary_directory):
                with harness.prefect_test_harness(server_startup_timeout=180):
                    yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Under pytest-xdist (`make test` runs two workers with --dist loadgroup), the tests of one file
# share a worker (module fixtures are built once), and so do all of tests/security/, whose
# session fixture (a lab with trained weak and ceiling runs) is expensive.
SHARED_SESSION_DIRS = ("tests/security/",)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group tests for the xdist workers (above), and skip tests marked ``gpu`` when no CUDA
    device is visible (CI and the dev box have none)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            path = item.nodeid.split("::", 1)[0]
            group = next((d for d in SHARED_SESSION_DIRS if path.startswith(d)), path)
            item.add_marker(pytest.mark.xdist_group(group))
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)
