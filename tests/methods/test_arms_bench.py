"""bench/methods_table.py on the micro ladder: weak/ceiling reused across methods and calls,
PGR from the stored accuracies, unsupported methods shown with their reason."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "methods_table.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_methods_table", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def stored_accuracy(store: Path, label: str) -> float:
    values = [json.loads(p.read_text())["accuracy"] for p in store.glob("*/*/metrics.json")
              if json.loads(p.read_text())["arm"] == label]
    assert len(values) == 1, (label, values)
    return values[0]


def test_table_reuses_weak_and_ceiling_and_shows_unsupported_methods(tmp_path, capsys):
    bench = load_bench()
    store = tmp_path / "store"
    common = ["--ladder", "micro", "--rungs", "m0", "--seeds", "0", "--store", str(store)]
    assert bench.main([*common, "--methods", "vanilla", "zero_shot_prior", "external"]) == 0
    first = capsys.readouterr().out
    assert "Runs: 3 requested, 3 executed (ceiling 1, vanilla 1, weak 1), 0 found" in first
    assert re.search(r"\| zero_shot_prior \| unsupported: zero_shot_prior: model 'micro-32x1' "
                     r"has no label tokens", first)
    assert "| external | unsupported: --param command: method external: required param" in first
    weak, ceiling = stored_accuracy(store, "weak"), stored_accuracy(store, "ceiling")
    vanilla = stored_accuracy(store, "vanilla")
    row = next(line for line in first.splitlines() if line.startswith("| vanilla |"))
    assert f"| {vanilla:.4f} ({vanilla:.4f}) | {bench.pgr(vanilla, weak, ceiling):.3f} (" in row
    # A second method later: only its student run executes; weak and ceiling come from the store.
    assert bench.main([*common, "--methods", "aux_conf"]) == 0
    second = capsys.readouterr().out
    assert "Runs: 3 requested, 1 executed (aux_conf 1), 2 found complete in the store" in second


def test_pgr_formula():
    bench = load_bench()
    assert bench.pgr(0.75, 0.5, 1.0) == 0.5
    assert bench.pgr(0.4, 0.5, 1.0) == pytest.approx(-0.2)
    assert math.isnan(bench.pgr(0.7, 0.6, 0.6))  # no gap to recover
