"""Everything estimated for one method in one (rung, dataset) cell, before multiplicity
correction."""
from __future__ import annotations

import numpy as np

from stats.bootstrap import MIN_SEEDS_FOR_SEED_BOOTSTRAP, paired_seed_bootstrap
from stats.cells import Cell
from stats.estimates import Contrast
from stats.pgr import RatioEstimate, ratio_estimate, ratio_inputs
from stats.power import components, examples_needed, mde, seeds_needed
from stats.tests_and_verdicts import gain_tests


def _f(x: float | None) -> float | None:
    """JSON-safe float: None for None/NaN/inf."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _pgr(cell: Cell, student: str, alpha: float, boot: np.ndarray | None, min_gap: float) -> dict:
    m = cell.moments
    if not {"weak", "ceiling", student} <= set(m.arms):
        missing = sorted({"weak", "ceiling", student} - set(m.arms))
        return {"defined": False, "estimate": None, "ci_low": None, "ci_high": None,
                "note": f"arm(s) {', '.join(missing)} missing in this cell, so PGR is undefined"}
    parts = ratio_inputs(m, {student: 1.0, "weak": -1.0}, {"ceiling": 1.0, "weak": -1.0})
    est: RatioEstimate = ratio_estimate(parts.a, parts.d, parts.v_aa, parts.v_dd, parts.v_ad,
                                        parts.df, alpha, df_gap=parts.df_gap, min_gap=min_gap)
    out = est.as_dict()
    if est.defined and boot is not None:
        i_s, i_w, i_c = m.index(student), m.index("weak"), m.index("ceiling")
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = (boot[:, i_s] - boot[:, i_w]) / (boot[:, i_c] - boot[:, i_w])
        ratios = ratios[np.isfinite(ratios)]
        if len(ratios):
            out["boot_ci_low"], out["boot_ci_high"] = (
                float(np.quantile(ratios, alpha / 2)), float(np.quantile(ratios, 1 - alpha / 2)))
    out["gap"] = _f(parts.d)
    out["gap_df"] = _f(parts.df_gap)
    out["min_gap"] = min_gap
    out = {k: (_f(v) if isinstance(v, float) else v) for k, v in out.items()}
    out["_parts"] = parts
    return out


def method_cell(cell: Cell, method: str, baseline: str, meta: dict, sesoi: float,
                sesoi_pgr: float | None, alpha: float, boot: np.ndarray | None,
                rng: np.random.Generator | None = None, n_boot: int = 0) -> dict:
    """The verdict.json cell for ``method`` in ``cell`` (p_adjusted and the power statements are
    filled in by ``power_statements`` once the multiplicity family is known).

    Private keys ``_contrast``, ``_tests``, ``_components`` and ``_pgr_parts`` are for the caller
    and removed before output.

    Args:
        cell: the (rung, dataset) cell.
        method, baseline: arm names.
        meta: rung metadata (models, parameter counts).
        sesoi: SESOI in accuracy; replaced per cell by ``sesoi_pgr * gap`` when that is given and
            the gap is defined.  It is also the minimum gap before a PGR is reported.
        alpha: intervals are (1 - alpha); decisions one-sided at alpha / 2.
        boot: two-way bootstrap replicates of the arm means (n_boot, A), or None.
        rng, n_boot: for the paired seed bootstrap of a seed-level cell (see ``bootstrap``).
    Returns:
        The cell dict plus the private keys.
    """
    m = cell.moments
    acc = {arm: _f(m.mean[m.index(arm)]) if arm in m.arms else None
           for arm in ("weak", "ceiling")}
    acc["baseline"] = _f(m.mean[m.index(baseline)]) if baseline in m.arms else None
    acc["method"] = _f(m.mean[m.index(method)])
    acc_ci = {}
    for key, arm in (("weak", "weak"), ("ceiling", "ceiling"), ("baseline", baseline),
                     ("method", method)):
        if arm in m.arms:
            lo, hi = m.contrast({arm: 1.0}).ci(1 - alpha)
            acc_ci[key] = [_f(lo), _f(hi)]
    out = {"rung": cell.rung, "dataset": cell.dataset, "weak_model": meta.get("weak_model"),
           "strong_model": meta.get("strong_model"), "strong_params": meta.get("strong_params"),
           "n_seeds": int(m.n_seeds[method]), "n_seeds_baseline": m.n_seeds.get(baseline),
           "n_examples": m.n_examples, "design": m.design, "acc": acc, "acc_ci": acc_ci,
           "notes": list(m.notes)}
    two_way_boot = boot if cell.scores is not None else None
    pgr = _pgr(cell, method, alpha, two_way_boot, sesoi)
    out["_pgr_parts"] = pgr.pop("_parts", None)
    out["pgr"] = pgr
    if baseline in m.arms:
        out["pgr_baseline"] = _pgr(cell, baseline, alpha, two_way_boot, sesoi)
    else:
        out["pgr_baseline"] = {"defined": False, "estimate": None, "ci_low": None, "ci_high": None,
                               "note": f"baseline '{baseline}' missing in this cell"}
    out["pgr_baseline"].pop("_parts", None)
    cell_sesoi = sesoi
    if sesoi_pgr is not None and pgr.get("gap") and pgr.get("defined"):
        cell_sesoi = sesoi_pgr * pgr["gap"]
    out["sesoi"] = cell_sesoi
    if baseline not in m.arms:
        out["gain"] = {"estimate": None, "ci_low": None, "ci_high": None, "p_superiority": None,
                       "p_equivalence": None, "p_adjusted": None}
        out["mde80"] = None
        out["notes"].append(f"baseline '{baseline}' has no results here: no gain can be estimated")
        out["_contrast"], out["_tests"], out["_components"] = None, None, None
        return out
    gain_w = {method: 1.0, baseline: -1.0}
    contrast: Contrast = m.contrast(gain_w)
    tests = gain_tests(contrast, cell_sesoi)
    lo, hi = contrast.ci(1 - alpha)
    gain = {"estimate": _f(contrast.estimate), "ci_low": _f(lo), "ci_high": _f(hi),
            "se": _f(contrast.se), "df": _f(contrast.df),
            "seed_component_truncated": contrast.seed_truncated,
            "p_superiority": tests.p_superiority,
            "p_equivalence": tests.p_equivalence, "p_harm": tests.p_harm, "p_adjusted": None}
    if two_way_boot is not None:
        diffs = boot[:, m.index(method)] - boot[:, m.index(baseline)]
        diffs = diffs[np.isfinite(diffs)]
        if len(diffs) > 1:
            gain["boot_se"] = float(diffs.std(ddof=1))
            gain["boot_ci_low"] = float(np.quantile(diffs, alpha / 2))
            gain["boot_ci_high"] = float(np.quantile(diffs, 1 - alpha / 2))
            expected = m.pigeonhole_variance(gain_w)
            gain["boot_se_expected"] = _f(np.sqrt(expected)) if expected else None
            gain["boot_method"] = "two-way pigeonhole (Owen 2007), percentile"
    elif n_boot and rng is not None and cell.scores is None:
        paired = paired_seed_bootstrap(cell.seed_acc[method], cell.seed_acc[baseline], n_boot,
                                       rng, alpha)
        shared_seeds = set(cell.seed_acc[method].index) == set(cell.seed_acc[baseline].index)
        if paired is None and not shared_seeds:
            gain["boot_note"] = ("no seed bootstrap: the method and the baseline do not share "
                                 "all their seeds; resampling the union of seeds breaks the "
                                 "pairing, and its coverage depends on the overlap pattern "
                                 "(82% for a nominal 95% in one simulation)")
        elif paired is None:
            gain["boot_note"] = (f"no seed bootstrap: fewer than {MIN_SEEDS_FOR_SEED_BOOTSTRAP} "
                                 "shared seeds, where even the expanded percentile interval "
                                 "under-covers (92% at 5 seeds in simulation)")
        else:
            gain["boot_se"], gain["boot_ci_low"], gain["boot_ci_high"] = paired
            gain["boot_method"] = ("paired seed bootstrap, expanded percentile "
                                   "(Hesterberg 2015)")
    out["gain"] = gain
    out["mde80"] = None
    out["seeds_needed"] = None
    out["examples_needed"] = None
    out["_contrast"], out["_tests"] = contrast, tests
    out["_components"] = components(m, gain_w)
    return out


def power_statements(cell: dict, level: float) -> None:
    """Fill mde80, seeds_needed and examples_needed of a cell at the one-sided ``level`` the
    decision will use (``tests_and_verdicts.decision_level``), in place."""
    contrast, comp = cell.get("_contrast"), cell.get("_components")
    if contrast is None or comp is None:
        return
    cell["gain"]["decision_level"] = level
    cell["mde80"] = _f(mde(contrast.se, contrast.df, level))
    cell["seeds_needed"] = seeds_needed(comp, cell["sesoi"], level)
    cell["examples_needed"] = examples_needed(comp, cell["sesoi"], comp.n_seeds, level)
