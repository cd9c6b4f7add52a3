"""Route class: a plugin's name as the key of its stored runs.

Two plugins that describe themselves with the same name (and the same params): ``First``
predicts 0.5 everywhere, ``Second`` the weak teacher's probabilities. A store keyed by the name
hands the second the first one's runs (or a rival's runs to the attacker, or the attacker's
runs to a rival evaluated later) without running it. ``Lookalike`` names itself
``Attack-Namesake``: a second arm that reads like the first in every report (helper-49,
2026-12-06: ``sharpen`` beside ``Sharpen`` was accepted as two arms).
"""
from __future__ import annotations

import numpy as np

from methods.base import MethodBase, NoParams


class First(MethodBase):
    name = "attack_namesake"
    description = "Attack: a name another plugin also uses (this one predicts 0.5)"
    Params = NoParams

    def run(self, data, trainer, params):
        return np.full(len(data.test_ids), 0.5)


class Second(MethodBase):
    name = "attack_namesake"
    description = "Attack: a name another plugin also uses (this one predicts the weak labels)"
    Params = NoParams

    def run(self, data, trainer, params):
        return np.asarray(data.weak_test_probs)


class Lookalike(MethodBase):
    name = "Attack-Namesake"
    description = "Attack: a name that reads like another plugin's (predicts the weak labels)"
    Params = NoParams

    def run(self, data, trainer, params):
        return np.asarray(data.weak_test_probs)
