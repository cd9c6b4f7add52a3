"""The code a method's runs are keyed by is the code its jails run (``methods.code_cache``).

Before: the fingerprint was read from a method's files when it was resolved, and each jail got
the files (an ``external`` command's own files mounted as they were at the job's start, a
plugin's sources copied then). A method's author editing the files meanwhile had runs stored
under the fingerprint of code that never ran; swapping an own file for a link to a label file
between its check and the jail's mount handed the labels to the jail. Now both read private
copies made when the fingerprint is taken.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from methods.code_cache import JailSetupError, content_digest, open_checked, publish_copy
from methods.jail import jail_available
from w2s_common.errors import InputError

REPO = Path(__file__).resolve().parents[2]
needs_jail = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")

# Reports the file it is handed (and the secret's path, which an attacker who planted the link
# knows) on stderr, whose last line the error carries.
REPORTER = textwrap.dedent("""\
    #!/bin/sh
    for f in "$3" "SECRET"; do [ -r "$f" ] && content=$(cat "$f"); done
    echo "read: ${content:-nothing}" >&2
    exit 1
    """)


@pytest.fixture()
def private_jail_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_JAIL_CACHE_DIR", str(tmp_path / "jail-cache"))


@needs_jail
@pytest.mark.parametrize("fingerprinted", [True, False], ids=["resolved", "run-directly"])
def test_an_own_file_swapped_for_a_link_after_its_check_never_reaches_the_jail(
        tmp_path, monkeypatch, task, trainer, private_jail_cache, fingerprinted):
    import methods.external as external
    from methods.registry import parse_params, resolve_method
    from methods.resolve import method_function
    from methods.runner import run_method

    secret = tmp_path / "secret" / "labels.txt"
    secret.parent.mkdir()
    secret.write_text("GOLD-LABELS")
    secret.chmod(0o644)
    script, data_file = tmp_path / "report.sh", tmp_path / "own" / "data.txt"
    script.write_text(REPORTER.replace("SECRET", str(secret)))
    data_file.parent.mkdir()
    data_file.write_text("harmless")
    for path in (tmp_path, tmp_path / "own", tmp_path / "secret"):
        path.chmod(0o755)
    command = f"sh {script} {{inputs}} {{outputs}} {data_file}"

    real_write_inputs = external.write_inputs

    def swap_then_write(data, job):  # the racing writer, between the check and the mount
        data_file.unlink()
        data_file.symlink_to(secret)
        return real_write_inputs(data, job)

    if fingerprinted:
        _, _, run = method_function("external", {"command": command})
    else:
        method = resolve_method("external")
        params = parse_params(method, [f"command={command}"])
        run = lambda data, trainer: run_method(method, data, trainer, params)  # noqa: E731
    monkeypatch.setattr(external, "write_inputs", swap_then_write)
    with pytest.raises(InputError) as caught:
        run(task.data, trainer)
    assert str(caught.value).endswith("read: harmless"), str(caught.value)


@needs_jail
def test_an_external_command_edited_after_its_fingerprint_runs_as_fingerprinted(
        tmp_path, task, trainer, private_jail_cache):
    from methods.resolve import method_function

    script = tmp_path / "method.sh"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        sed -E 's/^\\{"id": ("[^"]*").*/{"id": \\1, "prob": 0.25}/' "$1/test.jsonl" \\
            > "$2/predictions.jsonl"
        """))
    command = f"sh {script} {{inputs}} {{outputs}}"
    _, _, run = method_function("external", {"command": command})
    script.write_text(script.read_text().replace("0.25", "0.75"))  # edited after resolve
    np.testing.assert_allclose(run(task.data, trainer).probs, 0.25)
    _, _, again = method_function("external", {"command": command})
    assert again.fingerprint != run.fingerprint
    np.testing.assert_allclose(again(task.data, trainer).probs, 0.75)


PLUGIN = textwrap.dedent("""\
    import numpy as np
    from methods.base import MethodBase

    class Constant(MethodBase):
        name = "snapshot_constant"
        description = "test plugin: a constant prediction"

        def run(self, data, trainer, params):
            return np.full(len(data.test_ids), VALUE)

    VALUE = 0.25
    """)


@needs_jail
def test_a_plugin_edited_after_its_fingerprint_runs_as_fingerprinted(
        tmp_path, monkeypatch, task, trainer, private_jail_cache):
    from methods.resolve import method_function

    package = tmp_path / "lib" / "w2s_snapshot_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    _, _, run = method_function("w2s_snapshot_plugin:Constant", {})
    (package / "__init__.py").write_text(PLUGIN.replace("0.25", "0.75"))
    np.testing.assert_allclose(run(task.data, trainer).probs, 0.25)
    _, _, again = method_function("w2s_snapshot_plugin:Constant", {})
    assert again.fingerprint != run.fingerprint
    np.testing.assert_allclose(again(task.data, trainer).probs, 0.75)


