"""``aux_conf``: the auxiliary confidence loss of Burns et al. 2023."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.registry import register_method
from transfer.sealed import StudentData, StudentTrainer


class AuxConfParams(MethodParams):
    a_max: float = Field(0.5, ge=0.0, le=1.0, description="final weight of the self-training term")
    warmup_frac: float = Field(0.2, ge=0.0, le=1.0,
                               description="share of steps over which a rises linearly to a_max")


@register_method
class AuxConf(MethodBase):
    """Auxiliary confidence loss (Burns et al. 2023, arXiv:2312.09390, section 4.3.2).

    ``L = (1 - a)·CE(f, f_w) + a·CE(f, hard_t(f))``; ``hard_t`` hardens the student's own
    P(label 1) at the batch quantile matching the weak labels' class balance (no gradient);
    ``a = a_max · min(1, progress / warmup_frac)``. See ``aux_conf_hooks.AuxConfHooks``.
    """

    name = "aux_conf"
    description = ("Weak CE plus confidence self-training, a warmed up linearly (Burns et al. "
                   "2023, arXiv:2312.09390: auxiliary confidence loss)")
    Params = AuxConfParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: AuxConfParams
            ) -> np.ndarray:
        # Imported here, not at the top: the hooks need torch, and every validate resolves its
        # methods in the parent process, which trains nothing (torch costs it about 1 s).
        from methods.builtin.aux_conf_hooks import AuxConfHooks

        hooks = AuxConfHooks(a_max=params.a_max, warmup_frac=params.warmup_frac)
        return trainer.fit(np.array(data.weak_probs), hooks=hooks).predict_test()
