"""Starting the engine's process group compiles no DeepSpeed op (a fresh machine's first run
would otherwise spend minutes building the CPU shared-memory op that training never uses)."""
from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
from transfer.engine.dist import ensure_process_group
print(ensure_process_group())
import deepspeed.comm
print(deepspeed.comm.comm.cdb.shm_comm_op)
"""


def test_the_process_group_starts_without_building_an_op(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["TORCH_EXTENSIONS_DIR"] = str(tmp_path / "ops")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-2:] == ["(0, 1)", "None"], done.stdout
    assert not (tmp_path / "ops").exists() or not any((tmp_path / "ops").iterdir())