def test_a_plugin_job_mounts_the_method_s_package_from_its_snapshot(tmp_path, monkeypatch,
                                                                     private_jail_cache):
    from methods.jail_runtime import code_mounts

    package = tmp_path / "lib" / "w2s_snapshot_helper"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    found = code_mounts(["w2s_snapshot_helper.sub"], [])
    assert [m.target for m in found] == ["/w2s/code/w2s_snapshot_helper"]
    assert found[0].source != str(package)  # a copy, as the job finds the files
    pinned = code_mounts(["w2s_snapshot_helper"], [], {"w2s_snapshot_helper": "/c/x/pkg"})
    assert [(m.target, m.source) for m in pinned] == [("/w2s/code/pkg", "/c/x/pkg")]


def test_a_copy_is_named_after_the_bytes_copied(tmp_path, monkeypatch):
    """A source changed between the first read and the copy: the copy is published under the
    digest of what it holds, never under the digest read first (the jail cache would otherwise
    hand the changed code to every later job of the first content)."""
    import methods.code_cache as code_cache

    root = tmp_path / "src"
    root.mkdir()
    source = root / "m.py"
    source.write_text("VALUE = 'checked'\n")
    first = content_digest(root, [source])
    real_published = code_cache.published

    def change_after_first_read(final, digest):
        source.write_text("VALUE = 'swapped in'\n")
        return real_published(final, digest)

    monkeypatch.setattr(code_cache, "published", change_after_first_read)
    final, digest = publish_copy(tmp_path / "cache", root, [source])
    assert (final / "m.py").read_text() == "VALUE = 'swapped in'\n"
    assert digest != first and final.name == digest[:24]
    assert digest == content_digest(final, [final / "m.py"])
    assert not (tmp_path / "cache" / first[:24]).exists()


def test_sources_are_opened_only_as_regular_files_at_their_checked_path(tmp_path):
    target = tmp_path / "real"
    target.mkdir()
    (target / "f.py").write_text("x")
    link = tmp_path / "link.py"
    link.symlink_to(target / "f.py")
    with pytest.raises(JailSetupError, match="cannot open it as a regular file"):
        with open_checked(link):
            pass
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(JailSetupError, match="not a regular file of its own"):
        with open_checked(fifo):
            pass
    assert time.monotonic() - started < 5  # never blocks on a FIFO with no writer
    hard = tmp_path / "hard.py"
    os.link(target / "f.py", hard)
    with pytest.raises(JailSetupError, match="not a regular file of its own"):
        with open_checked(hard):
            pass
    os.unlink(hard)
    # A directory on the path that is (or became) a link: the file opened is elsewhere.
    swapped = tmp_path / "swapped"
    swapped.symlink_to(target)
    with pytest.raises(JailSetupError, match=f"opened as {target / 'f.py'}"):
        with open_checked(swapped / "f.py"):
            pass
    with open_checked(target / "f.py") as (fd, info):
        assert os.read(fd, 10) == b"x" and info.st_size == 1


def test_the_fingerprint_is_the_copy_s(tmp_path, private_jail_cache):
    from methods.fingerprint import command_code

    script = tmp_path / "p.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    _, files, snapshots, argv = command_code(f"{script} {{inputs}} {{outputs}}")
    assert argv == [str(script), "/w2s/job", "/w2s/out"]
    assert files == [str(script)] and Path(snapshots[str(script)]).read_bytes() == \
        script.read_bytes()
    assert os.access(snapshots[str(script)], os.X_OK)  # a program stays a program
    script.chmod(0o644)
    _, _, plain, _ = command_code(f"sh {script} {{inputs}} {{outputs}}")
    # The execute bit is part of a copy's identity: the same bytes, another copy.
    assert plain[str(script)] != snapshots[str(script)]
    assert not os.access(plain[str(script)], os.X_OK) or os.geteuid() == 0


# --- The third attacker review of 2026-12-05 (helper-40), reproduced -------------------------

EP_PLUGIN = PLUGIN.replace("snapshot_constant", "snapshot_ep")


def _entry_point_plugins(tmp_path: Path, monkeypatch) -> Path:
    """A plugin directory (``pip install --target`` layout) with two packages of one author and
    a distribution whose entry point names the first."""
    plugins = tmp_path / "plugins"
    for package, value in (("w2s_snap_a", "0.25"), ("w2s_snap_b", "0.75")):
        (plugins / package).mkdir(parents=True)
        (plugins / package / "__init__.py").write_text(EP_PLUGIN.replace("0.25", value))
    dist = plugins / "w2s_snap-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: w2s-snap\nVersion: 1.0\n")
    _point_entry(plugins, "w2s_snap_a")
    monkeypatch.setenv("W2S_PLUGIN_PATH", str(plugins))
    return plugins


