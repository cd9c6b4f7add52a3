"""The import contracts of `make lint` catch a broken never-rule (issue 12).

The four packages are copied (sources only) with pyproject.toml into a temporary directory;
lint-imports passes on the copy, then fails once a module there breaks a rule.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "methods", "transfer", "stats", "w2s_common")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lint")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.html", "*.j2"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_project_keeps_every_contract(copy: Path) -> None:
    result = lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("stats/_probe.py", "import transfer.store\n", "stats imports nothing of ours"),
    ("stats/_probe.py", "import torch\n", "stats imports nothing of ours"),
    ("transfer/_probe.py", "from methods import registry\n", "transfer imports neither"),
    ("transfer/_probe.py", "import prefect\n", "transfer imports neither"),
    ("methods/_probe.py", "from flows import plan\n", "methods imports no flows"),
    ("w2s_common/_probe.py", "import stats\n", "w2s_common imports nothing of ours"),
    ("w2s_common/_probe.py", "from transfer import fsutil\n", "w2s_common imports nothing of ours"),
])
def test_a_broken_never_rule_fails_lint(copy: Path, module: str, line: str,
                                        contract: str) -> None:
    probe = copy / module
    probe.write_text(line)
    try:
        result = lint_imports(copy)
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout
