"""Resolve a method by name and params into the function a student arm runs, under the jail
policy (``methods.policy``): plugins in the jail, built-ins in this process or, where the settings
say ``builtins: jail``, in a jail of their own; refused before any compute when its code needs
the jail and none can be built here."""
from __future__ import annotations

from typing import Any

from w2s_common.errors import InputError


def method_function(name: str, params: list[str] | dict[str, Any] | None, *,
                    jail: Any = None):
    """Resolve a method and its params into ``(label, params_dict, fn(data, trainer))``.

    ``fn`` runs the method through ``methods.runner.run_method``: plugins (entry points,
    ``module:attr``) and, where the settings say ``builtins: jail``, built-ins in the jail,
    which holds only the job's sealed inputs, its outputs and the runtime
    (``methods.jail_runtime``). A plugin's name and params are read in the jail too: no plugin
    code runs here. ``fn`` returns a ``MethodRun`` (test probabilities and the isolation used)
    and appends that isolation to ``fn.isolation``;
    ``fn.unjailed`` says whether untrusted code will run outside the jail (a plan's explicit
    ``jail: {mode: off}``), which keys its runs apart and blocks its promotion;
    ``fn.code`` is the method's ``methods.fingerprint.MethodCode`` and ``fn.fingerprint`` its
    fingerprint, which keys its runs by the code that makes them; ``fn.runs_untrusted_code``
    says whether it runs code the pipeline does not trust (controls, which use gold labels,
    refuse such a baseline, and a built-in the settings jail: ``transfer.controls.
    check_trusted``); ``fn.jailed_builtin`` whether a built-in's code runs in a jail of its own
    (its runs are keyed apart: ``RunSpec.jailed``; not the pipeline's own built-ins,
    ``methods.builtin_names.PIPELINE_BUILTINS``).

    Args:
        name: built-in name, entry-point name or ``module:attr``.
        params: ``key=value`` strings (CLI) or a typed mapping (plans, run specs).
        jail: ``methods.policy.JailSettings`` (or a mapping of them); default: jail required.

    Returns:
        ``(method name, params as a JSON-able dict, fn)``.

    Raises:
        InputError: unknown method or bad params (one line, naming the field), or a plugin
            that cannot be jailed here.
    """
    from methods.fingerprint import method_code
    from methods.policy import JailSettings, jail_settings
    from methods.registry import resolve_with_params
    from methods.runner import run_method, runs_untrusted_code

    settings = jail if isinstance(jail, JailSettings) else JailSettings(**(jail or {}))
    with jail_settings(settings):
        method, parsed = resolve_with_params(
            name, params if isinstance(params, dict) else list(params or []))
    params_dict = parsed.model_dump(mode="json")
    untrusted = runs_untrusted_code(method)
    if untrusted and settings.mode == "required":
        _require_jail(method.name)
    elif settings.jails_builtin(name):
        _require_jail(method.name, builtin=True)

    def run(student_data, trainer):
        done = run_method(method, student_data, trainer, parsed, settings=settings,
                          code=run.code)
        run.isolation.append(done.isolation)
        return done

    run.isolation = []
    run.unjailed = settings.mode == "off" and untrusted
    # A built-in run in a jail of its own is keyed apart from one made in the trusted process,
    # so a campaign that jails built-ins never reuses a run whose code could reach the labels.
    run.jailed_builtin = not untrusted and settings.jails_builtin(name)
    run.runs_untrusted_code = untrusted
    # The code behind the method, read from files and package metadata (no plugin code runs):
    # part of every student run's store key, so a run made by other code is never reused.
    run.code = method_code(name, params_dict, target=getattr(method, "target", None))
    run.fingerprint = run.code.fingerprint
    return method.name, params_dict, run


def _require_jail(method: str, builtin: bool = False) -> None:
    """Fail before any compute when a method whose code runs in the jail cannot be jailed here."""
    from methods.jail import JailUnavailable, jail_builder

    try:
        jail_builder()
    except JailUnavailable as err:
        if builtin:
            raise InputError(f"built-in method {method} runs in the jail (jail: {{builtins: jail}})"
                             f" and {err} (or set `jail: {{builtins: in_process}}` to run "
                             "built-ins in the trusted process)", field="jail") from None
        raise InputError(f"method {method} runs untrusted code and {err} (or set `jail: {{mode: "
                         "off}` to run it unjailed, which is never promoted)", field="jail"
                         ) from None
