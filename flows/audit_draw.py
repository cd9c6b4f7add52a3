"""Where a campaign's label-leak audits fall: which stored cells (rung, dataset, seed) each plan
entry's audits rerun, drawn after each look (``flows.plan.Audit``; docs/security.md, "The audit
inside the validation"). The campaign (``flows.campaign``) builds the audit groups from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.plan import Plan


@dataclass(frozen=True)
class AuditCell:
    """A cell of the campaign where a method's label-leak audit runs (``flows.plan.Audit``)."""

    rung: str
    data: str | None  # as in ArmGroup.data
    seed: int
    permutations: tuple[int, int]


def audit_horizon(batches: list[list[int]], look: int, ran: list[str], undecided: list[str],
                  controls_left: bool) -> tuple[int, set[str]]:
    """What the audit draw after look ``look`` (1-based) needs to know of the future: how many
    seeds later looks will run (0 when none will), and the plan entries that ran this look
    (``ran``, the baseline first) and run no more: a method just decided, or every entry when
    no look follows (no method ``undecided`` and no control left, or the last batch)."""
    more = (bool(undecided) or controls_left) and look < len(batches)
    later = sum(len(b) for b in batches[look:]) if more else 0
    finishing = set(ran[1:]) - set(undecided)
    return later, finishing | set(ran) if not more else finishing


def draw_audit_cells(plan: Plan, entries: dict[str, int], rungs: list[str], seeds: list[int],
                     later_seeds: int, finishing: set[str], rng: Any = None
                     ) -> dict[str, list[AuditCell]]:
    """The audits to run after a look whose real runs are stored: for each plan entry with
    audits left (``entries``: entry -> how many), how many fall in this look's cells is drawn
    as if its audits were spread uniformly at random over this look's cells and the
    ``later_seeds`` seeds' cells still to come (hypergeometric); an entry in ``finishing`` (it
    was decided, or this is the last look) takes all it has left here. Each audit gets a
    distinct cell and two distinct permutation seeds.

    Drawn with ``secrets.SystemRandom`` (``rng`` for tests) only after the look's real runs are
    stored, so no method can know during a real run whether that run will be audited, and
    every cell of the campaign can be (a method sees its seed; auditing the first look only
    left it the later seeds: found by an independent attacker review, 2026-12-04).
    """
    import secrets

    rng = rng if rng is not None else secrets.SystemRandom()
    cells = [(rung, None if data is None else str(data), seed)
             for data in plan.dataset_paths() for rung in rungs for seed in seeds]
    later = len(plan.dataset_paths()) * len(rungs) * later_seeds
    out: dict[str, list[AuditCell]] = {}
    for entry, left in entries.items():
        if left <= 0:
            continue
        if entry in finishing:
            here = min(left, len(cells))
        else:
            slots = rng.sample(range(len(cells) + later), min(left, len(cells) + later))
            here = sum(slot < len(cells) for slot in slots)
        chosen = rng.sample(cells, here)
        out[entry] = [AuditCell(rung, data, seed, tuple(rng.sample(range(1, 2**31), 2)))
                      for rung, data, seed in chosen]
    return out
