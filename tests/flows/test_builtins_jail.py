"""End to end, ``jail: {builtins: jail}``: no file of ``methods/builtin/`` runs in a trusted
process (the flow's, the group workers'), every built-in student run is made in a jail of its
own (the reference baseline ``vanilla``, the pipeline's own code, runs in the worker), and the
preflight still refuses a built-in that cannot run on a rung, asking it in the jail.

An attacker review (2026-12-05, F1) forged REAL verdicts, PROMOTE and clean label audits with a
built-in whose import-time code patched the runner of the worker that imported every built-in
just to read their names. The check here is on the cause: an import hook in
every trusted interpreter (a finder first on ``sys.meta_path``) logs each import of a
``methods.builtin`` module; the jail does not see the hook's directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from methods import registry
from methods.jail import jail_available
from w2s_common.errors import InputError

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")

LOG_ENV = "W2S_TEST_BUILTIN_IMPORT_LOG"
IMPORT_LOGGER = f"""
import os, sys


class _LogBuiltinImports:
    # First on sys.meta_path: sees every import (the import statement and importlib alike),
    # logs a built-in's and lets the next finder load it.
    def find_spec(self, name, path=None, target=None):
        if name == "methods.builtin" or name.startswith("methods.builtin."):
            log = os.environ.get({LOG_ENV!r})
            if log:
                with open(log, "a") as handle:
                    handle.write(f"{{os.getpid()}} {{name}} {{' '.join(sys.argv)[:160]}}\\n")
        return None


sys.meta_path.insert(0, _LogBuiltinImports())
"""
_HOOKED: list[bool] = []

PLAN = ("name: jailed-builtins\nmethods: [{name: aux_conf}]\nbaseline: vanilla\n"
        "ladder: micro\nrungs: [m0]\nseeds: {initial: 2, batch: 1, max: 2}\n"
        "compute: {ds_config: zero0, precision: fp32}\njail: {builtins: jail}\n")


@pytest.fixture
def import_log(tmp_path, monkeypatch):
    """The log every trusted interpreter writes a built-in's import to: this one (the flow's)
    through the hook installed once per process and active while the variable is set, the
    workers through a ``sitecustomize`` on their PYTHONPATH. The built-ins this process already
    imported are forgotten for the test, so that any use here would import them again."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(IMPORT_LOGGER)
    log = tmp_path / "imports.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    monkeypatch.setenv("PYTHONPATH", str(site))
    if not _HOOKED:
        exec(compile(IMPORT_LOGGER, "<import logger>", "exec"), {})
        _HOOKED.append(True)
    from methods.builtin_names import BUILTIN_MODULES

    # The pipeline's own built-ins (methods.reference, methods.external) register again too.
    def registering(module: str) -> bool:
        return module == "methods.builtin" or module.startswith("methods.builtin.") \
            or module in BUILTIN_MODULES.values()

    before = {m for m in sys.modules if registering(m)}
    for name in before:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(registry, "_BUILTINS", {})
    monkeypatch.setattr(registry, "_RESOLVED", {})
    # Control: a worker that resolves a built-in in-process is logged, so the check can fail.
    subprocess.run([sys.executable, "-c", "from methods.resolve import method_function; "
                    "method_function('confident', {})"], check=True, env=dict(os.environ))
    assert " methods.builtin.simple " in log.read_text()
    log.unlink()
    yield log
    # A module first imported during the test registered into the throw-away registry; left in
    # sys.modules, a later import would find it and never register into the real one.
    for name in [m for m in sys.modules if registering(m) and m not in before]:
        del sys.modules[name]


def test_a_validation_that_jails_builtins_runs_none_of_their_code_outside_the_jail(
        prefect_harness, import_log, tmp_path) -> None:
    from flows.validate import validate_flow
    from transfer.store import RunStore

    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    out, store = tmp_path / "out", tmp_path / "store"
    validate_flow(str(plan), str(out), str(store))
    assert not import_log.exists(), import_log.read_text()
    verdict = json.loads((out / "verdict.json").read_text())
    assert set(verdict["methods"]) == {"aux_conf"}
    students = RunStore(store).records("student")
    assert {r.spec.label for r in students} == {"vanilla", "aux_conf"}
    assert len(students) == 4  # 2 seeds x (baseline, candidate)
    # The candidate in a jail of its own; the reference baseline, the pipeline's own code
    # (methods/reference.py), in the worker.
    assert {(r.spec.label, r.spec.jailed, r.metrics["isolation"]) for r in students} == {
        ("aux_conf", True, "jail"), ("vanilla", None, "builtin")}


def test_the_preflight_asks_a_jailed_builtin_in_the_jail_whether_it_runs_on_a_rung(
        import_log, tmp_path) -> None:
    from flows.campaign import Campaign

    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.replace("aux_conf", "zero_shot_prior"))
    with pytest.raises(InputError) as err:
        Campaign.prepare(plan, tmp_path / "out", tmp_path / "store")
    assert (err.value.line, err.value.field) == (2, "methods[0].name")
    assert "method zero_shot_prior cannot run on rung m0 of ladder micro: model 'micro-32x1' " \
           "has no label tokens" in err.value.message
    assert not import_log.exists(), import_log.read_text()
    assert not (tmp_path / "out").exists()
