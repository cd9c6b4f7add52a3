"""What of this project goes into every jail (``/w2s/lib``) and into every built-in's code
fingerprint: regular files of their own, never a link followed. An attacker review (2026-12-05)
put a symbolic link ``methods/builtin/_vocab_test.jsonl -> <dataset>/test.jsonl``: the jail's copy
held the gold test labels, and a jailed built-in read them (REAL, PROMOTE, audit clean)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from methods.fingerprint import method_code
from methods.jail_runtime import JAIL_MODULES, JailSetupError, project_files, project_root
from w2s_common.errors import InputError


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the project's jailed part (sources and configs only)."""
    root = project_root()
    for path in project_files(root):
        target = tmp_path / "tree" / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return tmp_path / "tree"


def test_the_copy_holds_sources_and_configs_only(tree) -> None:
    (tree / "methods" / "builtin" / "notes.txt").write_text("not code")
    names = [p.relative_to(tree).as_posix() for p in project_files(tree)]
    assert "methods/builtin/notes.txt" not in names
    assert "transfer/engine/ds_configs/zero0.json" in names
    assert all(n.endswith((".py", ".json")) for n in names)
    assert all(any(n == e or n.startswith(e.rstrip("/") + "/") for e in JAIL_MODULES)
               for n in names)


@pytest.mark.parametrize("plant", ["file_link", "dir_link", "hard_link", "fifo"])
def test_a_link_or_special_file_in_it_is_refused_not_followed(tree, tmp_path, plant) -> None:
    secret = tmp_path / "labels"
    secret.mkdir()
    (secret / "test.jsonl").write_text('{"id": "t0", "label": 1}\n')
    where = tree / "methods" / "builtin"
    if plant == "file_link":
        (where / "_vocab_test.py").symlink_to(secret / "test.jsonl")
    elif plant == "dir_link":
        (where / "vocab").symlink_to(secret)
    elif plant == "hard_link":
        os.link(secret / "test.jsonl", where / "_vocab_test.py")
    else:
        os.mkfifo(where / "_vocab_test.py")
    with pytest.raises(JailSetupError, match="link|regular file"):
        project_files(tree)


def test_method_code_turns_a_refused_tree_into_one_line(monkeypatch, tree) -> None:
    (tree / "methods" / "builtin" / "_vocab_test.json").symlink_to("/etc/hostname")
    monkeypatch.setattr("methods.fingerprint.project_root", lambda: tree)
    with pytest.raises(InputError, match="_vocab_test.json: .*link"):
        method_code("aux_conf")
