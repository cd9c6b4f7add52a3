"""Issue 9 acceptance: an edited method is recomputed and judged on its new code, through the CI
helper, with the old store restored.

A plugin method is validated (as the promotion gate's CI job would) and its store kept. Then
its code is edited to return 1 - p. The CI helper selects it from the changed file and writes
its plan (the same plan: same hash), the old store is restored (as ``actions/cache``
``restore-keys`` does), validate runs again: the plugin's student runs are recomputed (its
fingerprint changed), weak, ceiling and baseline are reused, and the gate blocks the HARMFUL
method. The old verdict can no longer promote it either: ``gate --check-code`` calls it stale.

The plugins pass the weak teacher's test predictions through (no training): a jailed plugin
that trains builds DeepSpeed's CPU op afresh in every jail (60-90 s each), which a test of the
run keys does not need. The baseline is a plugin of its own package that is never edited, so
the candidate and the baseline make the same predictions at first (VANISHED).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from cli_app import product_app
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
REFERENCE = "ci_plugin_pkg.methods:Candidate"
BASELINE = "ci_baseline_pkg.methods:WeakEcho"
CANDIDATE = '''"""A contributor's method."""
import numpy as np

from methods.base import MethodBase


class Candidate(MethodBase):
    name = "ci_candidate"
    description = "The weak teacher's test predictions (tests/flows/test_ci_gate.py)"

    def run(self, data, trainer, params):
        p = np.asarray(data.weak_test_probs, dtype=float)
        return p
'''
EDITED = CANDIDATE.replace("        return p\n", "        return 1.0 - p\n")
ECHO = CANDIDATE.replace("class Candidate", "class WeakEcho").replace(
    "ci_candidate", "ci_weak_echo")


def _jail_available() -> bool:
    from methods import jail

    return jail.jail_available()


pytestmark = pytest.mark.skipif(not _jail_available(), reason="no jail builder works here")


def _gate_targets():
    spec = importlib.util.spec_from_file_location("gate_targets", REPO / "infra/ci/gate_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def executed(out: Path) -> Counter:
    labels: list[str] = []
    for result in sorted((out / "work").glob("result-*.json")):
        labels.extend(json.loads(result.read_text())["executed_arms"])
    return Counter(labels)


def gate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(product_app(), ["gate", *args],
                                env={"W2S_VERDICT_HMAC_KEY": None,
                                     "W2S_VERDICT_HMAC_SECRET_BLOCK": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_edited_plugin_is_recomputed_and_judged_on_its_new_code_with_the_old_store(
        prefect_harness, tmp_path: Path, monkeypatch) -> None:
    from flows.validate import validate_flow

    code = tmp_path / "code"
    for name, text in (("ci_plugin_pkg", CANDIDATE), ("ci_baseline_pkg", ECHO)):
        (code / name).mkdir(parents=True)
        (code / name / "__init__.py").write_text("")
        (code / name / "methods.py").write_text(text)
    source = code / "ci_plugin_pkg" / "methods.py"
    # The plugin is importable by name (in this process and in the flow's workers).
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("PYTHONPATH", str(code))
    template = yaml.safe_load((REPO / "flows/plans/micro-ci.yaml").read_text())
    template.update(name="ci-template", rungs=["m0"], methods=[{"name": REFERENCE, "params": {}}],
                    baseline=BASELINE, seeds={"initial": 2, "batch": 1, "max": 2})
    template_path = tmp_path / "template.yaml"
    template_path.write_text(yaml.safe_dump(template, sort_keys=False))
    targets = _gate_targets()

    def ci_plan(name: str) -> Path:
        plan = tmp_path / f"{name}.yaml"
        assert targets.main(["plan", REFERENCE, str(template_path), str(plan)]) == 0
        return plan

    # 1. The method as first submitted; its store is what CI caches.
    store = tmp_path / "store"
    first_plan = ci_plan("first")
    first = tmp_path / "first"
    before = validate_flow(str(first_plan), str(first), str(store))
    assert before.methods["ci_candidate"].verdict == "VANISHED"
    assert gate(str(first / "verdict.json"), "-m", REFERENCE, "--plan", str(first_plan),
                "--check-code")[0] in (0, 1)

    # 2. The contributor edits it: 1 - p.
    source.write_text(EDITED)
    changed = tmp_path / "changed.txt"
    changed.write_text(f"{source}\nREADME.md\n")
    assert targets.changed_methods(
        changed.read_text().splitlines(),
        targets.method_files(targets.candidate_entries(template)), BASELINE) == [REFERENCE]

    # 3. CI: the plan for the selected method, the old store restored, validate, gate.
    second_plan = ci_plan("second")
    assert second_plan.read_text() == first_plan.read_text()  # same plan, same hash
    restored = tmp_path / "restored-store"
    shutil.copytree(store, restored)
    second = tmp_path / "second"
    after = validate_flow(str(second_plan), str(second), str(restored))

    n_cells = 1 * 2  # rungs x seeds
    assert executed(second) == Counter({"ci_candidate": n_cells}), \
        "the edited method is recomputed, the weak, ceiling and baseline runs reused"
    decision = after.methods["ci_candidate"]
    assert decision.verdict == "HARMFUL" and not decision.promote
    old, new = (json.loads((d / "verdict.json").read_text())["binding"]["methods"]
                ["ci_candidate"]["fingerprint"] for d in (first, second))
    assert old != new

    code_, out, err = gate(str(second / "verdict.json"), "-m", REFERENCE, "--require", "REAL",
                           "--plan", str(second_plan), "--check-code")
    assert code_ == 1 and "verdict HARMFUL" in out, out + err
    # The old verdict cannot stand for the new code.
    code_, out, err = gate(str(first / "verdict.json"), "-m", REFERENCE, "--plan",
                           str(first_plan), "--check-code")
    assert code_ == 2 and "stale verdict: ci_candidate's code changed" in err
