"""Route class: writes to what later runs and verdicts stand on.

Tries to change every file under the targets it is given (stores of runs, the trainer's caches,
the evaluator's sources, reports): flip a byte in place, append, truncate, replace by rename,
change mode and times, plant new files, links and directories next to them. With ``--system``
it also goes for the Python runtime and the system (the virtual environment's packages, the
standard library, ``/usr/bin``, the jail's own ``/w2s/lib``, ``/w2s/job`` and ``/etc``). It
predicts 0.5 everywhere: the suite measures the damage from outside, byte by byte.

``python3 vandal.py {inputs} {outputs} _ext.py [--system] TARGET...``. Unjailed, point it only
at copies.
"""
from __future__ import annotations

import os
import sys
import sysconfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext

MAX_FILES_PER_TARGET = 400


def system_targets() -> list[str]:
    paths = sysconfig.get_paths()
    return [paths["purelib"], paths["stdlib"], os.path.dirname(sys.executable), "/usr/bin",
            "/usr/lib", "/w2s/lib", "/w2s/job", "/etc"]


def _attempt(action) -> int:
    try:
        action()
        return 1
    except Exception:  # noqa: BLE001 - any failure means it was stopped
        return 0


def _flip(path: str) -> None:
    with open(path, "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([(first[0] ^ 0xFF) if first else 0x58]))


def damage_file(path: str) -> int:
    done = _attempt(lambda: _flip(path))
    done += _attempt(lambda: open(path, "ab").write(b"\n# vandal\n"))
    done += _attempt(lambda: os.utime(path, (0, 0)))
    done += _attempt(lambda: os.chmod(path, 0o777))
    replacement = path + ".vandal"

    def replace() -> None:
        with open(replacement, "wb") as handle:
            handle.write(b"vandal")
        os.replace(replacement, path)

    done += _attempt(replace)
    return done


def damage_directory(directory: str) -> int:
    done = _attempt(lambda: open(os.path.join(directory, "VANDAL"), "wb").write(b"x"))
    done += _attempt(lambda: os.symlink("/w2s/out", os.path.join(directory, "vandal-link")))
    done += _attempt(lambda: os.mkdir(os.path.join(directory, "vandal-dir")))
    return done


def vandalise(targets: list[str]) -> int:
    done = 0
    for target in targets:
        if os.path.isfile(target):
            done += damage_file(target)
            continue
        files = 0
        for root, dirs, names in os.walk(target):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "proc", "sys")]
            done += damage_directory(root)
            for name in names:
                done += damage_file(os.path.join(root, name))
                files += 1
                if files >= MAX_FILES_PER_TARGET:
                    break
            if files >= MAX_FILES_PER_TARGET:
                break
    return done


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    args = _ext.args_after(argv)
    targets = [a for a in args if a != "--system"]
    if "--system" in args:
        targets += system_targets()
    done = vandalise(targets)
    print(f"vandal: {done} writes succeeded", file=sys.stderr)
    _ext.write_predictions(outputs, ids, _ext.predictions(ids, {}))


if __name__ == "__main__":
    main(sys.argv)
