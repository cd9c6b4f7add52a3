"""`make test`'s scheduling holds: under ``--dist loadgroup`` every test of a file runs on one
worker (tests/conftest.py groups them), so a module's expensive fixtures are built once.

pytest 9.2 with pytest-xdist 3.8 silently dropped the grouping (xdist appends the group to
``Item._nodeid``, which pytest 9.2 no longer reads): every test was scheduled alone, the Prefect
pool cluster of tests/flows/test_pool.py was built on both workers and `make test` took 28 min
instead of 10. pyproject.toml pins pytest below 9.2; this test fails if the grouping breaks again.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent
RECORDER = """import os, pytest
@pytest.mark.parametrize("i", range(8))
def test_records_its_worker(i):
    with open(os.environ["RECORD_TO"], "a") as handle:
        handle.write(f"{__name__} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""


def test_a_files_tests_share_one_worker(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    shutil.copy(TESTS / "conftest.py", project / "tests" / "conftest.py")
    for name in ("test_first", "test_second", "test_third"):
        (project / "tests" / f"{name}.py").write_text(RECORDER)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "--basetemp", str(tmp_path / "base"), "tests"],
        cwd=project, capture_output=True, text=True, timeout=300,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
             "RECORD_TO": str(tmp_path / "workers.txt")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    workers: dict[str, set[str]] = defaultdict(set)
    for line in (tmp_path / "workers.txt").read_text().splitlines():
        module, worker = line.split()
        workers[module].add(worker)
    assert sorted(workers) == ["test_first", "test_second", "test_third"]
    assert all(len(ran_on) == 1 for ran_on in workers.values()), dict(workers)
