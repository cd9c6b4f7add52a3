"""From a results table to the verdict (``stats.verdict_model.Verdict``, whose JSON is
verdict.json): the one entry point the flows call."""
from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import pandas as pd

from stats.bootstrap import bootstrap_means, multinomial_counts
from stats.cell_estimates import method_cell, power_statements
from stats.cells import POPULATION, TEST_SET, build_cell, check_estimand
from stats.claims import claim_for, claim_sentence, gain_claim_p, pgr_claim_p
from stats.errors import StatsInputError
from stats.quality import DataQuality, alternative_tables
from stats.scale import mixed_trend, transfer_ratio, wls_trend
from stats.table import AGGREGATE, RESERVED_ARMS, check_table, rung_metadata
from stats.tests_and_verdicts import (
    INCONCLUSIVE,
    SEQUENTIAL_CORRECTION,
    adjust,
    cell_reason,
    classify,
    decision_interval,
    decision_level,
    decision_rule_sentence,
    method_verdict,
    sequential_rule_sentence,
)
from stats.verdict_model import (
    SCHEMA_VERSION,
    TREND_REASON_PREFIX,
    Sequential,
    Verdict,
    json_safe,
)
from w2s_common.names import HOLD

DEFAULT_N_BOOT = 2000
# The example resampling counts are (n_boot x examples) bytes: 100,000 replicates of a 2000-item
# test set are 200 MB, and 10x the 10,000 the sandbox analysis uses.
MAX_N_BOOT = 100_000
TEST_SET_REASON = ("estimand test_set: the intervals and the decision are for the gain on these "
                   "test items, not on the task's population of items")


def _rung_order(df: pd.DataFrame, meta: dict[str, dict]) -> list[str]:
    """Rungs by strong-model size (unknown sizes keep table order, after known ones)."""
    appearance = [str(r) for r in pd.unique(df["rung"])]
    known = [r for r in appearance if meta[r].get("strong_params")]
    unknown = [r for r in appearance if r not in known]
    return sorted(known, key=lambda r: meta[r]["strong_params"]) + unknown


def _check_args(sesoi: float, alpha: float, n_boot: int, sesoi_pgr: float | None) -> None:
    if not (0 < alpha < 0.5):
        raise StatsInputError(f"got {alpha}, expected 0 < alpha < 0.5", field="alpha")
    if not (np.isfinite(sesoi) and 0 < sesoi < 1):
        raise StatsInputError(f"got {sesoi}, expected an accuracy fraction in (0, 1) "
                              "(0.01 = one point)", field="sesoi")
    if sesoi_pgr is not None and not (0 < sesoi_pgr < 1):
        raise StatsInputError(f"got {sesoi_pgr}, expected a PGR fraction in (0, 1)",
                              field="sesoi_pgr")
    if not 0 <= n_boot <= MAX_N_BOOT:
        raise StatsInputError(f"got {n_boot}, expected 0 <= n_boot <= {MAX_N_BOOT:,}",
                              field="n_boot")


