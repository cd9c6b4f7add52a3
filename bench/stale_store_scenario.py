"""Issue 9's stale-store scenario on a throw-away copy of a tree.

    git archive <commit> | tar -x -C /tmp/tree && ln -s $PWD/.venv /tmp/tree/.venv
    OMP_NUM_THREADS=1 .venv/bin/python bench/stale_store_scenario.py /tmp/tree

Validates the micro plan narrowed to rung m0 and 2 seeds, edits ``methods/builtin/aux_conf.py``
of TREE to return 1 - p, copies the first run's store back (what CI's cache ``restore-keys``
does) and validates again; prints the arms each run executed and aux_conf's verdict and gain.
The edit is undone at the end. Refuses a tree with a ``.git`` (use a copy, never a checkout).
Results: docs/gate.md.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml


def executed(out: Path) -> dict[str, int]:
    counts: Counter = Counter()
    for result in (out / "work").glob("result-*.json"):
        counts.update(json.loads(result.read_text())["executed_arms"])
    return dict(counts)


def main(tree: Path) -> None:
    if (tree / ".git").exists():
        raise SystemExit(f"{tree} is a checkout; run this on a copy (git archive)")
    # The flow's workers (`python -m flows.worker`, started in the current directory) must
    # import the same tree.
    os.chdir(tree)
    sys.path.insert(0, str(tree))
    os.environ["PYTHONPATH"] = str(tree)
    work = Path(tempfile.mkdtemp(prefix="w2s-stale-"))
    source = tree / "methods/builtin/aux_conf.py"
    original = source.read_text()
    plan = yaml.safe_load((tree / "flows/plans/micro-ci.yaml").read_text())
    plan.update(name="stale", rungs=["m0"], seeds={"initial": 2, "batch": 1, "max": 2})
    (work / "plan.yaml").write_text(yaml.safe_dump(plan))
    from prefect.testing.utilities import prefect_test_harness

    from flows.validate import validate_flow

    try:
        with prefect_test_harness(server_startup_timeout=90):
            first = validate_flow(str(work / "plan.yaml"), str(work / "first"),
                                  str(work / "store"))
            line = "return trainer.fit(np.array(data.weak_probs), hooks=hooks).predict_test()"
            assert line in original, "aux_conf.py changed; update this script"
            source.write_text(original.replace(line, "return 1.0 - " + line.split("return ")[1]))
            shutil.copytree(work / "store", work / "restored")
            second = validate_flow(str(work / "plan.yaml"), str(work / "second"),
                                   str(work / "restored"))
    finally:
        source.write_text(original)
    for name, verdict, out in (("before the edit", first, work / "first"),
                               ("after the edit, old store restored", second, work / "second")):
        entry = verdict.methods["aux_conf"]
        cell = next(c for c in entry.cells if c.rung == verdict.production_rung)
        print(f"{name}: executed {executed(out)}; aux_conf {entry.verdict}, gain "
              f"{100 * cell.gain.estimate:+.2f} pp")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
