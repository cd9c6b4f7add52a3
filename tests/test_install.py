"""The installed package works: a wheel built from the sources, installed non-editable into a
fresh environment, trains arms from a directory outside the repository.

The fresh venv reuses the test venv's dependencies through a ``.pth`` line naming its
site-packages: a directory added that way is not a site directory, so its own ``.pth`` files (the
editable install's finder, which maps the packages to this checkout) are never run. The test
checks that every project module the environment imports lives in the fresh venv.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from: the files infra/Dockerfile copies into the image.
SOURCES = ("pyproject.toml", "README.md", "flows", "methods", "transfer", "stats",
           "w2s_common")
RENDEZVOUS_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "LOCAL_SIZE",
                   "MASTER_ADDR", "MASTER_PORT")

pytestmark = pytest.mark.slow


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding the project's wheel (non-editable) and, through a ``.pth`` line, the test
    venv's dependencies. Returns the venv's directory."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(root / "dist"), str(src)], cwd=root)
    wheel = next((root / "dist").glob("w2s_transfer-*.whl"))

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_dir = Path(_run([str(python), "-c", purelib], cwd=root).stdout.strip())
    (site_dir / "test-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The test venv's pip, run by the fresh interpreter, installs into the fresh venv (its scheme
    # and the scripts' shebang follow sys.prefix); --ignore-installed leaves the editable
    # install it can see untouched.
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
          "--no-compile", "-q", str(wheel)], cwd=root)
    return env_dir


def _child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in RENDEZVOUS_VARS and k not in ("PYTHONPATH", "TORCH_EXTENSIONS_DIR")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_the_installed_modules_come_from_the_fresh_venv(installed, tmp_path):
    probe = ("import json, importlib, sys\n"
             "mods = ['flows', 'methods', 'transfer', 'stats', 'w2s_common', 'flows.cli',\n"
             "        'transfer.engine.dist', 'transfer.engine.launch', 'flows.report.render']\n"
             "from transfer.engine.config import DS_CONFIG_DIR\n"
             "from transfer.engine.dist import default_extensions_dir\n"
             "from transfer.engine.launch import launch_env\n"
             "from flows.plan import PLAN_DIR\n"
             "from transfer.ladder import LADDER_DIR\n"
             "print(json.dumps({'modules': [importlib.import_module(m).__file__ for m in mods],\n"
             "                  'data': [str(DS_CONFIG_DIR), str(PLAN_DIR), str(LADDER_DIR)],\n"
             "                  'ops': str(default_extensions_dir()), 'path': sys.path,\n"
             "                  'rank_pythonpath': launch_env(2).get('PYTHONPATH')}))\n")
    env = {**_child_env(tmp_path), "W2S_CACHE_DIR": str(tmp_path / "cache")}
    found = json.loads(_run([str(installed / "bin" / "python"), "-c", probe], cwd=tmp_path,
                            env=env).stdout)
    for path in found["modules"] + found["data"]:
        assert Path(path).resolve().is_relative_to(installed.resolve()), path
    assert not any(Path(p).resolve() == REPO for p in found["path"] if p)
    # DeepSpeed's op cache defaults to the cache directory, not a path beside the sources.
    assert Path(found["ops"]) == tmp_path / "cache" / "torch_extensions"
    # Launched ranks run the same interpreter, which finds the installed packages by itself.
    assert found["rank_pythonpath"] is None


def _check_arm(out: Path, arm: str, rung: str) -> None:
    predictions = pd.read_parquet(out / "predictions.parquet")
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(predictions) == metrics["n"] > 0 and predictions["prob"].between(0, 1).all()
    assert (metrics["arm"], metrics["rung"]) == (arm, rung)


def test_an_arm_of_the_tiny_ladder_runs_from_the_installed_package(installed, tmp_path):
    # A relative --out and --store, as a user in their own directory would type them.
    done = _run([str(installed / "bin" / "w2s-transfer"), "run-arm", "--ladder", "tiny",
                 "--rung", "r0", "--arm", "weak", "--seed", "0", "--out", "out",
                 "--store", "store"], cwd=tmp_path, env=_child_env(tmp_path), timeout=900)
    assert "weak rung=r0 seed=0 accuracy=" in done.stdout
    _check_arm(tmp_path / "out", "weak", "r0")


def test_the_deepspeed_launcher_runs_ranks_of_the_installed_package(installed, tmp_path):
    done = _run([str(installed / "bin" / "w2s-transfer"), "run-arm", "--ladder", "micro",
                 "--rung", "m0", "--arm", "weak", "--seed", "0", "--processes", "2",
                 "--out", "out", "--store", "store"],
                cwd=tmp_path, env=_child_env(tmp_path), timeout=900)
    assert "weak rung=m0 seed=0 accuracy=" in done.stdout
    _check_arm(tmp_path / "out", "weak", "m0")