def analyze_table(df: pd.DataFrame, baseline: str = "vanilla", sesoi: float = 0.01,
                  alpha: float = 0.05, correction: str = "holm", claims: Mapping | None = None,
                  n_boot: int = DEFAULT_N_BOOT, *, sesoi_pgr: float | None = None,
                  production_rung: str | None = None, discovery_rung: str | None = None,
                  seed: int = 0, notes: list[str] | None = None,
                  data_quality: DataQuality | None = None,
                  sequential: Sequential | Mapping | None = None,
                  estimand: str = POPULATION) -> Verdict:
    """Analyse a results table and return the verdict (its JSON is verdict.json,
    schema_version 1).

    Args:
        df: results table, per-example or aggregate form (checked with ``check_table``).
        baseline: the arm every method is compared with.
        sesoi: smallest effect size of interest in accuracy (0.01 = one point): the TOST margin
            and the effect the power statements aim at.
        alpha: intervals are two-sided (1 - alpha); each direction (better, worse, and each
            half of the equivalence test) is decided one-sided at alpha / 2 after correction,
            the same procedure as the interval (``stats.tests_and_verdicts``).
        correction: multiplicity correction of the confirmatory family (methods x datasets at the
            production rung): ``holm`` (default), ``bonferroni``, ``bh`` or ``none``.  Cells at
            other rungs are exploratory and always get Benjamini-Hochberg.
        claims: optional claimed numbers, see ``stats.claims``.
        n_boot: two-way bootstrap replicates for the cross-check (0 turns it off).
        sesoi_pgr: if given, the SESOI per cell is ``sesoi_pgr * (ceiling - weak)``.
        production_rung, discovery_rung: override the largest / smallest rung by parameters.
        seed: bootstrap seed.
        notes: input notes (e.g. from an importer) copied into the output.
        data_quality: an importer's record checks (``stats.quality``).  A method whose records
            (or whose baseline's records) contradict their paths gets verdict ``HOLD``, is
            never promoted, and carries ``hold`` with the records and the verdict under every
            other pairing the records suggest (``_apply_holds``).
        sequential: the sequential design's record (looks, seeds_used, seed_budget,
            max_looks) of the campaign that produced the table, recorded as ``sequential``.
            With ``max_looks``, each method's production-rung cells are decided as the design
            decided them: at the level of the look the method stopped at
            (``stats.sequential.look_level``: O'Brien-Fleming, alpha / 2 split over the
            family), not at the fixed-sample level with ``correction``; ``p_adjusted`` is the
            p value scaled to that level (``p (alpha / 2) / alpha_k``) and the decision
            interval is the repeated confidence interval at it. Without a record (or one
            without ``max_looks``) the table is analysed as a fixed sample.
        estimand: ``population`` (default): the gain on the task's items, per-example cells
            analysed two-way (seeds and items random); ``test_set``: the gain on these test
            items, every cell analysed on its per-seed accuracies (``stats.cells``). Aggregate
            data can only answer for the test set, whatever is asked; a note says so.
    Returns:
        A ``stats.verdict_model.Verdict``: schema_version, alpha, sesoi, baseline,
        production_rung, discovery_rung, correction, notes, methods -> MethodVerdict
        (verdict, promote, reasons, trend, cells), and ``sequential`` when given.
    Raises:
        StatsInputError: unusable table or arguments.
    """
    record = (None if sequential is None else sequential if isinstance(sequential, Sequential)
              else Sequential.model_validate(dict(sequential)))
    raw = _analyze(df, baseline, sesoi, alpha, correction, claims, n_boot, sesoi_pgr=sesoi_pgr,
                   production_rung=production_rung, discovery_rung=discovery_rung, seed=seed,
                   notes=notes, data_quality=data_quality, estimand=estimand,
                   sequential=record)
    if record is not None:
        raw["sequential"] = record.model_dump(mode="json", exclude_none=True)
    return Verdict.model_validate(json_safe(raw))


