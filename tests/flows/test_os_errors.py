"""Issue 9, item 4: OS errors during a run are one line (exit 2) and retried only when a retry
can pass.

The full-disk case is real: the run store lives on a 16 KiB tmpfs mounted in a private mount
namespace (``unshare -m`` as root, ``unshare -rm`` otherwise), so the worker's first write of a
run fails with ENOSPC.
"""
from __future__ import annotations

import errno
import json
import shutil
import subprocess

import pytest
import yaml
from test_resume import CLI, MICRO_CI, REPO, harness_env


def test_worker_exit_status_says_whether_a_retry_can_pass(monkeypatch, tmp_path, capsys) -> None:
    from flows import worker

    group = worker.ArmGroup(ladder="micro", rung="m0", store=str(tmp_path), seeds=[0],
                            methods=[], result=str(tmp_path / "r.json"))
    group_file = tmp_path / "g.json"
    group_file.write_text(group.model_dump_json())
    cases = [(OSError(errno.ENOSPC, "No space left on device", "/store/weak/x"), 2),
             (OSError(errno.EROFS, "Read-only file system", "/store"), 2),
             (OSError(errno.ESTALE, "Stale file handle", "/nfs/store"), 75),
             (OSError("Error writing bytes to file. Detail: [errno 28] No space left"), 2)]
    for error, status in cases:
        def fail(*_args, error=error, **_kwargs):
            raise error

        monkeypatch.setattr(worker, "run_group", fail)
        assert worker.main([str(group_file)]) == status
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_a_group_file_of_another_version_is_one_line_exit_2(tmp_path, capsys) -> None:
    """A pool worker whose installed version predates a field the parent writes (here a
    method's pinned resolution) says so in one line, exit 2 (not retried), no traceback."""
    from flows import worker

    group = worker.ArmGroup(ladder="micro", rung="m0", store=str(tmp_path), seeds=[0],
                            methods=[worker.GroupMethod(name="vanilla")],
                            result=str(tmp_path / "r.json"))
    payload = group.model_dump(mode="json")
    payload["methods"][0]["pinned_by_a_newer_parent"] = True
    group_file = tmp_path / "g.json"
    group_file.write_text(json.dumps(payload))
    assert worker.main([str(group_file)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {group_file}: methods.0.pinned_by_a_newer_parent: Extra inputs are "
                   "not permitted (is this worker's w2s-transfer the parent's version?)\n")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(("returncode", "transient"), [
    (2, False),    # bad input, an integrity failure, a full disk
    (1, False),    # the code crashed: it fails the same way again (traceback in the group log)
    (75, True),    # a transient OS error (stale NFS handle, time-out)
    (-9, True),    # killed by a signal: the OOM killer, a preempted node
])
def test_only_failures_a_retry_can_fix_are_transient(returncode, transient, tmp_path) -> None:
    from flows.execute import GroupFailed

    assert GroupFailed("x", returncode, tmp_path / "log").transient is transient


def _private_mount_prefix() -> list[str] | None:
    """``unshare`` arguments that give a private mount namespace where tmpfs can be mounted."""
    if not shutil.which("unshare"):
        return None
    for args in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*args, "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null ||"
                                " mount -t tmpfs tmpfs /tmp"], capture_output=True)
        if probe.returncode == 0:
            return args
    return None


@pytest.mark.timeout(600)
def test_a_full_disk_is_one_line_exit_2_and_not_retried(prefect_harness, tmp_path) -> None:
    prefix = _private_mount_prefix()
    if prefix is None:
        pytest.skip("no private mount namespace here (unshare -m / -rm)")
    plan = yaml.safe_load(MICRO_CI.read_text())
    plan.update(rungs=["m0"], seeds={"initial": 2, "batch": 1, "max": 2})
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan))
    full = tmp_path / "full"
    full.mkdir()
    out = tmp_path / "out"
    script = 'mount -t tmpfs -o size=16k tmpfs "$1" && shift && exec "$@"'
    result = subprocess.run(
        [*prefix, "sh", "-c", script, "sh", str(full), *CLI, "validate", str(plan_path),
         "--out", str(out), "--store", str(full / "store")],
        capture_output=True, text=True, cwd=REPO, env=harness_env(), timeout=550)

    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: worker for rung m0 seeds [0, 1] exited 2: error: ")
    assert "No space left on device" in lines[0]
    logs = list((out / "work").glob("group-*.log"))
    assert len(logs) == 1
    attempts = [ln for ln in logs[0].read_text().splitlines() if ln.startswith("error: ")]
    assert len(attempts) == 1, "a full disk must not be retried"
    # Prefect's own account of the failure is kept, in the output directory.
    assert "GroupFailed" in (out / "prefect.log").read_text()
