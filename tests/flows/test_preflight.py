"""Issue 9, item 4: everything a validation needs is checked before any compute.

Each bad input gives one line naming the plan file, line and field (or the environment
variable) and what was expected, exit code 2, and writes nothing: no output directory, no plan
files. Prepared in-process (no Prefect) except where the command line itself is the subject.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from flows.campaign import Campaign
from w2s_common.errors import InputError

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from flows.cli import main; main()"]

MICRO = """\
name: check
methods:
  - name: aux_conf
    params: {}
baseline: vanilla
ladder: micro
seeds: {initial: 2, batch: 1, max: 3}
compute: {ds_config: zero0, processes: 1, precision: fp32}
"""


def write_plan(tmp_path: Path, text: str = MICRO, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def refused(path: Path, out: Path) -> InputError:
    with pytest.raises(InputError) as info:
        Campaign.prepare(path, out)
    assert not out.exists(), "a refused plan must write nothing"
    assert "\n" not in str(info.value)
    return info.value


def test_a_good_micro_plan_passes(tmp_path: Path) -> None:
    campaign = Campaign.prepare(write_plan(tmp_path), tmp_path / "out")
    assert campaign.rungs == ["m0", "m1"]
    assert not (tmp_path / "out").exists()


def test_groups_follow_the_ladder_whatever_order_the_plan_lists_rungs_in(tmp_path: Path) -> None:
    """The local executor starts a look's last groups first, taking them as the largest."""
    text = MICRO.replace("ladder: micro", "ladder: micro\nrungs: [m1, m0]")
    campaign = Campaign.prepare(write_plan(tmp_path, text), tmp_path / "out")
    assert campaign.rungs == ["m1", "m0"]
    assert [g.rung for g in campaign.groups([0], ["aux_conf"])] == ["m0", "m1"]


@pytest.mark.parametrize("change, line, message", [
    (("    params: {}\n", "    params: {}\n  - name: nope\n"), 5,
     "unknown method 'nope'; known methods: aux_conf, "),
    (("baseline: vanilla", "baseline: nope"), 5, "unknown method 'nope'"),
    (("params: {}", "params: {beta: 1}"), 3, "method aux_conf: unknown param; known params: "),
    (("ladder: micro", "ladder: micro\nrungs: [m0, m9]"), 7,
     "unknown rung 'm9'; ladder 'micro' has: m0, m1"),
])
def test_methods_params_and_rungs_are_checked_against_registry_and_ladder(tmp_path, change, line,
                                                                          message) -> None:
    """Plan names are checked once, in ``Campaign.prepare``: against the method registry (the
    method's ``Params`` too) and the plan's ladder, naming the plan file and line."""
    path = write_plan(tmp_path, MICRO.replace(*change))
    err = refused(path, tmp_path / "out")
    assert (err.path, err.line) == (str(path), line)
    assert message in err.message


# --- methods on rungs ---------------------------------------------------------------------------

def test_zero_shot_prior_on_a_ladder_without_label_tokens_names_the_plan_line(tmp_path) -> None:
    path = write_plan(tmp_path, MICRO.replace("aux_conf", "zero_shot_prior"))
    err = refused(path, tmp_path / "out")
    assert (err.path, err.line, err.field) == (str(path), 3, "methods[0].name")
    assert "method zero_shot_prior cannot run on rung m0 of ladder micro" in err.message
    assert "no label tokens" in err.message


def test_the_ci_plan_for_zero_shot_prior_is_refused_before_compute(tmp_path: Path) -> None:
    """What the promotion-gate workflow runs: gate_targets.py narrows tiny-ci to the method."""
    plan = tmp_path / "gate-plan.yaml"
    subprocess.run([sys.executable, str(REPO / "infra" / "ci" / "gate_targets.py"), "plan",
                    "zero_shot_prior", str(REPO / "flows" / "plans" / "tiny-ci.yaml"), str(plan)],
                   check=True, cwd=REPO)
    err = refused(plan, tmp_path / "out")
    line = next(i for i, text in enumerate(plan.read_text().splitlines(), 1)
                if "zero_shot_prior" in text)
    assert (err.path, err.line) == (str(plan), line)
    assert "cannot run on rung r0 of ladder tiny" in err.message


def test_bootstrap_with_an_intermediate_outside_the_rung_is_refused(tmp_path: Path) -> None:
    good = MICRO.replace("  - name: aux_conf\n    params: {}",
                         "  - name: bootstrap\n    params: {}")
    Campaign.prepare(write_plan(tmp_path, good), tmp_path / "out")  # micro has intermediates
    bad = good.replace("params: {}", "params: {intermediate: micro-48x2}", 1)
    err = refused(write_plan(tmp_path, bad, "bad.yaml"), tmp_path / "out")
    assert (err.line, err.field) == (3, "methods[0].name")
    assert "cannot run on rung m0" in err.message and "micro-48x2" in err.message


