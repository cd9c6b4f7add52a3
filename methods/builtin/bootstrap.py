"""``bootstrap``: weak -> intermediate model -> strong model (Burns et al. 2023)."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.registry import register_method
from transfer.errors import InputError
from transfer.sealed import MethodUnsupported, StudentData, StudentTrainer


class BootstrapParams(MethodParams):
    intermediate: str | None = Field(
        None, description="ladder model trained on the weak labels first; None = middle model")


def pick_intermediate(model_names: list[str], requested: str | None) -> str:
    """The intermediate model: ``requested`` if it is in the ladder, else the middle one.

    The middle model is ``model_names[len // 2]`` of the ladder's models (ordered small to
    large, weak first, strong last); a ladder of fewer than three models has none.
    """
    names = list(model_names)
    if requested is not None:
        if requested not in names:
            raise InputError(f"method bootstrap: intermediate model {requested!r} is not in the "
                             f"ladder; expected one of {names}", field="--param intermediate")
        return requested
    if len(names) < 3:
        raise MethodUnsupported(f"bootstrap needs a model between weak and strong; the ladder "
                                f"has only {names}")
    return names[len(names) // 2]


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

    def run(self, data: StudentData, trainer: StudentTrainer, params: BootstrapParams
            ) -> np.ndarray:
        intermediate = pick_intermediate(trainer.model_names(), params.intermediate)
        relabels = trainer.fit(np.array(data.weak_probs), model=intermediate).predict_student()
        return trainer.fit(np.asarray(relabels, dtype=np.float64)).predict_test()
