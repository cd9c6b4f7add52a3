"""Infra sanity: prefect.yaml, the GPU work-pool template, the CI gate workflow, the Dockerfile."""
from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.plan import load_plan
from methods.jail import jail_available

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def prefect_config(name: str = "prefect.yaml") -> dict[str, Any]:
    return yaml.safe_load((INFRA / name).read_text())


def deployments() -> dict[str, dict[str, Any]]:
    """Every deployment: the process ones (prefect.yaml) and the Kubernetes one, kept in its own
    file so that deploying the first needs no Kubernetes pool (prefect-k8s.yaml)."""
    return {d["name"]: d for name in ("prefect.yaml", "prefect-k8s.yaml")
            for d in prefect_config(name)["deployments"]}


def test_process_deployments_need_no_kubernetes_pool_and_k8s_needs_an_image() -> None:
    process = prefect_config("prefect.yaml")
    assert {d["work_pool"]["name"] for d in process["deployments"]} == {"w2s-process"}
    k8s = prefect_config("prefect-k8s.yaml")
    (step,) = k8s["build"]
    script = step["prefect.deployments.steps.run_shell_script"]["script"]
    assert "W2S_IMAGE" in script and "exit 1" in script


def test_prefect_yaml_has_validate_and_nightly_sweep() -> None:
    found = deployments()
    assert {"validate", "nightly-sweep"} <= set(found)
    assert found["validate"]["entrypoint"] == "flows/validate.py:validate_flow"
    assert found["nightly-sweep"]["entrypoint"] == "flows/sweep.py:sweep_flow"
    assert set(found["validate"]["parameters"]) == {"plan", "out"}
    assert set(found["nightly-sweep"]["parameters"]) == {"registry"}
    assert found["validate"]["work_pool"]["name"] == "w2s-process"
    assert found["validate-gpu"]["work_pool"]["name"] == "w2s-k8s-gpu"
    assert found["validate-gpu"]["work_pool"]["job_variables"]["gpu_count"] > 1


def test_nightly_schedule_is_a_valid_cron() -> None:
    from prefect.client.schemas.schedules import CronSchedule

    (schedule,) = deployments()["nightly-sweep"]["schedules"]
    parsed = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert parsed.cron == "0 2 * * *"


def test_default_parameters_point_at_files_that_exist() -> None:
    found = deployments()
    assert load_plan(REPO / found["validate"]["parameters"]["plan"]).name == "demo"
    registry = yaml.safe_load((REPO / found["nightly-sweep"]["parameters"]["registry"]).read_text())
    assert registry["methods"] and (REPO / registry["plan"]).is_file()


