"""The verdict in sentences: the one place that turns a :class:`Verdict` into prose.

summary.md (:func:`stats.verdict.summary_markdown`), the report (``flows.report``) and the
deterministic narrative (``flows.summary.template_summary``) all take their sentences from here;
they differ only in how they wrap them (markdown bullets, escaped HTML with traced numbers, one
paragraph). A sentence is a run of plain text and :class:`~stats.display.Shown` numbers, each
formatted by :func:`stats.display.fmt` from the verdict.json value it names, so no renderer
writes a number of its own.

Entries are named by ``section`` (``methods``, or ``controls`` for the spike-in and null controls
of the baseline, which are never promoted) and their key in it.
"""
from __future__ import annotations

from typing import Literal

from stats.display import UNDEFINED, Sentence, Shown, interval, number, written
from stats.verdict_model import TREND_REASON_PREFIX, MethodVerdict, Verdict

Section = Literal["methods", "controls"]


def entry_of(verdict: Verdict, section: Section, name: str) -> MethodVerdict:
    """The method's (or control's) entry."""
    return getattr(verdict, section)[name]


def production_cells(verdict: Verdict, section: Section, name: str) -> list[int]:
    """Indexes of the entry's cells at the production rung (one per dataset)."""
    return [index for index, cell in enumerate(entry_of(verdict, section, name).cells)
            if cell.rung == verdict.production_rung]


def control_added(entry: MethodVerdict) -> str:
    """The gain a control injects, in points (``control_details.injected_gain``): exact for a
    synthetic spike-in and a null control, unknown for a gold-label spike-in (its fraction)."""
    details = entry.control_details
    gain = details.injected_gain if details is not None else None
    if gain is None:
        fraction = (details.spec if details is not None else {}).get("gold_fraction", 0)
        return f"unknown ({100 * fraction:g}% gold labels)"
    return f"{100 * gain:+.2f}" if gain else "0"


def overview(verdict: Verdict) -> Sentence:
    """What was compared, at which SESOI and level, and where decisions are taken."""
    sentence: Sentence = [
        f"{len(verdict.methods)} candidate method(s) were compared with {verdict.baseline} "
        "(SESOI ", number(verdict, ("sesoi",), "mde"), " pp, alpha ",
        number(verdict, ("alpha",), "level"),
        f"); decisions are taken at the production rung {verdict.production_rung}."]
    if verdict.controls:
        sentence.append(f" {len(verdict.controls)} control(s) of the baseline tested the "
                        "pipeline alongside them; a control is never promoted.")
    return sentence


def _pgr(verdict: Verdict, base: tuple[str | int, ...]) -> str | Shown:
    """A PGR's estimate, or the word ``undefined`` (never a number) where it is undefined."""
    _, pgr = written(verdict, base)  # a cell always has both PGRs
    return number(verdict, base + ("estimate",), "pgr") if pgr.defined else UNDEFINED


def verdict_sentence(verdict: Verdict, section: Section, name: str) -> Sentence:
    """The decision: the verdict, the gain and its interval and the PGR (the method's and the
    baseline's) on every dataset at the production rung, and whether it may be promoted.

    A control is named as one (its kind, its plan name and the gain it injects) and is never
    promoted; a data-quality HOLD says the verdict as filed.
    """
    entry = entry_of(verdict, section, name)
    if entry.control_details is not None:
        details = entry.control_details
        sentence: Sentence = [f"{name} ({details.variant} control {details.name}, injected "
                              f"{control_added(entry)} pp) is {entry.verdict}"]
    else:
        sentence = [f"{name} is {entry.verdict}"]
    if entry.hold is not None:
        sentence.append(f" (held for data quality; as filed it would be "
                        f"{entry.hold.verdict_as_filed})")
    gains: Sentence = []
    for index in production_cells(verdict, section, name):
        base = (section, name, "cells", index)
        gains += ["; " if gains else "", number(verdict, base + ("gain", "estimate"), "gain"),
                  " pp ", interval(verdict, base + ("gain",), "gain"),
                  f" on {entry.cells[index].dataset}, PGR ", _pgr(verdict, base + ("pgr",)),
                  " vs baseline ", _pgr(verdict, base + ("pgr_baseline",))]
    if gains:
        sentence += [f" at {verdict.production_rung} (", *gains, ")"]
    if entry.control is not None:
        sentence.append("; a control is never promoted.")
    else:
        sentence.append(" and may be promoted." if entry.promote else " and is not promoted.")
    return sentence


