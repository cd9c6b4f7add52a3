"""The binding names, for each plan entry, the code the parent resolved (flows/binding.py
``make_binding``): runs filed under an entry's name by any other code are refused, never bound
under the runs' own fingerprint."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from flows.binding import make_binding
from flows.plan import load_plan
from flows.resolved import ResolvedMethod
from methods.fingerprint import MethodCode
from w2s_common.errors import InputError

PARENT_CODE = "a" * 64


def student(label: str, fingerprint: str) -> SimpleNamespace:
    return SimpleNamespace(spec=SimpleNamespace(arm="student", label=label,
                                                method_fingerprint=fingerprint,
                                                trainer_fingerprint="t"))


def bind(runs):
    methods = {name: ResolvedMethod(name, {}, MethodCode(name, "builtin", PARENT_CODE), False)
               for name in ("vanilla", "aux_conf")}
    return make_binding(plan=load_plan("micro-ci"), methods=methods, runs=runs,
                        results_sha256="0" * 64, git_commit=None)


def test_runs_of_the_resolved_code_are_bound_to_it():
    binding = bind([student("vanilla", PARENT_CODE), student("aux_conf", PARENT_CODE)])
    assert {m["fingerprint"] for m in binding["methods"].values()} == {PARENT_CODE}


def test_runs_of_other_code_under_an_entry_s_name_are_refused():
    with pytest.raises(InputError, match="runs of aux_conf were not made by the code aux_conf "
                                         "resolved to"):
        bind([student("vanilla", PARENT_CODE), student("aux_conf", "b" * 64)])
