"""Types of a binary task: examples, splits and the task with its corpus and fingerprint.

Label 1 is the "positive" label everywhere: every probability in the system is P(label == 1).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from w2s_common.names import SPLIT_NAMES

"""The three splits of every task: weak teacher's gold labels, student split, sealed test split."""

FINGERPRINT_HEX_CHARS = 16


class DataWarning(UserWarning):
    """A property of the data that is legal but worth a look (e.g. heavy class imbalance)."""


@dataclass(frozen=True)
class Example:
    """One labelled example.

    Attributes:
        id: stable identifier, unique within the task; never encodes the label.
        text: the model input, rendered as one string.
        label: 0 or 1 (1 is the positive label, named by ``TaskData.label_names[1]``).
        extra: fields of the source row that are neither input nor label (e.g. ``subset``);
            left out of equality and hashing, so examples stay hashable.
    """

    id: str
    text: str
    label: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Split:
    """A named, ordered tuple of examples with column views.

    ``ids`` and ``texts`` are tuples; ``labels`` is a read-only int64 numpy array.
    """

    name: str
    examples: tuple[Example, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "examples", tuple(self.examples))

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(example.id for example in self.examples)

    @cached_property
    def texts(self) -> tuple[str, ...]:
        return tuple(example.text for example in self.examples)

    @cached_property
    def labels(self) -> np.ndarray:
        labels = np.fromiter((example.label for example in self.examples), dtype=np.int64,
                             count=len(self.examples))
        labels.setflags(write=False)
        return labels


@dataclass(frozen=True)
class TaskData:
    """A binary task with its three splits and an unlabeled pretraining corpus.

    Attributes:
        name: short task name (``synthetic`` or the data directory's name).
        splits: ``{"train_label", "train_unlabel", "test"}`` -> ``Split``.
        label_names: names of label 0 and label 1.
        corpus: unlabeled texts for pretraining or tokenizer building; never holds test texts.
        fingerprint: 16 hex characters of sha256 over the canonical content (see
            ``content_fingerprint``); identical content gives the same fingerprint.
        source: where the data came from (a resolved path or the synthetic generator's settings).
        warnings: messages of the ``DataWarning`` s raised while loading.
    """

    name: str
    splits: Mapping[str, Split]
    label_names: tuple[str, str]
    corpus: tuple[str, ...]
    fingerprint: str
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def train_label(self) -> Split:
        return self.splits["train_label"]

    @property
    def train_unlabel(self) -> Split:
        return self.splits["train_unlabel"]

    @property
    def test(self) -> Split:
        return self.splits["test"]


def content_fingerprint(splits: Mapping[str, Split], label_names: Sequence[str],
                        corpus: Sequence[str]) -> str:
    """Hash the task's content (not its name or location) to 16 hex characters.

    Args:
        splits: the three splits; each example contributes ``[id, text, label, extra]``, in
            split order, all as canonical JSON (sorted keys, no whitespace).
        label_names: the two label names (renaming a label changes what the model is asked).
        corpus: the pretraining corpus (it shapes the pretrained models, so it is content).

    Returns:
        The first 16 hex characters of the sha256 digest.
    """
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        digest.update(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                 default=str).encode("utf-8"))
        digest.update(b"\n")

    feed({"label_names": list(label_names)})
    for name in SPLIT_NAMES:
        feed({"split": name,
              "examples": [[e.id, e.text, int(e.label), e.extra] for e in splits[name]]})
    feed({"corpus": list(corpus)})
    return digest.hexdigest()[:FINGERPRINT_HEX_CHARS]
