"""What a method's own code and files can do before and around its run: describe-time tricks,
what the jail mounts as the method's code, files an external command names, plugin
distributions installed beside the trusted code, and a plugin's name as the key of its runs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from seclab import ATTACKS, Lab, one_printable_line, run_student
from typer.testing import CliRunner

from methods.jail import jail_available
from w2s_common.errors import InputError

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")


@pytest.mark.parametrize("trick, expected", [
    ("BuiltinName", "names itself 'vanilla', which reads as the built-in method 'vanilla'"),
    ("CapitalBuiltinName", "names itself 'Vanilla', which reads as the built-in method "
                           "'vanilla'"),
    ("ArmName", "'ceiling' reads as the name of an arm"),
    ("SeparatedArmName", "'Ceil-ing' reads as the name of an arm"),
    ("VerdictName", "'REAL' reads as a word the reports answer with"),
    ("PunctuatedVerdictName", "'REAL.' reads as a word the reports answer with"),
    ("VerdictWordName", "'HARMFUL-free' holds the word 'harmful'"),
    ("DecisionName", "'Promote' reads as a word the reports answer with"),
    ("NumberName", "'inf' reads as a number"),
    ("DigitName", "name: String should match pattern"),
    ("LookalikeName", "name: String should match pattern"),
    ("EscapeName", "name: String should match pattern"),
    ("EscapeDescription", "description: Value error, must be one printable line"),
    ("BidiDescription", "description: Value error, must be one printable line"),
    ("LongDescription", "description: String should have at most 300 characters"),
    ("HugeDescribe", "more than the 1048576 allowed"),
    ("LinkedDescribe", "refused: a symbolic link"),
    ("FifoDescribe", "refused: not a regular file"),
    ("DeepDescribe", "malformed JSON"),
    ("SurrogateParams", "not Unicode text"),
    ("SurrogateKey", "not Unicode text"),
    ("Sleeper", "timed out after 3 s"),
    ("EscapeCrash", "RuntimeError: ??[1A??[2K??[32mCLEAN"),
])
def test_describe_time_tricks_are_one_line_refusals(lab, trick, expected):
    from methods.resolve import method_function

    snapshot = lab.snapshot()
    with pytest.raises(InputError) as err:
        method_function(f"attacks.describe_tricks:{trick}", [], jail={"timeout_s": 3})
    lab.assert_unchanged(snapshot)
    message = str(err.value)
    assert one_printable_line(message) and expected.replace("??", "?") in message, message
    lab.record(f"describe-time trick: {trick}", f"`attacks.describe_tricks:{trick}` (plugin)",
               "-", f"refused: `{message.split(': ', 2)[-1][:70]}`", "yes", "-")


def _site_with_entry_point(site: Path, name: str, target: str) -> None:
    """A distribution's metadata in a plugin directory, as ``pip install --target`` leaves it."""
    info = site / "w2s_attack_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: w2s-attack-plugins\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(f"[w2s_transfer.methods]\n{name} = {target}\n")


def test_the_methods_listing_shows_no_terminal_escapes(lab, tmp_path, monkeypatch):
    from flows.cli import app

    site = tmp_path / "site"
    _site_with_entry_point(site, "escape_schema", "attacks.describe_tricks:EscapeSchema")
    monkeypatch.setenv("W2S_PLUGIN_PATH", str(site))
    snapshot = lab.snapshot()
    result = CliRunner().invoke(app, ["methods"])
    lab.assert_unchanged(snapshot)
    assert result.exit_code == 0, result.output
    assert "attack_escape_schema" in result.stdout
    assert "attacks.describe_tricks" not in sys.modules  # described in the jail only
    assert "\x1b" not in result.stdout, repr(result.stdout[-400:])
    lab.record("params schema with terminal escapes, shown by `w2s-transfer methods`",
               "`attacks.describe_tricks:EscapeSchema` (entry point)", "-",
               "escapes shown as `?`", "yes", "-")


@pytest.fixture(params=["namespace", "regular"])
def lab_site(lab: Lab, tmp_path, monkeypatch, request) -> Path:
    """A plugin directory holding the agent's plugin next to the lab's results
    (``w2s_lab/plugins/thief.py`` and ``w2s_lab/results/results.parquet``), registered by an
    entry point; ``w2s_lab`` a namespace package (no ``__init__.py``) or a regular one."""
    site = tmp_path / "site"
    plugins, results = site / "w2s_lab" / "plugins", site / "w2s_lab" / "results"
    plugins.mkdir(parents=True)
    results.mkdir()
    shutil.copy(ATTACKS / "namespace_thief.py", plugins / "thief.py")
    shutil.copy(lab.reports / "demo" / "results.parquet", results)
    if request.param == "regular":
        for package in (site / "w2s_lab", plugins):
            (package / "__init__.py").write_text("")
    _site_with_entry_point(site, "lab_thief", "w2s_lab.plugins.thief:Thief")
    monkeypatch.setenv("W2S_PLUGIN_PATH", str(site))
    return site


