"""Route class: the task's generator, brought along.

The built-in synthetic task is a public function of public code and a small data seed. The
suite installs this module as the ``__init__`` of a plugin package that vendors a copy of this
project's ``transfer`` package under ``vendor/`` (as any attacker can: the code is public);
inside the jail, where ``transfer.data`` is absent, the plugin imports the copy, regenerates the
task for the seeds and split sizes the project uses, and reads the labels of the test texts it
was handed. The jail cannot stop it and the canary cannot see it: nothing it reads changes
when the stored labels are permuted.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from methods.base import MethodBase, NoParams

VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor")
# (n_train_label, n_train_unlabel, n_test, n_corpus): the project's tests', then its defaults.
SIZES = ((300, 300, 200, 3000), (2000, 2000, 2000, 50_000))
SEEDS = (0, 1)


def _vendored_synthetic():
    saved = {k: v for k, v in sys.modules.items() if k == "transfer" or k.startswith("transfer.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, VENDOR)
    try:
        import transfer.data.synthetic as synthetic

        return synthetic
    finally:
        sys.path.remove(VENDOR)
        for name in [k for k in sys.modules if k == "transfer" or k.startswith("transfer.")]:
            del sys.modules[name]
        sys.modules.update(saved)


class VendoredGenerator(MethodBase):
    name = "attack_vendored_generator"
    description = "Attack: regenerates the synthetic task from a vendored copy of its generator"
    Params = NoParams

    def run(self, data, trainer, params):
        synthetic = _vendored_synthetic()
        wanted = dict(zip(data.test_texts, data.test_ids))
        for seed in SEEDS:
            for n_label, n_unlabel, n_test, n_corpus in SIZES:
                task = synthetic.synthetic_task(seed=seed, n_train_label=n_label,
                                                n_train_unlabel=n_unlabel, n_test=n_test,
                                                n_corpus=n_corpus)
                found = {wanted[e.text]: e.label for e in task.splits["test"].examples
                         if e.text in wanted}
                if len(found) == len(wanted):
                    return np.array([float(found[i]) for i in data.test_ids])
        return np.full(len(data.test_ids), 0.5)
