"""``bootstrap``: weak -> intermediate model -> strong model (Burns et al. 2023)."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.registry import register_method
from transfer.sealed import MethodUnsupported, RungFacts, StudentData, StudentTrainer
from w2s_common.errors import InputError


class BootstrapParams(MethodParams):
    intermediate: str | None = Field(
        None, description="ladder model trained on the weak labels first; None = middle model")


def pick_intermediate(model_names: list[str], requested: str | None) -> str:
    """The intermediate model: ``requested``, else the middle of the models between weak and strong.

    ``model_names`` is the trainer's list: the models strictly between the rung's weak and strong
    model (small to large), then the strong model last. With several intermediates the default is
    ``candidates[len // 2]``; with none the method is unsupported on that rung.
    """
    names = list(model_names)
    candidates = names[:-1]
    if requested is not None:
        if requested not in candidates:
            raise InputError(f"method bootstrap: intermediate model {requested!r} is not between "
                             f"the rung's weak and strong model; expected one of {candidates}",
                             field="--param intermediate")
        return requested
    if not candidates:
        raise MethodUnsupported("bootstrap needs a ladder model between the rung's weak and "
                                f"strong model; this rung offers only {names}")
    return candidates[len(candidates) // 2]


@register_method
class Bootstrap(MethodBase):
    """Bootstrapping through an intermediate model (Burns et al. 2023, arXiv:2312.09390, 4.3.1).

    ``m = fit_intermediate(p_w)``; ``t = m(x_student)``; ``f = fit_strong(t)``; returns
    ``f(x_test)``: the intermediate model's soft predictions on the student split become the
    strong student's labels.
    """

    name = "bootstrap"
    description = ("Weak -> intermediate ladder model -> strong, one step of bootstrapping "
                   "(Burns et al. 2023, arXiv:2312.09390)")
    Params = BootstrapParams

    def unsupported_reason(self, rung: RungFacts, params: BootstrapParams) -> str | None:
        try:
            pick_intermediate(list(rung.model_names), params.intermediate)
        except (InputError, MethodUnsupported) as err:
            return getattr(err, "message", None) or str(err)
        return None

    def run(self, data: StudentData, trainer: StudentTrainer, params: BootstrapParams
            ) -> np.ndarray:
        intermediate = pick_intermediate(trainer.model_names(), params.intermediate)
        relabels = trainer.fit(np.array(data.weak_probs), model=intermediate).predict_student()
        return trainer.fit(np.asarray(relabels, dtype=np.float64)).predict_test()