def _analyze(df: pd.DataFrame, baseline: str, sesoi: float, alpha: float, correction: str,
             claims: Mapping | None, n_boot: int, *, sesoi_pgr: float | None,
             production_rung: str | None, discovery_rung: str | None, seed: int,
             notes: list[str] | None, data_quality: DataQuality | None,
             estimand: str = POPULATION, sequential: Sequential | None = None) -> dict:
    """:func:`analyze_table`'s working form: plain dicts whose cells still carry the private
    keys until ``_method_entry`` has used them."""
    _check_args(sesoi, alpha, n_boot, sesoi_pgr)
    check_estimand(estimand)
    adjust([], correction)  # validates the name
    if df.attrs.get("kind") is None:
        df = check_table(df)
    kind = df.attrs["kind"]
    arms = {str(a) for a in pd.unique(df["arm"])}
    if baseline in RESERVED_ARMS:
        raise StatsInputError(f"{baseline!r} is a reference arm of every cell; expected the arm "
                              "the methods are compared with (e.g. vanilla)", field="baseline")
    if baseline not in arms:
        raise StatsInputError(f"baseline arm {baseline!r} not in the table (arms: "
                              f"{', '.join(sorted(arms))})", field="baseline")
    methods = sorted(arms - set(RESERVED_ARMS) - {baseline})
    if not methods:
        raise StatsInputError(f"no method arm to compare with the baseline {baseline!r}",
                              field="arm")
    meta = rung_metadata(df)
    order = _rung_order(df, meta)
    for name, value in (("production_rung", production_rung), ("discovery_rung", discovery_rung)):
        if value is not None and value not in order:
            raise StatsInputError(f"rung {value!r} not in the table (rungs: {', '.join(order)})",
                                  field=name)
    production = production_rung or order[-1]
    discovery = discovery_rung or order[0]
    all_notes = list(notes or [])
    if len(order) > 1 and any(meta[r].get("strong_params") is None for r in order):
        all_notes.append("some rungs have no strong_params: rung order falls back to table order "
                         "and they are left out of the trend")
    if kind == AGGREGATE:
        all_notes.append("aggregate (per-seed accuracy) data: intervals cover seed-to-seed "
                         "variation and are conditional on this test set"
                         + (" (the population of items cannot be answered for from per-seed "
                            "accuracies)" if estimand == POPULATION else ""))
    elif estimand == TEST_SET:
        all_notes.append("estimand test_set: gains and intervals are for these test items "
                         "(seed-level analysis of per-seed accuracies), not for the task's "
                         "population of items")

    per_method: dict[str, list[dict]] = {m: [] for m in methods}
    counts_cache: dict[int, np.ndarray] = {}
    for (rung, dataset), rows in df.groupby(["rung", "dataset"], sort=False):
        # Per-example data: each method is paired with the weak, ceiling and baseline arms on
        # its own seeds (a sequential design stops seeding decided methods early), which keeps
        # the two-way design; methods that ran the same seeds share one cell. Aggregate data
        # keeps every seed of every arm (the sandbox's fixed baselines use all of theirs).
        for seed_set, group in _methods_by_seeds(rows, methods).items():
            keep = set(RESERVED_ARMS) | {baseline} | set(group)
            sub = rows[rows["arm"].isin(keep)]
            if kind != AGGREGATE:
                sub = sub[sub["seed"].isin(seed_set)]
            cell = build_cell(sub, kind, str(rung), str(dataset), estimand)
            boot = None
            key = zlib.crc32(f"{rung}/{dataset}/{sorted(seed_set)}".encode())
            rng = np.random.default_rng([seed, key])
            if n_boot and cell.scores is not None:
                boot = bootstrap_means(cell, n_boot, rng,
                                       example_counts=_example_counts(cell, n_boot, seed,
                                                                      counts_cache))
            for method in group:
                if method in cell.moments.arms:
                    per_method[method].append(method_cell(cell, method, baseline,
                                                          meta[str(rung)], sesoi, sesoi_pgr,
                                                          alpha, boot, rng, n_boot))

    stopped = _stopping_looks(sequential, per_method, production)
    _adjust_families(per_method, production, correction, alpha, stopped)
    out_methods = {}
    for method, cells in per_method.items():
        cells.sort(key=lambda c: (order.index(c["rung"]), c["dataset"]))
        out_methods[method] = _method_entry(method, cells, production, discovery, sesoi, alpha,
                                            claims, baseline, len(order))
        if estimand == TEST_SET:  # said with the decision, so that the gate's output says it too
            out_methods[method]["reasons"].append(TEST_SET_REASON)
    rule = (decision_rule_sentence(alpha, correction) if stopped is None
            else sequential_rule_sentence(alpha, stopped[1]))
    verdict = {"schema_version": SCHEMA_VERSION, "alpha": alpha, "alpha_per_direction": alpha / 2,
               "decision_rule": rule, "sesoi": sesoi,
               "sesoi_pgr": sesoi_pgr, "baseline": baseline, "production_rung": production,
               "discovery_rung": discovery, "rungs": order,
               "correction": correction if stopped is None else SEQUENTIAL_CORRECTION,
               "data_form": kind, "notes": all_notes, "methods": out_methods}
    if estimand != POPULATION:  # absent means population, as in every verdict before the field
        verdict["estimand"] = estimand
    if data_quality is not None:
        _apply_holds(verdict, df, data_quality, dict(
            baseline=baseline, sesoi=sesoi, alpha=alpha, correction=correction, claims=None,
            n_boot=0, notes=None, data_quality=None, sesoi_pgr=sesoi_pgr,
            production_rung=production_rung, discovery_rung=discovery_rung,
            seed=seed, estimand=estimand))
    return verdict


