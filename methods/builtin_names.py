"""The built-in methods by name, as data: the module that registers each one.

The trusted process reads names from this table instead of importing the built-ins, so that where
a plan says ``jail: {builtins: jail}`` no file of ``methods/builtin/`` runs outside the jail: not
its methods' ``run``, not their ``Params`` validators, not a line executed at import (which could
patch the pipeline itself; attacker review, 2026-12-05). ``tests/methods/test_builtin_table.py``
checks the table against what the modules register.
"""
from __future__ import annotations

BUILTIN_MODULES: dict[str, str] = {
    "aux_conf": "methods.builtin.aux_conf",
    "bootstrap": "methods.builtin.bootstrap",
    "confident": "methods.builtin.simple",
    "em_posterior": "methods.builtin.em_posterior",
    "external": "methods.external",
    "vanilla": "methods.reference",
    "zero_shot_prior": "methods.builtin.zero_shot",
}

# Built-ins that are the pipeline's own code, kept outside ``methods/builtin/`` and run in the
# trusted process whatever ``builtins`` says: ``external`` (the jail machinery for commands) and
# ``vanilla`` (the reference baseline, ``methods.reference``). An allow-list kept here, never an
# attribute a method sets (a built-in declaring ``runs_untrusted_code`` ran in-process under
# ``builtins: jail``).
PIPELINE_BUILTINS: frozenset[str] = frozenset({"external", "vanilla"})
# Of those, the ones that start an untrusted program (in a jail of its own) themselves.
COMMAND_BUILTINS: frozenset[str] = frozenset({"external"})