def _point_entry(plugins: Path, package: str) -> None:
    (plugins / "w2s_snap-1.0.dist-info" / "entry_points.txt").write_text(
        f"[w2s_transfer.methods]\nsnap_ep = {package}:Constant\n")


@needs_jail
def test_an_entry_point_retargeted_while_it_is_resolved_is_refused(
        tmp_path, monkeypatch, task, trainer, private_jail_cache):
    """F1: the entry point was read when the plugin was described (the package its jails
    import) and again for the fingerprint; its author flipping it in between had runs of one
    package stored under the other's fingerprint."""
    import methods.registry as registry
    from methods.resolve import method_function

    plugins = _entry_point_plugins(tmp_path, monkeypatch)
    _, _, honest = method_function("snap_ep", {})
    np.testing.assert_allclose(honest(task.data, trainer).probs, 0.25)
    real_describe = registry._describe

    def describe_then_retarget(source, params):
        described = real_describe(source, params)
        _point_entry(plugins, "w2s_snap_b")  # the author's process, woken by the read
        return described

    monkeypatch.setattr(registry, "_describe", describe_then_retarget)
    with pytest.raises(InputError, match="entry point 'snap_ep' changed while it was resolved "
                                         r"\(it named w2s_snap_a:Constant, now "
                                         r"w2s_snap_b:Constant\); refused"):
        method_function("snap_ep", {})


@needs_jail
def test_an_entry_point_whose_module_is_missing_is_refused_not_fingerprinted_as_nothing(
        tmp_path, monkeypatch, private_jail_cache):
    import methods.registry as registry
    from methods.resolve import method_function

    plugins = _entry_point_plugins(tmp_path, monkeypatch)
    real_describe = registry._describe

    def describe_then_hide(source, params):
        described = real_describe(source, params)
        (plugins / "w2s_snap_a").rename(plugins / ".hidden")
        return described

    monkeypatch.setattr(registry, "_describe", describe_then_hide)
    with pytest.raises(InputError, match="entry point 'snap_ep': its module w2s_snap_a is not "
                                         "found"):
        method_function("snap_ep", {})


def test_a_plugin_job_without_its_package_among_the_snapshots_is_refused(private_jail_cache):
    from methods.code_cache import Snapshot, running_snapshot
    from methods.plugins import own_code

    assert own_code("w2s_snap_a:Constant") is None  # no fingerprint taken: copied as found
    with running_snapshot(Snapshot({"w2s_snap_b": "/copy/w2s_snap_b"})):
        assert own_code("aux_conf") == {"w2s_snap_b": "/copy/w2s_snap_b"}  # a jailed built-in
        assert own_code("w2s_snap_b.sub:Constant") == {"w2s_snap_b": "/copy/w2s_snap_b"}
        with pytest.raises(InputError, match="its package w2s_snap_a is not the code its "
                                             "fingerprint was taken of"):
            own_code("w2s_snap_a:Constant")


