"""Run a method the safe way: plugins in the jail (``methods.plugins``); built-ins in this process,
or in a jail of their own where the jail settings say ``builtins: jail``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from methods.base import Method, check_test_probs
from methods.builtin_names import COMMAND_BUILTINS
from methods.code_cache import running_snapshot
from methods.plugins import PluginMethod, run_in_jail, run_plugin
from methods.policy import Isolation, JailSettings, current_settings, jail_settings
from methods.registry import is_builtin, method_info, resolve_with_params
from transfer.sealed import StudentData, StudentTrainer

if TYPE_CHECKING:
    from methods.fingerprint import MethodCode


@dataclass(frozen=True)
class MethodRun:
    """A method's test predictions and how its untrusted code was isolated.

    Attributes:
        probs: ``(n_test,)`` P(label 1) in ``data.test_ids`` order.
        isolation: ``builtin`` (trusted code only, in this process), ``jail`` (untrusted code ran
            in the jail) or ``unjailed`` (untrusted code ran outside it, by explicit opt-in).
    """

    probs: np.ndarray
    isolation: Isolation


def weakest(used: list[Isolation]) -> Isolation:
    """The weakest isolation among ``used`` (``builtin`` when no untrusted code ran)."""
    return "unjailed" if "unjailed" in used else "jail" if "jail" in used else "builtin"



def runs_untrusted_code(method: Method) -> bool:
    """Whether running ``method`` runs code the pipeline does not trust (plugins, and the
    built-ins of ``COMMAND_BUILTINS`` that start an untrusted program)."""
    return not is_builtin(method) or method.name in COMMAND_BUILTINS


def run_method(method: Method, data: StudentData, trainer: StudentTrainer, params: BaseModel,
               *, settings: JailSettings | None = None,
               code: MethodCode | None = None) -> MethodRun:
    """Run ``method`` on sealed inputs and return validated test probabilities.

    Built-ins run in this process, or in a jail of their own where the settings say
    ``builtins: jail`` (except the pipeline's own, ``PIPELINE_BUILTINS``: ``external``, which
    starts its command in the jail either way, and the reference baseline ``vanilla``); a plugin
    (``methods.plugins.PluginMethod``) runs in the jail worker, which needs ``trainer`` to be
    picklable (so does a jailed built-in). A method object that came from neither (code the
    caller imported itself) is re-resolved by its ``module:attr`` reference and run as a
    plugin, never in-process.

    Args:
        method: from ``methods.registry.resolve_method``.
        data, trainer: the sealed inputs and the trainer.
        params: the validated params (``methods.registry.parse_params``).
        settings: the jail settings (default: the enclosing ``jail_settings`` or jail required).
        code: the method's code as fingerprinted (``methods.fingerprint.method_code``): its
            jails get its snapshots (``methods.code_cache``), the very bytes its runs are keyed
            by, and no other code of its own; without it, code is copied as each job finds it.

    Returns:
        :class:`MethodRun`.

    Raises:
        InputError: the method failed, returned malformed predictions, or needs a jail that
            cannot be built here.
        MethodUnsupported: the method cannot run on this model/task.
    """
    settings = settings or current_settings()
    snapshot = code.snapshot() if code is not None else None
    with jail_settings(settings) as used, running_snapshot(snapshot):
        if isinstance(method, PluginMethod):
            # Described in the jail, so run there: a plugin, or a built-in the settings jail.
            probs, isolation = run_plugin(method, data, trainer, params, settings)
        elif is_builtin(method) and settings.jails_builtin(method.name):
            # A fresh jail per run, as for a plugin: what the code can reach is the sealed inputs,
            # never this process (the gold labels it holds) nor the store or the work directory.
            probs, isolation = run_in_jail(method.name, f"built-in method {method.name}",
                                           method.name, data, trainer, params, settings)
        elif is_builtin(method):
            probs = method.run(data, trainer, params)
            isolation = weakest(used)
        else:
            method, params = resolve_with_params(method_info(method).reference,
                                                 params.model_dump(mode="json"))
            probs, isolation = run_plugin(method, data, trainer, params, settings)  # type: ignore[arg-type]
    return MethodRun(check_test_probs(probs, data, method.name), isolation)