def trend_sentence(verdict: Verdict, section: Section, name: str) -> Sentence:
    """How the gain changes with model scale (WLS slope per tenfold strong-model size, its
    interval and the one-sided p for decline), or that no trend was estimated."""
    trend = entry_of(verdict, section, name).trend
    if trend is None:
        return [f"{name}: no trend estimated."]
    base = (section, name, "trend")
    sentence: Sentence = [f"{name}: gain changes by ",
                          number(verdict, base + ("slope_per_decade",), "slope"),
                          " pp per tenfold strong-model size, interval ",
                          interval(verdict, base, "slope"), ", p(decline) = ",
                          number(verdict, base + ("p_decline",), "p"), "."]
    if trend.shrinks_with_scale is not None:
        sentence.append(" Shrinks with scale: " + ("yes." if trend.shrinks_with_scale else "no."))
    return sentence


def power_sentence(verdict: Verdict, section: Section, name: str) -> Sentence | None:
    """Where the design could not detect a SESOI-sized gain (MDE at 80% power above the SESOI),
    or None where every cell could."""
    cells: Sentence = []
    for index, cell in enumerate(entry_of(verdict, section, name).cells):
        if cell.mde80 is None or cell.mde80 <= verdict.sesoi:
            continue
        base = (section, name, "cells", index)
        cells += ["; " if cells else "", f"{cell.rung} / {cell.dataset} ",
                  number(verdict, base + ("mde80",), "mde"), " pp with ",
                  number(verdict, base + ("n_seeds",), "count"), " seeds"]
        if cell.seeds_needed is not None:
            cells += [" (needs ", number(verdict, base + ("seeds_needed",), "count"), ")"]
    if not cells:
        return None
    return [f"{name}: the smallest gain detectable with 80% power exceeds the SESOI of ",
            number(verdict, ("sesoi",), "mde"), " pp at ", *cells,
            ". A non-significant gain there is not evidence of no effect."]


def adequate_power_sentence(verdict: Verdict) -> Sentence:
    """What to say when no method's cell is underpowered."""
    return ["Every cell could detect a gain of the SESOI (", number(verdict, ("sesoi",), "mde"),
            " pp) with 80% power."]


def method_narrative(verdict: Verdict, section: Section, name: str, *,
                     reasons: bool = True) -> list[Sentence]:
    """Everything said about one entry, in order: the decision, the trend, the power statement
    where the design was weak, then (``reasons=True``) the statistics' own reasons. With the
    reasons, a trend they state is said once, by them (``stats.analyze`` states it in full: its
    df, the level it needs and what 3 rungs can show)."""
    entry = entry_of(verdict, section, name)
    sentences = [verdict_sentence(verdict, section, name)]
    if not (reasons and any(r.startswith(TREND_REASON_PREFIX) for r in entry.reasons)):
        sentences.append(trend_sentence(verdict, section, name))
    power = power_sentence(verdict, section, name)
    if power is not None:
        sentences.append(power)
    if reasons:
        sentences += [[reason] for reason in entry.reasons]
    return sentences


def narrative(verdict: Verdict, *, reasons: bool = True) -> list[Sentence]:
    """The whole verdict in sentences: the overview, then every method's and every control's
    :func:`method_narrative`."""
    sentences = [overview(verdict)]
    for section in ("methods", "controls"):
        for name in getattr(verdict, section):
            sentences += method_narrative(verdict, section, name, reasons=reasons)
    return sentences