def _apply_holds(verdict: dict, table: pd.DataFrame, quality: DataQuality, kwargs: dict) -> None:
    """Put methods whose pairing cannot be trusted on a DATA-QUALITY hold, in place.

    The verdict as filed is kept in ``hold.verdict_as_filed``; ``hold.sensitivity`` gives the
    verdict and the production-rung gains under every pairing the records suggest and unpaired.
    """
    verdict["notes"].extend(quality.notes)
    verdict["data_quality"] = quality.as_dict()
    baseline = verdict["baseline"]
    for method, entry in verdict["methods"].items():
        others = quality.other_issues(method)
        if others:
            entry["reasons"].append(f"data quality (no hold): {len(others)} issue(s) in {method}'s "
                                    "records: " + "; ".join(i.message for i in others))
        issues = quality.held(method, baseline)
        if not issues:
            continue
        sensitivity = [{"pairing": "file names (as filed)", "verdict": entry["verdict"],
                        "cells": _production_gains(entry, verdict["production_rung"])}]
        for name, alt in alternative_tables(table, quality, method, baseline).items():
            redo = _analyze(alt, **kwargs)["methods"][method]
            sensitivity.append({"pairing": name, "verdict": redo["verdict"],
                                "cells": _production_gains(redo, verdict["production_rung"])})
        records = sorted({i.record for i in issues})
        entry["hold"] = {"kind": "data_quality", "verdict_as_filed": entry["verdict"],
                         "promote_as_filed": entry["promote"], "records": records,
                         "issues": [i.as_dict() for i in issues], "sensitivity": sensitivity}
        by_pairing = "; ".join(f"{s['pairing']}: {s['verdict']}" for s in sensitivity)
        head = (f"HOLD (data quality): {len(records)} record(s) of "
                f"{', '.join(sorted({i.arm for i in issues}))} contradict their paths, so the "
                f"runs cannot be paired by file name. Verdict by pairing - {by_pairing}. Not "
                "promoted until the records are fixed or re-run.")
        per_record = defaultdict(list)
        for i in issues:
            per_record[i.record].append(i.message.split(": ", 1)[-1])
        entry["reasons"] = [head] + [f"hold: {r}: " + "; ".join(texts)
                                     for r, texts in sorted(per_record.items())] + entry["reasons"]
        entry["verdict"], entry["promote"] = HOLD, False


def _production_gains(entry: dict, production: str) -> list[dict]:
    """Per dataset at the production rung: gain, interval, adjusted p and outcome."""
    return [{"dataset": c["dataset"], "n_seeds": c["n_seeds"], "gain": c["gain"]["estimate"],
             "ci_low": c["gain"]["ci_low"], "ci_high": c["gain"]["ci_high"],
             "p_adjusted": c["gain"].get("p_adjusted"), "outcome": c.get("outcome")}
            for c in entry["cells"] if c["rung"] == production]


