"""Issue 9 acceptance: the gate refuses forged and inconsistent verdict files (exit 2, one line).

A bound run is written once (``bound_run``: stored runs, results.parquet, a verdict.json from
``flows.outputs.write_verdict``); every forgery below edits a copy of it and runs the real CLI.
The genuine files pass every check. ``python tests/flows/test_gate_verify.py`` prints the table
of forgeries and refusal lines that docs/gate.md shows.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bound_run import BoundRun, build_bound_run, write_bound_verdict
from cli_app import product_app

KEY = "gate-test-key-1"
OTHER_KEY = "some-other-key"


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> BoundRun:
    return build_bound_run(tmp_path_factory.mktemp("bound"))


def gate(verdict: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environment = {"W2S_VERDICT_HMAC_KEY": None, "W2S_VERDICT_HMAC_SECRET_BLOCK": None,
                   **(env or {})}
    result = CliRunner().invoke(product_app(), ["gate", str(verdict), *args], env=environment)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


# --- the genuine run passes ------------------------------------------------------------------

def test_genuine_verdict_passes_every_check(bound: BoundRun) -> None:
    code, out, err = gate(bound.verdict, "-m", "aux_conf", "--require", "REAL",
                          "--plan", str(bound.plan), "--store", str(bound.store), "--check-code")
    assert code == 0, err
    assert "aux_conf: PROMOTE" in out
    assert "re-derived from results.parquet and the plan (guards from the stored runs)" in out
    assert "code fingerprints match this working tree" in out
    for method, expected in (("confident", "HARMFUL"), ("em_posterior", "VANISHED"),
                             ("bootstrap", "INCONCLUSIVE")):
        code, out, _ = gate(bound.verdict, "-m", method, "--plan", str(bound.plan))
        assert code == 1 and f"verdict {expected}" in out


def test_verdict_binds_plan_commit_code_and_results(bound: BoundRun) -> None:
    raw = bound.raw()
    binding = raw["binding"]
    assert binding["plan_hash"] == raw["plan"]["plan_hash"]
    assert binding["results_sha256"] == hashlib.sha256(bound.results.read_bytes()).hexdigest()
    assert set(binding["methods"]) == {"vanilla", "aux_conf", "em_posterior", "confident",
                                       "bootstrap"}
    assert "git_commit" in binding and len(binding["trainer_fingerprint"]) == 64
    table = pd.read_parquet(bound.results)
    fingerprints = table.loc[table["arm"] == "aux_conf", "method_fingerprint"].unique()
    assert list(fingerprints) == [binding["methods"]["aux_conf"]["fingerprint"]]


def test_validate_signs_the_verdict_it_writes_with_a_key(bound: BoundRun, tmp_path: Path) -> None:
    from transfer.store import RunStore

    store = RunStore(bound.store)
    hashes = pd.read_parquet(bound.results)["run_hash"].unique()
    out = tmp_path / "signed"
    write_bound_verdict(bound.plan, [store.find(h) for h in hashes], out, key=KEY.encode())
    verdict = out / "verdict.json"
    assert json.loads(verdict.read_text())["hmac"]["algorithm"] == "hmac-sha256"
    code, out_text, _ = gate(verdict, "-m", "aux_conf", "--plan", str(bound.plan),
                             env={"W2S_VERDICT_HMAC_KEY": KEY})
    assert code == 0 and "HMAC verified" in out_text
    code, _, err = gate(verdict, "-m", "aux_conf", env={"W2S_VERDICT_HMAC_KEY": OTHER_KEY})
    assert code == 2 and "signed with key" in err


def test_signed_verdict_verifies_with_its_key(bound: BoundRun, tmp_path: Path) -> None:
    signed = _signed_copy(bound, tmp_path, KEY)
    code, out, _ = gate(signed, "-m", "aux_conf", env={"W2S_VERDICT_HMAC_KEY": KEY})
    assert code == 0 and "HMAC verified" in out
    code, out, _ = gate(signed, "-m", "aux_conf")
    assert code == 0 and "HMAC present but not verified" in out


def test_key_from_a_prefect_secret_block(prefect_harness, bound: BoundRun, tmp_path: Path,
                                         monkeypatch) -> None:
    from prefect.blocks.system import Secret

    from flows.binding import verdict_key
    from w2s_common.errors import InputError

    Secret(value=KEY).save("w2s-test-verdict-key", overwrite=True)
    monkeypatch.delenv("W2S_VERDICT_HMAC_KEY", raising=False)
    monkeypatch.setenv("W2S_VERDICT_HMAC_SECRET_BLOCK", "w2s-test-verdict-key")
    assert verdict_key() == KEY.encode()
    from flows.gate import check_promotion

    signed = _signed_copy(bound, tmp_path / "signed", KEY)
    assert "HMAC verified" in check_promotion(signed, "aux_conf").checks
    with pytest.raises(InputError, match="the file has no hmac"):
        check_promotion(_copy(bound, tmp_path / "unsigned"), "aux_conf")
    monkeypatch.setenv("W2S_VERDICT_HMAC_SECRET_BLOCK", "no-such-block")
    with pytest.raises(InputError, match="cannot load Prefect Secret block 'no-such-block'"):
        verdict_key()


def test_rederivation_takes_seconds(bound: BoundRun) -> None:
    import time

    started = time.perf_counter()
    assert gate(bound.verdict, "-m", "aux_conf", "--plan", str(bound.plan))[0] == 0
    # Not a timing assertion on the machine: a bound on what "a few seconds" means here.
    assert time.perf_counter() - started < 60


# --- forgeries -------------------------------------------------------------------------------

@dataclass
class Forgery:
    """One forged or inconsistent verdict: how it is made, what the gate is given, what it says."""

    name: str
    make: Callable[[BoundRun, Path], Path]
    expected: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    method: str = "aux_conf"


def _copy(bound: BoundRun, workdir: Path) -> Path:
    out = workdir / "out"
    shutil.copytree(bound.out, out)
    return out / "verdict.json"


def edited(change: Callable[[dict[str, Any]], None]) -> Callable[[BoundRun, Path], Path]:
    def make(bound: BoundRun, workdir: Path) -> Path:
        path = _copy(bound, workdir)
        raw = json.loads(path.read_text())
        change(raw)
        path.write_text(json.dumps(raw, indent=2))
        return path
    return make


def text_edit(change: Callable[[str], str]) -> Callable[[BoundRun, Path], Path]:
    def make(bound: BoundRun, workdir: Path) -> Path:
        path = _copy(bound, workdir)
        path.write_text(change(path.read_text()))
        return path
    return make


def _production(raw: dict[str, Any], method: str) -> dict[str, Any]:
    return next(c for c in raw["methods"][method]["cells"] if c["rung"] == raw["production_rung"])


def _relabel_harmful_as_real(raw: dict[str, Any], *, reasons: bool, numbers: bool) -> None:
    entry = raw["methods"]["confident"]
    entry.update(verdict="REAL", promote=True)
    if reasons:
        entry["reasons"] = ["REAL: better than the baseline on synthetic."]
    if numbers:
        for cell in entry["cells"]:
            gain = cell["gain"]
            gain["estimate"], gain["ci_low"], gain["ci_high"] = (
                -gain["estimate"], -gain["ci_high"], -gain["ci_low"])
            if gain.get("decision_ci_low") is not None:
                gain["decision_ci_low"], gain["decision_ci_high"] = (
                    -gain["decision_ci_high"], -gain["decision_ci_low"])
            gain["p_adjusted"], gain["p_harm_adjusted"] = (gain["p_harm_adjusted"],
                                                           gain["p_adjusted"])
            gain["p_superiority"], gain["p_harm"] = gain["p_harm"], gain["p_superiority"]
            if cell.get("outcome") == "harmful":
                cell["outcome"] = "superior"


def _shrink_gain(raw: dict[str, Any]) -> None:
    cell = _production(raw, "aux_conf")
    cell["gain"].update(estimate=0.005, ci_low=0.002, ci_high=0.008)
    for key in ("decision_ci_low", "decision_ci_high"):  # as a file written before it existed
        cell["gain"].pop(key, None)


def _relabelled_superior_rule_deleted(raw: dict[str, Any]) -> None:
    raw.pop("alpha_per_direction", None)
    cell = _production(raw, "bootstrap")
    cell["outcome"] = "superior"
    cell["gain"]["decision_ci_low"] = -abs(cell["gain"]["decision_ci_low"] or 0.001)


def _undecided_relabelled_superior(raw: dict[str, Any]) -> None:
    cell = _production(raw, "bootstrap")
    cell["outcome"] = "superior"
    for key in ("decision_ci_low", "decision_ci_high"):
        cell["gain"].pop(key, None)


def _swap(raw: dict[str, Any]) -> None:
    # Each entry stays self-consistent; the HARMFUL method gets the promoted method's entry.
    methods = raw["methods"]
    methods["aux_conf"], methods["confident"] = methods["confident"], methods["aux_conf"]


def _hand_written(bound: BoundRun, workdir: Path) -> Path:
    path = workdir / "verdict.json"
    path.write_text(json.dumps({"schema_version": 1, "alpha": 0.05, "sesoi": 0.01,
                                "baseline": "vanilla", "production_rung": "m1",
                                "methods": {"aux_conf": {"verdict": "REAL", "promote": True,
                                                         "reasons": [], "cells": []}}}))
    return path


def _results_edit(bound: BoundRun, workdir: Path, *, rebind: bool, rederive: bool) -> Path:
    """Make confident look better in results.parquet: half of its wrong answers at m1 become
    right (all of them would beat the gold-trained ceiling, which a guard catches by itself)."""
    from flows.derive import derive_verdict, replay_looks, sequential_record, table_runs
    from flows.plan import load_plan
    from stats import write_outputs

    path = _copy(bound, workdir)
    table = pd.read_parquet(path.parent / "results.parquet")
    wrong = table.index[(table["arm"] == "confident") & (table["rung"] == "m1")
                        & (table["correct"] == 0)]
    rows = table.index.isin(wrong[::2])
    table.loc[rows, "correct"] = 1
    table.loc[rows, "pred"] = (table.loc[rows, "prob"] > 0.5).astype("int64")
    if rederive:  # the forger also fixes the run's stored accuracy and redoes the statistics
        for run_hash in table.loc[rows, "run_hash"].unique():
            mine = table["run_hash"] == run_hash
            table.loc[mine, "run_accuracy"] = float(table.loc[mine, "correct"].mean())
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    (path.parent / "results.parquet").write_bytes(buffer.getvalue())
    raw = json.loads(path.read_text())
    if rebind:
        raw["binding"]["results_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    if rederive:
        plan = load_plan(bound.plan)
        labels = {m["reference"]: label for label, m in raw["binding"]["methods"].items()}
        looks, seeds_used = replay_looks(plan, table, labels)
        sequential = sequential_record(plan, looks, seeds_used)
        forged = derive_verdict(plan, table, table_runs(table), labels, sequential=sequential,
                                audits=raw.get("audits"))
        forged.binding = raw["binding"]
        write_outputs(forged, path.parent)
        return path
    path.write_text(json.dumps(raw, indent=2))
    return path


def _other_plan(bound: BoundRun, workdir: Path) -> Path:
    import yaml

    plan = yaml.safe_load(bound.plan.read_text())
    plan["sesoi"] = 0.1  # a forger's plan under which the HARMFUL method is merely VANISHED
    (workdir / "other-plan.yaml").write_text(yaml.safe_dump(plan))
    return _copy(bound, workdir)


def _signed_copy(bound: BoundRun, workdir: Path, key: str,
                 change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    from flows.binding import sign

    path = _copy(bound, workdir)
    raw = json.loads(path.read_text())
    raw["hmac"] = sign(raw, key.encode())
    if change:
        change(raw)
    path.write_text(json.dumps(raw, indent=2))
    return path


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        target = raw
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[int(last) if isinstance(target, list) else last] = value
    return change


def _guard(raw: dict[str, Any]) -> None:
    raw["methods"]["aux_conf"]["guards"] = [
        "at the production rung m1 (synthetic) PGR is undefined"]


PLAN = ("--plan", "PLAN")
FORGERIES = [
    Forgery("hand-written six-field JSON", _hand_written, "no binding block"),
    Forgery("binding block removed from a real verdict",
            edited(lambda raw: raw.pop("binding")), "no binding block"),
    Forgery("INCONCLUSIVE method edited to promote: true",
            edited(_set("methods.bootstrap.promote", True)),
            "promote: true but the verdict is INCONCLUSIVE", method="bootstrap"),
    Forgery("INCONCLUSIVE relabelled REAL and promoted (reasons kept)",
            edited(lambda raw: raw["methods"]["bootstrap"].update(verdict="REAL", promote=True)),
            "REAL but its reasons say INCONCLUSIVE", method="bootstrap"),
    Forgery("HARMFUL relabelled REAL and promoted (reasons kept)",
            edited(lambda raw: _relabel_harmful_as_real(raw, reasons=False, numbers=False)),
            "REAL but its reasons say HARMFUL", method="confident"),
    Forgery("HARMFUL relabelled REAL, reasons rewritten",
            edited(lambda raw: _relabel_harmful_as_real(raw, reasons=True, numbers=False)),
            "REAL but no production-rung (m1) gain is positive", method="confident"),
    Forgery("HARMFUL relabelled REAL, reasons rewritten and every gain negated",
            edited(lambda raw: _relabel_harmful_as_real(raw, reasons=True, numbers=True)),
            "does not match its re-derivation", PLAN, method="confident"),
    Forgery("NaN production-rung gain",
            edited(lambda raw: _production(raw, "aux_conf")["gain"].update(estimate=math.nan)),
            "NaN is not a JSON number"),
    Forgery("Infinity as an interval end",
            text_edit(lambda t: t.replace('"ci_high": ', '"ci_high": Infinity, "y": ', 1)),
            "Infinity is not a JSON number"),
    Forgery("promote repeated: false, then true",
            text_edit(lambda t: t.replace('"promote": false', '"promote": false, "promote": true',
                                          1)), "appears twice", method="bootstrap"),
    Forgery("REAL relabelled VANISHED (blocking a rival)",
            edited(lambda raw: raw["methods"]["aux_conf"].update(
                verdict="VANISHED", promote=False,
                reasons=["VANISHED: within +/-1.00 points of the baseline on every dataset."])),
            "VANISHED but a production-rung (m1) gain is not shown within the SESOI"),
    Forgery("gain estimate moved outside its own interval",
            edited(lambda raw: _production(raw, "aux_conf")["gain"].update(estimate=0.5)),
            "outside its interval"),
    Forgery("adjusted p value above 1",
            edited(lambda raw: _production(raw, "aux_conf")["gain"].update(p_adjusted=1.7)),
            "is not a probability"),
    Forgery("decision interval edited (helper-46's interval)",
            edited(lambda raw: _production(raw, "aux_conf")["gain"].update(
                decision_ci_low=-0.5, decision_ci_high=-0.4)),
            "decision interval"),
    Forgery("undecided cell relabelled superior, alpha_per_direction deleted (helper-48)",
            edited(_relabelled_superior_rule_deleted), "decision interval starts at",
            method="bootstrap"),
    Forgery("undecided cell relabelled superior, its decision interval deleted (helper-47)",
            edited(_undecided_relabelled_superior), "is not below alpha / 2",
            method="bootstrap"),
    Forgery("alpha raised to 0.9 (every p passes; helper-44)", edited(_set("alpha", 0.9)),
            "is not a level in (0, 0.5)"),
    Forgery("alpha raised, alpha_per_direction kept", edited(_set("alpha", 0.2)),
            "alpha_per_direction: 0.025 is not alpha / 2"),
    Forgery("REAL with a gain below the SESOI, still promoted", edited(_shrink_gain),
            "no production-rung gain reaches the SESOI"),
    Forgery("a promotion guard fired, promote kept true", edited(_guard),
            "a promotion guard fired"),
    Forgery("method marked unjailed, promote kept true",
            edited(_set("methods.aux_conf.isolation", "unjailed")),
            "untrusted code ran outside the jail"),
    Forgery("plan run with jail: off, promote kept true", edited(_set("jail", "off")),
            "untrusted code ran outside the jail"),
    Forgery("plan block pointed at another plan hash",
            edited(_set("plan.plan_hash", "0123456789abcdef")),
            "differs from the binding's plan"),
    Forgery("code fingerprint replaced by a non-hash",
            edited(_set("binding.methods.aux_conf.fingerprint", "trust-me")),
            "binding.methods.aux_conf.fingerprint"),
    Forgery("a decided method dropped from the binding",
            edited(lambda raw: raw["binding"]["methods"].pop("confident")),
            "'confident' is not bound"),
    Forgery("two methods' entries swapped (the HARMFUL method gets the promoted entry)",
            edited(_swap), "does not match its re-derivation", PLAN, method="confident"),
    Forgery("sequential record edited (seeds claimed)",
            edited(_set("sequential.seed_budget", 40)), "does not match its re-derivation", PLAN),
    Forgery("extra field slipped into a method entry",
            edited(_set("methods.aux_conf.override", True)),
            "methods.aux_conf.override: Extra inputs are not permitted", PLAN),
    Forgery("results.parquet edited (confident's errors fixed), binding untouched",
            lambda b, w: _results_edit(b, w, rebind=False, rederive=False),
            "the verdict was derived from", PLAN),
    Forgery("results.parquet edited and its bound sha256 updated",
            lambda b, w: _results_edit(b, w, rebind=True, rederive=False),
            "does not match its re-derivation", PLAN),
    Forgery("results.parquet and verdict.json forged together (re-derived), checked against "
            "the store", lambda b, w: _results_edit(b, w, rebind=True, rederive=True),
            "the stored run", (*PLAN, "--store", "STORE"), method="confident"),
    Forgery("a plan with another SESOI handed to the gate", _other_plan, "hashes to",
            ("--plan", "OTHER_PLAN")),
    Forgery("unsigned file where a verdict key is configured", _copy, "has no hmac",
            env={"W2S_VERDICT_HMAC_KEY": KEY}),
    Forgery("signed file edited after signing (a reason reworded)",
            lambda b, w: _signed_copy(b, w, KEY, _set("methods.aux_conf.reasons.0", "REAL!")),
            "the digest does not match", env={"W2S_VERDICT_HMAC_KEY": KEY}),
    Forgery("signed with another key", lambda b, w: _signed_copy(b, w, OTHER_KEY),
            "signed with key", env={"W2S_VERDICT_HMAC_KEY": KEY}),
    Forgery("stale verdict: the method's bound code is not this tree's",
            edited(_set("binding.methods.aux_conf.fingerprint", "ab" * 32)), "stale verdict",
            ("--check-code",)),
    Forgery("stale verdict: another trainer (code or package versions)",
            edited(_set("binding.trainer_fingerprint", "cd" * 32)), "the trainer changed",
            ("--check-code",)),
    Forgery("truncated file", text_edit(lambda t: t[: len(t) // 3]),
            "invalid or truncated JSON"),
    Forgery("the method's label-leak audit flagged, promote kept true",
            edited(_set("audits.aux_conf.0.clean", False)),
            "promote: true but the label-leak audit flagged it at rung"),
    Forgery("the baseline's label-leak audit flagged, promote kept true",
            edited(_set("audits.vanilla.0.clean", False)),
            "promote: true but the label-leak audit flagged the baseline vanilla"),
    Forgery("the method's label-leak audit removed, promote kept true",
            edited(lambda raw: raw["audits"].pop("aux_conf")),
            "promote: true but no label-leak audit of it"),
    Forgery("every label-leak audit removed (the plan audits)",
            edited(lambda raw: raw.pop("audits")), "does not match its re-derivation", PLAN),
]


def run_forgery(forgery: Forgery, bound: BoundRun, workdir: Path) -> tuple[int, str, str]:
    path = forgery.make(bound, workdir)
    replace = {"PLAN": str(bound.plan), "STORE": str(bound.store),
               "OTHER_PLAN": str(workdir / "other-plan.yaml")}
    args = [replace.get(a, a) for a in forgery.args]
    return gate(path, "-m", forgery.method, *args, env=forgery.env)


@pytest.mark.parametrize("forgery", FORGERIES, ids=[f.name for f in FORGERIES])
def test_forged_or_inconsistent_verdict_is_refused(forgery: Forgery, bound: BoundRun,
                                                    tmp_path: Path) -> None:
    code, out, err = run_forgery(forgery, bound, tmp_path)
    assert code == 2, (out, err)
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert forgery.expected in err, err
    assert "Traceback" not in err


def test_there_are_at_least_twenty_forgeries() -> None:
    assert len(FORGERIES) >= 20


def test_consistent_table_forgery_passes_without_the_store(bound: BoundRun,
                                                          tmp_path: Path) -> None:
    """What the re-derivation alone cannot see (documented in docs/gate.md): a table and a
    verdict forged together. The store (or an HMAC) is what catches it."""
    path = _results_edit(bound, tmp_path, rebind=True, rederive=True)
    code, out, err = gate(path, "-m", "confident", "--plan", str(bound.plan))
    assert code == 0 and "confident: PROMOTE (verdict REAL" in out, err  # the forgery "works"
    code, _, err = gate(path, "-m", "confident", "--plan", str(bound.plan), "--store",
                        str(bound.store))
    assert code == 2 and "the stored run" in err
    signed = _signed_copy(bound, tmp_path / "signed", KEY)
    forged = _results_edit(bound, tmp_path / "forged", rebind=True, rederive=True)
    # A forger without the key cannot carry a valid signature over to the forged file.
    raw = json.loads(forged.read_text())
    raw["hmac"] = json.loads(signed.read_text())["hmac"]
    forged.write_text(json.dumps(raw))
    code, _, err = gate(forged, "-m", "confident", env={"W2S_VERDICT_HMAC_KEY": KEY})
    assert code == 2 and "the digest does not match" in err


def forgery_table(workdir: Path) -> str:
    """The markdown table of docs/gate.md: each forgery and the gate's refusal line."""
    bound = build_bound_run(workdir / "bound")
    lines = ["| # | forgery | gate options | refusal (stderr, exit 2) |", "|---|---|---|---|"]
    for index, forgery in enumerate(FORGERIES, start=1):
        scratch = workdir / f"f{index}"
        scratch.mkdir()
        code, _, err = run_forgery(forgery, bound, scratch)
        shown = err.strip().replace(str(scratch), "DIR").replace(str(workdir), "DIR")
        options = " ".join(forgery.args).replace("OTHER_PLAN", "OTHER.yaml") or "-"
        if forgery.env:
            options += " (" + ", ".join(f"{k} set" for k in forgery.env) + ")"
        lines.append(f"| {index} | {forgery.name} | `{options}` | exit {code}: `{shown}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        print(forgery_table(Path(scratch)))