# --- budget and seed scheduling -------------------------------------------------------------------

@pytest.mark.parametrize(("seeds", "field", "arms"), [
    # With the label-leak audit's 4 runs (baseline and aux_conf, one cell, two permutations).
    ("{initial: 2, batch: 1, max: 10000000}", "seeds.max", 80_000_004),
    ("{initial: 5000, batch: 1, max: 5000}", "seeds.initial", 40_004),
])
def test_seed_counts_over_the_budget_are_refused_naming_it(tmp_path, seeds, field, arms) -> None:
    path = write_plan(tmp_path, MICRO.replace("{initial: 2, batch: 1, max: 3}", seeds))
    err = refused(path, tmp_path / "out")
    assert (err.line, err.field) == (7, field)
    assert f"{arms} arms" in err.message and "budget.max_arms = 1000" in err.message


def test_the_budget_is_a_plan_field_with_bounds(tmp_path: Path) -> None:
    raised = MICRO.replace("{initial: 2, batch: 1, max: 3}", "{initial: 2, batch: 1, max: 200}")
    err = refused(write_plan(tmp_path, raised), tmp_path / "out")
    assert "1604 arms" in err.message and "+ 4 label-leak audit arms" in err.message
    Campaign.prepare(write_plan(tmp_path, raised + "budget: {max_arms: 1604}\n", "ok.yaml"),
                     tmp_path / "out")
    err = refused(write_plan(tmp_path, MICRO + "budget: {max_arms: 0}\n", "zero.yaml"),
                  tmp_path / "out")
    assert (err.line, err.field) == (9, "budget.max_arms")


def test_seed_scheduling_is_linear_in_the_budget() -> None:
    """The flow's schedule of seed batches; quadratic before (a large max hung the flow).
    Run in a child so that a regression fails here instead of hanging the suite."""
    code = ("from flows.campaign import seed_batches as s\n"
            "looks = s(2, 1, 300000)\n"
            "assert len(looks) == 299999 and looks[0] == [0, 1] and looks[-1] == [299999]\n"
            "assert s(3, 3, 7) == [[0, 1, 2], [3, 4, 5], [6]]\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize(("entry", "field", "expected"), [
    ("  - name: no_such_method\n    params: {}\n", "methods[0].name", "unknown method"),
    ("  - name: confident\n    params: {threshold: 7}\n", "methods[0].params.threshold",
     "unknown param"),
])
def test_a_method_error_names_the_plans_field_not_the_clis_flag(tmp_path: Path, entry: str,
                                                                 field: str, expected: str
                                                                 ) -> None:
    text = MICRO.replace("  - name: aux_conf\n    params: {}\n", entry)
    err = refused(write_plan(tmp_path, text), tmp_path / "out")
    assert (err.line, err.field) == (3, field), str(err)
    assert expected in err.message and "--" not in str(err)


# --- engine settings against this machine ----------------------------------------------------

def test_unknown_ds_config_is_refused_at_its_line(tmp_path: Path) -> None:
    err = refused(write_plan(tmp_path, MICRO.replace("ds_config: zero0", "ds_config: zero9")),
                  tmp_path / "out")
    assert (err.line, err.field) == (8, "compute.ds_config")
    assert "unknown DeepSpeed config 'zero9'" in err.message


def test_fp16_is_not_an_engine_precision(tmp_path: Path) -> None:
    err = refused(write_plan(tmp_path, MICRO.replace("precision: fp32", "precision: fp16")),
                  tmp_path / "out")
    assert (err.line, err.field) == (8, "compute.precision")
    assert "'fp32' or 'bf16'" in err.message


