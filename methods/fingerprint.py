"""The fingerprint of a method's code, computed on the trusted side without importing plugins.

A student run's store key holds it (``RunSpec.method_fingerprint``), so a run is reused only by
the code that made it. What a method's code is:

- a built-in (``vanilla``, ``aux_conf``...): the project code a method runs on,
  :data:`methods.jail_runtime.JAIL_MODULES` (``methods/`` and the trainer part of ``transfer/``),
  the files the jail's copy holds (``methods.jail_runtime.project_files``: regular ``.py`` and
  ``.json`` files of their own; a link there is refused);
- ``external``: that, the files its command line names (the files the jail mounts for it),
  its program's bytes and the Python distributions and start-up files of the runtimes the jail
  mounts (:func:`runtime_code`);
- ``package.module:attr``: that, and the Python sources of the plugin's top-level package (or
  its module file): exactly what the jail copies to ``/w2s/code``
  (``methods.jail_runtime.code_files``: regular ``.py`` files of their own, bounded in size);
- an entry point: that, its distribution's name and version, and the sources of its target's
  top-level package, found the same way.

Nothing else of a plugin's directory or distribution is read: no data file beside the code and
no file its ``RECORD`` lists, which never reach the jail and so cannot change a run, and which
could be links or ``RECORD`` lines leading the trusted process to any host file (a 100 GB
checkpoint, ``/proc/kcore``) to be read whole.

A built-in is fingerprinted with all of the project's method code, not only its own module:
built-ins import each other and the shared modules, so any edit under ``methods/`` (or to the
trainer) changes every built-in's fingerprint and recomputes its student runs. Files are found
from names and package metadata (``importlib.machinery.PathFinder``, ``importlib.metadata``);
no plugin code runs.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from methods.code_cache import Snapshot, code_copy, file_copy
from methods.code_cache import code_files as plugin_sources  # what the jail gets of a plugin
from methods.jail_runtime import (
    PROJECT_PACKAGES,
    JailSetupError,
    module_location,
    project_root,
)
from methods.jail_runtime import project_files as jail_project_files
from transfer.fingerprint import combine, digest_files
from w2s_common.errors import InputError

CodeKind = Literal["builtin", "external", "reference", "entry-point"]


@dataclass(frozen=True)
class MethodCode:
    """A method's code as the store key sees it.

    Attributes:
        reference: how the method is named (built-in name, entry-point name, ``module:attr``).
        kind: ``builtin``, ``external``, ``reference`` or ``entry-point``.
        fingerprint: sha256 (hex) of everything below.
        files: absolute paths of the files it covers (for CI: which changes touch the method).
        provider: the distribution (and version) or module that supplies a plugin.
        snapshots: ``(name, copy)`` pairs: the private copies (``methods.code_cache``) the
            fingerprint was computed from and the jail runs: a plugin's top-level package by
            its name, an ``external`` command's own files by their paths.
        argv: an ``external`` command's argv as fingerprinted (run as it is).
    """

    reference: str
    kind: CodeKind
    fingerprint: str
    files: tuple[str, ...] = field(default=(), repr=False)
    provider: str | None = None
    snapshots: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    argv: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def snapshot(self) -> Snapshot:
        """What the method's jails get of its code (``methods.code_cache.Snapshot``)."""
        return Snapshot(dict(self.snapshots), self.argv)

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "kind": self.kind, "fingerprint": self.fingerprint,
                "provider": self.provider}


def project_code() -> tuple[str, list[str]]:
    """(fingerprint, files) of the project code every method runs on (:data:`JAIL_MODULES`)."""
    root = project_root()
    files = [(path.relative_to(root).as_posix(), path) for path in jail_project_files(root)]
    return digest_files(files, label="project"), [str(p) for _, p in files]


def _plugin_code(location: Path, label: str) -> tuple[str, list[str], str]:
    """(digest, files, snapshot) of the sources of a plugin's top-level package or module
    file: the digest is of the private copy the jail gets (``methods.code_cache.code_copy``,
    which refuses links), never of the files themselves, which may change meanwhile."""
    files = plugin_sources(location)
    copy = code_copy(location)
    named = [(path.relative_to(copy.parent).as_posix(), path) for path in plugin_sources(copy)]
    return digest_files(named, label=label), [str(path) for path in files], str(copy)


