"""The processes that only start workers import no torch (2-3 s of CPU), and a pool's group run
no statistics or pandas either (0.8 s): each group run pays that beside the group's training.
The campaign's parent (resolving methods, reading datasets, counting the ladder's parameters)
imports neither torch nor transformers: 3 s of every validate, in the part no worker shortens."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HEAVY = ("torch", "deepspeed", "transformers")
NOT_IN_A_GROUP_RUN = (*HEAVY, "stats", "pandas", "scipy")
NOT_IN_THE_PARENT = (*HEAVY, "tokenizers")


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


def test_the_campaign_parent_imports_no_torch_and_no_transformers(tmp_path):
    from transfer.data.synthetic import synthetic_task

    task = synthetic_task(seed=1, n_train_label=20, n_train_unlabel=20, n_test=20, n_corpus=40)
    for split, rows in task.splits.items():
        (tmp_path / f"{split}.jsonl").write_text("".join(
            json.dumps({"id": ex.id, "text": ex.text, "label": ex.label}) + "\n" for ex in rows))
    out = _run(f"""
        import json, sys
        from flows.validate import validate_flow  # the parent's flow and what it imports
        from methods.registry import builtin_names
        from methods.resolve import method_function
        from transfer.data import load_task
        from transfer.ladder import builtin_ladder_names, load_ladder, model_params
        for name in builtin_names():
            if name != "external":  # needs a command; it runs in the jail anyway
                method_function(name, None)
        load_task({str(tmp_path)!r})
        counts = [model_params(model) for name in builtin_ladder_names()
                  for rung in load_ladder(name).rungs for model in (rung.weak, rung.strong)]
        print(json.dumps({{"heavy": [m for m in {NOT_IN_THE_PARENT!r} if m in sys.modules],
                          "methods": len(builtin_names()), "counts": len(counts)}}))
    """)
    assert out["heavy"] == []
    assert out["methods"] >= 4 and out["counts"] >= 6


def test_deepspeed_logs_on_stderr_never_into_a_command_s_stdout() -> None:
    """New-user review 2026-12-06: DeepSpeed's logger writes to the stdout it finds when it is
    imported, so `audit` printed "[WARNING] ... Setting accelerator to CPU" into its data."""
    probe = ("from transfer.engine.dist import import_deepspeed; import logging; "
             "import_deepspeed(); logging.getLogger('DeepSpeed').warning('probe line')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "probe line" in done.stderr, (done.stdout, done.stderr)
