"""The benchmark scripts run (CPU paths) and report what they claim to."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_cpu_smoke_runs_every_config(capsys):
    gpu_check = _load("gpu_check")
    assert gpu_check.main(["--cpu-smoke"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tiny")]
    assert [ln.split()[1] for ln in lines] == ["zero2", "zero3"]
    assert all("tokens/s" in ln and "FAILED" not in ln for ln in lines)


def test_gpu_check_reports_a_failing_config_and_goes_on(capsys):
    gpu_check = _load("gpu_check")
    assert gpu_check.main(["--cpu-smoke", "--ds-configs", "no_such_config,zero2"]) == 1
    out = capsys.readouterr().out
    assert "no_such_config FAILED: InputError" in out
    assert any(ln.startswith("tiny") and " zero2 " in ln and "tokens/s" in ln
               for ln in out.splitlines())


def test_gpu_check_real_shapes_have_published_sizes():
    gpu_check = _load("gpu_check")
    import torch

    # Parameter counts from the meta device (no memory): Qwen1.5-0.5B ~0.46B, Qwen3-4B ~4.0B.
    sizes = {shape: sum(p.numel() for p in gpu_check.build_model(
        shape, torch.bfloat16, torch.device("meta")).parameters())
        for shape in ("qwen1.5-0.5b", "qwen3-4b")}
    assert 0.45e9 < sizes["qwen1.5-0.5b"] < 0.47e9
    assert 3.9e9 < sizes["qwen3-4b"] < 4.1e9


def test_engine_overhead_measures_probe_case():
    bench = _load("engine_overhead")
    row = bench.measure("probe", "zero0", rounds=2, steps=5, batch=64)
    assert row["processes"] == 1
    assert row["bare_ms"] > 0 and row["engine_ms"] > 0
    assert math.isclose(row["ratio"], row["engine_ms"] / row["bare_ms"])
