"""Issue 10's controls in the flow: `controls:` in a plan (one-line errors), their verdict entries
(marked, analysed apart from the candidates, never promoted) and the gate's refusal to promote
one. The bound run simulates a synthetic spike-in of +8 points (paired with the baseline, as the
pipeline builds it) and a null control (an independent draw at the baseline's accuracy)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bound_run import BoundRun, build_bound_run  # noqa: E402
from cli_app import product_app  # noqa: E402

from flows.plan import load_plan  # noqa: E402
from stats.verdict_model import Verdict  # noqa: E402
from w2s_common.errors import InputError  # noqa: E402

PLANS = Path(__file__).resolve().parents[2] / "flows" / "plans"
CONTROLS = [{"kind": "synthetic_spike_in", "name": "plus8", "gain": 0.08},
            {"kind": "null", "name": "replicate"}]
SPIKE, NULL = "control:synthetic_spike_in:plus8", "control:null:replicate"

GOOD = """\
name: check
methods:
  - name: aux_conf
baseline: vanilla
rungs: [xs, m]
seeds: {initial: 3, batch: 3, max: 6}
"""


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> BoundRun:
    return build_bound_run(tmp_path_factory.mktemp("controls"), controls=CONTROLS)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> BoundRun:
    return build_bound_run(tmp_path_factory.mktemp("plain"))


def gate(verdict: Path, *args: str) -> tuple[int, str, str]:
    env = {"W2S_VERDICT_HMAC_KEY": None, "W2S_VERDICT_HMAC_SECRET_BLOCK": None}
    result = CliRunner().invoke(product_app(), ["gate", str(verdict), *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


# --- the plan ---------------------------------------------------------------------------------

def test_demo_plan_has_a_spike_in_and_a_null_control() -> None:
    plan = load_plan(PLANS / "demo.yaml")
    kinds = {entry.kind: entry for entry in plan.controls}
    assert set(kinds) == {"synthetic_spike_in", "null"}
    assert kinds["synthetic_spike_in"].gain >= plan.sesoi  # a gain the plan cares about


@pytest.mark.parametrize(("text", "line", "field", "expected"), [
    ("controls:\n  - {kind: spike, name: a}\n", 8, "controls[0].kind",
     "'null', 'spike_in' or 'synthetic_spike_in'"),
    ("controls:\n  - {kind: synthetic_spike_in, name: a}\n", 8, "controls[0].gain", "needs gain"),
    ("controls:\n  - {kind: null, name: a, gold_fraction: 0.5}\n", 8, "controls[0].gold_fraction",
     "not a setting of a null control"),
    ("controls:\n  - {kind: spike_in, name: a, gold_fraction: 1.5}\n", 8,
     "controls[0].gold_fraction", "less than or equal to 1"),
    ("controls:\n  - {kind: null, name: a}\n  - {kind: null, name: a}\n", 9, "controls[1].name",
     "duplicate control 'a'"),
    ("controls:\n  - {kind: null, name: 'a:b'}\n", 8, "controls[0].name", "should match pattern"),
    ("controls:\n  - kind: synthetic_spike_in\n    name: b\n    gain: 2\n", 10, "controls[0].gain",
     "less than 1"),
    ("controls: {kind: null}\n", 7, "controls", "valid list"),
])
def test_bad_controls_name_file_line_field_and_expectation(tmp_path: Path, text: str, line: int,
                                                           field: str, expected: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(GOOD + text)
    with pytest.raises(InputError) as info:
        load_plan(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field), str(err)
    assert expected in err.message
    assert "\n" not in str(err) and str(err).startswith(f"{path}:{line}: {field}: ")


def test_validate_refuses_a_bad_control_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(GOOD.replace("rungs: [xs, m]", "ladder: micro\nrungs: all")
                    + "controls:\n  - {kind: synthetic_spike_in, name: a}\n")
    from flows.cli import app

    result = CliRunner().invoke(app, ["validate", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{path}:9: controls[0].gain: " in lines[0], result.stderr
    assert not (tmp_path / "out" / "verdict.json").exists()


def test_a_method_may_not_take_a_control_name(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(GOOD.replace("- name: aux_conf", "- name: 'control:null:x'"))
    with pytest.raises(InputError, match=r"plan\.yaml:3: methods\[0\]\.name: .*reserved"):
        load_plan(path)


def test_controls_need_a_trusted_baseline_before_any_compute(tmp_path: Path) -> None:
    from flows.resolved import ResolvedMethod, check_controls
    from methods.resolve import method_function

    path = tmp_path / "plan.yaml"
    path.write_text(GOOD + "controls:\n  - {kind: null, name: a}\n")
    plan = load_plan(path)
    assert method_function("vanilla", {})[2].runs_untrusted_code is False
    def resolved(label: str, untrusted: bool = False, jailed_builtin: bool = False):
        return ResolvedMethod(label, {}, method_function("vanilla", {})[2].code, untrusted,
                              jailed_builtin)

    trusted = {"vanilla": resolved("vanilla"), "aux_conf": resolved("aux_conf")}
    check_controls(plan, trusted)  # nothing to refuse
    with pytest.raises(InputError, match=r"plan\.yaml:8: controls\[0\]\.kind: .*does not trust"):
        check_controls(plan, {**trusted, "vanilla": resolved("vanilla", untrusted=True)})
    # A built-in the plan jails is code the plan does not trust either: handed gold labels, it
    # could tell a control's runs apart (attacker review, 2026-12-05).
    with pytest.raises(InputError, match=r"controls\[0\]\.kind: .*a built-in this plan does "
                                         r"not trust \(jail: \{builtins: jail\}\): use vanilla"):
        check_controls(plan, {**trusted, "vanilla": resolved("vanilla", jailed_builtin=True)})
    # A plugin names itself: it may not name itself like a control.
    with pytest.raises(InputError, match=r"plan\.yaml:3: methods\[0\]\.name: .*reserved"):
        check_controls(plan, {**trusted, "aux_conf": resolved("control:null:a")})


# --- the verdict ------------------------------------------------------------------------------

def test_each_control_is_marked_with_its_kind_and_injected_gain(bound: BoundRun) -> None:
    raw = bound.raw()
    assert set(raw["controls"]) == {SPIKE, NULL}
    assert raw["controls"][SPIKE]["control"] == "spike_in"
    assert raw["controls"][SPIKE]["control_details"] == {
        "variant": "synthetic_spike_in", "name": "plus8", "injected_gain": 0.08,
        "spec": {"kind": "synthetic_spike_in", "name": "plus8", "gain": 0.08}}
    assert raw["controls"][NULL]["control"] == "null"
    assert raw["controls"][NULL]["control_details"]["injected_gain"] == 0.0
    assert not set(raw["methods"]) & {SPIKE, NULL}
    assert set(raw["binding"]["controls"]) == {SPIKE, NULL}


def test_a_control_is_never_promoted_whatever_its_verdict(bound: BoundRun) -> None:
    raw = bound.raw()
    spike, null = raw["controls"][SPIKE], raw["controls"][NULL]
    # The spike-in is as large as aux_conf's gain, which is promoted; the control is not.
    assert raw["methods"]["aux_conf"]["promote"] is True
    assert spike["verdict"] == "REAL" and spike["promote"] is False
    assert any("never promoted" in reason for reason in spike["reasons"])
    assert null["verdict"] != "REAL" and null["promote"] is False


def test_controls_leave_the_candidates_verdicts_unchanged(bound: BoundRun, tmp_path: Path
                                                          ) -> None:
    """The same results, analysed with the controls and without them (plan and rows): the
    candidates' entries are identical (controls are outside their multiplicity family)."""
    import pandas as pd
    import yaml

    from flows.derive import derive_verdict
    from transfer.store import RunStore

    results = pd.read_parquet(bound.results)
    store = RunStore(bound.store)
    runs = [store.find(h) for h in results["run_hash"].unique()]
    with_controls = derive_verdict(load_plan(bound.plan), results, runs)
    bare = yaml.safe_load(bound.plan.read_text())
    bare.pop("controls")
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(bare))
    kept = ~results["arm"].isin([SPIKE, NULL])
    without = derive_verdict(load_plan(tmp_path / "bare.yaml"), results[kept],
                             [r for r in runs if r.spec.method not in (SPIKE, NULL)])
    assert set(with_controls.controls) == {SPIKE, NULL} and not without.controls
    assert with_controls.methods == without.methods


