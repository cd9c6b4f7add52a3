"""Write the analysis: verdict.json (the contract), summary.md (plain words) and estimates.csv."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pandas as pd

from stats.cells import POPULATION, TEST_SET
from stats.display import UNDEFINED, fmt, fmt_interval, plain
from stats.errors import StatsInputError
from stats.estimates import SEED_LEVEL, TWO_WAY
from stats.verdict_model import PGR, Hold, Verdict
from stats.verdict_prose import Section, method_narrative, overview

VERDICT_FILE, SUMMARY_FILE, ESTIMATES_FILE = "verdict.json", "summary.md", "estimates.csv"
ESTIMAND_TEXT = {POPULATION: "the gain on the task's items (test items a sample of them)",
                 TEST_SET: "the gain on these test items"}


def answered_question(verdict: Verdict) -> str:
    """What the intervals answer for, from the cells' designs (two_way: the task's items;
    seed_level: these test items), with what was asked when the data could not answer it."""
    designs = {c.design for entries in (verdict.methods, verdict.controls)
               for entry in entries.values() for c in entry.cells}
    asked = verdict.estimand or POPULATION
    if designs == {TWO_WAY}:
        return ESTIMAND_TEXT[POPULATION]
    if designs <= {SEED_LEVEL, None}:
        return ESTIMAND_TEXT[TEST_SET] + ("" if asked == TEST_SET else
                                            " (per-seed data answer for no more)")
    return ("the gain on the task's items in two-way cells and on these test items in "
            "seed-level cells (see each cell's design)")


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


def _pgr_text(pgr: PGR) -> str:
    if not pgr.defined:
        return UNDEFINED
    return f"{fmt(pgr.estimate, 'pgr')} {fmt_interval(pgr.ci_low, pgr.ci_high, 'pgr')}"


def summary_markdown(verdict: Verdict) -> str:
    """The plain-language summary: the rule, a table of every cell, and each method's and
    control's sentences (:mod:`stats.verdict_prose`), with a held method's sensitivity table.
    Numbers are formatted by :func:`stats.display.fmt`, as in the report."""
    lines = [f"# Transfer verdicts (baseline: `{verdict.baseline}`)", "",
             f"Production rung: `{verdict.production_rung}`; "
             f"alpha = {fmt(verdict.alpha, 'level')}; SESOI = {fmt(verdict.sesoi, 'mde')} "
             "accuracy points; correction: "
             f"{verdict.correction} (confirmatory), BH (exploratory)"
             + f"; intervals are for {answered_question(verdict)}.", ""]
    if verdict.decision_rule:
        lines += [verdict.decision_rule, ""]
    for note in verdict.notes:
        lines.append(f"- Note: {note}")
    if verdict.notes:
        lines.append("")
    level = f"{100 * (1 - verdict.alpha):.0f}%"
    lines += [plain(overview(verdict)), "",
              "| method | verdict | promote | dataset | rung | acc method (%) | acc baseline (%) "
              f"| gain (pp) | {level} CI (pp) | decision interval (pp) | adj. p | "
              f"PGR [{level} CI] | PGR baseline [{level} CI] |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, entry in verdict.methods.items():
        at_production = any(c.rung == verdict.production_rung for c in entry.cells)
        for c in entry.cells:
            g = c.gain
            # The verdict is taken at the production rung: on other rungs' rows it would read as
            # theirs (new-user review 2026-12-06); a method with no cell there shows it on all.
            decided_here = c.rung == verdict.production_rung or not at_production
            lines.append(
                f"| {method} | {entry.verdict if decided_here else ''} | "
                f"{('yes' if entry.promote else 'no') if decided_here else ''} | "
                f"{c.dataset} | {c.rung} | {fmt(c.acc['method'], 'acc')} | "
                f"{fmt(c.acc['baseline'], 'acc')} | {fmt(g.estimate, 'gain')} | "
                f"{fmt_interval(g.ci_low, g.ci_high, 'gain')} | "
                f"{fmt_interval(g.decision_ci_low, g.decision_ci_high, 'gain')} | "
                f"{fmt(g.p_adjusted, 'p')} | "
                f"{_pgr_text(c.pgr)} | {_pgr_text(c.pgr_baseline)} |")
    lines.append("")
    lines += _entry_sections(verdict, "methods", "##")
    if verdict.controls:
        lines += ["## Controls of the pipeline (never promoted)", ""]
        lines += _entry_sections(verdict, "controls", "###")
    return "\n".join(lines)


def _entry_sections(verdict: Verdict, section: Section, heading: str) -> list[str]:
    lines: list[str] = []
    for name, entry in getattr(verdict, section).items():
        lines += [f"{heading} {name}: {entry.verdict}", ""]
        lines += [f"- {plain(sentence)}" for sentence in method_narrative(verdict, section, name)]
        lines.append("")
        if entry.hold:
            lines += _hold_table(entry.hold)
    return lines


def _hold_table(hold: Hold) -> list[str]:
    """The data-quality hold's sensitivity: the verdict and gains under each pairing."""
    lines = ["Sensitivity of the verdict to how runs are paired (production rung):", "",
             "| pairing | verdict | dataset | seeds | gain (pp) | CI (pp) | adj. p |",
             "|---|---|---|---|---|---|---|"]
    for row in hold.sensitivity:
        for c in row.cells:
            lines.append(f"| {row.pairing} | {row.verdict} | {c.dataset} | "
                         f"{c.n_seeds} | {fmt(c.gain, 'gain')} | "
                         f"{fmt_interval(c.ci_low, c.ci_high, 'gain')} | "
                         f"{fmt(c.p_adjusted, 'p')} |")
    lines.append("")
    return lines