@pytest.mark.parametrize(("deployment", "module", "function"), [
    ("validate", "flows.validate", "validate_flow"),
    ("nightly-sweep", "flows.sweep", "sweep_flow"),
])
def test_entrypoints_name_the_agreed_modules(deployment: str, module: str, function: str) -> None:
    """The entrypoint's file maps to the agreed module; once the file exists, the function is
    defined there and takes every deployment parameter (checked by parsing, no import)."""
    path, name = deployments()[deployment]["entrypoint"].split(":")
    assert path.endswith(".py") and path[:-3].replace("/", ".") == module and name == function
    source = REPO / path
    if not source.exists():
        return  # flows/sweep.py is written by the lead; the name contract above still holds
    tree = ast.parse(source.read_text())
    defs = {node.name: node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert function in defs, f"{path} has no {function}"
    arguments = {a.arg for a in defs[function].args.args + defs[function].args.kwonlyargs}
    assert set(deployments()[deployment]["parameters"]) <= arguments


def _gpu_template() -> dict[str, Any]:
    return json.loads((INFRA / "k8s" / "gpu-job-template.json").read_text())


def _defaults(template: dict[str, Any], **values: Any) -> dict[str, Any]:
    props = template["variables"]["properties"]
    return {**{k: v["default"] for k, v in props.items() if "default" in v},
            "name": "run-1", "command": "python -m prefect.engine", "labels": {"a": "b"},
            "cluster_config": None, "job_watch_timeout_seconds": None, **values}


def test_gpu_job_template_renders_gpu_requests() -> None:
    from prefect.utilities.templating import apply_values, find_placeholders

    template = _gpu_template()
    declared = set(template["variables"]["properties"])
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    assert used <= declared, f"undeclared template variables: {used - declared}"
    rendered = apply_values(template["job_configuration"], _defaults(template, gpu_count=4))
    container = rendered["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 4
    assert "{{" not in json.dumps(rendered)
    volumes = rendered["job_manifest"]["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("emptyDir", {}).get("medium") == "Memory"
               for v in volumes), "/dev/shm for NCCL"


def test_work_pools_are_accepted_by_a_prefect_server(prefect_harness) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async def create() -> tuple[Any, Any]:
        async with get_client() as client:
            gpu = await client.create_work_pool(WorkPoolCreate(
                name="w2s-k8s-gpu", type="kubernetes", base_job_template=_gpu_template()),
                overwrite=True)
            process = await client.create_work_pool(WorkPoolCreate(
                name="w2s-process", type="process", concurrency_limit=1), overwrite=True)
            return gpu, process

    gpu, process = asyncio.run(create())
    assert gpu.base_job_template["variables"]["properties"]["gpu_count"]["type"] == "integer"
    assert process.concurrency_limit == 1


def test_promotion_gate_workflow() -> None:
    workflow = yaml.safe_load((INFRA / "ci" / "promotion-gate.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    # The base's workflow and pipeline judge a pull request, never its own (attacker finding F5).
    assert "pull_request" not in triggers
    # Every change but docs, tests and benchmarks runs the gate (gate_targets.py picks methods).
    assert "paths" not in triggers["pull_request_target"]
    assert set(triggers["pull_request_target"]["paths-ignore"]) == {"docs/**", "tests/**",
                                                                    "bench/**", "**/*.md"}
    assert workflow["permissions"] == {"contents": "read"}
    assert "secrets." not in (INFRA / "ci" / "promotion-gate.yml").read_text()
    # One concurrency group per pull request (github.ref is the base under pull_request_target).
    assert "github.event.pull_request.number" in workflow["concurrency"]["group"]
    # A pull request changing the judge's own pipeline fails a job of its own (attacker review
    # 2026-12-05, R2a: a skipped gate job counts as passing).
    judge = workflow["jobs"]["judge-changes"]
    assert judge["needs"] == "changed" and judge["if"] == "needs.changed.outputs.unjudged != '0'"
    assert "exit 2" in judge["steps"][-1]["run"]
    assert "unjudged" in workflow["jobs"]["changed"]["outputs"]
    for name, job in workflow["jobs"].items():
        if name == "judge-changes":
            continue
        runs = [s.get("run", "") for s in job["steps"]]
        checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout")]
        assert checkouts and all(c["with"]["persist-credentials"] is False for c in checkouts)
        # The base is checked out and installed first; the head is a second checkout, only
        # fetched from, then removed, and only its ports applied, before any gate_targets call.
        assert "ref" not in checkouts[0]["with"]
        head = checkouts[1]
        assert head["with"]["ref"] == "${{ github.event.pull_request.head.sha }}"
        install = next(i for i, r in enumerate(runs) if "pip install -e ." in r)
        apply = next(i for i, r in enumerate(runs) if "gate_targets.py overlay" in r)
        assert install < job["steps"].index(head) < apply
        assert "rm -rf .w2s-pr-head" in runs[apply]
        later = [r for r in runs[apply + 1:] if "gate_targets.py" in r]
        assert later and all("overlay" not in r for r in later)
    steps = [s.get("run", "") for s in workflow["jobs"]["gate"]["steps"]]
    assert any(re.search(r"w2s-transfer validate \S+ --out", s) for s in steps)
    gate_step = next(s for s in steps if "w2s-transfer gate" in s)
    for option in ("--require REAL", "--plan gate-plan.yaml", "--check-code",
                   "--min-reuse-check-cells 1"):
        assert option in gate_step
    uses = [s.get("uses", "") for s in workflow["jobs"]["gate"]["steps"]]
    assert any(u.startswith("actions/upload-artifact") for u in uses)
    assert "${{" not in "".join(steps), "matrix values must reach scripts through env"
    # Nothing a pull request's job could have saved is restored (attacker review 2026-12-05:
    # a run store cached by one commit fed planted weak runs to the next commit's verdict).
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            assert not step.get("uses", "").startswith("actions/cache"), step
            assert "cache" not in (step.get("with") or {}), step


def _gate_targets():
    spec = importlib.util.spec_from_file_location("gate_targets", INFRA / "ci" / "gate_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_changed_files_select_methods(tmp_path: Path) -> None:
    """A method is gated when a changed file is in its code fingerprint; shared code gates all;
    documentation, tests and benchmarks gate nothing."""
    targets = _gate_targets()
    plugin = tmp_path / "plugin_pkg"
    plugin.mkdir()
    (plugin / "__init__.py").write_text("")
    (plugin / "m.py").write_text("X = 1\n")
    builtin = str(REPO / "methods/builtin/aux_conf.py")
    files = {"vanilla": [builtin], "confident": [builtin], "aux_conf": [builtin],
             "plugin_pkg.m:X": [builtin, str(plugin / "m.py")], "broken_ep": None}
    everyone = ["aux_conf", "broken_ep", "confident", "plugin_pkg.m:X"]

    def changed(*paths: str) -> list[str]:
        return targets.changed_methods(list(paths), files, "vanilla")

    # Built-ins share the project code they run on: editing one changes every fingerprint.
    assert changed("methods/builtin/aux_conf.py") == everyone
    # A plugin's own file gates that plugin (and what cannot be cleared).
    assert changed(str(plugin / "m.py")) == ["broken_ep", "plugin_pkg.m:X"]
    # Shared code outside the fingerprints: the flows, statistics, CI files, package pins.
    for path in ("methods/external.py", "transfer/engine/core.py", "transfer/store.py",
                 "flows/gate.py", "stats/analyze.py", "infra/ci/promotion-gate.yml",
                 "flows/plans/tiny-ci.yaml", "pyproject.toml", "infra/ci/README.md"):
        assert changed(path) == everyone, path
    assert changed("README.md", "docs/gate.md", "tests/flows/test_gate.py", "bench/x.py") == []


def test_registry_candidates_and_one_method_plan(tmp_path: Path) -> None:
    targets = _gate_targets()
    entries = targets.candidate_entries({"methods": [{"name": "pkg.mod:Plugin",
                                                      "params": {"k": 1}}]})
    assert {"aux_conf", "external", "vanilla"} <= set(entries)
    assert entries["pkg.mod:Plugin"] == {"k": 1}
    files = targets.method_files({"aux_conf": {}, "missing.module:X": {}})
    assert str(REPO / "methods/builtin/aux_conf.py") in files["aux_conf"]
    assert str(REPO / "transfer/engine/core.py") in files["aux_conf"]
    assert files["missing.module:X"] is None
    out = tmp_path / "gate-plan.yaml"
    assert targets.main(["plan", "aux_conf", str(REPO / "flows/plans/tiny-ci.yaml"), str(out)]) == 0
    plan = load_plan(out)
    assert plan.method_names == ["aux_conf"]
    assert plan.name == f"gate-{targets.slug('aux_conf')}"
    assert plan.name.startswith("gate-aux-conf-")
    # The port may be a pull request's code: the gate runs it in the jail.
    assert plan.jail.mode == "required" and plan.jail.builtins == "jail"
    assert targets.slug("pkg.mod:Plugin").startswith("pkg-mod-Plugin-")
    # Names that read alike still get artifacts of their own.
    assert len({targets.slug(n) for n in ("a.b", "a-b", "a_b", "a:b")}) == 4


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def test_a_pull_request_gets_only_its_method_ports_applied(tmp_path: Path, capsys) -> None:
    """Attacker finding F5: the gate job runs the base's pipeline; of the pull request only the
    method ports (regular files methods/builtin/<name>.py, which the gate plan jails) are
    applied. A change to the gate, the statistics, the workflow or shared method code is left
    as the base has it and listed for review; a port that is a link is refused."""
    targets = _gate_targets()
    repo = tmp_path / "repo"
    files = {"methods/builtin/aux_conf.py": "A = 1\n", "methods/base.py": "B = 1\n",
             "stats/decide.py": "ALPHA = 0.05\n", "infra/ci/promotion-gate.yml": "on: {}\n",
             "methods/builtin/old_port.py": "O = 1\n"}
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for key, value in (("user.email", "t@example.com"), ("user.name", "t")):
        _git(repo, "config", key, value)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    _git(repo, "checkout", "-qb", "pr")
    edits = {"methods/builtin/aux_conf.py": "A = 2  # the method\n",
             "methods/builtin/new_port.py": "N = 1\n", "methods/base.py": "B = 2\n",
             "stats/decide.py": "ALPHA = 1.0  # everything is REAL\n",
             "infra/ci/promotion-gate.yml": "on: {push: {}}\n"}
    for path, text in edits.items():
        (repo / path).write_text(text)
    (repo / "methods/builtin/old_port.py").unlink()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pr")
    _git(repo, "checkout", "-q", "main")

    applied, not_applied = targets.overlay("pr", repo)
    assert applied == ["methods/builtin/aux_conf.py", "methods/builtin/new_port.py"]
    assert not_applied == ["infra/ci/promotion-gate.yml", "methods/base.py",
                           "methods/builtin/old_port.py", "stats/decide.py"]
    assert [p for p in not_applied if not targets.inert(p)] == not_applied  # all judged code
    assert targets.inert("docs/gate.md") and not targets.inert("infra/ci/promotion-gate.yml")
    for path in applied:
        assert (repo / path).read_text() == edits[path]
    for path in ("methods/base.py", "stats/decide.py", "infra/ci/promotion-gate.yml",
                 "methods/builtin/old_port.py"):
        assert (repo / path).read_text() == files[path], path

    # A port that is a symbolic link (to a label file, say) is refused, nothing applied.
    _git(repo, "checkout", "-q", "-f", "main")
    _git(repo, "checkout", "-qb", "pr-link")
    (repo / "methods/builtin/aux_conf.py").unlink()  # a file turned link: a type change,
    (repo / "methods/builtin/aux_conf.py").symlink_to("/etc/hostname")  # never applied
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "link")
    _git(repo, "checkout", "-q", "main")
    assert targets.overlay("pr-link", repo) == ([], ["methods/builtin/aux_conf.py"])
    _git(repo, "checkout", "-q", "pr-link")
    (repo / "methods/builtin/link_port.py").symlink_to("/etc/hostname")  # a new port, a link
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "new link")
    _git(repo, "checkout", "-q", "main")
    from w2s_common.errors import InputError

    with pytest.raises(InputError, match="not a regular file"):
        targets.overlay("pr-link", repo)
    port = "methods/builtin/aux_conf.py"
    assert (repo / port).read_text() == files[port]
    assert not (repo / "methods/builtin/link_port.py").exists()


def test_dockerfile_builds_from_cuda_and_installs_the_project() -> None:
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:\S+", text, re.M)
    # Non-editable, as tests/test_install.py installs it: a wheel built from the copied sources,
    # after the dependencies (torch pinned in the same pip command).
    assert re.search(r"pip install torch==2\.13\.0 -r \S+", text)
    assert re.search(r"pip wheel --no-deps -w (\S+) \.", text)
    assert re.search(r"pip install --no-deps \S+/w2s_transfer-\*\.whl", text)
    assert not re.search(r"pip install[^\n]* -e ", text)
    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (REPO / source).exists() or source in ("README.md",), f"COPY {source}: missing"


def test_only_the_exclusion_list_takes_a_method_out_of_the_gate(tmp_path: Path,
                                                                 capsys) -> None:
    """zero_shot_prior needs label tokens, which the tiny ladder of tiny-ci lacks. It is left out
    because infra/ci/gate-exclusions.yaml says so (with the reason), not because it says it
    cannot run: without the entry the job fails (exit 2, one line). An excluded method is not
    even loaded; a bad exclusions file is one line with its line number."""
    targets = _gate_targets()
    changed = tmp_path / "changed.txt"
    changed.write_text("flows/gate.py\n")  # shared code: every method is gated
    template = REPO / "flows/plans/tiny-ci.yaml"
    assert targets.main(["changed", str(changed)]) == 0
    out, err = capsys.readouterr()
    gated = json.loads(out)
    assert "aux_conf" in gated and {"zero_shot_prior", "external"}.isdisjoint(gated)
    assert "not gated: zero_shot_prior (excluded in infra/ci/gate-exclusions.yaml: " in err

    only_external = tmp_path / "exclusions.yaml"
    only_external.write_text("exclusions:\n  external: needs a command\n")
    assert targets.main(["changed", str(changed), str(template), str(only_external)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: cannot decide which methods to gate: method zero_shot_prior "
                          "cannot be gated on the template (method zero_shot_prior cannot run on "
                          "rung r0 of ladder tiny: ")
    assert "list it with a reason in " + str(only_external) in err

    # Excluded methods are skipped unread: a method that cannot even be imported passes.
    broken = yaml.safe_load(template.read_text())
    broken["methods"] = [{"name": "no_such_module_w2s:Method"}]
    broken_template = tmp_path / "broken.yaml"
    broken_template.write_text(yaml.safe_dump(broken))
    listed = tmp_path / "listed.yaml"
    listed.write_text("exclusions:\n  external: a command\n  zero_shot_prior: label tokens\n"
                      "  no_such_module_w2s:Method: not installed on CI\n")
    assert targets.main(["changed", str(changed), str(broken_template), str(listed)]) == 0
    assert "no_such_module_w2s" not in capsys.readouterr().out

    for text, expected in [
            ("exclusions:\n  external: x\n  zero_shot_priorr: typo\n",
             ":3: exclusions.zero_shot_priorr: not a method the gate knows"),
            ("exclusions:\n  external: 3\n", ":2: exclusions.external: Input should be a valid "
                                              "string"),
            ("exclusions:\n  external: ' '\n", ":2: exclusions.external: expected a reason"),
            ("exclusion:\n  external: x\n", ":2: exclusion: Extra inputs are not permitted"),
            ("- external\n", ":1: expected a mapping")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        assert targets.main(["changed", str(changed), str(template), str(bad)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and f"{bad}{expected}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not jail_available(),
                    reason="no jail builder works here")
def test_changed_checks_methods_under_the_template_s_jail_and_fails_closed(tmp_path: Path) -> None:
    """With ``builtins: jail`` in the template, deciding what to gate imports no built-in here
    (attacker review 2026-12-05: a built-in's import-time code made the list empty, so the gate
    job was skipped); a method that cannot even be checked fails the job instead of going
    ungated; and a jailed port's own "cannot run on rung" fails it too (the next review's
    finding 3: it used to skip the port)."""
    template = yaml.safe_load((REPO / "flows/plans/tiny-ci.yaml").read_text())
    template["jail"] = {"builtins": "jail"}
    jailed = tmp_path / "jailed.yaml"
    jailed.write_text(yaml.safe_dump(template))
    changed = tmp_path / "changed.txt"
    changed.write_text("flows/gate.py\n")
    script = ("import runpy, sys, json; sys.argv = ['gate_targets'] + sys.argv[1:]\n"
              "module = runpy.run_path('infra/ci/gate_targets.py')\n"
              "code = module['main'](sys.argv[1:])\n"
              "print(json.dumps(sorted(m for m in sys.modules if m == 'methods.builtin' "
              "or m.startswith('methods.builtin.'))), file=sys.stderr)\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script, "changed", str(changed), str(jailed)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "aux_conf" in json.loads(done.stdout) and "zero_shot_prior" not in done.stdout
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    only_external = tmp_path / "exclusions.yaml"
    only_external.write_text("exclusions:\n  external: needs a command\n")
    done = subprocess.run([sys.executable, "-c", script, "changed", str(changed), str(jailed),
                           str(only_external)], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode == 2 and done.stdout == "", (done.stdout, done.stderr)
    assert "method zero_shot_prior cannot be gated on the template" in done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    template["methods"] = [{"name": "no_such_module_w2s:Method"}]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(template))
    done = subprocess.run([sys.executable, "infra/ci/gate_targets.py", "changed", str(changed),
                           str(broken)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: cannot decide which methods to gate: ")
    assert "no_such_module_w2s" in done.stderr and "Traceback" not in done.stderr
