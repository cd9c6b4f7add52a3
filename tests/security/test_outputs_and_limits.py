"""What a jailed run hands back, and what it can take from the host.

Outputs: the trusted side reads only regular files of bounded size, never through a link,
never blocking, turns every malformed value into one printable line, and cleans up whatever the
jail left in its outputs directory. Limits: processes, output, time and CPU are bounded and the
caller gets one line; memory and disk are bounded per process and per file only (known holes).
The output reader is the same unjailed, so only the jailed runs are measured here.
"""
from __future__ import annotations

import os
import stat
import tempfile
import time

import numpy as np
import pytest
from seclab import Lab, external, one_printable_line, processes_with, run_student

from methods.jail import jail_available
from w2s_common.errors import InputError

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")


def refused(lab: Lab, command: str, jail=None) -> str:
    """Run a jailed external attack that must fail; its one-line error."""
    snapshot = lab.snapshot()
    with pytest.raises(InputError) as err:
        run_student(lab, "external", [f"command={command}"], jail=jail)
    lab.assert_unchanged(snapshot)
    message = str(err.value)
    assert one_printable_line(message), repr(message)
    return message


@pytest.mark.parametrize("mode, expected", [
    ("link", "refused: a symbolic link"),
    ("link-job", "refused: a symbolic link"),
    ("hardlink-job", "wrote no predictions file"),
    ("fifo", "refused: not a regular file"),
    ("directory", "refused: not a regular file"),
    ("sparse", "more than the 819200 allowed"),
    ("digits", "malformed JSON"),
    ("nan", "expected a probability in [0, 1], got nan"),
    ("infinity", "expected a probability in [0, 1], got inf"),
    ("deep-json", "malformed JSON"),
    ("bad-utf8", "unknown test id"),
    ("escape", "exited with status 3"),
])
def test_output_tricks_are_refused_with_one_line(lab, mode, expected):
    args = [mode]
    if mode == "link":  # a perfect answer sheet on the host
        args.append(str(lab.reports / "demo" / "gold_predictions.jsonl"))
    message = refused(lab, external("output_tricks.py", *args))
    assert expected in message, message
    if mode == "escape":
        assert "\x1b" not in message and "CLEAN" in message  # shown, defused
    lab.record(f"output trick: {mode}", f"`output_tricks.py {mode}` (external)",
               "-", f"refused: `{message.split(': ', 1)[-1][:70]}`", "yes", "-")


def test_a_deep_tree_in_the_outputs_is_cleaned_up(lab, monkeypatch, tmp_path):
    # Python's recursive rmtree gives up at ~1000 levels; the clean-up must not.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    snapshot = lab.snapshot()
    probs, how = run_student(lab, "external",
                             [f"command={external('output_tricks.py', 'deep-dirs', '3000')}"])
    assert how == ["jail"] and np.all(probs == 0.5)
    lab.assert_unchanged(snapshot)
    assert list(private.iterdir()) == []
    lab.record("output trick: 3000 nested directories beside the predictions",
               "`output_tricks.py deep-dirs` (external)", "-",
               "run scored, directory removed", "yes", "-")


def test_nothing_the_jail_writes_is_unpickled(lab, tmp_path):
    marker = tmp_path / "unpickled-on-the-host"
    snapshot = lab.snapshot()
    probs, how = run_student(lab, "external",
                             [f"command={external('output_tricks.py', 'pickles', str(marker))}"])
    assert how == ["jail"] and np.all(probs == 0.5)
    lab.assert_unchanged(snapshot)
    assert not marker.exists()
    lab.record("pickles (result.pkl, model.pt, ...) beside the predictions",
               "`output_tricks.py pickles` (external)", "-", "never loaded", "yes", "-")


def test_a_fork_bomb_is_bounded_and_dies_with_its_jail(lab):
    from attacks.exhaust import MARKER

    snapshot = lab.snapshot()
    probs, how = run_student(lab, "external", [f"command={external('exhaust.py', 'forkbomb')}"],
                             jail={"max_processes": 16, "timeout_s": 120})
    returned = time.monotonic()
    forks = round(probs[0] * 10000)
    assert how == ["jail"] and forks < 16
    # bubblewrap returns on the program's exit status while its init is still killing the
    # rest of the jail: the children are gone a moment later, not necessarily at once.
    while processes_with(MARKER) and time.monotonic() < returned + 5:
        time.sleep(0.05)
    assert processes_with(MARKER) == []
    lingered = time.monotonic() - returned
    lab.assert_unchanged(snapshot)
    lab.record("fork bomb (jail.max_processes=16)", "`exhaust.py forkbomb` (external)", "-",
               f"{forks} forks, all gone {lingered:.2f} s after the run returned", "yes", "-")


