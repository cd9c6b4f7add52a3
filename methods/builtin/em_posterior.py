"""``em_posterior``: weak labels as noisy views of a latent label, fitted by EM."""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.builtin.em_channel import fit_noisy_channel, weak_symbols
from methods.registry import register_method
from transfer.sealed import StudentData, StudentTrainer


class EmPosteriorParams(MethodParams):
    n_bins: int = Field(5, ge=1, le=100, description="K confidence bins of the weak probability")
    binning: Literal["confidence", "prob"] = Field(
        "confidence", description="bin |p-0.5| (crossed with the weak label) or p itself")
    n_rounds: int = Field(2, ge=1, le=20, description="student refits inside EM")
    em_iters: int = Field(100, ge=1, description="EM iterations per round (fixed student)")
    alpha: float = Field(1.0, ge=0.0, description="add-alpha smoothing of channel counts")


@register_method
class EmPosterior(MethodBase):
    """Noisy-channel EM over weak labels (automated W2S research sandbox; tried at production
    scale).

    ``q_0 = p_w``. For each of ``n_rounds`` rounds: fit the student on ``q``, take its student-
    split probabilities ``p_s``; run EM (``em_channel.fit_noisy_channel``) alternating the
    channel ``p(o | y)`` (o = weak confidence bin, see ``em_channel.weak_symbols``) and
    ``q(y | x, o) ∝ p_s(y | x) · p(o | y)``. Finally train the student on ``q`` and predict test.
    ``n_rounds + 1`` student fits in all.
    """

    name = "em_posterior"
    description = ("Student trained on the EM posterior q(y|x,weak) ∝ p_student(y|x)·p(weak bin|y) "
                   "(automated W2S research sandbox: noisy-channel method)")
    Params = EmPosteriorParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: EmPosteriorParams
            ) -> np.ndarray:
        symbols, n_symbols = weak_symbols(data.weak_probs, params.n_bins, params.binning)
        posterior = np.array(data.weak_probs, dtype=np.float64)
        for _ in range(params.n_rounds):
            student_p1 = trainer.fit(posterior).predict_student()
            posterior = fit_noisy_channel(np.asarray(student_p1, dtype=np.float64), symbols,
                                          n_symbols, posterior, max_iter=params.em_iters,
                                          alpha=params.alpha).posterior
        return trainer.fit(posterior).predict_test()
