"""Issue 9, item 1: runs are keyed by the code that made them.

Every arm's key holds the trainer's fingerprint (its files and package versions); a student's
key also holds its method's (``methods.fingerprint``). Changing any of that code recomputes the
run instead of reusing it. Fingerprints are computed without importing plugin code.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from transfer.arms import arm_spec, run_arm
from w2s_common.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def vanilla(data, trainer):
    return trainer.fit(data.weak_probs).predict_test()


def _fn(fingerprint: str):
    def run(data, trainer):
        return vanilla(data, trainer)
    run.fingerprint = fingerprint
    return run


def test_changed_method_code_recomputes_the_student_and_reuses_the_rest(micro_ctx) -> None:
    first = run_arm(micro_ctx, "m0", "student", 0, method="vanilla", method_fn=_fn("a" * 64))
    assert first.spec.method_fingerprint == "a" * 64
    assert first.spec.trainer_fingerprint == micro_ctx.trainer_fingerprint
    executed = len(micro_ctx.store.executed)
    # Same name, same params, other code: a new run, the weak teacher reused.
    second = run_arm(micro_ctx, "m0", "student", 0, method="vanilla", method_fn=_fn("b" * 64))
    assert second.spec.run_hash() != first.spec.run_hash()
    assert [s.arm for s in micro_ctx.store.executed[executed:]] == ["student"]
    # The old code again: the old run.
    again = run_arm(micro_ctx, "m0", "student", 0, method="vanilla", method_fn=_fn("a" * 64))
    assert again.spec.run_hash() == first.spec.run_hash()
    assert len(micro_ctx.store.executed) == executed + 1


def test_changed_trainer_keys_weak_and_ceiling_apart(micro_ctx) -> None:
    rung = micro_ctx.ladder.rung("m0")
    old = {arm: arm_spec(micro_ctx, rung, arm, 0) for arm in ("weak", "ceiling")}
    micro_ctx._trainer_fingerprint = "f" * 64
    for arm in ("weak", "ceiling"):
        new = arm_spec(micro_ctx, rung, arm, 0)
        assert new.trainer_fingerprint == "f" * 64
        assert new.run_hash() != old[arm].run_hash()
    student = arm_spec(micro_ctx, rung, "student", 0, "vanilla", method_fingerprint="a" * 64)
    assert student.depends_on == arm_spec(micro_ctx, rung, "weak", 0).run_hash()


def test_a_student_key_needs_a_fingerprint(micro_ctx) -> None:
    with pytest.raises(InputError, match="needs the fingerprint of its code"):
        arm_spec(micro_ctx, micro_ctx.ladder.rung("m0"), "student", 0, "vanilla")


def test_plain_callables_are_fingerprinted_by_their_source_file(tmp_path: Path) -> None:
    from transfer.fingerprint import callable_fingerprint

    module = tmp_path / "my_methods.py"
    module.write_text("def method(data, trainer):\n    return 0\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        loaded = importlib.import_module("my_methods")
        before = callable_fingerprint(loaded.method)
        module.write_text("def method(data, trainer):\n    return 1\n")
        assert callable_fingerprint(loaded.method) != before
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_methods", None)


def test_stored_runs_without_fingerprints_keep_their_hash() -> None:
    """A spec stored before the fingerprints existed still hashes to its directory (and so
    verifies); it is simply never the key of a new run."""
    import hashlib
    import json

    from transfer.store import RunSpec

    old = {"arm": "weak", "ladder": "micro", "rung": "m0", "dataset": "d",
           "dataset_fingerprint": "x", "seed": 0, "model": "m", "model_fingerprint": "y",
           "hparams": {}, "method": None, "method_params": {}, "depends_on": None,
           "unjailed": False}
    canonical = json.dumps(old, sort_keys=True, separators=(",", ":"))
    assert RunSpec(**old).run_hash() == hashlib.sha256(canonical.encode()).hexdigest()[:20]
    new = RunSpec(**old, trainer_fingerprint="t" * 64)
    assert new.run_hash() != RunSpec(**old).run_hash()


# --- the trainer fingerprint -----------------------------------------------------------------

def _copy_project(target: Path, entries) -> Path:
    for entry in entries:
        source = REPO / entry
        if source.is_dir():
            shutil.copytree(source, target / entry, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            (target / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / entry)
    return target


def test_trainer_fingerprint_follows_trainer_files_and_versions(tmp_path: Path,
                                                                monkeypatch) -> None:
    import transfer.fingerprint as fp

    root = _copy_project(tmp_path, [*fp.TRAINER_FILES, "transfer/store.py"])
    before = fp.trainer_fingerprint(root)
    assert fp.trainer_fingerprint(root) == before
    (root / "transfer/store.py").write_text("# not the trainer\n")
    assert fp.trainer_fingerprint(root) == before
    core = root / "transfer/engine/core.py"
    core.write_text(core.read_text() + "\n# an edit\n")
    edited = fp.trainer_fingerprint(root)
    assert edited != before
    versions = fp.trainer_package_versions()
    monkeypatch.setattr(fp, "trainer_package_versions", lambda: {**versions, "torch": "0.0.1"})
    assert fp.trainer_fingerprint(root) != edited


# --- method fingerprints ---------------------------------------------------------------------

def test_builtin_fingerprint_covers_the_project_code_methods_run_on(tmp_path: Path,
                                                                    monkeypatch) -> None:
    import methods.fingerprint as mf
    from methods.jail_runtime import JAIL_MODULES

    here = mf.method_code("aux_conf")
    assert here.kind == "builtin"
    assert str(REPO / "methods/builtin/aux_conf.py") in here.files
    assert str(REPO / "transfer/engine/core.py") in here.files
    assert not any("/flows/" in f or "/stats/" in f or f.endswith("transfer/store.py")
                   for f in here.files)
    root = _copy_project(tmp_path, JAIL_MODULES)
    monkeypatch.setattr(mf, "project_root", lambda: root)
    before = {name: mf.method_fingerprint(name) for name in ("aux_conf", "vanilla")}
    assert before["aux_conf"] == here.fingerprint
    source = root / "methods/builtin/aux_conf.py"
    source.write_text(source.read_text().replace("return", "return  ", 1))
    after = {name: mf.method_fingerprint(name) for name in ("aux_conf", "vanilla")}
    # Built-ins import each other and the shared modules: every one of them changes.
    assert all(after[name] != before[name] for name in before)


def test_reference_plugin_fingerprint_reads_its_package_without_importing_it(
        tmp_path: Path, monkeypatch) -> None:
    from methods.fingerprint import method_code

    package = tmp_path / "fp_plugin_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    marker = tmp_path / "imported"
    (package / "methods.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nclass M: pass\n")
    (package / "helper.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = method_code("fp_plugin_pkg.methods:M")
    assert first.kind == "reference" and str(package / "helper.py") in first.files
    assert not marker.exists() and "fp_plugin_pkg" not in sys.modules
    (package / "helper.py").write_text("X = 2\n")  # any file of its package counts
    assert method_code("fp_plugin_pkg.methods:M").fingerprint != first.fingerprint
    with pytest.raises(InputError, match="cannot find module"):
        method_code("no_such_plugin_pkg.m:X")


def test_external_fingerprint_covers_its_command_files(tmp_path: Path, monkeypatch) -> None:
    from methods.fingerprint import method_code

    script = tmp_path / "predict.py"
    script.write_text("print('v1')\n")
    command = f"python3 {script} {{inputs}} {{outputs}}"
    first = method_code("external", {"command": command})
    assert first.kind == "external" and str(script) in first.files
    script.write_text("print('v2')\n")
    assert method_code("external", {"command": command}).fingerprint != first.fingerprint
    bare = method_code("external", {"command": "python3 -c pass"})
    assert bare.fingerprint not in (first.fingerprint,)


def test_external_program_on_path_is_resolved_and_fingerprinted(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A program named without a path is the file found on PATH now: the jail runs that file,
    and outside the runtimes it is one of the command's own files (attacker finding F3)."""
    from methods.fingerprint import method_code

    tools = tmp_path / "tools"
    tools.mkdir()
    tool = tools / "w2s-fp-tool"
    tool.write_text("#!/bin/sh\necho v1\n")
    tool.chmod(0o755)
    import methods.external as external

    real_path = external.jail_search_path()
    monkeypatch.setattr(external, "jail_search_path", lambda: f"{tools}:{real_path}")
    command = "w2s-fp-tool {inputs} {outputs}"
    argv, files = external.build_argv(command)
    assert argv[0] == str(tool) and files == [str(tool)]
    first = method_code("external", {"command": command})
    tool.write_text("#!/bin/sh\necho v2\n")
    assert method_code("external", {"command": command}).fingerprint != first.fingerprint
    python_argv, python_files = external.build_argv("python3 -c pass")  # the jail's interpreter
    assert python_argv[0] == f"{sys.prefix}/bin/python3" and python_files == []


