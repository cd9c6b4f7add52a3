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
                   "jail": "untrusted code, run in the jail",
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
        isolation = entry.isolation or "builtin"
        out.append(EntryProse(name, entry.verdict, ISOLATION_WORDS[isolation],
                              verdict_sentence(verdict, section, name), list(entry.reasons)))
    return out


def power_notes(verdict: Verdict) -> list[Sentence]:
    """Where the design could not detect a SESOI-sized gain (MDE at 80% power above the SESOI)."""
    notes = [note for name in verdict.methods
             if (note := power_sentence(verdict, "methods", name)) is not None]
    return notes or [adequate_power_sentence(verdict)]


def trend_notes(verdict: Verdict) -> list[Sentence]:
    """The change of each method's gain with model scale, where the statistics estimated it."""
    return [trend_sentence(verdict, "methods", name) for name in verdict.methods]