def _reference_code(reference: str, project: str, project_files: list[str]) -> MethodCode:
    module = reference.partition(":")[0].strip()
    top = module.split(".")[0]
    if not module or not top:
        raise InputError(f"expected 'package.module:attr', got {reference!r}", field="--method")
    if top in PROJECT_PACKAGES:
        # This project's own module named by reference: the jail offers it from /w2s/lib.
        return MethodCode(reference, "reference", combine("reference", reference, project),
                          tuple(project_files), module)
    location = module_location(top)
    if location is None:
        raise InputError(f"cannot find module {top!r} of {reference!r} on the Python path",
                         field="--method")
    code, files, copy = _plugin_code(location, top)
    return MethodCode(reference, "reference", combine("reference", reference, project, code),
                      tuple(project_files + files), module, snapshots=((top, copy),))


def _entry_point_code(entry_point: importlib.metadata.EntryPoint, project: str,
                      project_files: list[str]) -> MethodCode:
    dist = entry_point.dist
    provider = entry_point.value
    if dist is not None:
        provider = f"{dist.name}=={dist.version}"
    top = entry_point.value.partition(":")[0].split(".")[0]
    location = module_location(top) if top else None
    if location is None:  # fingerprinting nothing would let any code run under the fingerprint
        raise InputError(f"entry point {entry_point.name!r}: its module {top or '?'} is not "
                         "found on the Python path or in the plugin directories",
                         field="--method")
    module, files, copy = _plugin_code(location, top)
    snapshots = ((top, copy),)
    fingerprint = combine("entry-point", entry_point.name, entry_point.value, provider,
                          module, project)
    return MethodCode(entry_point.name, "entry-point", fingerprint,
                      tuple(project_files + files), provider, snapshots=snapshots)


def command_code(command: str) -> tuple[str, list[str], dict[str, str], list[str]]:
    """(fingerprint, own files, snapshots, argv) of an ``external`` command line: the files it
    names and the runtime it runs on (:func:`runtime_code`), whether its program is one of its
    own files (a script whose ``#!`` interpreter imports from the runtime) or a runtime
    program. Each own file is copied privately first (``methods.code_cache.file_copy``;
    ``snapshots`` maps its path to the copy): the fingerprint is of the copies, which the jail
    mounts at the files' paths, and ``argv`` is what the jail runs, so a file changed, removed
    or swapped for a link after this never changes what runs."""
    from methods.external import build_argv

    argv, files = build_argv(command)
    copies = {f: file_copy(f) for f in files}
    snapshots = {f: copy for f, (copy, _) in copies.items()}
    # Each copy's content digest, computed as it was read: a checkpoint is not read again here.
    own = combine("command", *(f"{f}\0{copies[f][1]}" for f in sorted(files)))
    kind = "own-program" if argv[0] in files else "runtime-program"
    fingerprint = combine(kind, own, runtime_code(snapshots.get(argv[0], argv[0])))
    return fingerprint, files, snapshots, argv


