"""``vanilla``: the reference baseline every verdict is measured against (naive W2S fine-tuning).

Part of the pipeline's own code, not a method port: it lives outside ``methods/builtin/`` and runs
in the trusted process under any ``builtins`` setting (``methods.builtin_names.PIPELINE_BUILTINS``),
so that whoever may change the built-in methods cannot change the reference they are compared with
(a sabotaged baseline makes any candidate REAL; attacker review, 2026-12-05). Review a change here
as a change to the statistics.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams, hard_labels
from methods.registry import register_method
from transfer.sealed import StudentData, StudentTrainer


class VanillaParams(MethodParams):
    hard: bool = Field(False, description="train on weak labels hardened at 0.5")


@register_method
class Vanilla(MethodBase):
    """Naive weak-to-strong fine-tuning (Burns et al. 2023, arXiv:2312.09390, section 4.2).

    ``L = mean_i CE(f(x_i), t_i)`` with ``t_i = p_w(x_i)`` (soft weak labels) or, with
    ``hard=True``, ``t_i = [p_w(x_i) > 0.5]``. The standard baseline student.
    """

    name = "vanilla"
    description = ("Cross-entropy on the weak labels, soft or hardened (Burns et al. 2023, "
                   "arXiv:2312.09390: naive W2S baseline)")
    Params = VanillaParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: VanillaParams
            ) -> np.ndarray:
        targets = hard_labels(data.weak_probs) if params.hard else np.array(data.weak_probs)
        return trainer.fit(targets).predict_test()