def _methods_by_seeds(rows: pd.DataFrame, methods: list[str]) -> dict[frozenset, list[str]]:
    """Methods present in ``rows`` grouped by the set of seeds they ran."""
    groups: dict[frozenset, list[str]] = {}
    for method in methods:
        seeds = frozenset(rows.loc[rows["arm"] == method, "seed"].tolist())
        if seeds:
            groups.setdefault(seeds, []).append(method)
    return groups


def _example_counts(cell, n_boot: int, seed: int,
                    cache: dict[int, np.ndarray]) -> np.ndarray | None:
    """Example-resampling counts shared by every cell with the same number of test examples.

    Cells of one dataset share their test examples, so one draw per test set is also the right
    joint resampling across rungs; each cell's marginal bootstrap is unchanged by the sharing.
    """
    if cell.scores is None:
        return None
    n_ex = cell.scores.shape[2]
    if n_ex not in cache:
        cache[n_ex] = multinomial_counts(np.random.default_rng([seed, n_ex]), n_boot, n_ex)
    return cache[n_ex]


def _stopping_looks(sequential: Sequential | None, per_method: dict[str, list[dict]],
                    production: str) -> tuple[dict[str, int], int] | None:
    """Each method's stopping look and the planned looks, when the record says them for every
    method with a tested production cell (else None: the fixed-sample analysis). A design of
    one look is a fixed sample: it keeps ``correction`` (Holm is uniformly more powerful than
    the design's Bonferroni split, and nothing was looked at before)."""
    if sequential is None or sequential.max_looks in (None, 1):
        return None
    tested = [m for m, cells in per_method.items()
              if any(c["rung"] == production and c["_tests"] is not None for c in cells)]
    stops = {m: sequential.stop(m) for m in tested}
    if not stops or None in stops.values():
        return None
    return {m: stop[0] for m, stop in stops.items()}, sequential.max_looks


P_ADJUSTED = (("p_superiority", "p_adjusted"), ("p_equivalence", "p_equivalence_adjusted"),
              ("p_harm", "p_harm_adjusted"))


def _adjust_families(per_method: dict[str, list[dict]], production: str, correction: str,
                     alpha: float, stopped: tuple[dict[str, int], int] | None = None) -> None:
    """Fill p_adjusted (superiority), p_equivalence_adjusted and p_harm_adjusted in place, and
    the power statements at the level the decision uses (``decision_level``; with ``stopped``,
    the production cells' at their stopping look's level, ``stats.sequential.look_level``)."""
    for confirmatory in (True, False):
        family = [(m, c) for m, cells in per_method.items() for c in cells
                  if (c["rung"] == production) == confirmatory and c["_tests"] is not None]
        if confirmatory and stopped is not None:
            _sequential_family(family, alpha, *stopped)
            continue
        how = correction if confirmatory else "bh"
        for key, out in P_ADJUSTED:
            for (_, c), p in zip(family, adjust([c["gain"][key] for _, c in family], how)):
                c["gain"][out] = p
        level = decision_level(alpha, len(family) if how != "none" else 1)
        for _, c in family:
            g = c["gain"]
            g["decision_ci_low"], g["decision_ci_high"] = decision_interval(
                g["estimate"], g["se"], g["df"], g["p_superiority"], g["p_adjusted"],
                g["p_harm"], g["p_harm_adjusted"], alpha)
            c["gain"]["family"] = "confirmatory" if confirmatory else "exploratory"
            c["gain"]["correction"] = how
            c["gain"]["family_size"] = len(family)
            power_statements(c, level)


