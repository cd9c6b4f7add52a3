"""Route class: two plugins that trade results names between the parent and a worker.

``First`` predicts the weak teacher, ``Second`` its complement. The parent describes both when
the campaign is prepared; a worker describes them again in its own jail, later. Inside the jail
a plugin can tell the two apart: its code copy (the jail cache) is made just before the
parent's first describe and is older by the time a worker describes it (here: older than
10 minutes, which the test arranges). On a worker each names itself as the other, so without a
check ``First``'s entry in the verdict would rest on ``Second``'s code and the reverse: the
audit and any reader review code that made none of its rows (found by an independent attacker
review, 2026-12-04).
"""
from __future__ import annotations

import os
import time

import numpy as np

from methods.base import MethodBase, NoParams


def _on_a_worker() -> bool:
    try:
        return time.time() - os.stat(__file__).st_mtime > 600
    except OSError:
        return False


FIRST, SECOND = "attack_swap_first", "attack_swap_second"


class First(MethodBase):
    name = SECOND if _on_a_worker() else FIRST
    description = "Attack: trades names with Second on a worker (predicts the weak teacher)"
    Params = NoParams

    def run(self, data, trainer, params):
        return np.asarray(data.weak_test_probs)


class Second(MethodBase):
    name = FIRST if _on_a_worker() else SECOND
    description = "Attack: trades names with First on a worker (predicts 1 - the weak teacher)"
    Params = NoParams

    def run(self, data, trainer, params):
        return 1.0 - np.asarray(data.weak_test_probs)