def test_validate_prints_the_controls_table(bound: BoundRun, capsys) -> None:
    from flows.commands.validate_cmd import print_verdicts

    print_verdicts(Verdict.model_validate(bound.raw()), bound.out)
    out = capsys.readouterr().out
    assert "controls of the pipeline (never promoted)" in out
    assert "plus8" in out and "synthetic_spike_in" in out and "+8.00" in out
    assert "label-leak audit: 5 cell(s) of 5 method(s) (the baseline included), all clean" in out


# --- the gate ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [SPIKE, "plus8", NULL, "replicate"])
def test_gate_refuses_to_promote_a_control(bound: BoundRun, name: str) -> None:
    code, out, err = gate(bound.verdict, "-m", name, "--require", "REAL")
    assert code == 2 and out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "control" in lines[0] and "never promoted" in lines[0], err


def test_gate_still_promotes_and_rederives_a_candidate_beside_controls(bound: BoundRun) -> None:
    code, out, err = gate(bound.verdict, "-m", "aux_conf", "--require", "REAL", "--plan",
                          str(bound.plan), "--store", str(bound.store), "--check-code")
    assert code == 0, err
    assert "aux_conf: PROMOTE" in out and "re-derived" in out


def _forged(bound: BoundRun, tmp_path: Path, edit) -> Path:
    out = tmp_path / "forged"
    shutil.copytree(bound.out, out)
    raw = bound.raw()
    edit(raw)
    (out / "verdict.json").write_text(json.dumps(raw))
    return out / "verdict.json"


