"""The report's prose: each method's (and control's) sentences, power and trend notes.

The sentences come from :mod:`stats.verdict_prose` (summary.md and the template narrative use
the same ones); here they are only grouped into the report's sections. A sentence is a list of
plain strings and :class:`~stats.display.Shown` numbers, so the HTML can tag every number with
the verdict.json path it was formatted from.
"""
from __future__ import annotations

from dataclasses import dataclass

from stats.display import Sentence
from stats.verdict_model import Verdict
from stats.verdict_prose import (
    Section,
    adequate_power_sentence,
    power_sentence,
    trend_sentence,
    verdict_sentence,
)

ISOLATION_WORDS = {"builtin": "built-in code, run in the pipeline's process",
                   "jail": "its code run in the jail",
                   "unjailed": "untrusted code, run OUTSIDE the jail (never promoted)"}


@dataclass(frozen=True)
class EntryProse:
    """One method's (or control's) part of the Reasons section."""

    method: str
    verdict: str
    isolation: str
    decision: Sentence  # verdict, production-rung gains and PGR, promote or not
    reasons: list[str]


def reasons(verdict: Verdict, section: Section = "methods") -> list[EntryProse]:
    """Per method (or per control, ``section="controls"``): its decision sentence, where its
    code ran and the statistics' reasons."""
    out = []
    for name, entry in getattr(verdict, section).items():
        isolation = ISOLATION_WORDS[entry.isolation or "builtin"]
        if section == "methods":
            isolation += audit_words(verdict, name)
        out.append(EntryProse(name, entry.verdict, isolation,
                              verdict_sentence(verdict, section, name), list(entry.reasons)))
    return out


def audit_words(verdict: Verdict, name: str) -> str:
    """``; label-leak audit clean at m1 (synthetic) seed 0`` (flagged cells are among the
    entry's reasons), or what stands in for it."""
    if verdict.audits is None:
        return "; no label-leak audit recorded" if verdict.plan else ""
    cells = verdict.audits.get(name) or []
    if not cells:
        return "; NOT audited for label leaks"
    shown = ", ".join(f"{c.rung} ({c.dataset}) seed {c.seed}" for c in cells)
    flagged = sum(not c.clean for c in cells)
    return (f"; label-leak audit FLAGGED at {flagged} of {len(cells)} cells" if flagged
            else f"; label-leak audit clean at {shown}")


def power_notes(verdict: Verdict) -> list[Sentence]:
    """Where the design could not detect a SESOI-sized gain (MDE at 80% power above the SESOI)."""
    notes = [note for name in verdict.methods
             if (note := power_sentence(verdict, "methods", name)) is not None]
    return notes or [adequate_power_sentence(verdict)]


def trend_notes(verdict: Verdict) -> list[Sentence]:
    """The change of each method's gain with model scale, where the statistics estimated it."""
    return [trend_sentence(verdict, "methods", name) for name in verdict.methods]
