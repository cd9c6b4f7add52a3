"""The jail's code copies are reused without being read again, so they live only where no one
else can change them: a private directory on this host, never the shared W2S_CACHE_DIR."""
from __future__ import annotations

import os
import stat

import pytest

from methods.jail_runtime import JAIL_CACHE_ENV, jail_cache, project_runtime
from w2s_common.errors import InputError


def test_the_jail_cache_is_a_private_directory_outside_the_shared_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv(JAIL_CACHE_ENV, str(tmp_path / "local" / "jail"))
    root = jail_cache()
    info = os.lstat(root)
    assert root == tmp_path / "local" / "jail"
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700
    runtime = project_runtime()
    assert runtime.parent == root / "runtime" and (runtime / "lib" / "methods").is_dir()
    assert not (tmp_path / "shared" / "jail-runtime").exists()


def test_the_default_is_per_user_on_this_host(monkeypatch):
    monkeypatch.delenv(JAIL_CACHE_ENV)
    assert str(jail_cache()) == f"/var/tmp/w2s-transfer-jail-{os.geteuid()}"


@pytest.mark.parametrize("case", ["group-writable", "world-writable", "link", "file",
                                  "other-owner"])
def test_a_jail_cache_others_could_change_is_refused(tmp_path, monkeypatch, case):
    target = tmp_path / "jail"
    if case == "link":
        (tmp_path / "real").mkdir(mode=0o700)
        target.symlink_to(tmp_path / "real")
    elif case == "file":
        target.write_text("")
    else:
        target.mkdir(mode=0o700)
        if case == "group-writable":
            target.chmod(0o770)
        elif case == "world-writable":
            target.chmod(0o703)
        elif os.geteuid() == 0:
            os.chown(target, 12345, 12345)
        else:
            pytest.skip("changing a directory's owner needs root")
    monkeypatch.setenv(JAIL_CACHE_ENV, str(target))
    with pytest.raises(InputError) as err:
        jail_cache()
    message = str(err.value)
    assert str(target) in message and JAIL_CACHE_ENV in message and "\n" not in message
    expected = {"group-writable": "writable by others", "world-writable": "writable by others",
                "link": "is a link", "file": "is not a directory",
                "other-owner": "owned by uid 12345"}[case]
    assert expected in message


def test_one_file_cannot_pass_for_two_under_the_content_digest(tmp_path, monkeypatch):
    """A plugin package made of one file holding ``A NUL path NUL B`` must not get the digest
    (and so the reused copy) of a rival package of two files ``A`` and ``B``."""
    from methods.code_cache import JailSetupError, code_copy, content_digest

    monkeypatch.setenv(JAIL_CACHE_ENV, str(tmp_path / "jail"))
    rival, forged = tmp_path / "a" / "rival", tmp_path / "b" / "rival"
    rival.mkdir(parents=True)
    forged.mkdir(parents=True)
    (rival / "__init__.py").write_bytes(b"A = 1\n")
    (rival / "m.py").write_bytes(b"B = 2\n")
    (forged / "__init__.py").write_bytes(b"A = 1\n\0rival/m.py\0B = 2\n")
    two = content_digest(rival.parent, sorted(rival.glob("*.py")))
    one = content_digest(forged.parent, [forged / "__init__.py"])
    assert one != two
    # and a copy under the rival's name that holds other content is never reused
    copy = code_copy(rival)
    assert (copy / "m.py").read_bytes() == b"B = 2\n"
    complete = copy.parent / ".complete"
    complete.chmod(0o644)
    complete.write_text("0" * 64 + "\n")
    with pytest.raises(JailSetupError, match="not a copy of the content it is named after"):
        code_copy(rival)