def runtime_site_dirs() -> list[str]:
    """The Python package directories an ``external`` jail can import from: the entries of
    this interpreter's path inside the mounted runtimes, and the ``site-packages`` of every
    mounted Python prefix (a base interpreter's too, which the jail can run by its path)."""
    from methods.external import in_runtime
    from methods.jail_runtime import python_mounts

    dirs = [os.path.realpath(p) for p in sys.path if p and in_runtime(os.path.realpath(p))]
    for mount in python_mounts():
        if mount.kind == "ro":
            dirs += sorted(str(d) for d in Path(mount.target).glob("lib/python3*/site-packages"))
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def runtime_code(program: str) -> str:
    """sha256 (hex) of the code a program brings into an ``external`` jail besides the files
    its command line names: the bytes of the program file itself (its real path, so
    ``python3`` is the interpreter binary) and, for every package directory of the mounted
    Python runtimes (:func:`runtime_site_dirs`), the distributions installed there (name,
    version and the sha256 of each ``RECORD``, which lists every installed file's own sha256;
    this project's distribution is left out, its code is the project part of the
    fingerprint) and the contents of its ``.pth`` files and ``sitecustomize`` /
    ``usercustomize`` modules, which run at start-up whoever installed them.

    So ``python3 -m tool``, ``mytool`` on PATH, or a script importing a package from the venv
    or the base interpreter gets a new fingerprint (and no reuse of its runs) when that
    program or any package is reinstalled with other code. Not covered: a file edited in
    place under a runtime without reinstalling (its ``RECORD`` unchanged), the standard
    library, and the operating system's files under ``/usr``: the platform, like the kernel,
    which only the machine's administrator can change (docs/security.md).
    """
    real = os.path.realpath(program)
    program_part = digest_files([("program", Path(real))], label="runtime-program")
    parts = []
    for site_dir in runtime_site_dirs():
        for dist in importlib.metadata.distributions(path=[site_dir]):
            name = str(dist.metadata["Name"] or "")
            if name.lower().replace("_", "-") == "w2s-transfer":
                continue
            record = dist.read_text("RECORD") or ""
            parts.append(f"{name}=={dist.version}:"
                         f"{hashlib.sha256(record.encode()).hexdigest()}")
        startup = sorted(Path(site_dir).glob("*.pth")) + [
            Path(site_dir) / f"{name}.py" for name in ("sitecustomize", "usercustomize")]
        startup = [f for f in startup if f.is_file() and not f.name.startswith(
            ("__editable__.w2s_transfer", "w2s_transfer"))]
        if startup:  # named without their directory: a venv's location is not its code
            parts.append(digest_files([(f.name, f) for f in startup], label="startup"))
    return combine("runtime", program_part, *sorted(parts))


def method_code(name_or_ref: str, params: dict[str, Any] | None = None, *,
                target: str | None = None) -> MethodCode:
    """The code behind method ``name_or_ref`` with ``params``, without importing any plugin.

    Names resolve in the registry's order: a built-in name, then ``module:attr``, then an entry
    point of group ``w2s_transfer.methods``.

    ``target``: the ``module:attr`` a plugin was described as (``methods.plugins.
    PluginMethod.target``), which an entry point must still name: the code fingerprinted and
    snapshotted is the code its jails import, not whatever the entry point says a moment later.

    Raises:
        InputError: an unknown name, a reference whose module is not on the path, an entry
            point that no longer names ``target``, or an ``external`` command that cannot be
            split or whose program is missing.
    """
    from methods.registry import _entry_points, is_builtin_name

    name_or_ref = name_or_ref.strip()
    try:
        project, project_files = project_code()
    except JailSetupError as err:  # a link in the project's jailed part: refused, never followed
        raise InputError(str(err), field="--method") from None
    if is_builtin_name(name_or_ref):
        if name_or_ref == "external":
            command = str((params or {}).get("command", ""))
            try:
                own, files, snapshots, argv = (command_code(command) if command
                                               else (combine("no-command"), [], {}, None))
            except JailSetupError as err:  # an own file changed into a link, a FIFO, too big
                raise InputError(f"method external: {err}", field="--param command") from None
            return MethodCode("external", "external", combine("external", project, own),
                              tuple(project_files + files), snapshots=tuple(snapshots.items()),
                              argv=None if argv is None else tuple(argv))
        return MethodCode(name_or_ref, "builtin", combine("builtin", project),
                          tuple(project_files))
    try:
        if ":" in name_or_ref:
            return _reference_code(name_or_ref, project, project_files)
        entry_point = _entry_points().get(name_or_ref)
        if entry_point is None:
            raise InputError(f"unknown method {name_or_ref!r}", field="--method")
        if target is not None and entry_point.value != target:
            raise InputError(f"entry point {name_or_ref!r} changed while it was resolved (it "
                             f"named {target}, now {entry_point.value}); refused",
                             field="--method")
        return _entry_point_code(entry_point, project, project_files)
    except JailSetupError as err:  # e.g. a namespace package: not a plugin the jail runs
        raise InputError(str(err), field="--method") from None


def method_fingerprint(name_or_ref: str, params: dict[str, Any] | None = None) -> str:
    """:func:`method_code`'s fingerprint."""
    return method_code(name_or_ref, params).fingerprint