def test_external_runtime_program_and_packages_are_in_the_fingerprint(tmp_path: Path,
                                                                      monkeypatch) -> None:
    """``python3 -m pkg`` or a runtime tool: the program's bytes and the runtime's installed
    distributions (each RECORD's sha256) are covered, so a reinstall with other code under the
    same version recomputes the runs instead of reusing them (attacker finding F3)."""
    import methods.external as external
    from methods.fingerprint import method_code

    runtime = tmp_path / "runtime"
    bin_dir, site = runtime / "bin", runtime / "site-packages"
    bin_dir.mkdir(parents=True)
    site.mkdir()
    tool = bin_dir / "w2s-rt-tool"
    tool.write_text("#!/bin/sh\necho v1\n")
    tool.chmod(0o755)
    dist = site / "agent_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: agent-method\nVersion: 0.1\n")
    (dist / "RECORD").write_text("agent_method/__init__.py,sha256=AAAA,10\n")
    real_roots = external._runtime_roots
    monkeypatch.setattr(external, "_runtime_roots", lambda: [*real_roots(), str(runtime)])
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    real_path = external.jail_search_path()
    monkeypatch.setattr(external, "jail_search_path", lambda: f"{bin_dir}:{real_path}")
    command = "w2s-rt-tool {inputs} {outputs}"
    argv, files = external.build_argv(command)
    assert argv[0] == str(tool) and files == []  # a runtime program, not an own file
    first = method_code("external", {"command": command}).fingerprint
    (dist / "RECORD").write_text("agent_method/__init__.py,sha256=BBBB,10\n")  # same version
    reinstalled = method_code("external", {"command": command}).fingerprint
    assert reinstalled != first
    tool.write_text("#!/bin/sh\necho v2\n")
    retooled = method_code("external", {"command": command}).fingerprint
    assert retooled != reinstalled
    # Code that runs at start-up whoever installed it (review R1b): a .pth file, sitecustomize.
    (site / "agent_hook.pth").write_text("import os\n")
    with_pth = method_code("external", {"command": command}).fingerprint
    assert with_pth != retooled
    (site / "sitecustomize.py").write_text("X = 1\n")
    assert method_code("external", {"command": command}).fingerprint != with_pth
    # An own script (its #! interpreter imports from the runtime) is covered too (review R1a).
    script = tmp_path / "run.py"
    script.write_text("#!/usr/bin/env python3\nimport agent_method\n")
    script.chmod(0o755)
    own = f"{script} {{inputs}} {{outputs}}"
    before = method_code("external", {"command": own}).fingerprint
    (dist / "RECORD").write_text("agent_method/__init__.py,sha256=CCCC,10\n")
    assert method_code("external", {"command": own}).fingerprint != before


