"""Data quality as a verdict input: records that contradict their paths put a method on hold.

An importer (``stats.aar``) checks each stored record against where it was found and against the
other records, and reports ``RecordIssue``s.  Some issues break the pairing the analysis relies
on: the gain is estimated seed by seed (method and baseline trained on the same weak labels), so
a record whose own ``seed`` field, config seed, idea name or stored weak/ceiling accuracies say
it is not the run its file name claims cannot be paired silently.  A method with such records
(or whose baseline has them) is put on a DATA-QUALITY hold by ``analyze_table``: verdict
``HOLD``, never promoted, the records named, and the verdict re-computed under every pairing the
records themselves suggest, plus no pairing at all (``alternative_tables``), so the reader sees
how much the answer depends on it.  Other issues (rounded numbers, stored baselines that differ
from the runs in the directory) are reported without a hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from w2s_common.names import KEY_COLUMNS

PAIRING_KINDS = ("seed_field", "idea_field", "trained_on_other_seed")
UNPAIRED = "unpaired (no seed pairing)"
_UNPAIRED_OFFSET = 1_000_000_000


@dataclass(frozen=True)
class RecordIssue:
    """One problem with one stored record.

    Attributes:
        dataset, arm: where the record's numbers went in the table.
        record: its path relative to the imported directory.
        kind: ``seed_field`` (its seed fields disagree with the file name), ``idea_field``
            (its idea name disagrees with the directory), ``trained_on_other_seed`` (its stored
            weak/ceiling accuracies are another seed's), ``rounded`` (accuracy rounded, not a
            count over the test set) or ``stored_baseline`` (stored fixed baselines differ from
            the runs in the directory).
        message: one plain sentence.
    """

    dataset: str
    arm: str
    record: str
    kind: str
    message: str

    @property
    def breaks_pairing(self) -> bool:
        """True when the record cannot be paired with the baseline by its file name."""
        return self.kind in PAIRING_KINDS

    def as_dict(self) -> dict:
        """The verdict.json form."""
        return {"dataset": self.dataset, "arm": self.arm, "record": self.record,
                "kind": self.kind, "message": self.message, "breaks_pairing": self.breaks_pairing}


@dataclass
class DataQuality:
    """What an importer found wrong, and the pairings the records themselves suggest.

    Attributes:
        issues: every problem found, record by record.
        pairings: name -> {(dataset, arm, seed as filed): seed according to the records}; each
            is an alternative way to pair that the records' content supports (e.g. "records'
            seed fields", "records' stored weak accuracies").
        notes: dataset-level statements (e.g. stored baselines against the runs' means).
    """

    issues: list[RecordIssue] = field(default_factory=list)
    pairings: dict[str, dict[tuple[str, str, int], int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def pairing_issues(self, arm: str) -> list[RecordIssue]:
        """Issues of ``arm``'s records that break pairing."""
        return [i for i in self.issues if i.arm == arm and i.breaks_pairing]

    def other_issues(self, arm: str) -> list[RecordIssue]:
        """Issues of ``arm``'s records that do not break pairing."""
        return [i for i in self.issues if i.arm == arm and not i.breaks_pairing]

    def held(self, method: str, baseline: str) -> list[RecordIssue]:
        """The issues that put ``method`` on hold: its own or its baseline's pairing issues."""
        return self.pairing_issues(method) + self.pairing_issues(baseline)

    def as_dict(self) -> dict:
        """The verdict.json form."""
        return {"issues": [i.as_dict() for i in self.issues], "notes": list(self.notes),
                "pairings": sorted(self.pairings)}


def _relabel(table: pd.DataFrame, mapping: dict[tuple[str, str, int], int],
             arms: set[str]) -> pd.DataFrame:
    """Seeds of ``arms`` relabelled by ``mapping``; rows that land on the same key are averaged
    (several records that say they are the same run become one run's mean)."""
    out = table.copy()
    keys = zip(out["dataset"].astype(str), out["arm"].astype(str), out["seed"].astype(int))
    out["seed"] = [mapping.get(k, k[2]) if k[1] in arms else k[2] for k in keys]
    value = "accuracy" if "accuracy" in out.columns else "correct"
    key_cols = list(KEY_COLUMNS) + (["example_id"] if value == "correct" else [])
    if not out.duplicated(key_cols).any():
        out.attrs = dict(table.attrs)
        return out
    other = [c for c in out.columns if c not in key_cols]
    agg = {c: ("mean" if c in (value, "n") else "first") for c in other}
    merged = out.groupby(key_cols, sort=False, dropna=False).agg(agg).reset_index()
    if value == "correct":  # a per-example average is no longer 0/1: keep the majority
        merged[value] = (merged[value] >= 0.5).astype(int)
    merged.attrs = dict(table.attrs)
    return merged[table.columns]


def alternative_tables(table: pd.DataFrame, quality: DataQuality, method: str,
                       baseline: str) -> dict[str, pd.DataFrame]:
    """The results table re-paired in every way the records suggest, and unpaired.

    Args:
        table: the table as filed (checked, aggregate or per-example).
        quality: the importer's findings.
        method, baseline: the comparison on hold.
    Returns:
        name -> table.  Each named pairing relabels the seeds of the method and the baseline by
        what their records say; ``UNPAIRED`` gives the method's runs seed labels no other arm
        has, so the gain is estimated from two independent samples.
    """
    arms = {method, baseline}
    names: dict[frozenset, list[str]] = {}
    for name, mapping in quality.pairings.items():
        relevant = frozenset((k, v) for k, v in mapping.items() if k[1] in arms and k[2] != v)
        if relevant:
            names.setdefault(relevant, []).append(name)
    out = {}
    for relevant, same in names.items():  # pairings that agree are analysed once
        out[" = ".join(same)] = _relabel(table, dict(relevant), arms)
    unpaired = table.copy()
    mine = unpaired["arm"].astype(str) == method
    unpaired.loc[mine, "seed"] = unpaired.loc[mine, "seed"].astype(int) + _UNPAIRED_OFFSET
    unpaired.attrs = dict(table.attrs)
    out[UNPAIRED] = unpaired
    return out