@needs_jail
def test_an_own_file_removed_after_the_fingerprint_is_still_mounted_from_its_copy(
        tmp_path, task, trainer, private_jail_cache):
    """F2: the command was split again at run time, so a file removed since was no longer an
    own file and was not mounted: the run went on without it, under the old fingerprint."""
    from methods.resolve import method_function

    config = tmp_path / "config.txt"
    config.write_text("0.25\n")
    script = tmp_path / "method.sh"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        p=0.9; [ -r "$3" ] && p=$(cat "$3")
        sed -E "s/^\\{\\"id\\": (\\"[^\\"]*\\").*/{\\"id\\": \\1, \\"prob\\": $p}/" \\
            "$1/test.jsonl" > "$2/predictions.jsonl"
        """))
    _, _, run = method_function("external", {"command": f"sh {script} {{inputs}} {{outputs}} "
                                                          f"{config}"})
    config.unlink()
    np.testing.assert_allclose(run(task.data, trainer).probs, 0.25)


def test_copies_are_bounded_as_they_are_read(tmp_path, monkeypatch, private_jail_cache):
    """F3: no bound on own files, and the plugin bound checked by lstat before the copy read
    the files: a file grown in between (or a sparse one) was copied whole, allocated."""
    import methods.code_cache as code_cache
    from methods.fingerprint import method_code

    monkeypatch.setattr(code_cache, "MAX_OWN_FILE_BYTES", 1 << 20)
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"w" * (2 << 20))
    with pytest.raises(InputError, match="an external command's own file holds more than "
                                         "1048576 bytes; refused"):
        method_code("external", {"command": f"sh -c true {blob}"})

    monkeypatch.setattr(code_cache, "MAX_CODE_BYTES", 1 << 20)
    package = tmp_path / "lib" / "w2s_snap_big"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN)
    (package / "zz.py").write_text("# small\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    listed = code_cache.code_files

    def listed_then_grown(location):
        files = listed(location)
        with open(package / "zz.py", "ab") as handle:  # the author, racing the copy
            handle.write(b"#" * (2 << 20))
        return files

    monkeypatch.setattr(code_cache, "code_files", listed_then_grown)
    with pytest.raises(InputError, match="holds more than 1048576 bytes; refused"):
        method_code("w2s_snap_big:Constant", {})
    leftovers = [p for p in Path(os.environ["W2S_JAIL_CACHE_DIR"]).rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in leftovers) < 1 << 20, leftovers


@needs_jail
def test_a_copy_keeps_the_mode_of_an_own_file(tmp_path, task, trainer, private_jail_cache):
    """F4: copies were published 0644, so a file the jail's uid could not read as a bind mount
    (the operator's, mode 0600) became readable in the jail."""
    from methods.resolve import method_function

    if os.geteuid() != 0:
        pytest.skip("as root the jail runs as a uid of its own; otherwise as this one")
    base = tmp_path / "open"
    base.mkdir()
    base.chmod(0o755)
    tmp_path.chmod(0o755)
    secret = base / "operator-only.txt"
    secret.write_text("ROOT-ONLY-CONTENT\n")
    secret.chmod(0o600)
    script = base / "cat.sh"
    script.write_text('#!/bin/sh\necho "read: $(cat "$3" 2>&1 | tail -c 40)" >&2\nexit 1\n')
    script.chmod(0o644)
    _, _, run = method_function("external", {"command": f"sh {script} {{inputs}} {{outputs}} "
                                                          f"{secret}"})
    with pytest.raises(InputError) as caught:
        run(task.data, trainer)
    assert "ROOT-ONLY-CONTENT" not in str(caught.value)
    assert "Permission denied" in str(caught.value), str(caught.value)


def test_sparse_own_files_are_refused_and_old_copies_evicted(tmp_path, private_jail_cache):
    """helper-41 F2: a sparse file costs its owner nothing and its copy its full size, and
    copies were never removed."""
    from methods import code_cache
    from methods.code_cache import evict_file_copies, file_copy
    from methods.fingerprint import method_code

    blob = tmp_path / "weights.bin"
    with open(blob, "wb") as handle:
        handle.truncate(64 << 20)
    with pytest.raises(InputError, match="a sparse file .* refused"):
        method_code("external", {"command": f"sh -c true {blob}"})

    copies = []
    for index in range(3):
        own = tmp_path / f"own-{index}.bin"
        own.write_bytes(bytes([index]) * (1 << 16))
        copies.append(Path(file_copy(str(own))[0]).parent)
        os.utime(copies[-1] / ".complete", (1000.0 * (index + 1),) * 2)  # used long ago
    parent = copies[0].parent
    # This process made all three, so it holds them: none goes, whatever the budget.
    assert evict_file_copies(parent, budget=0) == []
    for fd in code_cache._HELD.values():  # as if the processes that made them had exited
        os.close(fd)
    code_cache._HELD.clear()
    removed = evict_file_copies(parent, budget=(1 << 16) * 2 + 8192)
    assert removed == [copies[0]]  # the least recently used first
    assert copies[1].exists() and copies[2].exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(".")]


def test_a_copy_a_live_process_holds_is_never_evicted(tmp_path, private_jail_cache):
    """The last note's DoS: an own-file copy a long group still mounts was evicted after 6 h
    under copy pressure. Now a copy is held by every process that made it (a shared flock),
    however old, and goes only once none is alive; one evicted while another process was
    about to hold it is copied anew."""
    from methods import code_cache
    from methods.code_cache import evict_file_copies, file_copy

    own = tmp_path / "own.bin"
    own.write_bytes(b"w" * (1 << 16))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from methods.code_cache import file_copy; "
         f"print(file_copy({str(own)!r})[0], flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "W2S_JAIL_CACHE_DIR": os.environ["W2S_JAIL_CACHE_DIR"]})
    try:
        copy = Path(holder.stdout.readline().strip()).parent
        os.utime(copy / ".complete", (1000.0, 1000.0))  # unused for decades
        assert evict_file_copies(copy.parent, budget=0) == []
        assert copy.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert evict_file_copies(copy.parent, budget=0) == [copy]
    assert not copy.exists()
    # Evicted before this process held it: file_copy publishes it again and holds that.
    again = Path(file_copy(str(own))[0])
    assert again.read_bytes() == own.read_bytes()
    code_cache._take_out(again.parent)  # refused: this process holds it
    assert again.exists()