def test_a_plugin_gets_only_its_code_not_what_lies_beside_it(lab, lab_site, monkeypatch):
    import importlib

    from attacks.namespace_thief import Thief

    from transfer.arms import run_arm, sealed_student_inputs

    weak = run_arm(lab.ctx, "m0", "weak", 0)
    data, trainer = sealed_student_inputs(lab.ctx, lab.ctx.ladder.rung("m0"), weak, 0)
    with monkeypatch.context() as patch:  # in-process, the package on the path: the route is real
        patch.syspath_prepend(str(lab_site))
        module = importlib.import_module("w2s_lab.plugins.thief")
        try:
            before = module.Thief().run(data, trainer, None)
        finally:
            for name in [m for m in sys.modules if m.startswith("w2s_lab")]:
                del sys.modules[name]
    assert lab.accuracy(before) == 1.0 and Thief.name == "attack_lab_thief"
    namespace = not (lab_site / "w2s_lab" / "__init__.py").exists()
    snapshot = lab.snapshot()
    if namespace:
        with pytest.raises(InputError, match="namespace package .*must be a regular package"):
            run_student(lab, "lab_thief")
        lab.assert_unchanged(snapshot)
        lab.record("entry point in a namespace package beside results", "`namespace_thief.py` "
                   "as `w2s_lab.plugins.thief:Thief` (entry point)",
                   f"acc {lab.accuracy(before):.3f}", "refused: namespace package", "yes", "-")
        return
    after, how = run_student(lab, "lab_thief")
    lab.assert_unchanged(snapshot)
    accuracy = lab.accuracy(after)
    lab.record("entry point whose package holds results beside its code (only .py files are "
               "copied to /w2s/code)", "`namespace_thief.py` as `w2s_lab.plugins.thief:Thief` "
               "(entry point)", f"acc {lab.accuracy(before):.3f}", f"acc {accuracy:.3f}",
               "yes", "CLEAN (files: the canary is blind)")
    assert how == ["jail"] and np.all(after == 0.5) and accuracy < lab.ceiling_accuracy


