"""The entry point of a method job: ``python -m methods.jail_worker {describe|run} [JOB OUT]``.

It runs inside the jail (``JOB`` = ``/w2s/job``, ``OUT`` = ``/w2s/out``), or, only when a plan
opts out of the jail, as a plain subprocess with explicit directories. Either way it is the only
place plugin code is imported: the trusted process never imports a plugin.

``JOB/request.json``: ``{"reference": "pkg.mod:attr" | entry-point name | built-in name,
"params": {...} | null, "pairs": ["key=value", ...] | null, "rungs": [RungFacts, ...] | null}``.

- ``describe`` resolves the method, validates the params (``pairs`` as typed on a command line,
  or the ``params`` mapping; neither: no check, ``params`` null) and writes
  ``OUT/describe.json``: ``{"name", "description", "params", "params_schema", "unsupported"}``,
  where ``unsupported`` answers, for each of ``rungs`` (``transfer.sealed.RungFacts`` as a
  mapping), the method's ``unsupported_reason`` (null when the request names no rungs).
- ``run`` also loads ``JOB/job.pkl`` (the sealed ``StudentData`` and the trainer, pickled by
  the trusted side), runs the method and writes ``OUT/predictions.jsonl``.

On failure it writes ``OUT/error.json`` ``{"kind": "unsupported" | "input" | "crash",
"message"}``. The trusted side reads back only these JSON files (never a pickle) and validates
them. Exit codes: 0 done, 2 bad input, 3 method unsupported, 1 crash.
"""
from __future__ import annotations

import json
import pickle
import sys
import traceback
from pathlib import Path

DESCRIBE_FILE = "describe.json"
ERROR_FILE = "error.json"
JOB_FILE = "job.pkl"
REQUEST_FILE = "request.json"
EXIT_INPUT, EXIT_UNSUPPORTED, EXIT_CRASH = 2, 3, 1


def _write(out: Path, name: str, payload: dict) -> None:
    from methods.exchange import write_atomic

    write_atomic(out / name, json.dumps(payload) + "\n")


def _resolve(request: dict):
    """The method and its validated params (None when the request carries none to check)."""
    from methods.registry import load_plugin, parse_params

    method = load_plugin(str(request["reference"]))
    pairs, mapping = request.get("pairs"), request.get("params")
    if pairs is None and mapping is None:
        return method, None
    params = parse_params(method, list(pairs) if pairs is not None else dict(mapping))
    return method, params


def _describe(job: Path, out: Path) -> int:
    request = json.loads((job / REQUEST_FILE).read_text(encoding="utf-8"))
    method, params = _resolve(request)
    unsupported = None
    if request.get("rungs") is not None:
        from transfer.sealed import RungFacts

        ask = getattr(method, "unsupported_reason", None)
        rungs = [RungFacts(**{**facts, "model_names": tuple(facts["model_names"])})
                 for facts in request["rungs"]]
        unsupported = [ask(rung, params) if ask is not None else None for rung in rungs]
    _write(out, DESCRIBE_FILE, {"name": method.name, "description": method.description,
                                "params": None if params is None else
                                params.model_dump(mode="json"),
                                "params_schema": method.Params.model_json_schema(),
                                "unsupported": unsupported})
    return 0


def _run(job: Path, out: Path) -> int:
    from methods.base import check_test_probs
    from methods.exchange import write_predictions

    request = json.loads((job / REQUEST_FILE).read_text(encoding="utf-8"))
    method, params = _resolve(request)
    with open(job / JOB_FILE, "rb") as handle:
        payload = pickle.load(handle)
    data, trainer = payload["data"], payload["trainer"]
    probs = check_test_probs(method.run(data, trainer, params), data, method.name)
    write_predictions(data.test_ids, probs, out)
    return 0


def main(argv: list[str]) -> int:
    """``argv = [prog, MODE]`` or ``[prog, MODE, JOB_DIR, OUT_DIR]``; returns the exit code."""
    from methods.jail_runtime import JOB, OUT

    if len(argv) not in (2, 4) or argv[1] not in ("describe", "run"):
        print("usage: python -m methods.jail_worker {describe|run} [JOB_DIR OUT_DIR]",
              file=sys.stderr)
        return EXIT_INPUT
    job, out = (Path(argv[2]), Path(argv[3])) if len(argv) == 4 else (Path(JOB), Path(OUT))
    from transfer.sealed import MethodUnsupported
    from w2s_common.errors import InputError

    try:
        return (_describe if argv[1] == "describe" else _run)(job, out)
    except MethodUnsupported as err:
        _write(out, ERROR_FILE, {"kind": "unsupported", "message": str(err)})
        return EXIT_UNSUPPORTED
    except InputError as err:
        _write(out, ERROR_FILE, {"kind": "input", "message": str(err)})
        return EXIT_INPUT
    # The plugin's bug: report it as one line, the traceback on stderr.
    except Exception as err:  # noqa: BLE001
        traceback.print_exc()
        _write(out, ERROR_FILE, {"kind": "crash", "message": f"{type(err).__name__}: {err}"})
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main(sys.argv))
