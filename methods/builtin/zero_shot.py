"""``zero_shot_prior``: the strong model's own label-token prior, alone or mixed with weak
labels."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.registry import register_method
from transfer.sealed import MethodUnsupported, RungFacts, StudentData, StudentTrainer


class ZeroShotParams(MethodParams):
    mix: float = Field(0.5, ge=0.0, le=1.0,
                       description="weight of the prior: 1 = prior alone, 0 = weak labels alone")


@register_method
class ZeroShotPrior(MethodBase):
    """Zero-shot label-token prior of the strong model (automated W2S research sandbox:
    unsupervised-elicitation baseline).

    ``mix = 1``: return ``p_0(x_test)``, the strong model's zero-shot P(label 1), untrained.
    Otherwise train the student on ``t = (1 - mix)·p_w + mix·p_0(x_student)`` and predict test.
    Raises ``MethodUnsupported`` when the model has no label tokens.
    """

    name = "zero_shot_prior"
    description = ("Strong model's zero-shot label-token prior, alone (mix=1) or mixed into the "
                   "weak labels (automated W2S research sandbox baseline)")
    Params = ZeroShotParams

    def unsupported_reason(self, rung: RungFacts, params: ZeroShotParams) -> str | None:
        # Every mix reads the prior (mix = 0 still computes it), so label tokens are needed.
        if rung.label_tokens:
            return None
        return (f"model {rung.strong_model!r} has no label tokens to read a zero-shot prior "
                "from (it needs a checkpoint with head: label_token)")

    def run(self, data: StudentData, trainer: StudentTrainer, params: ZeroShotParams
            ) -> np.ndarray:
        try:
            if params.mix == 1.0:
                return np.asarray(trainer.zero_shot_test(), dtype=np.float64)
            prior = np.asarray(trainer.zero_shot_student(), dtype=np.float64)
        except MethodUnsupported as err:
            raise MethodUnsupported(f"zero_shot_prior: {err}") from None
        targets = (1.0 - params.mix) * np.asarray(data.weak_probs) + params.mix * prior
        return trainer.fit(np.clip(targets, 0.0, 1.0)).predict_test()