def _move_to_methods(raw):
    raw["methods"][SPIKE] = raw["controls"].pop(SPIKE)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda raw: raw["controls"][SPIKE].update(promote=True), "promote"),
    (lambda raw: raw["controls"][SPIKE]["control_details"].update(injected_gain=0.2),
     ".control_details:"),
    (lambda raw: raw["controls"].__getitem__(NULL).update(control="spike_in"), ".control:"),
    (lambda raw: raw["controls"].pop(NULL), "binding binds"),
    (_move_to_methods, "control:synthetic_spike_in:plus8"),
    (lambda raw: raw["binding"]["controls"][SPIKE]["spec"].update(gain=0.01),
     "plus8.control_details:"),
    (lambda raw: raw["binding"]["controls"][SPIKE].update(fingerprint="0" * 64),
     "binding.controls.control:synthetic_spike_in:plus8.fingerprint"),
])
def test_forged_control_entries_are_refused(bound: BoundRun, tmp_path: Path, edit,
                                            expected: str) -> None:
    code, out, err = gate(_forged(bound, tmp_path, edit), "-m", "aux_conf")
    assert code == 2 and out == "", out
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_rederivation_catches_a_control_verdict_changed_with_its_reasons(bound: BoundRun,
                                                                         tmp_path: Path) -> None:
    def edit(raw):
        entry = raw["controls"][NULL]
        entry["cells"][-1]["gain"]["ci_high"] += 0.001
    code, _, err = gate(_forged(bound, tmp_path, edit), "-m", "aux_conf", "--plan",
                        str(bound.plan))
    assert code == 2 and "controls" in err, err


def test_plan_without_controls_keeps_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(GOOD)
    before = load_plan(path).plan_hash
    path.write_text(GOOD + "controls: []\n")
    assert load_plan(path).plan_hash == before
    path.write_text(GOOD + "controls:\n  - {kind: null, name: a}\n")
    assert load_plan(path).plan_hash != before


def test_report_has_a_controls_section(bound: BoundRun) -> None:
    from flows.report.render import build_context, render_html, render_markdown

    raw = bound.raw()
    context = build_context(Verdict.model_validate(raw), None, None)
    assert [row[0].text for row in context["control_rows"]] == ["plus8", "replicate"]
    assert {item.method for item in context["control_reasons"]} == {SPIKE, NULL}
    html = render_html(context)
    assert 'id="control-table"' in html and 'data-control="plus8"' in html
    # Every number of the controls' table traces back to its place in verdict.json.
    assert f'data-path="controls.{SPIKE}.cells.1.gain.estimate"' in html
    markdown = render_markdown(context, images=False)
    assert "## Controls (not candidates; never promoted)" in markdown
    assert "| plus8 | synthetic_spike_in | +8.00 | REAL | never |" in markdown
    # The control's sentence names it as a control and never promotes it.
    from stats.display import plain
    from stats.verdict_prose import verdict_sentence

    said = plain(verdict_sentence(Verdict.model_validate(raw), "controls", SPIKE))
    assert said.startswith(f"{SPIKE} (synthetic_spike_in control plus8, injected +8.00 pp) is REAL")
    assert said.endswith("a control is never promoted.") and said in markdown
    # A verdict without controls has no such section.
    raw.pop("controls")
    assert "Controls" not in render_markdown(build_context(Verdict.model_validate(raw), None, None),
                                             images=False)
