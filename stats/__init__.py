"""Statistics engine: from a results table to estimates, tests and verdicts (pure; no torch).

Public API:
    analyze_table(df, baseline="vanilla", sesoi=0.01, alpha=0.05, correction="holm",
                  claims=None, n_boot=2000, ..., data_quality=None, sequential=None,
                  estimand="population")
        -> Verdict   (stats.verdict_model; its JSON is verdict.json)
    write_outputs(verdict, out_dir) -> {"verdict", "summary", "estimates"} paths
    load_table(path) / check_table(df) / load_aar_cache(path)
    SequentialDesign(max_looks, alpha, sesoi, spending, baseline, n_methods=1,
                     estimand="population")
        .look(results, method) -> Decision
"""
from stats.aar import load_aar_cache
from stats.analyze import analyze_table
from stats.sequential import Decision, SequentialDesign
from stats.table import check_table, load_table
from stats.verdict import write_outputs
from stats.verdict_model import MethodVerdict, Sequential, Verdict, verdict_schema

__all__ = ["Decision", "MethodVerdict", "Sequential", "SequentialDesign", "Verdict",
           "analyze_table", "check_table", "load_aar_cache", "load_table", "verdict_schema",
           "write_outputs"]
