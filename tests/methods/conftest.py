"""Fixtures of the methods tests: a fake task and the fake numpy/torch trainer (fakes.py)."""
from __future__ import annotations

import os

import pytest
from fakes import FakeTask, FakeTrainer, make_task

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def task() -> FakeTask:
    return make_task()


@pytest.fixture
def trainer(task: FakeTask) -> FakeTrainer:
    return FakeTrainer.for_task(task)
