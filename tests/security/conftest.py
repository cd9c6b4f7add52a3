"""The attack suite's lab: the real arms on the micro ladder, realistic label sources planted
where an attacker would look, and byte-level snapshots of everything a verdict stands on.

One lab per session (the weak and ceiling runs, the stand-in Prefect API and the decoy pipeline
process are shared by every attack):

- ``task/``: the dataset the runs use (generic JSONL with gold labels), as a user hands it over;
- ``store/``: the run store of these runs (weak, ceiling, the baseline, and each attack's own
  student run);
- ``old-store/``: another store holding complete real runs (predictions with ``pred`` and
  ``correct``, which give the gold labels back);
- ``reports/demo/``: a report's ``results.parquet`` and a perfect ``gold_predictions.jsonl``;
- ``checkout-copy/``: a second copy of this project's source tree, ``transfer/data`` included;
- ``pipeline/gold.jsonl`` and a decoy pipeline process carrying the labels in its environment
  and that file on its command line;
- a local HTTP server on 127.0.0.1 standing in for the Prefect API (it serves the labels and
  records every write) and an abstract Unix socket serving them too.

``Lab.snapshot()`` hashes (sha256) every file of the W2S cache directory (the store inside it,
features, models, tokenizers, the jail runtime), of every lab directory above and of this
project's sources; ``Lab.assert_unchanged`` allows only the new student run the attack itself
produced. ``system_snapshot()`` is the cheaper (path, size, mtime, mode) record of the virtual
environment, the Python installation and ``/usr``.

Set ``W2S_SECURITY_TABLE=path.md`` to have the session write the measured before/after table.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `attacks.<module>:<Class>` plugin references, `seclab`
    sys.path.insert(0, str(HERE))

from seclab import RUNG, SEED, Lab, LabelServer, run_student, serve_abstract_socket, write_task  # noqa: E402


@pytest.fixture(scope="package")  # torn down (env restored) when the package is done
def lab(tmp_path_factory) -> Lab:
    from flows.context import arm_context
    from methods.jail_runtime import project_root
    from methods.resolve import method_function
    from transfer.arms import run_arm
    from transfer.data import synthetic_task
    from transfer.results import results_table
    from transfer.store import RunStore

    root = tmp_path_factory.mktemp("security-lab")
    # The lab measures every byte of the DeepSpeed op cache; another xdist worker may compile
    # into the shared one meanwhile. No attack trains, so the lab's own starts empty.
    saved_extensions = os.environ.get("TORCH_EXTENSIONS_DIR")
    os.environ["TORCH_EXTENSIONS_DIR"] = str(root / "torch-extensions")
    task = synthetic_task(seed=0, n_train_label=300, n_train_unlabel=300, n_test=200,
                          n_corpus=3000)
    task_dir = write_task(task, root / "task")
    ctx = arm_context("micro", task_dir, root / "store")
    weak = run_arm(ctx, RUNG, "weak", SEED)
    ceiling = run_arm(ctx, RUNG, "ceiling", SEED)
    _, params, fn = method_function("vanilla", [])
    run_arm(ctx, RUNG, "student", SEED, method="vanilla", method_params=params, method_fn=fn)
    test = ctx.task.splits["test"]
    gold = np.array(test.labels, dtype=np.int64)
    labels = {i: int(y) for i, y in zip(test.ids, gold)}

    old_store = root / "old-store"
    shutil.copytree(root / "store", old_store)
    reports = root / "reports" / "demo"
    reports.mkdir(parents=True)
    results_table(RunStore(old_store).records(), ctx.ladder).to_parquet(
        reports / "results.parquet", index=False)
    (reports / "gold_predictions.jsonl").write_text("".join(
        json.dumps({"id": i, "prob": float(y)}) + "\n" for i, y in labels.items()))
    checkout = root / "checkout-copy"
    for package in ("transfer", "methods", "flows", "stats"):
        shutil.copytree(project_root() / package, checkout / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(project_root() / "pyproject.toml", checkout)
    pipeline = root / "pipeline"
    pipeline.mkdir()
    (pipeline / "gold.jsonl").write_text("".join(
        json.dumps({"id": i, "label": y}) + "\n" for i, y in labels.items()))

    server = LabelServer(labels)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    socket_name = f"w2s-labels-{os.getpid()}"
    sock = serve_abstract_socket(socket_name, json.dumps(labels).encode())
    decoy = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)",
         f"--gold-file={pipeline / 'gold.jsonl'}"],
        env={**os.environ, "W2S_GOLD_LABELS": json.dumps(labels)})

    built = Lab(root=root, task_dir=task_dir, store=root / "store", old_store=old_store,
                reports=root / "reports", checkout_copy=checkout, pipeline=pipeline, ctx=ctx,
                gold=gold, test_ids=tuple(test.ids),
                weak_accuracy=float(weak.metrics["accuracy"]),
                ceiling_accuracy=float(ceiling.metrics["accuracy"]), server=server,
                socket_name=socket_name, decoy=decoy)
    # Warm up: the jail runtime, and the backends a plugin's trainer is handed, exist before
    # any attack is measured (the trusted side builds them; they are not an attack's doing).
    run_student(built, "attacks.benign:WeakEcho")
    try:
        yield built
    finally:
        decoy.kill()
        decoy.wait()
        server.shutdown()
        sock.close()
        if saved_extensions is None:
            os.environ.pop("TORCH_EXTENSIONS_DIR", None)
        else:
            os.environ["TORCH_EXTENSIONS_DIR"] = saved_extensions
        target = os.environ.get("W2S_SECURITY_TABLE")
        if target and built.table:
            write_table(built, Path(target))


def write_table(lab: Lab, path: Path) -> None:
    lines = [f"Measured by `tests/security/` on the micro ladder, rung {RUNG}, seed {SEED}: "
             f"ceiling accuracy {lab.ceiling_accuracy:.3f}, weak {lab.weak_accuracy:.3f} "
             f"({len(lab.gold)} test examples; {time.strftime('%Y-%m-%d')}).", "",
             "| route | attack program | before (unjailed) | after (jailed) | bytes identical "
             "| audit |", "| --- | --- | --- | --- | --- | --- |"]
    for row in lab.table:
        lines.append(f"| {row['route']} | {row['program']} | {row['before']} | {row['after']} "
                     f"| {row['identical']} | {row['audit']} |")
    path.write_text("\n".join(lines) + "\n")
