"""EngineConfig validation, DeepSpeed config files and the learning-rate schedule."""
from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from transfer.engine import EngineConfig, build_ds_config, load_ds_file, train
from transfer.engine.config import zero_stage
from transfer.engine.schedule import lr_multiplier
from w2s_common.errors import InputError


@pytest.mark.parametrize("bad", [
    {"epochs": 0}, {"lr": 0.0}, {"batch_size": 0}, {"warmup_ratio": 1.0},
    {"schedule": "step"}, {"precision": "fp16"}, {"grad_clip": -1.0}, {"weight_decay": -0.1},
    {"learning_rate": 1e-3},  # unknown key: a typo must not silently fall back to a default
])
def test_engine_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError) as info:
        EngineConfig(**bad)
    assert list(bad)[0] in str(info.value)


def test_shipped_configs_load_with_expected_stages():
    stages = {name: zero_stage(load_ds_file(name))
              for name in ("zero0", "zero2", "zero3", "zero3_offload")}
    assert stages == {"zero0": 0, "zero2": 2, "zero3": 3, "zero3_offload": 3}
    offload = load_ds_file("zero3_offload")["zero_optimization"]
    assert offload["offload_optimizer"]["device"] == "cpu"
    assert offload["offload_param"]["device"] == "cpu"


def test_build_ds_config_takes_run_settings_from_engine_config():
    config = EngineConfig(batch_size=63, lr=2e-4, weight_decay=0.01, grad_clip=0.5,
                          precision="bf16", ds_config="zero2")
    ds = build_ds_config(config, world_size=2)
    assert ds["train_micro_batch_size_per_gpu"] == 32
    assert ds["train_batch_size"] == 64
    assert ds["gradient_accumulation_steps"] == 1
    assert ds["gradient_clipping"] == 0.5
    assert ds["bf16"] == {"enabled": True}
    assert ds["optimizer"]["params"]["lr"] == 2e-4
    assert ds["optimizer"]["params"]["weight_decay"] == 0.01
    assert zero_stage(ds) == 2
    # The file on disk is not modified by the merge.
    assert "lr" not in load_ds_file("zero2")["optimizer"]["params"]


def test_ds_config_by_path(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    ds = build_ds_config(EngineConfig(ds_config=str(path)), world_size=1)
    assert zero_stage(ds) == 1
    assert ds["optimizer"]["type"] == "AdamW"


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "zero_optimization": {"stage": 2},\n  "optimizer": oops\n}\n')
    with pytest.raises(InputError) as info:
        load_ds_file(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert "malformed JSON" in message
    path.write_text("[" * 100_000 + "]" * 100_000)  # past Python's parser: RecursionError
    with pytest.raises(InputError, match="nested too deeply"):
        load_ds_file(str(path))


@pytest.mark.parametrize("content, field", [
    ('{"zero_optimization": {"stage": 5}}', "zero_optimization"),
    ('{"optimizer": {"params": {}}}', "optimizer"),
    ('{"train_batch_size": 8}', "train_batch_size"),
    ('{"bf16": {"enabled": true}}', "bf16"),
    ('[1, 2]', None),
])
def test_bad_ds_config_sections(tmp_path, content, field):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_ds_file(str(path))
    assert info.value.path == str(path)
    assert info.value.field == field


def test_unknown_config_name_and_missing_file():
    with pytest.raises(InputError, match="unknown DeepSpeed config 'zero9'.*zero2"):
        load_ds_file("zero9")
    with pytest.raises(InputError, match="not found"):
        load_ds_file("/nonexistent/dir/ds.json")


def test_train_rejects_bad_ds_config_before_touching_the_model(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    model = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(InputError, match="bad.json:1"):
        train(model, {"input": torch.randn(8, 3)}, torch.full((8, 2), 0.5),
              config=EngineConfig(ds_config=str(path)))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_rejects_all_zero_weights():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(InputError, match="non-zero weight"):
        train(model, {"input": torch.randn(8, 3)}, torch.full((8, 2), 0.5),
              weights=torch.zeros(8), config=EngineConfig())


def test_lr_schedules():
    total, warmup = 100, 10
    cosine = lr_multiplier("cosine", total, warmup)
    linear = lr_multiplier("linear", total, warmup)
    constant = lr_multiplier("constant", total, warmup)
    ramp = [cosine(s) for s in range(warmup + 1)]
    assert all(0 < a < b for a, b in zip(ramp, ramp[1:]))
    assert ramp[-1] == 1.0
    assert cosine(warmup + (total - warmup) // 2) == pytest.approx(0.5)
    assert 0 < cosine(total - 1) < 0.01
    assert linear(total - 1) == pytest.approx(1 / (total - warmup))
    assert {constant(s) for s in range(warmup, total)} == {1.0}
