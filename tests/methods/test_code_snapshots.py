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
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from methods.code_cache import JailSetupError, content_digest, open_checked, publish_copy
from methods.jail import jail_available
from w2s_common.errors import InputError

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
    _, files, snapshots = command_code(f"{script} {{inputs}} {{outputs}}")
    assert files == [str(script)] and Path(snapshots[str(script)]).read_bytes() == \
        script.read_bytes()
    assert os.access(snapshots[str(script)], os.X_OK)  # a program stays a program
    script.chmod(0o644)
    _, _, plain = command_code(f"sh {script} {{inputs}} {{outputs}}")
    # The execute bit is part of a copy's identity: the same bytes, another copy.
    assert plain[str(script)] != snapshots[str(script)]
    assert not os.access(plain[str(script)], os.X_OK) or os.geteuid() == 0