def test_output_floods_cost_the_caller_a_tail(lab):
    message = refused(lab, external("exhaust.py", "flood", "64"), jail={"max_file_mb": 8})
    assert "exited with status" in message
    status = message[message.index("exited"):].split(":")[0]
    lab.record("stdout/stderr flood, 64 MiB each (jail.max_file_mb=8)",
               "`exhaust.py flood` (external)", "-", f"one line: `{status}: xxxx...`", "yes",
               "-")


def test_a_sleeper_times_out_with_one_line_and_leaves_nothing(lab):
    tag = f"--tag=sleeper-{os.getpid()}"
    snapshot = lab.snapshot()
    with pytest.raises(InputError) as err:
        run_student(lab, "external", [f"command={external('exhaust.py', 'sleep', tag)}",
                                      "timeout_s=3"])
    lab.assert_unchanged(snapshot)
    message = str(err.value)
    assert one_printable_line(message) and "timed out after 3 s" in message
    assert processes_with(tag) == []
    lab.record("sleeping past the time-out (timeout_s=3)", "`exhaust.py sleep` (external)", "-",
               f"one line: `{message[-60:]}`", "yes", "-")


def test_cpu_time_is_bounded(lab):
    message = refused(lab, external("exhaust.py", "spin"), jail={"cpu_seconds": 2})
    assert "exited with status" in message
    lab.record("CPU spin (jail.cpu_seconds=2)", "`exhaust.py spin` (external)", "-",
               f"one line: `{message[-50:]}`", "yes", "-")


def test_memory_is_bounded_for_the_whole_jail(lab):
    from methods.cgroups import jail_cgroup

    probe = jail_cgroup(1 << 30, 64)
    if probe is None:
        pytest.skip("no memory control group can be made here (rlimits alone bound each process)")
    probe.remove()
    command = external("exhaust.py", "memory", "4", "150")
    probs, how = run_student(lab, "external", [f"command={command}"], jail={"memory_gb": 0.25})
    held = round(probs[0] * 10000)
    lab.record("memory: 4 processes x 150 MiB (jail.memory_gb=0.25)",
               "`exhaust.py memory` (external)", "600 MiB held at once (rlimits only)",
               f"{held * 150} MiB held at once (memory control group)", "yes", "-")
    assert held * 150 <= 256


def _bytes_on_disk(path: str) -> int:
    """Bytes of the regular files under ``path`` (each directory entry counted: a copy that did
    not keep hard links wrote each of them)."""
    total = 0
    for directory, _, names in os.walk(path):
        for name in names:
            info = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_blocks * 512
    return total


def test_hard_links_in_the_outputs_are_not_multiplied_on_the_host_disk(lab, monkeypatch):
    # One 1 MiB file and 199 hard links to it in /w2s/out/error.json/: 1 MiB of the outputs
    # tmpfs (4 MiB at max_file_mb=1). The jail copies its named outputs to the host when the
    # program ends; a recursive copy that does not keep links writes 200 MiB there.
    import methods.jail_runtime as runtime

    on_host: list[int] = []
    remove_tree = runtime.remove_tree

    def measured(path: str) -> None:  # the job's host directory, just before its clean-up
        on_host.append(_bytes_on_disk(path))
        remove_tree(path)

    monkeypatch.setattr(runtime, "remove_tree", measured)
    snapshot = lab.snapshot()
    probs, how = run_student(lab, "external",
                             [f"command={external('output_tricks.py', 'hardlinks', '200')}"],
                             jail={"max_file_mb": 1})
    assert how == ["jail"] and np.all(probs == 0.5)
    lab.assert_unchanged(snapshot)
    written = max(on_host)
    lab.record("disk: one 1 MiB file and 199 hard links to it in /w2s/out/error.json "
               "(jail.max_file_mb=1)", "`output_tricks.py hardlinks` (external)", "-",
               f"{written / (1 << 20):.1f} MiB written to the host by the copy out", "yes", "-")
    assert written <= 4 << 20, f"{written} bytes on the host disk, more than the outputs tmpfs"


def test_disk_is_bounded_for_the_whole_jail(lab):
    from w2s_common.errors import InputError

    command = external("exhaust.py", "disk", "40")
    with pytest.raises(InputError) as err:  # the outputs tmpfs fills; the program cannot report
        run_student(lab, "external", [f"command={command}"], jail={"max_file_mb": 1})
    message = str(err.value)
    assert one_printable_line(message) and "No space left on device" in message, message
    lab.record("disk: 40 files of 1 MiB in /w2s/out (jail.max_file_mb=1)",
               "`exhaust.py disk` (external)", "40 MiB written to the host disk",
               "refused: `No space left on device` at 4 MiB (outputs tmpfs of 4 x max_file_mb, "
               "in the jail's memory)", "yes", "-")