def _sequential_family(family: list[tuple[str, dict]], alpha: float, looks: dict[str, int],
                       max_looks: int) -> None:
    """The production family decided as the sequential design decided it: each cell at the
    one-sided level ``alpha_k`` of its method's stopping look, Bonferroni over the family (the
    design's split). ``p_adjusted = min(1, p (alpha / 2) / alpha_k)``, so that the usual rule
    (adjusted p below alpha / 2) is the design's (p below alpha_k), and the decision interval
    (``decision_interval`` at ``level=alpha_k``) is the repeated confidence interval of that
    look (Jennison & Turnbull 2000, sec. 9.1)."""
    from stats.sequential import look_level

    for method, c in family:
        level = look_level(alpha, len(family), looks[method], max_looks)
        g = c["gain"]
        for key, out in P_ADJUSTED:
            g[out] = min(1.0, g[key] * (alpha / 2.0) / level)
        g["decision_ci_low"], g["decision_ci_high"] = decision_interval(
            g["estimate"], g["se"], g["df"], g["p_superiority"], g["p_adjusted"], g["p_harm"],
            g["p_harm_adjusted"], alpha, level=level)
        g["family"], g["correction"], g["family_size"] = ("confirmatory", SEQUENTIAL_CORRECTION,
                                                          len(family))
        power_statements(c, level)


def _method_entry(method: str, cells: list[dict], production: str, discovery: str, sesoi: float,
                  alpha: float, claims: Mapping | None, baseline: str, n_rungs: int) -> dict:
    reasons: list[str] = []
    outcomes, estimates, cell_texts = {}, {}, []
    for c in cells:
        if c["rung"] != production or c["_tests"] is None:
            continue
        g = c["gain"]
        outcome = classify(g["p_adjusted"], g["p_harm_adjusted"], g["p_equivalence_adjusted"],
                           alpha)
        c["outcome"] = outcome
        outcomes[c["dataset"]] = outcome
        estimates[c["dataset"]] = g["estimate"]
        cell_texts.append(cell_reason(c["dataset"], outcome, g["estimate"],
                                      (g["ci_low"], g["ci_high"]), g["p_adjusted"],
                                      g["p_equivalence_adjusted"], g["p_harm_adjusted"],
                                      c["sesoi"], c["mde80"] or float("nan"),
                                      c.get("seeds_needed"), c.get("examples_needed"), c["n_seeds"],
                                      g["p_harm"], alpha))
    verdict, promote, summary = method_verdict(outcomes, estimates, sesoi)
    if not outcomes:
        verdict = INCONCLUSIVE
    single_seed = [c["dataset"] for c in cells if c["rung"] == production and c["n_seeds"] < 2]
    if single_seed and verdict != INCONCLUSIVE:
        # One seed says nothing about seed-to-seed variation, which is usually the larger part
        # of a W2S gain's noise: no decisive verdict and no promotion on it.
        summary = (f"INCONCLUSIVE (the single-seed analysis said {verdict}): only one seed at "
                   f"the production rung on {', '.join(single_seed)}; a verdict needs at least 2 "
                   "seeds")
        verdict, promote = INCONCLUSIVE, False
    reasons.append(summary)
    reasons.extend(cell_texts)
    trend = _trend(cells, alpha)
    _transfer_ratios(cells, discovery, alpha, sesoi)
    if trend is not None:
        reasons.append(_trend_sentence(trend, n_rungs, alpha))
        if trend["shrinks_with_scale"] and promote:
            reasons.append("the gain shrinks with scale; promoted on the production-rung evidence, "
                           "but check the next rung up")
    reasons.extend(_claims(method, cells, discovery, claims, alpha))
    for c in cells:
        for note in c["notes"]:
            text = f"{c['rung']}/{c['dataset']}: {note}"
            if text not in reasons:
                reasons.append(text)
        for key in ("pgr", "pgr_baseline"):
            if c[key].get("note"):
                text = f"{c['rung']}/{c['dataset']} {key}: {c[key]['note']}"
                if text not in reasons:
                    reasons.append(text)
        for private in ("_contrast", "_tests", "_pgr_parts", "_components"):
            c.pop(private, None)
    return {"verdict": verdict, "promote": promote, "reasons": reasons, "trend": trend,
            "baseline": baseline, "cells": cells}


