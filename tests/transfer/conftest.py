"""Fixtures for arm-level tests: a small synthetic task and the seconds-fast `micro` ladder."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_task():
    from transfer.data import synthetic_task

    return synthetic_task(seed=0, n_train_label=600, n_train_unlabel=600, n_test=600,
                          n_corpus=6000)


@pytest.fixture()
def micro_ctx(small_task, tmp_path):
    from transfer.arms import ArmContext
    from transfer.engine import EngineConfig
    from transfer.ladder import load_ladder
    from transfer.store import RunStore

    ladder = load_ladder("micro")
    return ArmContext(ladder=ladder, task=small_task, store=RunStore(tmp_path / "store"),
                      engine_config=EngineConfig(**{**ladder.training, "epochs": 2}))
