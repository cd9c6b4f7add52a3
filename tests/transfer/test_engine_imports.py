"""The processes that only start workers import no torch (2-3 s of CPU), and a pool's group run
no statistics or pandas either (0.8 s): each group run pays that beside the group's training."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HEAVY = ("torch", "deepspeed", "transformers")
NOT_IN_A_GROUP_RUN = (*HEAVY, "stats", "pandas", "scipy")


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_group_run_imports_no_torch_and_no_statistics():
    out = _run(f"""
        import json, sys
        from flows.standby import preload
        preload()  # what a pool's group run imports before it runs
        from flows.environment import check_environment
        from flows.execute import worker_command
        from flows.preflight import processes_problem
        from transfer import leases
        from transfer.engine.launch import launch_env, launcher_command, without_rendezvous
        without_rendezvous({{"RANK": "0", "PATH": "/bin"}})
        launch_env(2)
        launcher_command("flows.worker", ["g.json"], processes=2)
        worker_command(__import__("pathlib").Path("g.json"), 2)
        check_environment()
        processes_problem(1)
        print(json.dumps({{"heavy": [m for m in {NOT_IN_A_GROUP_RUN!r} if m in sys.modules]}}))
    """)
    assert out["heavy"] == []


def test_engine_names_load_on_first_use():
    out = _run("""
        import json, sys
        import transfer.engine as engine
        before = "torch" in sys.modules
        config = engine.EngineConfig.__name__
        after_config = "torch" in sys.modules
        train = engine.train.__name__
        try:
            engine.no_such_name
            missing = "no error"
        except AttributeError as err:
            missing = str(err)
        print(json.dumps({"before": before, "after_config": after_config, "config": config,
                          "train": train, "torch": "torch" in sys.modules,
                          "exported": sorted(engine.__all__),
                          "resolve": all(getattr(engine, n, None) is not None
                                         for n in engine.__all__),
                          "missing": missing}))
    """)
    assert (out["before"], out["after_config"], out["torch"]) == (False, False, True)
    assert (out["config"], out["train"]) == ("EngineConfig", "train")
    assert out["resolve"] and len(out["exported"]) == 10
    assert out["missing"] == "module 'transfer.engine' has no attribute 'no_such_name'"
