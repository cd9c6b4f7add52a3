"""Task-level checks: unique ids, non-empty splits, no test leakage, class balance."""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from transfer.data.formats import ParsedRow
from transfer.data.schema import SPLIT_NAMES, DataWarning, Example, Split
from w2s_common.errors import InputError

MIN_MINORITY_SHARE = 0.2
"""A split whose rarer label is below this share gets a DataWarning (heavy imbalance)."""


def require_rows(rows: Sequence[ParsedRow], path: Path) -> None:
    """Raise InputError when a split file holds no rows."""
    if not rows:
        raise InputError("empty split: the file holds no rows; every split needs at least one "
                         "example", path=path)


def assign_ids(rows_by_split: Mapping[str, Sequence[ParsedRow]]) -> dict[str, Split]:
    """Give every row a unique, stable id and build the splits.

    Given ids are kept and must be unique across the whole task. Rows without one get their
    content id; the n-th repeat of the same content (in split order, then file order) gets the
    suffix ``-n`` so the same files always give the same ids.

    Raises:
        InputError: two rows share an id; the message names both lines.
    """
    first_seen: dict[str, ParsedRow] = {}
    repeats: Counter[str] = Counter()
    splits: dict[str, Split] = {}
    for name in SPLIT_NAMES:
        examples = []
        for row in rows_by_split[name]:
            if row.given_id is not None:
                example_id = row.given_id
            else:
                repeats[row.content_id] += 1
                count = repeats[row.content_id]
                example_id = row.content_id if count == 1 else f"{row.content_id}-{count}"
            if example_id in first_seen:
                other = first_seen[example_id]
                raise InputError(f"duplicate id {example_id!r}: also used at "
                                 f"{other.path}:{other.line}", path=row.path, line=row.line,
                                 field="id")
            first_seen[example_id] = row
            examples.append(Example(id=example_id, text=row.text, label=row.label,
                                    extra=row.extra))
        splits[name] = Split(name=name, examples=tuple(examples))
    return splits


def normalise_for_leaks(text: str) -> str:
    """Case-folded text with runs of whitespace collapsed.

    The word tokenizer lowercases and splits on whitespace, so texts equal under this mapping
    are the same input to a model.
    """
    return " ".join(text.casefold().split())


def check_leaks(test: Sequence[tuple[str, str, int]],
                training: Sequence[tuple[str, str, int]]) -> None:
    """Raise InputError when a test text also occurs in a training split.

    Args:
        test: ``(text, path, line)`` of every test example.
        training: ``(text, path, line)`` of every train_label and train_unlabel example.

    Raises:
        InputError: at the first leaking test line, naming the training file and line.
    """
    seen: dict[str, tuple[str, int]] = {}
    for text, path, line in training:
        seen.setdefault(normalise_for_leaks(text), (path, line))
    for text, path, line in test:
        where = seen.get(normalise_for_leaks(text))
        if where is not None:
            raise InputError(f"test text also occurs in training data at {where[0]}:{where[1]} "
                             "(leak: the test split must be unseen)", path=path, line=line,
                             field="text")


def balance_warnings(splits: Mapping[str, Split], label_names: Sequence[str],
                     where: Mapping[str, str]) -> list[str]:
    """Warn (``DataWarning``) for each split whose minority label is under 20%.

    Args:
        splits: the task's splits.
        label_names: names of label 0 and label 1, used in the messages.
        where: split name -> file (or source) shown in the message.

    Returns:
        The warning messages, also emitted through ``warnings.warn``.
    """
    messages = []
    for name in SPLIT_NAMES:
        labels = splits[name].labels
        if labels.size == 0:
            continue
        counts = np.bincount(labels, minlength=2)
        minority = int(np.argmin(counts))
        share = counts[minority] / labels.size
        if share < MIN_MINORITY_SHARE:
            message = (f"{where[name]}: heavy class imbalance: {share:.1%} of {labels.size} "
                       f"examples have label {label_names[minority]!r} "
                       f"(under {MIN_MINORITY_SHARE:.0%})")
            warnings.warn(message, DataWarning, stacklevel=3)
            messages.append(message)
    return messages
