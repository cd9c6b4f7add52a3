"""The sandbox, tested directly: hidden paths, /proc, environment, capabilities, fallback."""
from __future__ import annotations

import logging
import os
import time

import pytest

from methods import sandbox
from methods.sandbox import SandboxError, SandboxTimeout, run_sandboxed

needs_namespaces = pytest.mark.skipif(not sandbox.namespaces_available(),
                                      reason="Linux namespaces not permitted here")


@pytest.fixture
def secret_dir(tmp_path):
    directory = tmp_path / "dataset"
    directory.mkdir()
    (directory / "gold.jsonl").write_text('{"id": "x", "label": 1}\n')
    (tmp_path / "gold_file.jsonl").write_text('{"id": "y", "label": 0}\n')
    return directory


def sh(script: str, **kwargs):
    return run_sandboxed(["sh", "-c", script], timeout_s=30, **kwargs)


def test_a_plain_subprocess_can_read_what_the_tests_hide(secret_dir):
    # Sanity check of the routes below: without namespaces everything is readable.
    result = sh(f"cat {secret_dir}/gold.jsonl", isolation="subprocess")
    assert '"label": 1' in result.stdout and result.isolation == "subprocess"


@needs_namespaces
def test_hidden_directories_and_files_are_empty_inside(secret_dir):
    gold_file = secret_dir.parent / "gold_file.jsonl"
    result = sh(f"ls -A {secret_dir}; cat {secret_dir}/gold.jsonl; cat {gold_file}; "
                f"echo done", hide=[secret_dir, gold_file])
    assert result.isolation == "namespace"
    assert result.hidden == (str(secret_dir), str(gold_file))
    assert "label" not in result.stdout and result.stdout.strip().endswith("done")
    assert "No such file" in result.stderr
    # Outside the sandbox nothing changed.
    assert (secret_dir / "gold.jsonl").read_text().startswith('{"id"')


@needs_namespaces
def test_the_child_cannot_unmount_the_covers_or_remount_proc(secret_dir):
    result = sh(f"umount {secret_dir}; mount -t proc proc /mnt; "
                f"cat {secret_dir}/gold.jsonl; cat /proc/self/status", hide=[secret_dir])
    assert "label" not in result.stdout
    assert "CapEff:\t0000000000000000" in result.stdout
    assert "NoNewPrivs:\t1" in result.stdout


@needs_namespaces
def test_the_child_sees_only_its_own_processes():
    result = sh("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done; "
                "cat /proc/1/environ | tr '\\0' '\\n'")
    assert "pytest" not in result.stdout
    unsandboxed = sh("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done",
                     isolation="subprocess")
    assert "pytest" in unsandboxed.stdout  # the route the namespace closes


def test_environment_is_scrubbed_and_working_directory_empty(monkeypatch):
    monkeypatch.setenv("W2S_GOLD_SECRET", "labels-here")
    for isolation in ("auto", "subprocess"):
        result = sh("env; echo cwd=$(pwd); ls -A | wc -l", isolation=isolation)
        assert "W2S_GOLD_SECRET" not in result.stdout
        names = {line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line}
        assert names - {"cwd", "PWD", "SHLVL", "_"} <= set(sandbox.PASSTHROUGH_VARS) | {"HOME"}
        home = next(line for line in result.stdout.splitlines() if line.startswith("HOME="))
        assert "w2s-sandbox-" in home
        assert result.stdout.strip().endswith("0")


def test_timeout_kills_the_child_quickly():
    start = time.monotonic()
    with pytest.raises(SandboxTimeout, match="timed out after 1 s"):
        run_sandboxed(["sh", "-c", "sleep 30 & sleep 30"], timeout_s=1)
    assert time.monotonic() - start < 10


def test_fallback_without_namespaces_warns_and_says_so(monkeypatch, caplog, secret_dir):
    monkeypatch.setattr(sandbox, "namespaces_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="methods.sandbox"):
        result = sh("echo hi", hide=[secret_dir])
    assert result.isolation == "subprocess" and result.hidden == ()
    assert "namespaces unavailable" in caplog.text
    with pytest.raises(SandboxError, match="not available"):
        sh("true", isolation="namespace")


@needs_namespaces
def test_hiding_a_path_the_child_needs_is_an_error(tmp_path):
    needed = tmp_path / "inputs"
    needed.mkdir()
    with pytest.raises(SandboxError, match="needs"):
        sh("true", hide=[tmp_path], visible=[needed])


def test_missing_hidden_paths_are_skipped(tmp_path):
    result = sh("echo ok", hide=[tmp_path / "does-not-exist"])
    assert result.returncode == 0 and result.hidden == ()


def test_policy_context_records_what_ran(secret_dir):
    with sandbox.sandbox_policy(hide=[secret_dir]) as policy:
        assert sandbox.current_policy() is policy
        sh("true", isolation="subprocess")
    assert policy.used == ["subprocess"]
    assert sandbox.current_policy().hide == ()
    assert os.path.isdir(secret_dir)