def test_bf16_on_a_gpu_without_bfloat16_is_refused(tmp_path, monkeypatch) -> None:
    import torch

    from flows import machine

    monkeypatch.setattr(machine, "cuda_devices", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100-SXM2-16GB")
    err = refused(write_plan(tmp_path, MICRO.replace("precision: fp32", "precision: bf16")),
                  tmp_path / "out")
    assert (err.line, err.field) == (8, "compute.precision")
    assert "bf16 needs a GPU with bfloat16 support; Tesla V100-SXM2-16GB has none" in err.message


def test_bf16_is_accepted_on_the_cpu_and_an_arm_trains_in_it(tmp_path: Path) -> None:
    """On the CPU DeepSpeed runs bf16 (emulated where the CPU lacks it), so the check lets it
    through; the tiny ladders' probe used to crash in bf16 (float32 statistics met bf16
    weights), which is why the plan must not only pass but an arm must run."""
    from flows.machine import cuda_devices

    if cuda_devices():
        pytest.skip("checks the CPU path")
    Campaign.prepare(write_plan(tmp_path, MICRO.replace("precision: fp32", "precision: bf16")),
                     tmp_path / "out")
    result = subprocess.run(CLI + ["run-arm", "--ladder", "micro", "--rung", "m0", "--arm", "weak",
                                   "--out", str(tmp_path / "arm"), "--store",
                                   str(tmp_path / "store"), "--precision", "bf16"],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "weak rung=m0 seed=0 accuracy=" in result.stdout


def test_more_processes_than_cores_or_slots_are_refused(tmp_path, monkeypatch) -> None:
    from flows import machine

    monkeypatch.setattr(machine, "cuda_devices", lambda: 0)
    monkeypatch.setattr(machine, "usable_cpus", lambda: 2)
    err = refused(write_plan(tmp_path, MICRO.replace("processes: 1", "processes: 3")),
                  tmp_path / "out")
    assert (err.line, err.field) == (8, "compute.processes")
    assert "3 processes per run need 3 CPU cores; this process may use 2" in err.message
    monkeypatch.setenv("W2S_DEVICE_SLOTS", "1")
    err = refused(write_plan(tmp_path, MICRO.replace("processes: 1", "processes: 2"), "b.yaml"),
                  tmp_path / "out")
    assert "need 2 device slots; W2S_DEVICE_SLOTS allows 1" in err.message


# --- environment --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value", "expected"), [
    ("W2S_LEASE_TTL_S", "soon", "expected a number of seconds > 0, got 'soon'"),
    ("W2S_LEASE_TTL_S", "-5", "expected a number of seconds in (0, 1e6)"),
    ("W2S_SUMMARY_TIMEOUT_S", "soon", "expected a number of seconds in (0, 3600], got 'soon'"),
    ("W2S_SUMMARY_TIMEOUT_S", "nan", "got 'nan'"),
    ("W2S_DEVICE_SLOTS", "many", "expected 'auto', 'off' or a whole number of slots"),
    ("W2S_JAIL_UID", "0", "expected a non-root numeric uid"),
    ("W2S_JAIL_BUILDER", "docker", "expected 'bwrap' or 'unshare'"),
    ("W2S_WARM_START", "of", "expected 'auto' or 'off', got 'of'"),
    ("W2S_PLUGIN_PATH", "/nonexistent/plugins", "got '/nonexistent/plugins', which is not one"),
])
def test_bad_environment_settings_are_refused_up_front(tmp_path, monkeypatch, name, value,
                                                        expected) -> None:
    monkeypatch.setenv(name, value)
    err = refused(write_plan(tmp_path), tmp_path / "out")
    assert err.field == name and expected in err.message, str(err)


# --- the command line: one line, exit 2, nothing written ---------------------------------------

def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_validate_refuses_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = write_plan(tmp_path, MICRO.replace("aux_conf", "zero_shot_prior"))
    result = run_cli(["validate", str(path), "--out", "out", "--store", "store"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}:3: methods[0].name: method zero_shot_prior cannot run on rung m0 of "
        "ladder micro: model 'micro-32x1' has no label tokens to read a zero-shot prior from "
        "(it needs a checkpoint with head: label_token)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml"]

    result = run_cli(["validate", str(path), "--out", "out"], tmp_path,
                     W2S_SUMMARY_TIMEOUT_S="soon")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: W2S_SUMMARY_TIMEOUT_S: expected a number of seconds")


def test_sweep_with_a_bad_registry_writes_no_plan_files(tmp_path: Path) -> None:
    template = yaml.safe_load(MICRO)
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    registry = tmp_path / "registry.yaml"
    registry.write_text("plan: template.yaml\nout: reports/sweep\nmethods:\n"
                        "  - {name: aux_conf}\n  - {name: zero_shot_prior}\n")
    result = run_cli(["sweep", str(registry), "--store", "store"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {registry}:5: methods[1]: the plan for zero_shot_prior (template "
        f"{tmp_path / 'template.yaml'}): methods[0].name: method zero_shot_prior cannot run on "
        "rung m0 of ladder micro: model 'micro-32x1' has no label tokens to read a zero-shot "
        "prior from (it needs a checkpoint with head: label_token)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry.yaml", "template.yaml"]
