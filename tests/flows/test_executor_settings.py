"""The executor settings of a plan: where groups run, never what they compute (issue 11)."""
from __future__ import annotations

import pytest

from flows.plan import load_plan
from flows.preflight import check_executor
from w2s_common.errors import InputError


def test_executor_settings_do_not_change_the_plan_hash() -> None:
    plan = load_plan("micro-ci")
    pooled = plan.with_compute(executor="pool", work_pool="gpu-pool", start_timeout_s=30)
    assert pooled.compute.executor == "pool" and pooled.compute.work_pool == "gpu-pool"
    assert pooled.plan_hash == plan.plan_hash
    # nodes changes how a run is computed (its ranks), so it is part of the hash once set.
    assert plan.with_compute(nodes=2).plan_hash != plan.plan_hash


@pytest.mark.parametrize("settings, field", [
    ({"work_pool": "bad name"}, "compute.work_pool"),
    ({"executor": "cluster"}, "compute.executor"),
    ({"nodes": 0}, "compute.nodes"),
])
def test_bad_executor_settings_are_one_line_naming_the_field(settings, field) -> None:
    with pytest.raises(InputError) as err:
        load_plan("micro-ci").with_compute(**settings)
    assert err.value.field == field and "\n" not in str(err.value)


def test_several_nodes_need_the_pool_executor() -> None:
    plan = load_plan("micro-ci").with_compute(nodes=2)
    with pytest.raises(InputError) as err:
        check_executor(plan)
    assert err.value.field == "compute.nodes" and "executor: pool" in str(err.value)
    assert err.value.path.endswith("micro-ci.yaml") and err.value.line is not None