def test_an_entry_point_distribution_runs_no_code_in_the_trusted_process(lab, tmp_path):
    snapshot = lab.snapshot()
    site = tmp_path / "site"
    _site_with_entry_point(site, "pth_plugin", "attacks.benign:WeakEcho")
    shutil.copy(ATTACKS / "pth_hook.py", site / "w2s_pth_hook.py")
    (site / "w2s_pth_hook.pth").write_text("import w2s_pth_hook\n")
    marker = tmp_path / "ran-in-trusted-process"
    env = {**os.environ, "W2S_PTH_MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join([str(ATTACKS.parent), *sys.path[1:]])}
    # Before: installed beside the pipeline (site.addsitedir is what site.py does at start-up
    # for site-packages), its .pth line runs in the trusted process, and the registry refuses it.
    installed = ("import site, sys; site.addsitedir(sys.argv[1]); "
                 "from methods.registry import resolve_method; resolve_method('pth_plugin')")
    done = subprocess.run([sys.executable, "-c", installed, str(site)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "installed in the pipeline's own environment" in done.stderr
    before = marker.read_text() if marker.exists() else ""
    assert before  # the route is real: installing a plugin there runs its code there
    marker.unlink()
    # After: in a plugin directory (W2S_PLUGIN_PATH), described and run in the jail only.
    program = ("from methods.registry import resolve_method; "
               "print(resolve_method('pth_plugin').name)")
    done = subprocess.run([sys.executable, "-c", program], env={**env, "W2S_PLUGIN_PATH":
                          str(site)}, capture_output=True, text=True, timeout=120)
    lab.assert_unchanged(snapshot)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("attack_control_weak_echo")  # described in the jail
    ran = marker.read_text() if marker.exists() else ""
    lab.record("files of an entry-point distribution (a .pth line) in the trusted process",
               "`pth_hook.py` as `w2s_pth_hook.pth` (entry-point distribution)",
               "ran in the trusted process (installed beside it; now refused)",
               "did not run (plugin directory)" if not ran else "**ran (hole)**", "yes", "-")
    assert ran == "", f"plugin code ran in the trusted process: {ran}"


def test_a_plugin_taking_another_plugins_name_is_not_served_its_runs(lab):
    snapshot = lab.snapshot()
    first, how = run_student(lab, "attacks.namesake:First")
    assert how == ["jail"] and np.all(first == 0.5)
    second, how = run_student(lab, "attacks.namesake:Second")
    lab.assert_unchanged(snapshot)
    served = bool(how == [] and np.all(second == 0.5))
    lab.record("a plugin taking another plugin's name (store key)",
               "`attacks.namesake:First`, `:Second` (plugins)", "-",
               "**the second is served the first's run without running (hole)**"
               if served else "each ran (runs keyed by the code's fingerprint)", "yes", "-")
    assert how == ["jail"] and not np.all(second == 0.5)  # it ran: its own predictions



@pytest.mark.parametrize("second", ["Second", "Lookalike"])
def test_two_plugins_under_one_results_name_are_refused_before_compute(lab, tmp_path, second):
    """Two entries that describe themselves alike would file their runs under one arm (and on
    a worker a plugin could take a rival's name the parent never saw: the runs a group reports
    are checked against the parent's names too, tests/flows/test_outcome_check.py)."""
    from flows.campaign import Campaign

    plan = tmp_path / "namesake.yaml"
    plan.write_text("name: namesake\nmethods:\n  - name: attacks.namesake:First\n"
                    f"  - name: attacks.namesake:{second}\nbaseline: vanilla\nladder: micro\n"
                    "rungs: [m0]\ndatasets: [synthetic]\nseeds: {initial: 1, batch: 1, max: 1}\n")
    snapshot = lab.snapshot()
    with pytest.raises(InputError) as err:
        Campaign.prepare(plan, tmp_path / "out", tmp_path / "store")
    lab.assert_unchanged(snapshot)
    if second == "Second":
        lab.record("two plugins under one results name in one plan (their runs merge into one "
                   "arm)", "`attacks.namesake:First`, `:Second` (plugins)",
                   "accepted; the analysis failed after the compute (`duplicate row`)",
                   "refused before compute: `names itself 'attack_namesake', which reads as "
                   "the name of ...`", "yes", "-")
    else:
        lab.record("two plugins whose results names read alike (`Attack-Namesake` beside "
                   "`attack_namesake`: two arms a reader cannot tell apart)",
                   "`attacks.namesake:First`, `:Lookalike` (plugins)",
                   "accepted as two arms (helper-49, 2026-12-06)",
                   "refused before compute (names compared case and . _ - aside)", "yes", "-")
    label = "attack_namesake" if second == "Second" else "Attack-Namesake"
    assert str(err.value).startswith(
        f"{plan}:4: methods[1].name: method 'attacks.namesake:{second}' names itself "
        f"'{label}', which reads as the name of 'attacks.namesake:First'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


@pytest.mark.parametrize("attacker", ["Squat", "CaseSquat"])
@pytest.mark.parametrize("rival_in_plan", [True, False], ids=["plan-entry", "installed"])
def test_a_results_name_that_is_another_method_s_name_is_refused(lab, tmp_path, monkeypatch,
                                                                   rival_in_plan, attacker):
    """A plugin naming itself like a rival's entry point (in the plan, or only installed) is
    refused before compute: the gate finds entries by results name or reference, so the name
    would let it stand in for the rival (``flows.gate.entry_named`` refuses such a name too)."""
    from flows.campaign import Campaign

    site = tmp_path / "site"
    _site_with_entry_point(site, "rival_ep", "attacks.benign:WeakEcho")
    monkeypatch.setenv("W2S_PLUGIN_PATH", str(site))
    own = f"attacks.squat:{attacker}"
    entries = ["rival_ep", own] if rival_in_plan else [own]
    plan = tmp_path / "squat.yaml"
    plan.write_text("name: squat\nmethods:\n" + "".join(f"  - name: {e}\n" for e in entries)
                    + "baseline: vanilla\nladder: micro\nrungs: [m0]\ndatasets: [synthetic]\n"
                    "seeds: {initial: 1, batch: 1, max: 1}\n")
    snapshot = lab.snapshot()
    with pytest.raises(InputError) as err:
        Campaign.prepare(plan, tmp_path / "out", tmp_path / "store")
    lab.assert_unchanged(snapshot)
    what = "another plan entry" if rival_in_plan else "an installed entry point"
    line = 2 + len(entries)
    label = "rival_ep" if attacker == "Squat" else "RIVAL-ep"
    assert str(err.value) == (f"{plan}:{line}: methods[{len(entries) - 1}].name: method "
                              f"'{own}' names itself '{label}', which reads as the name of "
                              f"{what} ('rival_ep'; case and . _ - aside); a results name may "
                              "not be another method's name")
    if rival_in_plan and attacker == "Squat":
        lab.record("a results name that is a rival's entry-point name (the gate's `--method "
                   "rival` answered with the attacker's verdict)",
                   "`attacks.squat:Squat` beside entry point `rival_ep` (plugins)",
                   "accepted; `gate --method rival_ep` decided on the attacker's entry",
                   "refused before compute; the gate refuses a name meaning two entries",
                   "yes", "-")


def _set_swap_copies_age(seconds: float) -> None:
    """Make every jail code copy of ``attacks/swap.py`` look ``seconds`` old (what the
    plugin reads to tell the parent's describe from a worker's)."""
    from methods.jail_runtime import jail_cache

    copies = list((jail_cache() / "code").glob("*/attacks/swap.py"))
    assert copies, "the plugin was never copied into the jail cache"
    when = time.time() - seconds
    for copy in copies:
        os.utime(copy, (when, when))


def test_plugins_that_trade_names_on_a_worker_are_refused(lab, tmp_path):
    """Two plugins that name themselves as each other on a worker: the worker refuses to run
    a method whose name, params or code differ from the parent's resolution, and the parent
    refuses runs filed under a name by other code than it resolved for that name (a worker
    that does not check, e.g. an older version on a pool machine)."""
    from flows.campaign import Campaign, GroupOutcomeError
    from flows.worker import GroupMethod, run_group
    from methods.resolve import method_function

    plan = tmp_path / "swap.yaml"
    plan.write_text("name: swap\nmethods:\n  - name: attacks.swap:First\n"
                    "  - name: attacks.swap:Second\nbaseline: vanilla\nladder: micro\n"
                    "rungs: [m0]\ndatasets: [synthetic]\nseeds: {initial: 1, batch: 1, max: 1}\n")
    method_function("attacks.swap:First", [])  # the code copy exists; now it is fresh
    _set_swap_copies_age(0)
    snapshot = lab.snapshot()
    campaign = Campaign.prepare(plan, tmp_path / "out", tmp_path / "store")
    assert campaign.labels() == {"vanilla": "vanilla", "attacks.swap:First": "attack_swap_first",
                                 "attacks.swap:Second": "attack_swap_second"}
    _set_swap_copies_age(3600)  # the worker describes them later
    group = campaign.groups([0], ["attacks.swap:First", "attacks.swap:Second"])[0]
    group = group.model_copy(update={"result": str(tmp_path / "result.json")})
    with pytest.raises(InputError) as refused:
        run_group(group)
    assert str(refused.value) == ("methods: method attacks.swap:First names itself "
                                  "'attack_swap_second' on this worker, not "
                                  "'attack_swap_first' as when the campaign was prepared; "
                                  "refused")
    assert not list((tmp_path / "store").rglob("COMPLETE"))  # refused before any run
    lab.assert_unchanged(snapshot)

    # A worker that does not check: it runs both and files each under the other's name (the
    # trusted side builds the sealed inputs' model caches meanwhile, hence no snapshot).
    unpinned = group.model_copy(update={"methods": [
        GroupMethod(name=m.name, params=m.params) for m in group.methods]})
    outcome = run_group(unpinned)
    with pytest.raises(GroupOutcomeError) as caught:
        campaign.check_outcome(group, outcome["runs"])
    lab.record("two plugins trading results names on a worker (each entry's verdict rests on "
               "the other's code)", "`attacks.swap:First`, `:Second` (plugins)",
               "accepted: each verdict filed under the other's name and fingerprint",
               "refused: the worker checks name, params and code against the parent's "
               "resolution; the parent checks every run's code fingerprint", "yes", "-")
    assert "attack_swap_" in str(caught.value) and "other code than the parent resolved" in str(
        caught.value)


@pytest.fixture
def agent_repo(lab: Lab, tmp_path) -> Path:
    """An attacker's repository as checked out on the machine: its program and two innocent
    names that are links to label files (the ceiling run of the store in use, whose path the
    attacker computes from its spec, and a gold file, hard-linked)."""
    from transfer.store import RunStore

    repo = tmp_path / "agent"
    repo.mkdir()
    shutil.copy(ATTACKS / "answer_sheet.py", repo / "method.py")
    shutil.copy(ATTACKS / "_ext.py", repo / "_ext.py")
    ceiling = RunStore(lab.store).records("ceiling")[0]
    (repo / "weights.bin").symlink_to(ceiling.path / "predictions.parquet")
    os.link(lab.pipeline / "gold.jsonl", repo / "vocab.bin")
    return repo


@pytest.mark.parametrize("sheet", ["weights.bin", "vocab.bin"])
def test_an_external_commands_own_files_cannot_be_links_to_labels(lab, agent_repo, sheet,
                                                                  monkeypatch):
    import methods.external as external_method
    from methods.exchange import read_predictions, write_inputs
    from transfer.arms import run_arm, sealed_student_inputs

    # The route is real: the program, run on the sealed inputs with its files, reads the labels.
    weak = run_arm(lab.ctx, "m0", "weak", 0)
    data, _ = sealed_student_inputs(lab.ctx, lab.ctx.ladder.rung("m0"), weak, 0)
    inputs, outputs = agent_repo / "in", agent_repo / "out"
    inputs.mkdir(), outputs.mkdir()
    write_inputs(data, inputs)
    subprocess.run([sys.executable, agent_repo / "method.py", inputs, outputs,
                    agent_repo / "_ext.py", agent_repo / sheet], check=True, timeout=60)
    before = read_predictions(outputs / "predictions.jsonl", data.test_ids)
    assert lab.accuracy(before) == 1.0
    command = (f"{sys.executable} {agent_repo / 'method.py'} {{inputs}} {{outputs}} "
               f"{agent_repo / '_ext.py'} {agent_repo / sheet}")
    snapshot = lab.snapshot()
    # Without the check on own files (the state before it), mounting the file was enough; now
    # the private copy the jail mounts instead is made only from a regular file of its own, a
    # second layer that refuses the link as well.
    with monkeypatch.context() as patch:
        patch.setattr(external_method, "_check_own_file", lambda path: None)
        with pytest.raises(InputError) as unchecked:
            run_student(lab, "external", [f"command={command} --tag=unchecked"])
    assert "not a regular file of its own" in str(unchecked.value) or \
        "cannot open it as a regular file" in str(unchecked.value), str(unchecked.value)
    assert one_printable_line(str(unchecked.value)) and sheet in str(unchecked.value)
    with pytest.raises(InputError) as err:
        run_student(lab, "external", [f"command={command}"])
    lab.assert_unchanged(snapshot)
    message = str(err.value)
    assert one_printable_line(message) and sheet in message, message
    kind = "symbolic link" if sheet == "weights.bin" else "hard link"
    lab.record(f"an external command's own file that is a {kind} to labels",
               f"`answer_sheet.py` + `{sheet}` (external)",
               f"acc {lab.accuracy(before):.3f}; jailed without the check: acc 1.000 "
               "(before 2026-12-05; now the copy the jail mounts refuses it too)",
               f"refused: `...{message[-70:]}`", "yes", "-")


def _bytes_read() -> int:
    """Bytes this process has read through read(2) and friends so far (/proc/self/io)."""
    with open("/proc/self/io") as handle:
        return int(next(line for line in handle if line.startswith("rchar:")).split()[1])


@pytest.mark.parametrize("route", ["package-link", "record-line"])
def test_the_trusted_side_reads_only_a_plugins_sources(lab, tmp_path, monkeypatch, route):
    # A plugin points the fingerprint of its code at a huge host file: a link in its package,
    # or a line of its distribution's RECORD. 512 MiB (sparse) stands in for a 100 GB
    # checkpoint or /proc/kcore: read whole, it is that much of the trusted process's memory.
    from attacks.heavy_package import plant

    from methods.resolve import method_function

    huge = tmp_path / "checkpoint.safetensors"
    with open(huge, "wb") as handle:
        handle.truncate(512 << 20)
    site = tmp_path / "site"
    name = plant(site, huge, route)
    monkeypatch.setenv("W2S_PLUGIN_PATH", str(site))
    snapshot = lab.snapshot()
    before = _bytes_read()
    _, _, fn = method_function(name, [])
    read = _bytes_read() - before
    lab.assert_unchanged(snapshot)
    how = "a link in its package" if route == "package-link" else "a line of its RECORD"
    lab.record(f"a plugin pointing the fingerprint of its code at a 512 MiB host file ({how})",
               "`heavy_package.py` as `w2s_heavy.method:Heavy` "
               f"({'plugin' if route == 'package-link' else 'entry point'})", "-",
               f"{read / (1 << 20):.1f} MiB read by the trusted process", "yes", "-")
    assert str(huge) not in fn.code.files
    assert read < 64 << 20, f"the trusted process read {read} bytes fingerprinting the plugin"
