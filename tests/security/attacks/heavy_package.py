"""Route class: what the trusted process reads of a plugin's package and distribution to
fingerprint its code (``methods.fingerprint``), before any jail starts.

The suite copies this file to ``<site>/w2s_heavy/method.py`` (a regular package) and plants,
beside it, a file that is a symbolic link out of the package (``weights.bin`` -> a 512 MiB
sparse file standing in for a model checkpoint of 100 GB, ``/proc/kcore`` or a label file),
or names that file by its absolute path in the distribution's ``RECORD`` (``RECORD`` lines are
the distribution's own text, not checked by pip). A fingerprint that reads "every file of the
package" or "every file the distribution installed" follows them: the trusted process reads,
whole and into memory, whatever host file the plugin points at. The method itself is honest
(the weak teacher's test probabilities): the harm is the trusted process's memory and time.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from methods.base import MethodBase, NoParams


class Heavy(MethodBase):
    name = "attack_heavy_package"
    description = "Attack: a package whose files lead the fingerprint to a huge host file"
    Params = NoParams

    def run(self, data, trainer, params):
        return np.asarray(data.weak_test_probs)


def plant(site: Path, target: Path, route: str) -> str:
    """Lay out the plugin in ``site``; return how to name it (a reference or an entry point)."""
    package = site / "w2s_heavy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "method.py").write_text(Path(__file__).read_text())
    if route == "package-link":
        (package / "weights.bin").symlink_to(target)
        return "w2s_heavy.method:Heavy"
    info = site / "w2s_heavy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: w2s-heavy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[w2s_transfer.methods]\nheavy = w2s_heavy.method:Heavy\n")
    (info / "RECORD").write_text("".join(f"{line},,\n" for line in (
        "w2s_heavy/__init__.py", "w2s_heavy/method.py", os.fspath(target))))
    return "heavy"