def _trend(cells: list[dict], alpha: float) -> dict | None:
    points = pd.DataFrame([{"gain": c["gain"]["estimate"], "se": c["gain"].get("se"),
                            "df": c["gain"].get("df"), "strong_params": c["strong_params"],
                            "dataset": c["dataset"]}
                           for c in cells])
    if points.empty:
        return None
    points = points.astype({"gain": float, "se": float, "df": float, "strong_params": float})
    wls = wls_trend(points, alpha)
    if wls is None:
        return None
    # one-sided at alpha / 2: "shrinks" exactly when the (1 - alpha) interval is below zero
    wls["shrinks_with_scale"] = bool(wls["p_decline"] < alpha / 2)
    mixed = mixed_trend(points)
    wls["mixedlm"] = mixed
    return wls


def _trend_sentence(trend: dict, n_rungs: int, alpha: float) -> str:
    s = trend["slope_per_decade"]
    text = (f"{TREND_REASON_PREFIX}gain changes by {100 * s:+.2f} points per tenfold increase "
            "in parameters "
            f"({100 * (1 - alpha):.0f}% CI {100 * trend['ci_low']:+.2f} to "
            f"{100 * trend['ci_high']:+.2f}, t with {trend['df']:.3g} df; one-sided p for "
            f"decline = {trend['p_decline']:.3g}, needs < {alpha / 2:g})")
    text += ": it shrinks with scale" if trend["shrinks_with_scale"] else (
        ": a decline is not shown")
    if n_rungs < 4:
        text += f"; with {n_rungs} rungs the trend supports the verdict, it does not make it"
    return text + "."


def _transfer_ratios(cells: list[dict], discovery: str, alpha: float, sesoi: float) -> None:
    base = {c["dataset"]: c for c in cells if c["rung"] == discovery}
    for c in cells:
        ref = base.get(c["dataset"])
        g, r = c["gain"], (ref or {}).get("gain", {})
        if ref is None or c is ref or g.get("se") is None or r.get("se") is None:
            c["transfer_ratio"] = None
            continue
        # an infinite df (one seed: binomial variance) is null in the working dicts
        df_here, df_discovery = (float("inf") if d is None else d for d in (g["df"], r["df"]))
        est = transfer_ratio(g["estimate"], g["se"], r["estimate"], r["se"],
                             min(df_here, df_discovery), alpha, df_discovery=df_discovery,
                             min_gain=sesoi)
        c["transfer_ratio"] = {"defined": est.defined, "estimate": est.estimate,
                               "ci_low": est.ci_low, "ci_high": est.ci_high,
                               "bounded": est.bounded}


def _claims(method: str, cells: list[dict], discovery: str, claims: Mapping | None,
            alpha: float) -> list[str]:
    texts = []
    for c in cells:
        if c["rung"] != discovery:
            continue
        claim = claim_for(claims, method, c["dataset"])
        if claim is None:
            continue
        kind, value = claim
        if kind == "pgr":
            pgr = c["pgr"]
            parts = c.get("_pgr_parts")
            p = (pgr_claim_p(parts.a, parts.d, parts.v_aa, parts.v_dd, parts.v_ad, parts.df, value)
                 if parts and pgr["defined"] else float("nan"))
            replicated = pgr["estimate"]
        else:
            g = c["gain"]
            p = (gain_claim_p(g["estimate"], g["se"], g["df"], value) if g.get("se")
                 else float("nan"))
            replicated = g["estimate"]
        c["claim"] = {"kind": kind, "claimed": value, "replicated": replicated,
                      "p_shortfall": None if not np.isfinite(p) else p,
                      "falls_short": bool(np.isfinite(p) and p < alpha / 2)}
        texts.append("claim " + claim_sentence(method, c["dataset"], kind, value, replicated, p,
                                               alpha / 2))
    return texts
