"""A flow-run process started before its flow run: ``python -m flows.standby``.

Prefect's process worker starts every flow run cold: a workspace supervisor process that imports
prefect, then ``exec`` of ``python -m prefect.engine``, which imports it again (about 2.5 s each
on a 2-core machine) before the group's own worker subprocess starts. The standby worker
(``flows.standby_worker``) keeps one of these processes started ahead: it has imported the
engine and the arm-group flow and waits on its standard input for one order, a JSON line

    {"env": {...}, "cwd": "...", "quiet": false}

naming the flow run (``PREFECT__FLOW_RUN_ID`` in ``env``). It then becomes exactly the process
the cold path would have been: it changes to ``cwd``, takes ``env`` as its environment and runs
``prefect.engine`` as ``__main__``, so Prefect's own engine loads the flow run, proposes its
states and exits with its status. What was fixed when this process started (the interpreter's
``PYTHON*`` variables and Prefect's settings, read at import) must equal the order's; if not, it
``exec``s ``python -m prefect.engine`` with the order's environment (same pid, a cold start),
never running a flow run under settings it was not given.

End of input without an order (the worker stopped or died) ends the process quietly.
"""
from __future__ import annotations

import json
import os
import runpy
import sys
import warnings

ENGINE = "prefect.engine"


def fixed_at_start(env: dict[str, str]) -> dict[str, str]:
    """The variables a started interpreter has already acted on: ``PYTHON*`` and Prefect's
    settings (``PREFECT_*``; ``PREFECT__*`` are per-run values the engine reads when it runs)."""
    return {key: value for key, value in env.items()
            if key.startswith("PYTHON")
            or (key.startswith("PREFECT_") and not key.startswith("PREFECT__"))}


def preload() -> None:
    """Import what every flow run of the group flow imports."""
    import prefect._internal.control_listener  # noqa: F401
    import prefect._internal.metrics  # noqa: F401
    import prefect.flow_engine  # noqa: F401
    import prefect.runtime.flow_run  # noqa: F401

    import flows.group_flow  # noqa: F401
    import flows.validate  # noqa: F401


def main() -> int:
    preload()
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    env = {str(k): str(v) for k, v in order["env"].items()}
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # the order pipe is done; children must not inherit it
    if order.get("quiet"):
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    os.close(devnull)
    os.chdir(order["cwd"])
    if fixed_at_start(env) != fixed_at_start(dict(os.environ)):
        os.execvpe(sys.executable, [sys.executable, "-m", ENGINE], env)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [ENGINE]
    # prefect.flow_engine imports prefect.engine, so a cold `python -m prefect.engine` holds
    # the module twice too (as __main__ and by name); runpy warns about that here only.
    warnings.filterwarnings("ignore", message=f"'{ENGINE}' found in sys.modules",
                            category=RuntimeWarning)
    runpy.run_module(ENGINE, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
