"""Plans: examples load, bad plans give one-line errors with file, line, field and expectation."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cli_app import product_app
from typer.testing import CliRunner

from flows.plan import Plan, load_plan, plan_json_schema
from w2s_common.errors import InputError

PLANS = Path(__file__).resolve().parents[2] / "flows" / "plans"

GOOD = """\
name: check
methods:
  - name: aux_conf
    params: {alpha: 0.5}
  - name: confident
baseline: vanilla
rungs: [xs, m]
seeds: {initial: 3, batch: 3, max: 6}
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_demo_plan_matches_the_issue() -> None:
    plan = load_plan(PLANS / "demo.yaml")
    assert plan.method_names == ["aux_conf", "em_posterior", "confident"]
    assert (plan.baseline, plan.ladder, plan.rungs, plan.datasets) == ("vanilla", "tiny", "all",
                                                                       ["synthetic"])
    assert (plan.seeds.initial, plan.seeds.batch, plan.seeds.max) == (3, 3, 6)
    assert plan.sesoi == 0.01
    assert plan.dataset_paths() == [None]


def test_tiny_ci_plan_exercises_sequential_design_and_claims() -> None:
    plan = load_plan(PLANS / "tiny-ci.yaml")
    assert plan.seeds.initial < plan.seeds.max, "the sequential design must take a second step"
    assert plan.claims and set(plan.claims) <= set(plan.method_names)
    assert plan.sesoi_pgr is not None


def test_defaults_and_hash(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD))
    assert plan.correction == "holm" and plan.alpha == 0.05 and plan.ladder == "tiny"
    assert plan.compute.ds_config == "zero0" and plan.compute.processes == 1
    # Comments, key order and spelled-out defaults do not change the hash; a value does.
    reordered = ("# comment\nbaseline: vanilla\nladder: tiny\n"
                 + GOOD.replace("baseline: vanilla\n", ""))
    assert load_plan(write(tmp_path, reordered, "b.yaml")).plan_hash == plan.plan_hash
    changed = GOOD.replace("max: 6", "max: 9")
    assert load_plan(write(tmp_path, changed, "c.yaml")).plan_hash != plan.plan_hash
    assert len(plan.plan_hash) == 16
    # The default estimand spelled out keeps the hash plans had before it existed; the other
    # question is another computation, and the analysis is asked it.
    spelled = load_plan(write(tmp_path, GOOD + "estimand: population\n", "d.yaml"))
    assert spelled.plan_hash == plan.plan_hash
    test_set = load_plan(write(tmp_path, GOOD + "estimand: test_set\n", "e.yaml"))
    assert test_set.plan_hash != plan.plan_hash
    from flows.derive import analysis_settings
    assert analysis_settings(test_set)["estimand"] == "test_set"
    assert analysis_settings(plan)["estimand"] == "population"


