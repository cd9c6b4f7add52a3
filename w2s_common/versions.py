"""Installed versions of packages, for provenance and for the fingerprints of code."""
from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata


def package_versions(names: Iterable[str], *, missing: str = "absent",
                     with_python: bool = False) -> dict[str, str]:
    """Installed version of each of ``names`` (``missing`` where it is not installed), after
    ``python``'s own version when ``with_python``."""
    versions = {"python": platform.python_version()} if with_python else {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = missing
    return versions
