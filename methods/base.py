"""What a W2S method is: a name, a one-line description with its source, params and ``run``.

A method sees only sealed student data (``transfer.sealed.StudentData``) and a
``transfer.sealed.StudentTrainer``; it returns P(label 1) on the test split, in
``data.test_ids`` order. Gold labels stay with the caller, which scores the returned
probabilities after ``run`` has returned.
"""
from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from transfer.sealed import RungFacts, StudentData, StudentTrainer


class MethodParams(BaseModel):
    """Base of every method's ``Params``: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(MethodParams):
    """Params of a method that takes none."""


@runtime_checkable
class Method(Protocol):
    """A weak-to-strong method.

    Attributes:
        name: the registry name (``vanilla``, ``aux_conf``, ...).
        description: one line saying what it does and where it comes from.
        Params: a pydantic model with ``extra="forbid"`` holding the method's parameters.
    """

    name: str
    description: str
    Params: type[BaseModel]

    def run(self, data: StudentData, trainer: StudentTrainer, params: Any) -> np.ndarray:
        """Train through ``trainer`` and return P(label 1) on the test split.

        Args:
            data: sealed student inputs (no gold labels, no paths).
            trainer: trains a ladder model on the student split with targets the method picks.
            params: an instance of ``self.Params``.

        Returns:
            float array of shape ``(len(data.test_ids),)`` with values in [0, 1].
        """
        ...


class MethodBase:
    """Convenience base class for methods: class attributes plus ``run``.

    Subclasses set ``name``, ``description`` and ``Params`` and implement ``run``.
    Nothing requires it: any object matching :class:`Method` works.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: Any) -> np.ndarray:
        raise NotImplementedError

    def unsupported_reason(self, rung: RungFacts, params: Any) -> str | None:
        """Why this method cannot run on ``rung`` with ``params``, or None if it can.

        Optional (the :class:`Method` protocol does not require it): a validation plan asks it
        for every rung before any compute, so a method that needs something a rung lacks
        (label tokens, an intermediate model) is refused up front, naming the plan's line.
        ``run`` must still raise ``MethodUnsupported`` for anything this cannot see.
        """
        return None

    def __repr__(self) -> str:
        return f"<method {self.name}>"


def hard_labels(probs: np.ndarray) -> np.ndarray:
    """Harden P(label 1) to 0/1 floats (ties at 0.5 go to label 0)."""
    return (np.asarray(probs, dtype=np.float64) > 0.5).astype(np.float64)


def check_test_probs(probs: Any, data: StudentData, method_name: str) -> np.ndarray:
    """Validate a method's output: one finite probability in [0, 1] per test example.

    Args:
        probs: what ``Method.run`` returned.
        data: the sealed inputs it was given (for the expected length).
        method_name: named in the error.

    Returns:
        a float64 copy of ``probs``.

    Raises:
        w2s_common.errors.InputError: wrong shape, NaN/inf, or values outside [0, 1].
    """
    from w2s_common.errors import InputError

    try:
        array = np.array(probs, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"method returned something that is not an array of numbers: {err}",
                         field=f"method {method_name}") from None
    expected = len(data.test_ids)
    if array.shape != (expected,):
        raise InputError(f"expected {expected} test probabilities (shape ({expected},)), "
                         f"got shape {array.shape}", field=f"method {method_name}")
    if not np.all(np.isfinite(array)):
        raise InputError("returned NaN or infinite probabilities",
                         field=f"method {method_name}")
    if np.any((array < 0) | (array > 1)):
        raise InputError("returned probabilities outside [0, 1]", field=f"method {method_name}")
    return array
