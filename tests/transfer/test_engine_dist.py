"""One process versus two under the deepspeed launcher, and the launcher helper itself.

Tolerance: both runs see the same batches in the same order, so the only difference is the
order of floating-point summation (two half-batch gradients averaged by an all-reduce instead of
one full-batch gradient): float32 rounding, about 1e-7 per value, carried through 40 Adam
steps. Measured max |p1 - p2| was 1.2e-7. We allow 1e-5; a sharding, shuffling or loss-scaling
mistake changes whole batches and moves probabilities by 1e-3 or more (a different seed moves
them by over 1e-1, checked below so the tolerance stays discriminative).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from transfer.engine import launch_module, launcher_command
from transfer.engine.selfcheck import run as selfcheck_run

TOLERANCE = 1e-5


@pytest.mark.parametrize("ds_config", ["zero0", "zero2"])
def test_two_processes_match_one(tmp_path, ds_config):
    out = tmp_path / "two.npy"
    result = launch_module("transfer.engine.selfcheck",
                           ["--out", str(out), "--seed", "0", "--ds-config", ds_config],
                           processes=2, timeout=240, capture_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dist_world_size=2" in result.stdout + result.stderr
    two = np.load(out)
    one = selfcheck_run(seed=0, ds_config=ds_config)
    assert two.shape == one.shape
    np.testing.assert_allclose(two, one, rtol=0, atol=TOLERANCE)
    assert np.abs(selfcheck_run(seed=1, ds_config=ds_config) - one).max() > 1000 * TOLERANCE


def test_launcher_command_shape():
    argv = launcher_command("pkg.mod", ["--x", "1"], processes=3, master_port=12345)
    assert argv[:4] == [sys.executable, "-u", "-m", "deepspeed.launcher.runner"]
    assert argv[argv.index("--num_gpus") + 1] == "3"
    assert argv[argv.index("--master_port") + 1] == "12345"
    assert argv[-4:] == ["--module", "pkg.mod", "--x", "1"]
    with pytest.raises(ValueError):
        launcher_command("pkg.mod", processes=0)


def test_failing_rank_gives_nonzero_exit(tmp_path):
    result = launch_module("transfer.engine.selfcheck", [], processes=2,
                           timeout=120, capture_output=True)
    assert result.returncode != 0
    assert "required: --out" in result.stderr
