"""Routes to the gold labels, each through the real arms on the micro ladder: first shown real
without the jail (unjailed run or in-process), then closed in it. Jailed, every attack ends
at chance (all predictions 0.5, below the ceiling), leaves every cache, store and source
byte-identical, and the audit finds it clean; `w2s-transfer audit --unjailed` flags the plugin
that tries them all."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from seclab import Lab, audit, external, run_student
from typer.testing import CliRunner

from flows.cli import app
from methods.jail import jail_available

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")

UNJAILED = {"mode": "off"}


def at_chance(lab: Lab, probs) -> bool:
    return bool(np.all(probs == 0.5)) and lab.accuracy(probs) < lab.ceiling_accuracy


def closed_external_route(lab: Lab, route: str, script: str, before_args: list[str],
                          after_args: list[str]) -> None:
    """The shared measurement of an external label thief: unjailed it gets every label, jailed
    none, nothing changes on disk, the audit is clean."""
    before, how = run_student(lab, "external", [f"command={external(script, *before_args)}"],
                              jail=UNJAILED)
    assert how == ["unjailed"]
    assert lab.accuracy(before) == 1.0  # the route is real
    command = f"command={external(script, *after_args)}"
    snapshot = lab.snapshot()
    after, how = run_student(lab, "external", [command])
    assert how == ["jail"]
    assert at_chance(lab, after)
    lab.assert_unchanged(snapshot)
    result, _, isolations = audit(lab, "external", [command])
    assert result.clean and isolations == ["jail", "jail"], result.evidence
    lab.record(route, f"`{script}` (external)", f"acc {lab.accuracy(before):.3f}",
               f"acc {lab.accuracy(after):.3f} (all 0.5)", "yes", "CLEAN at chance")


def test_other_runs_outputs_on_disk(lab):
    # Stores, a report's results.parquet, the dataset directory, pytest temp dirs.
    roots = lab.label_roots
    closed_external_route(lab, "other runs' outputs and datasets on disk", "disk_hunter.py",
                          roots, roots)


def test_other_copies_of_the_code(lab):
    roots = [str(lab.checkout_copy)]
    closed_external_route(lab, "other copies of the task code (second checkout)",
                          "code_copies.py", roots, roots)


def test_the_host_network(lab):
    args = [lab.server.url, "@" + lab.socket_name]
    writes = len(lab.server.writes)
    closed_external_route(lab, "host network (stand-in Prefect API, abstract socket)",
                          "network_thief.py", args, args)
    # Unjailed it also wrote to the API (once per run); jailed runs (run and audit) did not.
    assert len(lab.server.writes) == writes + 1, lab.server.writes


def _sleeper(*prefix: str) -> subprocess.Popen:
    return subprocess.Popen([*prefix, sys.executable, "-c", "import time; time.sleep(600)"])


def test_other_processes_and_signals(lab):
    from methods.jail import jail_ids

    uid, _ = jail_ids()
    victims = [_sleeper(), _sleeper()]
    # A process of the jail's own uid on the host: same uid, so only the PID namespace
    # stands between it and the jailed program.
    same_uid = _sleeper("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups")
    try:
        before_args = ["--only-pid", str(lab.decoy.pid), "--signal-pid", str(victims[0].pid)]
        after_args = ["--kill-all", "--signal-pid", str(victims[1].pid),
                      "--signal-pid", str(same_uid.pid)]
        closed_external_route(lab, "other processes (/proc environ, cmdline, fds; signals)",
                              "proc_thief.py", before_args, after_args)
        assert victims[0].wait(timeout=10) != 0  # unjailed, the signal reached it
        assert victims[1].poll() is None and same_uid.poll() is None
        assert lab.decoy.poll() is None
    finally:
        for process in (*victims, same_uid):
            process.kill()
            process.wait()


def test_the_routes_are_closed_by_the_fallback_builder_too(lab, monkeypatch):
    """util-linux unshare + pivot_root + setpriv, where bubblewrap is missing."""
    from methods.jail import JailUnavailable, _available

    try:
        _available("unshare")
    except JailUnavailable as err:
        pytest.skip(str(err))
    monkeypatch.setenv("W2S_JAIL_BUILDER", "unshare")
    writes = len(lab.server.writes)
    snapshot = lab.snapshot()
    for script, args in (("disk_hunter.py", lab.label_roots),
                         ("code_copies.py", [str(lab.checkout_copy)]),
                         ("network_thief.py", [lab.server.url, "@" + lab.socket_name]),
                         ("proc_thief.py", ["--kill-all"])):
        command = external(script, *args, "--tag=unshare")
        probs, how = run_student(lab, "external", [f"command={command}"])
        assert how == ["jail"] and at_chance(lab, probs), script
    lab.assert_unchanged(snapshot)
    assert len(lab.server.writes) == writes and lab.decoy.poll() is None
    lab.record("disk, code copies, network, processes under the util-linux fallback builder",
               "the four scripts above (external)", "(as above)", "acc "
               f"{lab.accuracy(probs):.3f} (all 0.5)", "yes", "-")


def test_a_plugin_with_every_route_gets_nothing_in_the_plugin_jail(lab):
    """The plugin jail (sealed data, the trainer, /w2s/code) with every route at once; in
    process (the state before the jail) the objects and the disk give every label."""
    from attacks.omnivore import Omnivore, OmnivoreParams

    from transfer.arms import run_arm, sealed_student_inputs

    # In this process it reads only the decoy among the machine's processes.
    params = OmnivoreParams(roots=lab.label_roots,
                            urls=[lab.server.url, "@" + lab.socket_name], pid=lab.decoy.pid)
    weak = run_arm(lab.ctx, "m0", "weak", 0)
    data, trainer = sealed_student_inputs(lab.ctx, lab.ctx.ladder.rung("m0"), weak, 0)
    before = Omnivore().run(data, trainer, params)
    assert lab.accuracy(before) == 1.0
    pairs = [f"roots={lab.label_roots}".replace("'", '"'),
             f'urls=["{lab.server.url}", "@{lab.socket_name}"]']
    snapshot = lab.snapshot()
    after, how = run_student(lab, "attacks.omnivore:Omnivore", pairs)
    assert how == ["jail"]
    assert at_chance(lab, after)
    lab.assert_unchanged(snapshot)
    result, _, isolations = audit(lab, "attacks.omnivore:Omnivore", pairs)
    assert result.clean and isolations == ["jail", "jail"], result.evidence
    # Unjailed, the audit command flags the plugin whatever its predictions.
    flagged = CliRunner().invoke(app, [
        "audit", "--method", "attacks.omnivore:Omnivore", "--param", pairs[0], "--param",
        pairs[1], "--data", str(lab.task_dir), "--store", str(lab.store), "--unjailed"])
    assert flagged.exit_code == 1, flagged.output
    assert "FLAGGED attack_omnivore" in flagged.stdout and "isolation=unjailed" in flagged.stdout
    lab.record("all label routes at once, in the plugin jail (objects/gc, disk, code copies, "
               "network, processes)", "`attacks.omnivore:Omnivore` (plugin)",
               f"acc {lab.accuracy(before):.3f} (in-process); `audit --unjailed`: FLAGGED",
               f"acc {lab.accuracy(after):.3f} (all 0.5)", "yes", "CLEAN at chance")


def test_a_module_body_run_at_import_stashes_nothing(lab):
    import importlib

    reference = "attacks.stash:ImportTimeStash"
    snapshot = lab.snapshot()
    after, how = run_student(lab, reference)
    assert how == ["jail"]
    # Describing and running it never imported it here.
    assert "attacks.stash" not in sys.modules
    assert at_chance(lab, after)
    lab.assert_unchanged(snapshot)
    # Before the jail, the registry imported it here, next to the task: the route is real.
    module = importlib.import_module("attacks.stash")
    try:
        before = np.array([float(module.STASH.get(i, 0.5)) for i in lab.test_ids])
    finally:
        sys.modules.pop("attacks.stash", None)
    assert lab.accuracy(before) == 1.0
    lab.record("plugin module body run at import in the trusted process",
               "`attacks.stash:ImportTimeStash` (plugin)",
               f"acc {lab.accuracy(before):.3f} (imported in-process)",
               f"acc {lab.accuracy(after):.3f} (all 0.5)", "yes", "not run (nothing to find)")
