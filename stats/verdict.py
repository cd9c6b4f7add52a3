"""Write the analysis: verdict.json (the contract), summary.md (plain words) and estimates.csv."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stats.verdict_model import Hold, Verdict
from w2s_common.atomic import atomic_write_text as _atomic_write

VERDICT_FILE, SUMMARY_FILE, ESTIMATES_FILE = "verdict.json", "summary.md", "estimates.csv"


def estimates_frame(verdict: Verdict) -> pd.DataFrame:
    """Tidy table: one row per (method, rung, dataset) with accuracies, gain, PGR and tests."""
    rows = []
    for method, entry in verdict.methods.items():
        for c in entry.cells:
            g, p, pb = c.gain, c.pgr, c.pgr_baseline
            rows.append({
                "method": method, "baseline": verdict.baseline, "rung": c.rung,
                "dataset": c.dataset, "strong_params": c.strong_params,
                "n_seeds": c.n_seeds, "n_examples": c.n_examples, "design": c.design,
                "acc_weak": c.acc["weak"], "acc_ceiling": c.acc["ceiling"],
                "acc_baseline": c.acc["baseline"], "acc_method": c.acc["method"],
                "gain": g.estimate, "gain_ci_low": g.ci_low, "gain_ci_high": g.ci_high,
                "gain_boot_ci_low": g.boot_ci_low,
                "gain_boot_ci_high": g.boot_ci_high,
                "p_superiority": g.p_superiority, "p_equivalence": g.p_equivalence,
                "p_harm": g.p_harm, "p_adjusted": g.p_adjusted,
                "family": g.family, "outcome": c.outcome,
                "pgr_defined": p.defined, "pgr": p.estimate, "pgr_ci_low": p.ci_low,
                "pgr_ci_high": p.ci_high, "pgr_baseline": pb.estimate,
                "pgr_baseline_ci_low": pb.ci_low, "pgr_baseline_ci_high": pb.ci_high,
                "mde80": c.mde80, "seeds_needed": c.seeds_needed,
                "verdict": entry.verdict})
    return pd.DataFrame(rows)


def _pts(x) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f}"


def _num(x, fmt: str = "{:.3f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def summary_markdown(verdict: Verdict) -> str:
    """The plain-language summary: verdicts, reasons and a table of the production cells."""
    lines = [f"# Transfer verdicts (baseline: `{verdict.baseline}`)", "",
             f"Production rung: `{verdict.production_rung}`; alpha = {verdict.alpha}; "
             f"SESOI = {100 * verdict.sesoi:.2f} accuracy points; correction: "
             f"{verdict.correction} (confirmatory), BH (exploratory).", ""]
    if verdict.decision_rule:
        lines += [verdict.decision_rule, ""]
    for note in verdict.notes:
        lines.append(f"- Note: {note}")
    if verdict.notes:
        lines.append("")
    level = f"{100 * (1 - verdict.alpha):.0f}%"
    lines += ["| method | verdict | promote | dataset | rung | acc method | acc baseline "
              f"| gain (pts) | {level} CI (pts) | adj. p | PGR [{level} CI] "
              f"| PGR baseline [{level} CI] |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, entry in verdict.methods.items():
        for c in entry.cells:
            g, p, pb = c.gain, c.pgr, c.pgr_baseline
            pgr = (f"{_num(p.estimate)} [{_num(p.ci_low)}, {_num(p.ci_high)}]"
                   if p.defined else "undefined")
            pgrb = (f"{_num(pb.estimate)} [{_num(pb.ci_low)}, {_num(pb.ci_high)}]"
                    if pb.defined else "undefined")
            lines.append(
                f"| {method} | {entry.verdict} | {'yes' if entry.promote else 'no'} | "
                f"{c.dataset} | {c.rung} | {_num(c.acc['method'], '{:.4f}')} | "
                f"{_num(c.acc['baseline'], '{:.4f}')} | {_pts(g.estimate)} | "
                f"{_pts(g.ci_low)} to {_pts(g.ci_high)} | "
                f"{_num(g.p_adjusted, '{:.3g}')} | {pgr} | {pgrb} |")
    lines.append("")
    for method, entry in verdict.methods.items():
        lines += [f"## {method}: {entry.verdict}", ""]
        lines += [f"- {r}" for r in entry.reasons]
        lines.append("")
        if entry.hold:
            lines += _hold_table(entry.hold)
    return "\n".join(lines)


def _hold_table(hold: Hold) -> list[str]:
    """The data-quality hold's sensitivity: the verdict and gains under each pairing."""
    lines = ["Sensitivity of the verdict to how runs are paired (production rung):", "",
             "| pairing | verdict | dataset | seeds | gain (pts) | CI (pts) | adj. p |",
             "|---|---|---|---|---|---|---|"]
    for row in hold.sensitivity:
        for c in row.cells:
            lines.append(f"| {row.pairing} | {row.verdict} | {c.dataset} | "
                         f"{c.n_seeds} | {_pts(c.gain)} | {_pts(c.ci_low)} to "
                         f"{_pts(c.ci_high)} | {_num(c.p_adjusted, '{:.3g}')} |")
    lines.append("")
    return lines


def write_outputs(verdict: Verdict, out_dir: str | Path) -> dict[str, Path]:
    """Write verdict.json, summary.md and estimates.csv into ``out_dir`` (each atomically).

    Args:
        verdict: the ``Verdict`` from ``analyze_table`` (and the flows).
        out_dir: created if missing.
    Returns:
        {"verdict": path, "summary": path, "estimates": path}.
    """
    out = Path(out_dir)
    paths = {"verdict": out / VERDICT_FILE, "summary": out / SUMMARY_FILE,
             "estimates": out / ESTIMATES_FILE}
    _atomic_write(paths["verdict"], verdict.to_json())
    _atomic_write(paths["summary"], summary_markdown(verdict))
    _atomic_write(paths["estimates"], estimates_frame(verdict).to_csv(index=False))
    return paths