def write_outputs(verdict: Verdict, out_dir: str | Path) -> dict[str, Path]:
    """Write verdict.json, summary.md and estimates.csv into ``out_dir``, as a set: all three
    or none (``_write_all_or_none``).

    Args:
        verdict: the ``Verdict`` from ``analyze_table`` (and the flows).
        out_dir: created if missing.
    Returns:
        {"verdict": path, "summary": path, "estimates": path}.
    Raises:
        StatsInputError: a target cannot be written (names the file); nothing was changed.
    """
    out = Path(out_dir)
    paths = {"verdict": out / VERDICT_FILE, "summary": out / SUMMARY_FILE,
             "estimates": out / ESTIMATES_FILE}
    _write_all_or_none(out, {paths["verdict"]: verdict.to_json(),
                             paths["summary"]: summary_markdown(verdict),
                             paths["estimates"]: estimates_frame(verdict).to_csv(index=False)})
    return paths


def _write_all_or_none(out: Path, files: dict[Path, str]) -> None:
    """Check every target, stage each file as a temp file beside it, then rename them all into
    place: a verdict.json next to the estimates.csv of another run would contradict it."""
    for path in files:
        if path.exists() and not path.is_file():
            raise StatsInputError("exists and is not a file (expected to write a file there)",
                                  path=path)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StatsInputError(f"cannot create the output directory ({err.strerror})",
                              path=out) from None
    staged: dict[Path, str] = {}
    try:
        for path, text in files.items():
            staged[path] = _stage(path, text)
        for path, temp in list(staged.items()):
            os.replace(temp, path)
            del staged[path]
    except OSError as err:
        raise StatsInputError(f"cannot write ({err.strerror})", path=path) from None
    finally:
        for temp in staged.values():
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if created:
            with contextlib.suppress(OSError):  # fails, as it should, once a file is in place
                out.rmdir()  # nothing was written: leave no empty directory behind


def _stage(path: Path, text: str) -> str:
    """``text`` in a synced temp file beside ``path`` (same filesystem, so the rename is atomic)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return temp
