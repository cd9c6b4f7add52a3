"""Writes to what verdicts stand on, escapes from the jail, and state that outlives a run.

Unjailed (pointed only at copies), the vandal rewrites stores, caches and sources: the route is
real. Jailed, with every builder this machine offers, neither the vandal nor the escape artist
changes one byte of the W2S cache (the store in it included), the other stores, the reports,
the dataset or this project's sources (sha256), nor of the virtual environment, the Python
installation, ``/usr`` or the jail's part of ``/etc`` ((path, size, mtime, mode), checked
once after all of this module's attacks). Nothing a jailed run leaves behind reaches the next
one, except (known hole) the kernel keyring of the jail's uid.
"""
from __future__ import annotations

import os
import shutil
import uuid

import numpy as np
import pytest
from seclab import (
    Lab,
    attack_path,
    diff,
    external,
    processes_with,
    run_student,
    sha_tree,
    system_snapshot,
)

from methods.jail import JailUnavailable, jail_available

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")


def builders() -> list[str]:
    from methods.jail import _available

    usable = []
    for builder in ("bwrap", "unshare"):
        try:
            _available(builder)
            usable.append(builder)
        except JailUnavailable:
            pass
    return usable


@pytest.fixture(scope="module")
def system_before():
    """The venv, the Python installation, /usr and /etc's jailed parts before this module."""
    return system_snapshot()


def vandal_targets(lab: Lab) -> list[str]:
    from methods.jail_runtime import project_root
    from transfer.fsutil import cache_dir

    return [str(p) for p in (cache_dir(), lab.store, lab.old_store, lab.reports, lab.task_dir,
                             lab.checkout_copy, lab.pipeline, project_root())]


def test_the_vandal_changes_copies_unjailed(lab, tmp_path, system_before):
    from methods.jail_runtime import project_root
    from transfer.fsutil import cache_dir

    copies = tmp_path / "copies"
    shutil.copytree(cache_dir(), copies / "cache")
    shutil.copytree(lab.store, copies / "store")
    shutil.copytree(project_root() / "methods", copies / "sources" / "methods")
    before = sha_tree([copies])
    snapshot = lab.snapshot()
    targets = (str(copies / part) for part in ("cache", "store", "sources"))
    probs, how = run_student(lab, "external", [f"command={external('vandal.py', *targets)}"],
                             jail={"mode": "off"})
    assert how == ["unjailed"]
    lab.assert_unchanged(snapshot)  # it was pointed at the copies only
    changed = diff(before, sha_tree([copies]))
    # The route is real: stored runs, cached features and sources all rewritten.
    for part in ("cache", "store", "sources"):
        assert any(f"/copies/{part}/" in line for line in changed), part
    lab.record("writes to stores, caches, sources (unjailed: copies)", "`vandal.py` (external)",
               f"{len(changed)} files changed or planted", "-", "-", "-")


@pytest.mark.parametrize("builder", builders())
def test_the_vandal_changes_nothing_in_the_jail(lab, monkeypatch, builder, system_before):
    monkeypatch.setenv("W2S_JAIL_BUILDER", builder)
    command = external("vandal.py", f"--tag={builder}", "--system", *vandal_targets(lab))
    snapshot = lab.snapshot()
    probs, how = run_student(lab, "external", [f"command={command}"])
    assert how == ["jail"] and np.all(probs == 0.5)
    lab.assert_unchanged(snapshot)
    lab.record(f"writes to the W2S cache, its store, other stores, reports, dataset, sources, "
               f"venv, stdlib, /usr, /etc, /w2s/lib, /w2s/job ({builder})",
               "`vandal.py --system` (external)", "(see the row above)",
               f"acc {lab.accuracy(probs):.3f} (all 0.5)", "yes", "-")


@pytest.mark.parametrize("builder", builders())
def test_escaping_the_jail_fails(lab, monkeypatch, builder, system_before):
    monkeypatch.setenv("W2S_JAIL_BUILDER", builder)
    command = external("escape.py", attack_path("disk_hunter.py"), attack_path("vandal.py"),
                       f"--tag={builder}", "--roots", *lab.label_roots,
                       "--targets", *vandal_targets(lab))
    snapshot = lab.snapshot()
    probs, how = run_student(lab, "external", [f"command={command}"])
    assert how == ["jail"]
    assert np.all(probs == 0.5) and lab.accuracy(probs) < lab.ceiling_accuracy
    lab.assert_unchanged(snapshot)
    lab.record(f"escaping the jail: own user+mount namespace, remount rw, umount, mount "
               f"proc/sysfs/host disk, open_by_handle_at, chroot, ptrace ({builder})",
               "`escape.py` (external)", "not needed (uid 0 on the host)",
               f"acc {lab.accuracy(probs):.3f} (all 0.5)", "yes", "-")


def _persist(lab: Lab, mode: str, token: str, jail=None) -> np.ndarray:
    probs, _ = run_student(lab, "external",
                           [f"command={external('persist.py', mode, token)}"], jail=jail)
    return probs


def test_nothing_a_run_leaves_in_tmp_or_processes_reaches_the_next(lab):
    from attacks.persist import CHANNELS

    # Unjailed the marks carry over (shared /tmp, same uid): the route is real. (A daemon it
    # starts dies with the run even unjailed where a control group holds the run.)
    token = uuid.uuid4().hex
    try:
        _persist(lab, "write", token, jail={"mode": "off"})
        carried = _persist(lab, "read", token, jail={"mode": "off"})[:len(CHANNELS)] == 1.0
        assert carried[CHANNELS.index("tmp")] and carried[CHANNELS.index("shm")]
    finally:
        _persist(lab, "clean", token, jail={"mode": "off"})
        for pid in processes_with(f"w2s-persist-daemon-{token}"):
            os.kill(pid, 9)
    token = uuid.uuid4().hex
    snapshot = lab.snapshot()
    _persist(lab, "write", token)
    assert processes_with(f"w2s-persist-daemon-{token}") == []  # died with its jail
    carried = _persist(lab, "read", token)[:len(CHANNELS)] == 1.0
    _persist(lab, "clean", token)
    lab.assert_unchanged(snapshot)
    for channel in ("tmp", "shm", "daemon", "outputs"):
        assert not carried[CHANNELS.index(channel)], channel
    lab.record("state outliving a run: /tmp, /dev/shm, a daemon, files beside the outputs",
               "`persist.py` (external)", "/tmp, /dev/shm carried over (a daemon too, without a "
               "control group)", "none carried over", "yes", "-")


def test_the_kernel_keyring_does_not_carry_state_to_the_next_run(lab):
    from attacks.persist import CHANNELS

    def keyring_carries(jail) -> bool:
        token = uuid.uuid4().hex
        try:
            _persist(lab, "write", token, jail=jail)
            carried = _persist(lab, "read", token, jail=jail)[:len(CHANNELS)] == 1.0
        finally:
            _persist(lab, "clean", token, jail=jail)
            for pid in processes_with(f"w2s-persist-daemon-{token}"):
                os.kill(pid, 9)
        return bool(carried[CHANNELS.index("keyring")])

    before = keyring_carries({"mode": "off"})
    snapshot = lab.snapshot()
    after = keyring_carries(None)
    lab.assert_unchanged(snapshot)
    lab.record("state outliving a run: the kernel keyring of the jail's uid",
               "`persist.py` (external)", "carried over" if before else "not carried",
               "**carried over (hole)**" if after else "not carried", "yes", "-")
    assert not after


def test_system_files_unchanged_after_every_attack_of_this_module(system_before):
    problems = diff(system_before, system_snapshot())
    assert not problems, "\n".join(problems[:20])