@pytest.mark.parametrize(("text", "line", "field", "expected"), [
    (GOOD + "sesoi: 1.5\n", 9, "sesoi", "less than 1"),
    (GOOD + "sesoi: 0\n", 9, "sesoi", "greater than 0"),
    (GOOD + "correction: fdr\n", 9, "correction", "'holm', 'bonferroni' or 'bh'"),
    (GOOD + "estimand: items\n", 9, "estimand", "'population' or 'test_set'"),
    (GOOD + "colour: red\n", 9, "colour", "unknown field 'colour'; expected one of"),
    (GOOD.replace("max: 6}", "max: 2}"), 8, "seeds.initial", "must be at most max"),
    (GOOD.replace("batch: 3", "batch: 0"), 8, "seeds.batch", "greater than or equal to 1"),
    (GOOD.replace("  - name: confident", "  - name: aux_conf"), 5, "methods[1].name",
     "duplicate method"),
    (GOOD.replace("  - name: confident", "  - name: vanilla"), 5, "methods[1].name",
     "is the baseline"),
    (GOOD.replace("    params: {alpha: 0.5}", "    parms: {}"), 4, "methods[0].parms",
     "unknown field 'parms'"),
    (GOOD.replace("name: check\n", ""), 1, "name", "required field is missing"),
    (GOOD + "claims:\n  em_posterior: {pgr: 0.3}\n", 10, "claims.em_posterior",
     "claim for unknown method"),
    (GOOD + "datasets: [synthetic, no_such_dir]\n", 9, "datasets[1]", "existing dataset directory"),
    # A claim is tested on the dataset it was made on, so that dataset must be run.
    (GOOD + "claims:\n  aux_conf: {pgr: 0.3, dataset: chat}\n", 10, "claims.aux_conf.dataset",
     "claim on dataset 'chat', which the plan does not run; expected one of ['synthetic']"),
    (GOOD + "compute: {precision: fp8}\n", 9, "compute.precision", "'fp32' or 'bf16'"),
    (GOOD.replace("rungs: [xs, m]", "rungs: some"), 7, "rungs", "all"),
    # Checked at load as the statistics require, not after the first batch has trained.
    (GOOD + "alpha: 0.9\n", 9, "alpha", "less than 0.5"),
    (GOOD + "claims:\n  aux_conf: {pgr: .nan}\n", 10, "claims.aux_conf.pgr", "finite number"),
    (GOOD + "claims:\n  aux_conf: {pgr: .inf}\n", 10, "claims.aux_conf.pgr", "finite number"),
    (GOOD + "sesoi: .nan\n", 9, "sesoi", "finite number"),
    (GOOD.replace("max: 6}", "max: 2147483648}"), 8, "seeds.max",
     "less than or equal to 2147483647"),
    # Strict types: YAML's true or '2' is not a number (lax pydantic read them as 1 and 2).
    (GOOD.replace("initial: 3", "initial: true"), 8, "seeds.initial", "valid integer"),
    (GOOD.replace("initial: 3", "initial: '2'"), 8, "seeds.initial", "valid integer"),
    (GOOD + "sesoi: '0.01'\n", 9, "sesoi", "valid number"),
    (GOOD + "compute: {processes: true}\n", 9, "compute.processes", "valid integer"),
    # The jail's settings likewise (methods/policy.py), and bounded: an infinite time-out was a
    # traceback when the CPU limit was derived from it.
    (GOOD + "jail: {max_processes: '2000'}\n", 9, "jail.max_processes", "valid integer"),
    (GOOD + "jail: {timeout_s: .inf}\n", 9, "jail.timeout_s", "finite number"),
    (GOOD + "jail: {max_file_mb: 1099511627776}\n", 9, "jail.max_file_mb", "less than or equal"),
])
def test_bad_plan_names_file_line_field_and_expectation(tmp_path: Path, text: str, line: int,
                                                         field: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_plan(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field), str(err)
    assert expected in err.message
    assert "\n" not in str(err) and str(err).startswith(f"{path}:{line}: {field}: ")


def test_yaml_syntax_error_and_duplicate_key(tmp_path: Path) -> None:
    with pytest.raises(InputError,
                       match=r"plan\.yaml:3: invalid YAML: mapping values are not allowed"):
        load_plan(write(tmp_path, "name: x\nmethods: []\nsesoi: a: b\n"))
    with pytest.raises(InputError, match=r"plan\.yaml:2: sesoi: duplicate key 'sesoi'"):
        load_plan(write(tmp_path, "sesoi: 0.1\nsesoi: 0.2\n"))
    with pytest.raises(InputError, match="expected a mapping"):
        load_plan(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(InputError, match="plan file not found"):
        load_plan(tmp_path / "missing.yaml")


def test_dataset_dirs_resolve_against_the_plan_file(tmp_path: Path) -> None:
    (tmp_path / "data" / "reviews").mkdir(parents=True)
    plan = load_plan(write(tmp_path, GOOD + "datasets: [synthetic, data/reviews]\n"))
    assert plan.dataset_paths() == [None, (tmp_path / "data" / "reviews").resolve()]


def test_plan_schema_command(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "schema" / "plan.schema.json"
    result = runner.invoke(product_app(), ["plan-schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    schema = json.loads(out.read_text())
    assert schema == plan_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "methods"}
    assert {"seeds", "compute", "claims", "correction"} <= set(schema["properties"])
    printed = runner.invoke(product_app(), ["plan-schema"])
    assert printed.exit_code == 0 and json.loads(printed.stdout) == schema
    # The exported schema accepts what the model accepts.
    assert Plan.model_validate({"name": "x", "methods": [{"name": "a"}]}).name == "x"


def test_a_claim_on_one_dataset_is_tested_on_that_dataset_only(tmp_path: Path) -> None:
    """The plan's ``dataset`` of a claim reaches the statistics: on a second dataset the method
    has no claim (it was tested against every dataset's results before)."""
    from flows.derive import analysis_settings
    from stats.claims import claim_for

    (tmp_path / "data" / "chat").mkdir(parents=True)
    plan = load_plan(write(tmp_path, GOOD + "datasets: [synthetic, data/chat]\n"
                           "claims:\n  aux_conf: {pgr: 0.3, dataset: chat}\n"
                           "  confident: {pgr: 0.5}\n"))
    assert plan.dataset_names() == ["synthetic", "chat"]
    claims = analysis_settings(plan)["claims"]
    assert claim_for(claims, "aux_conf", "chat") == ("pgr", 0.3)
    assert claim_for(claims, "aux_conf", "synthetic") is None
    assert [claim_for(claims, "confident", d) for d in ("synthetic", "chat")] == [("pgr", 0.5)] * 2


def test_a_claim_on_synthetic_follows_the_salted_tasks_name(tmp_path: Path, monkeypatch) -> None:
    """With W2S_SYNTHETIC_SECRET set, results name the task ``synthetic-salted``; a plan's
    claim on ``synthetic`` must still find it (it was silently dropped)."""
    from flows.derive import analysis_settings
    from stats.claims import claim_for

    plan = load_plan(write(tmp_path, GOOD + "claims:\n"
                           "  aux_conf: {pgr: 0.3, dataset: synthetic}\n"))
    monkeypatch.setenv("W2S_SYNTHETIC_SECRET", "s3cret")
    assert claim_for(analysis_settings(plan)["claims"], "aux_conf", "synthetic-salted") == (
        "pgr", 0.3)
    monkeypatch.delenv("W2S_SYNTHETIC_SECRET")
    assert claim_for(analysis_settings(plan)["claims"], "aux_conf", "synthetic") == ("pgr", 0.3)


def test_a_claim_cannot_name_a_dataset_called_like_a_claim_kind(tmp_path: Path) -> None:
    (tmp_path / "pgr").mkdir()
    path = write(tmp_path, GOOD + "datasets: [pgr]\n"
                 "claims:\n  aux_conf: {pgr: 0.3, dataset: pgr}\n")
    with pytest.raises(InputError) as info:
        load_plan(path)
    assert (info.value.line, info.value.field) == (11, "claims.aux_conf.dataset"), str(info.value)
    assert "a claim kind's name" in info.value.message


def test_two_datasets_with_one_name_are_refused(tmp_path: Path) -> None:
    for where in ("a/chat", "b/chat"):
        (tmp_path / where).mkdir(parents=True)
    path = write(tmp_path, GOOD + "datasets: [a/chat, b/chat]\n")
    with pytest.raises(InputError) as info:
        load_plan(path)
    assert (info.value.line, info.value.field) == (9, "datasets[1]"), str(info.value)
    assert "two datasets named 'chat'" in info.value.message


def test_the_readme_s_example_plan_prepares_as_written(tmp_path: Path) -> None:
    """The README's "Writing a plan" block is a plan that passes every check before compute
    (a new user pieced one together from four documents: helper-46)."""
    import re

    from flows.campaign import Campaign

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Writing a plan", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    path = tmp_path / "my-plan.yaml"
    path.write_text(block)
    campaign = Campaign.prepare(path, tmp_path / "out", tmp_path / "store")
    assert campaign.plan.name == "my-check" and campaign.plan.controls
    assert not (tmp_path / "out").exists()
