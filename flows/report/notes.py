"""Prose parts of the report (reasons, power/MDE notes, trends) as runs of text and numbers.

A note is a list of parts: plain strings and :class:`~flows.report.tables.Shown` numbers, so
the HTML can tag every number with the verdict.json path it was formatted from.
"""
from __future__ import annotations

from typing import Any

from flows.report.tables import Shown, number

Note = list[str | Shown]


ISOLATION_WORDS = {"builtin": "built-in code, run in the pipeline's process",
                   "jail": "untrusted code, run in the jail",
                   "unjailed": "untrusted code, run OUTSIDE the jail (never promoted)"}


def reasons(verdict: dict[str, Any], section: str = "methods") -> list[dict[str, Any]]:
    """Per method (or per control, ``section="controls"``): verdict, promote and the reasons
    (method-level, then per-cell if present)."""
    out = []
    for method, decision in (verdict.get(section) or {}).items():
        cell_reasons = []
        for cell in decision.get("cells", []):
            for reason in cell.get("reasons") or []:
                cell_reasons.append(f"{cell.get('rung')} / {cell.get('dataset')}: {reason}")
        out.append({"method": method, "verdict": decision.get("verdict"),
                    "promote": bool(decision.get("promote")),
                    "isolation": ISOLATION_WORDS.get(decision.get("isolation", "builtin"),
                                                     str(decision.get("isolation"))),
                    "reasons": list(decision.get("reasons") or []), "cell_reasons": cell_reasons})
    return out


def power_notes(verdict: dict[str, Any]) -> list[Note]:
    """Where the design could not detect a SESOI-sized gain (MDE at 80% power above the SESOI)."""
    sesoi = verdict.get("sesoi")
    notes: list[Note] = []
    for method, decision in verdict["methods"].items():
        weak_cells: Note = []
        for index, cell in enumerate(decision.get("cells", [])):
            mde = cell.get("mde80")
            if isinstance(mde, (int, float)) and isinstance(sesoi, (int, float)) and mde > sesoi:
                base = ("methods", method, "cells", index)
                weak_cells += [("; " if weak_cells else ""), f"{cell['rung']} / {cell['dataset']} ",
                               number(verdict, base + ("mde80",), "mde"), " pp with ",
                               number(verdict, base + ("n_seeds",), "count"), " seeds"]
                if cell.get("seeds_needed") is not None:
                    weak_cells += [" (needs ", number(verdict, base + ("seeds_needed",), "count"),
                                   ")"]
        if weak_cells:
            notes.append([f"{method}: the smallest gain detectable with 80% power exceeds the "
                          "SESOI of ", number(verdict, ("sesoi",), "mde"),
                          " pp at ", *weak_cells,
                          ". A non-significant gain there is not evidence of no effect."])
    if not notes:
        notes.append(["Every cell could detect a gain of the SESOI (",
                      number(verdict, ("sesoi",), "mde"), " pp) with 80% power."])
    return notes


def trend_notes(verdict: dict[str, Any]) -> list[Note]:
    """The change of each method's gain with model scale, where the statistics estimated it."""
    notes: list[Note] = []
    for method, decision in verdict["methods"].items():
        trend = decision.get("trend")
        base = ("methods", method, "trend")
        if isinstance(trend, dict):
            note: Note = [f"{method}: gain changes by ",
                          number(verdict, base + ("slope_per_decade",), "slope"),
                          " pp per tenfold strong-model size, interval [",
                          number(verdict, base + ("ci_low",), "slope"), ", ",
                          number(verdict, base + ("ci_high",), "slope"), "], p(decline) = ",
                          number(verdict, base + ("p_decline",), "p"), "."]
        else:
            note = [f"{method}: no trend estimated."]
        if "shrinks_with_scale" in decision:
            note.append(" Shrinks with scale: "
                        + ("yes." if decision["shrinks_with_scale"] else "no."))
        notes.append(note)
    return notes


def plain(note: Note) -> str:
    """A note as display text."""
    return "".join(part.text if isinstance(part, Shown) else part for part in note)