def test_entry_point_fingerprint_covers_distribution_version_and_files(
        tmp_path: Path, monkeypatch) -> None:
    import importlib.metadata

    from methods.fingerprint import method_code

    package = tmp_path / "ep_plugin_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "methods.py").write_text("class M: pass\n")
    dist = tmp_path / "ep_plugin_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[w2s_transfer.methods]\nep_fp_method = ep_plugin_pkg.methods:M\n")
    (dist / "RECORD").write_text("ep_plugin_pkg/__init__.py,,\nep_plugin_pkg/methods.py,,\n")
    # Entry points are read from plugin directories only, never from the trusted sys.path.
    monkeypatch.setenv("W2S_PLUGIN_PATH", str(tmp_path))
    importlib.invalidate_caches()
    first = method_code("ep_fp_method")
    assert first.kind == "entry-point" and first.provider == "ep-plugin-dist==1.0"
    assert str(package / "methods.py") in first.files
    (package / "methods.py").write_text("class M: x = 1\n")
    edited = method_code("ep_fp_method")
    assert edited.fingerprint != first.fingerprint
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin-dist\nVersion: 1.1\n")
    assert method_code("ep_fp_method").fingerprint != edited.fingerprint


def test_method_function_carries_the_fingerprint_into_the_key(micro_ctx) -> None:
    from methods.fingerprint import method_fingerprint
    from methods.resolve import method_function

    name, params, fn = method_function("vanilla", {})
    assert fn.fingerprint == method_fingerprint("vanilla")
    record = run_arm(micro_ctx, "m0", "student", 0, method=name, method_params=params,
                     method_fn=fn)
    assert record.spec.method_fingerprint == fn.fingerprint
    assert np.isfinite(record.metrics["accuracy"])


def test_file_digest_format_is_fixed_and_files_are_read_in_chunks(tmp_path: Path) -> None:
    """Every stored run is keyed by these digests: the bytes hashed must not change when the
    reading does (chunks of 1 MiB, for command files of many gigabytes)."""
    import hashlib

    from transfer.fingerprint import FINGERPRINT_FORMAT, digest_files

    data = bytes(range(256)) * 9000  # 2.3 MB: three chunks
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(f"{FINGERPRINT_FORMAT}\0label\0".encode() + b"weights.bin\0"
                              + str(len(data)).encode() + b"\0" + data + b"\0"
                              + b"gone\0<absent>\0").hexdigest()
    assert digest_files([("weights.bin", path), ("gone", None)], label="label") == expected
