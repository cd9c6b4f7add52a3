"""The names every room speaks: arms, splits, verdicts and the results table's columns.

The results table is the contract between transfer/ (which writes it from stored runs) and stats/
(which reads it); docs/architecture.md ("Results table") describes each column.
"""
from __future__ import annotations

import re

# The arms a stored run can be: the weak model, the strong model on gold labels, and the strong
# student a method trains. The first two are the reference arms of every cell.
ARM_NAMES = ("weak", "ceiling", "student")
REFERENCE_ARMS = ("weak", "ceiling")



def name_key(name: str) -> str:
    """What a name reads as: case folded, the separators a method name may hold (``._-``)
    removed; so ``Vanilla``, ``va-nilla`` and ``REAL.`` read as ``vanilla`` and ``real``."""
    return "".join(ch for ch in name.casefold() if ch not in "._-")


def name_tokens(name: str) -> list[str]:
    """The words of a name, case folded: split at its separators, between letters and digits
    and where a lower-case run meets an upper-case letter (``REAL-gain`` -> real, gain;
    ``REAL1`` -> real, 1; ``promoteMe`` -> promote, me)."""
    return [t.casefold() for t in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", name)]


# The splits of a task: gold-labelled training data (the weak model's), unlabelled training
# data (the student's), and the test split the arms are scored on.
SPLIT_NAMES: tuple[str, str, str] = ("train_label", "train_unlabel", "test")

# What the statistics conclude about a method (HOLD: a data-quality hold, no conclusion).
VERDICT_NAMES = ("REAL", "VANISHED", "HARMFUL", "INCONCLUSIVE", "HOLD")
REAL, VANISHED, HARMFUL, INCONCLUSIVE, HOLD = VERDICT_NAMES

# The results table: the key of one run of one arm, its per-example predictions, and the
# models of its rung.
KEY_COLUMNS = ("rung", "dataset", "seed", "arm")
PREDICTION_COLUMNS = ("example_id", "prob", "pred", "correct")
META_COLUMNS = ("weak_model", "strong_model", "weak_params", "strong_params")
RESULT_COLUMNS = KEY_COLUMNS + PREDICTION_COLUMNS + META_COLUMNS

# The range of a training seed wherever one enters (run-arm --seed, audit --seed, a plan's seeds,
# a results table): torch.manual_seed takes at most 2**64 - 1 (a larger seed was a ValueError
# traceback after the model had loaded, and overflowed int64 in a table); 2**31 - 1 also fits
# every library that takes a 32-bit seed, and leaves room for the offsets derived seeds add
# (transfer/student.py adds 7919 per refit).
MAX_SEED = 2**31 - 1
