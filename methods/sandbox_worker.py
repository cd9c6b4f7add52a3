"""Run a plugin method in a sandboxed child: ``python -m methods.sandbox_worker JOB_DIR``.

``JOB_DIR/job.pkl`` (written by ``methods.runner``) holds the method reference, its params as
JSON-able values, the sealed ``StudentData`` and a picklable ``StudentTrainer``. The worker
resolves the method, runs it and writes ``JOB_DIR/out/predictions.jsonl``, or
``JOB_DIR/out/error.json`` ``{"kind": "unsupported" | "input" | "crash", "message"}``.
The parent reads back only these JSON files, never a pickle made by the child.
Exit codes: 0 done, 2 bad input, 3 method unsupported, 1 crash.
"""
from __future__ import annotations

import json
import pickle
import sys
import traceback
from pathlib import Path

ERROR_FILE = "error.json"
OUT_DIR = "out"
JOB_FILE = "job.pkl"


def _fail(out: Path, kind: str, message: str, code: int) -> int:
    from methods.exchange import write_atomic

    write_atomic(out / ERROR_FILE, json.dumps({"kind": kind, "message": message}) + "\n")
    return code


def main(argv: list[str]) -> int:
    """Entry point; ``argv = [prog, JOB_DIR]``. Returns the exit code."""
    if len(argv) != 2:
        print("usage: python -m methods.sandbox_worker JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(argv[1])
    out = job_dir / OUT_DIR
    out.mkdir(exist_ok=True)
    from methods.base import check_test_probs
    from methods.exchange import write_predictions
    from methods.registry import resolve_method
    from transfer.errors import InputError
    from transfer.sealed import MethodUnsupported

    try:
        with open(job_dir / JOB_FILE, "rb") as handle:
            job = pickle.load(handle)
        data, trainer = job["data"], job["trainer"]
        method = resolve_method(job["reference"])
        params = method.Params.model_validate(job["params"])
        probs = check_test_probs(method.run(data, trainer, params), data, method.name)
        write_predictions(data.test_ids, probs, out)
        return 0
    except MethodUnsupported as err:
        return _fail(out, "unsupported", str(err), 3)
    except InputError as err:
        return _fail(out, "input", str(err), 2)
    except Exception as err:  # the plugin's bug: report it to the parent as one line
        traceback.print_exc()
        return _fail(out, "crash", f"{type(err).__name__}: {err}", 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
