"""What a local group's worker reads and what the campaign trusts of it never pass through the
output directory, which a deployment may put on a volume other machines write
(docs/store.md: the Kubernetes deployment's `out` is on the shared claim)."""
from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

from flows.execute import run_group_subprocess
from flows.worker import ArmGroup, GroupMethod

# Stands in for flows.worker: rewrites OUT/work as a writer of the shared volume would (the
# group file before it is read, a forged result beside it), then does a worker's job from the
# file it was handed.
WORKER = textwrap.dedent("""\
    import json, os, stat, sys
    from pathlib import Path
    group_file, work = Path(sys.argv[1]), Path(sys.argv[2])
    for shown in work.glob("group-*.json"):
        forged = json.loads(shown.read_text()); forged["seeds"] = [666]
        shown.write_text(json.dumps(forged))
        shown.with_name(shown.name.replace("group-", "result-")).write_text(
            json.dumps({"runs": ["forged"], "executed": ["forged"]}))
    group = json.loads(group_file.read_text())
    mode = stat.S_IMODE(os.stat(group_file.parent).st_mode)
    Path(group["result"]).write_text(json.dumps({
        "runs": ["r"], "executed": [], "seeds_read": group["seeds"],
        "handed": str(group_file), "dir_mode": mode}))
    """)


def test_the_worker_reads_its_group_and_writes_its_result_in_a_private_directory(tmp_path):
    work = tmp_path / "out" / "work"
    group = ArmGroup(ladder="micro", rung="m0", data=None, store=str(tmp_path / "store"),
                     seeds=[3], methods=[GroupMethod(name="vanilla")],
                     engine={"ds_config": "zero0", "precision": "fp32"}, jail={}, result="")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)

    outcome = run_group_subprocess(
        group, work, command=lambda group_file: [sys.executable, str(script), str(group_file),
                                                 str(work)])

    assert outcome["seeds_read"] == [3] and outcome["runs"] == ["r"]  # not the rewritten group
    handed = Path(outcome["handed"])
    assert work not in handed.parents and outcome["dir_mode"] == 0o700
    assert not handed.parent.exists()  # removed once read
    key = group.key()
    # OUT/work holds what the worker reported, for people (the forged copy is replaced).
    assert json.loads((work / f"result-{key}.json").read_text()) == outcome
    assert (work / f"group-{key}.log").exists()
    assert stat.S_ISREG(os.lstat(work / f"group-{key}.json").st_mode)
