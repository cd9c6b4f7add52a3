"""The promotion gate: exit 0 promote, 1 do not promote (with reasons), 2 bad input.

The fixture verdict is bound (``binding``, ``plan``, isolation and guards as validate writes
them) with placeholder fingerprints; the checks that need the real run behind a verdict
(re-derivation, code fingerprints) are in test_gate_verify.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_app import product_app
from typer.testing import CliRunner


def bind(verdict: dict[str, Any]) -> dict[str, Any]:
    """``verdict`` with what validate adds to the statistics' dict: guards, isolation, plan and
    binding (placeholder hashes)."""
    plan = {"name": "demo", "plan_hash": "73eb2b21a298edd9"}
    verdict.update(plan=plan, jail="required", baseline_isolation="builtin")
    for entry in verdict["methods"].values():
        entry.setdefault("isolation", "builtin")
        entry.setdefault("guards", [])
    methods = {name: {"reference": name, "params": {}, "kind": "builtin", "provider": None,
                      "fingerprint": "a" * 64}
               for name in [verdict["baseline"], *verdict["methods"]]}
    verdict["binding"] = {"format": "w2s-verdict-binding/1", "plan_name": plan["name"],
                          "plan_hash": plan["plan_hash"], "git_commit": None,
                          "results_sha256": "b" * 64, "trainer_fingerprint": "c" * 64,
                          "methods": methods}
    return verdict


@pytest.fixture
def gate(tmp_path: Path):
    """Run ``gate`` on a verdict dict (bound first) or raw text; return (exit code, stdout,
    stderr)."""

    def run(content: dict[str, Any] | str, *args: str) -> tuple[int, str, str]:
        path = tmp_path / "verdict.json"
        path.write_text(content if isinstance(content, str) else json.dumps(bind(content)))
        result = CliRunner().invoke(product_app(), ["gate", str(path), *args],
                                    env={"W2S_VERDICT_HMAC_KEY": None,
                                         "W2S_VERDICT_HMAC_SECRET_BLOCK": None})
        assert (result.exception is None
                or isinstance(result.exception, SystemExit)), result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


def _with(data: dict[str, Any], method: str, **fields: Any) -> dict[str, Any]:
    data["methods"][method].update(fields)
    return data


def test_promotable_method_exits_0(gate, verdict) -> None:
    verdict = _with(verdict, "aux_conf", verdict="REAL", promote=True)
    code, out, _ = gate(verdict, "--method", "aux_conf")
    assert code == 0 and "aux_conf: PROMOTE" in out
    code, _, _ = gate(verdict, "--method", "aux_conf", "--require", "REAL")
    assert code == 0


@pytest.mark.parametrize(("verdict_name", "promote", "require", "code"), [
    # em_posterior's production gains are -1.20 and +1.85 points, neither significant.
    ("HARMFUL", False, [], 1),
    ("INCONCLUSIVE", False, ["--require", "REAL"], 1),
    ("INCONCLUSIVE", False, ["--require", "real,inconclusive"], 1),
    # A promote=true that the file's own numbers do not support is refused (it used to pass).
    ("INCONCLUSIVE", True, [], 2),
    ("INCONCLUSIVE", True, ["--require", "real,inconclusive"], 2),
    ("REAL", True, ["-r", "VANISHED", "-r", "REAL"], 2),
    ("VANISHED", False, [], 2),  # a -1.20 point gain is not within the 1-point SESOI
    # a data-quality hold (stats/quality.py) is never promoted
    ("HOLD", False, [], 1),
    ("HOLD", False, ["--require", "HOLD"], 1),
])
def test_exit_code_follows_promote_and_required_set(gate, verdict, verdict_name, promote,
                                                    require, code) -> None:
    verdict = _with(verdict, "em_posterior", verdict=verdict_name, promote=promote,
                    reasons=["reason one", "reason two"])
    got, out, err = gate(verdict, "--method", "em_posterior", *require)
    assert got == code, out + err
    if code == 1:
        assert f"verdict {verdict_name}" in out
        assert "DO NOT PROMOTE" in out and "- reason one" in out and "- reason two" in out
    if code == 2:
        assert err.startswith("error: ") and "inconsistent verdict" in err and out == ""


def test_required_set_blocks_a_promoted_method_of_another_verdict(gate, verdict) -> None:
    code, out, _ = gate(verdict, "--method", "aux_conf", "--require", "VANISHED")
    assert code == 1 and "verdict REAL is not in the required set {VANISHED}" in out


def test_unknown_method_exits_2_and_lists_known(gate, verdict) -> None:
    code, _, err = gate(verdict, "--method", "not_a_method")
    assert code == 2
    assert "unknown method 'not_a_method'" in err
    assert all(name in err for name in verdict["methods"])
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_required_verdict_exits_2(gate, verdict) -> None:
    code, _, err = gate(verdict, "--method", "aux_conf", "--require", "GREAT")
    assert code == 2 and "unknown verdict 'GREAT'" in err


@pytest.mark.parametrize("value", ["", " , "])
def test_an_empty_requirement_is_refused_not_read_as_none(gate, verdict, value) -> None:
    """helper-44: `--require ""` meant "no requirement"."""
    code, _, err = gate(verdict, "--method", "aux_conf", "--require", value)
    assert code == 2 and f"--require: got {value!r}; expected verdict names" in err


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda text: text[: len(text) // 2], "invalid or truncated JSON"),
    (lambda text: text.replace('"schema_version": 1,', '"schema_version": 1,,'),
     "invalid or truncated JSON"),
    (lambda text: "", "verdict file is empty"),
    (lambda text: "[1, 2]", "expected a JSON object"),
    (lambda text: text.replace('"promote": true', '"promote": "yes"'), "methods.aux_conf.promote"),
    (lambda text: text.replace('"verdict": "REAL"', '"verdict": "GREAT"'),
     "methods.aux_conf.verdict"),
    (lambda text: text.replace('"schema_version": 1', '"schema_version": 2'), "schema_version"),
    (lambda text: text.replace('"reasons"', '"reasonz"'), "reasons: required field is missing"),
])
def test_malformed_truncated_or_invalid_file_exits_2(gate, verdict, mutate, expected) -> None:
    verdict = _with(verdict, "aux_conf", verdict="REAL", promote=True)
    text = mutate(json.dumps(bind(verdict)))
    code, out, err = gate(text, "--method", "aux_conf")
    assert code == 2, out
    assert expected in err and err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda text: text.replace('"estimate": ', '"estimate": NaN, "z": ', 1), "NaN is not"),
    (lambda text: text.replace('"promote": true', '"promote": false, "promote": true', 1),
     "appears twice"),
])
def test_non_json_numbers_and_repeated_keys_exit_2(gate, verdict, mutate, expected) -> None:
    text = mutate(json.dumps(bind(verdict)))
    code, _, err = gate(text, "--method", "aux_conf")
    assert code == 2 and expected in err


def test_unbound_verdict_exits_2(gate, verdict) -> None:
    code, _, err = gate(json.dumps(verdict), "--method", "aux_conf")
    assert code == 2 and "no binding block" in err


def test_missing_or_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(product_app(), ["gate", str(tmp_path / "nope.json"), "-m", "x"])
    assert result.exit_code == 2 and "verdict file not found" in result.stderr
    result = CliRunner().invoke(product_app(), ["gate", str(tmp_path), "-m", "x"])
    assert result.exit_code == 2 and "cannot read verdict file" in result.stderr


def test_optional_fields_are_read_and_unknown_fields_refused(gate, verdict) -> None:
    """verdict.json is the schema of stats.verdict_model: a field the model has is read, a key it
    does not have is refused at parse time (one line naming it), never silently dropped."""
    verdict = _with(verdict, "aux_conf", verdict="REAL", promote=True)
    verdict["methods"]["aux_conf"]["cells"][0]["seeds_needed"] = 9
    assert gate(verdict, "--method", "aux_conf")[0] == 0
    verdict["generated_at"] = "2026-01-01T00:00:00Z"
    code, _, err = gate(verdict, "--method", "aux_conf")
    assert code == 2 and "generated_at" in err and err.count("\n") == 1, err


def test_a_name_meaning_two_entries_is_refused_not_resolved(tmp_path):
    """`--method rival_ep` where one entry is the plugin installed as `rival_ep` (it names
    itself `rival`) and another names itself `rival_ep`: the gate refuses rather than answer
    with either (flows.gate.entry_named; tests/security/test_method_code.py refuses such a plan
    before compute)."""
    from types import SimpleNamespace

    from flows.gate import entry_named
    from w2s_common.errors import InputError

    verdict = SimpleNamespace(methods={"rival": None, "rival_ep": None}, controls={})
    binding = SimpleNamespace(methods={"rival": SimpleNamespace(reference="rival_ep"),
                                       "rival_ep": SimpleNamespace(reference="pkg.squat:Squat")},
                              controls={})
    source = tmp_path / "verdict.json"
    with pytest.raises(InputError, match=r"'rival_ep' names more than one entry \(rival, "
                                         r"rival_ep: a results name and another entry's"):
        entry_named(verdict, binding, "rival_ep", source)
    assert entry_named(verdict, binding, "rival", source) == "rival"
    assert entry_named(verdict, binding, "pkg.squat:Squat", source) == "rival_ep"


def test_entries_that_read_alike_are_refused_not_told_apart(tmp_path):
    """`sharpen` beside `Sharpen` (campaigns accepted both before 2026-12-06, helper-49): the
    gate answered each name with its own entry, which a reader could not tell apart."""
    from types import SimpleNamespace

    from flows.gate import entry_named
    from w2s_common.errors import InputError

    verdict = SimpleNamespace(methods={"sharpen": None, "Sharpen": None, "other": None},
                              controls={})
    binding = SimpleNamespace(methods={"sharpen": SimpleNamespace(reference="a.m:Rival"),
                                       "Sharpen": SimpleNamespace(reference="a.m:Squat"),
                                       "other": SimpleNamespace(reference="other")},
                              controls={})
    for name in ("sharpen", "Sharpen", "a.m:Rival"):
        with pytest.raises(InputError, match=r"read alike \(Sharpen, sharpen; case and"):
            entry_named(verdict, binding, name, tmp_path / "verdict.json")
    assert entry_named(verdict, binding, "other", tmp_path / "verdict.json") == "other"
