"""The built-in synthetic task: seeded "reviews" of pseudo-words with a hidden sentiment.

Generative model (per sentence): a label y ~ Bernoulli(1/2) and a length L uniform in 8..24.
Each word is, independently, a sentiment word with probability 0.3, else a filler word.
A sentiment word agrees with y with probability 0.8; it is drawn from that polarity's 300
words by a Zipf law (P(rank r) proportional to r^-1); fillers come from 600 words by the same
law. Because both polarities share one Zipf law, the posterior log-odds of y is
(#positive - #negative) * log(0.8 / 0.2): the Bayes rule counts polarity words, about 91%
accurate, while a reader who knows only the 30 most frequent words per polarity gets about 85%.
That gap is the latent knowledge a pretrained strong model can have and a weak model lacks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from transfer.data.schema import SPLIT_NAMES, Example, Split, TaskData, content_fingerprint
from transfer.data.validate import balance_warnings

TASK_NAME = "synthetic"
SALTED_TASK_NAME = "synthetic-salted"
# The salt of the synthetic task, known only to the trusted side (never passed into a jail).
SECRET_ENV = "W2S_SYNTHETIC_SECRET"
LABEL_NAMES = ("negative", "positive")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "kl", "pr", "st", "tr", "sh", "ch")
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m")


@dataclass(frozen=True)
class Vocabulary:
    """Pseudo-words of the task, each list ordered by Zipf rank (most frequent first)."""

    negative: tuple[str, ...]
    positive: tuple[str, ...]
    filler: tuple[str, ...]


@dataclass(frozen=True)
class ReviewGenerator:
    """Parameters of the generative model (defaults: the measured design) and its exact rules.

    Attributes:
        words_per_polarity: sentiment words per polarity (300).
        filler_words: neutral words (600).
        sentiment_share: probability that a word is a sentiment word (0.3).
        agreement: probability that a sentiment word agrees with the label (0.8).
        min_words, max_words: sentence length range, inclusive (8, 24).
        zipf_exponent: s in P(rank r) proportional to r^-s (1.0).
    """

    words_per_polarity: int = 300
    filler_words: int = 600
    sentiment_share: float = 0.3
    agreement: float = 0.8
    min_words: int = 8
    max_words: int = 24
    zipf_exponent: float = 1.0

    def zipf(self, size: int) -> np.ndarray:
        """Zipf probabilities of ranks 1..size: r^-s / sum_k k^-s."""
        weights = np.arange(1, size + 1, dtype=np.float64) ** -self.zipf_exponent
        return weights / weights.sum()

    def vocabulary(self, rng: np.random.Generator) -> Vocabulary:
        """Draw distinct syllable pseudo-words and deal them at random to the three lists.

        All words come from one syllable inventory and are assigned to a polarity and a rank by
        a random permutation, so spelling carries no information about polarity.
        """
        needed = 2 * self.words_per_polarity + self.filler_words
        unique: dict[str, None] = {}
        while len(unique) < needed:
            batch = 2 * needed
            n_syllables = rng.integers(2, 4, size=batch)
            onsets = rng.integers(0, len(_ONSETS), size=(batch, 3))
            nuclei = rng.integers(0, len(_NUCLEI), size=(batch, 3))
            codas = rng.integers(0, len(_CODAS), size=(batch, 3))
            for i in range(batch):
                word = "".join(_ONSETS[onsets[i, j]] + _NUCLEI[nuclei[i, j]] + _CODAS[codas[i, j]]
                               for j in range(n_syllables[i]))
                unique.setdefault(word, None)
        words = list(unique)[:needed]
        n = self.words_per_polarity
        return Vocabulary(negative=tuple(words[:n]), positive=tuple(words[n:2 * n]),
                          filler=tuple(words[2 * n:]))

    def sample(self, n: int, vocabulary: Vocabulary,
               rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
        """Draw ``n`` sentences and their labels (vectorised over all words).

        Returns:
            ``(texts, labels)`` with labels in {0, 1}, 1 = positive.
        """
        labels = rng.integers(0, 2, size=n)
        lengths = rng.integers(self.min_words, self.max_words + 1, size=n)
        total = int(lengths.sum())
        sentence_label = np.repeat(labels, lengths)
        is_sentiment = rng.random(total) < self.sentiment_share
        agrees = rng.random(total) < self.agreement
        polarity = np.where(agrees, sentence_label, 1 - sentence_label)
        sentiment_rank = rng.choice(self.words_per_polarity, size=total,
                                    p=self.zipf(self.words_per_polarity))
        filler_rank = rng.choice(self.filler_words, size=total, p=self.zipf(self.filler_words))
        # One array of all words: [negative | positive | filler], indexed by polarity and rank.
        lexicon = np.array(vocabulary.negative + vocabulary.positive + vocabulary.filler,
                           dtype=object)
        index = np.where(is_sentiment, polarity * self.words_per_polarity + sentiment_rank,
                         2 * self.words_per_polarity + filler_rank)
        words = lexicon[index].tolist()
        ends = np.cumsum(lengths).tolist()
        starts = [0] + ends[:-1]
        texts = [" ".join(words[a:b]) for a, b in zip(starts, ends)]
        return texts, labels

    def polarity_scores(self, texts: list[str], vocabulary: Vocabulary,
                        top_k: int | None = None) -> np.ndarray:
        """Count rule: #positive - #negative words per text, counting only the ``top_k`` most
        frequent words per polarity (all of them when None, which is the Bayes rule)."""
        k = self.words_per_polarity if top_k is None else top_k
        weight = {word: 1 for word in vocabulary.positive[:k]}
        weight.update({word: -1 for word in vocabulary.negative[:k]})
        return np.array([sum(weight.get(word, 0) for word in text.split()) for text in texts])

    def bayes_accuracy(self) -> float:
        """Exact accuracy of the Bayes-optimal classifier (the full count rule, ties guessed).

        See ``known_words_accuracy``; the Bayes rule knows every sentiment word.
        """
        return self.known_words_accuracy(self.words_per_polarity)

    def known_words_accuracy(self, top_k: int) -> float:
        """Exact accuracy of a reader who counts only the ``top_k`` most frequent words per
        polarity and guesses on ties.

        Formula: with q = Zipf mass of ranks 1..top_k, each word scores +1 with probability
        a = share * agreement * q, -1 with d = share * (1 - agreement) * q, else 0. For length
        L the score distribution is the L-fold convolution of (d, 1 - a - d, a); accuracy is
        P(score > 0) + P(score = 0) / 2, averaged over the uniform lengths. (The model is
        symmetric in the label, so this is also the accuracy given either label.)
        """
        if not 0 <= top_k <= self.words_per_polarity:
            raise ValueError(f"top_k must be in 0..{self.words_per_polarity}, got {top_k}")
        known = self.zipf(self.words_per_polarity)[:top_k].sum()
        agree = self.sentiment_share * self.agreement * known
        disagree = self.sentiment_share * (1 - self.agreement) * known
        step = np.array([disagree, 1 - agree - disagree, agree])
        accuracies = []
        score = np.array([1.0])  # distribution of the score over -L..L, offset L
        for length in range(1, self.max_words + 1):
            score = np.convolve(score, step)
            if length >= self.min_words:
                accuracies.append(score[length + 1:].sum() + 0.5 * score[length])
        return float(np.mean(accuracies))


def results_name(environ=None) -> str:
    """The name results give the synthetic task in this environment: ``synthetic-salted`` when
    ``W2S_SYNTHETIC_SECRET`` is set (the loader salts it then), else ``synthetic``."""
    import os

    return SALTED_TASK_NAME if (environ if environ is not None else os.environ).get(SECRET_ENV) \
        else TASK_NAME


def synthetic_task(seed: int = 0, n_train_label: int = 2000, n_train_unlabel: int = 2000,
                   n_test: int = 2000, n_corpus: int = 50_000,
                   generator: ReviewGenerator | None = None,
                   secret: str | None = None) -> TaskData:
    """Build the built-in synthetic task.

    Args:
        seed: the DATA seed (vocabulary and sentences); independent of training seeds.
        n_train_label, n_train_unlabel, n_test: split sizes.
        n_corpus: extra unlabeled sentences for pretraining; the corpus is the train_label and
            train_unlabel texts followed by these (never test texts).
        generator: the generative model; the measured design by default.
        secret: a salt mixed into the seed. Without one the task is a public function of this
            code and a small seed, so anyone (a method bringing its own copy of the generator)
            can regenerate its labels: fine for demos and tests, not for promotion decisions
            (``flows/guards.py`` blocks those). With one, known only to the trusted side, the
            task cannot be regenerated.

    Returns:
        ``TaskData`` named ``synthetic`` (``synthetic-salted`` with a secret) with label names
        ("negative", "positive"). Every text is distinct, so no test text occurs in a training
        split or in the corpus.
    """
    sizes = {"train_label": n_train_label, "train_unlabel": n_train_unlabel, "test": n_test,
             "corpus": n_corpus}
    for name, size in sizes.items():
        if not isinstance(size, int) or size < (0 if name == "corpus" else 1):
            raise ValueError(f"n_{name} must be a positive integer, got {size!r}")
    generator = generator or ReviewGenerator()
    if secret:
        salt = int.from_bytes(hashlib.sha256(secret.encode()).digest(), "big")
        rng = np.random.default_rng([seed, salt])
    else:
        rng = np.random.default_rng(seed)
    vocabulary = generator.vocabulary(rng)
    texts, labels = _distinct_sentences(generator, vocabulary, rng, sum(sizes.values()))

    splits, offset = {}, 0
    for name in SPLIT_NAMES:
        size = sizes[name]
        splits[name] = Split(name=name, examples=tuple(
            Example(id=f"{name}-{i:05d}", text=texts[offset + i], label=int(labels[offset + i]))
            for i in range(size)))
        offset += size
    corpus = tuple(texts[:n_train_label + n_train_unlabel]) + tuple(texts[offset:])

    # No leak check needed: _distinct_sentences makes every text unique (the tests verify it).
    where = {name: f"synthetic:{name}" for name in SPLIT_NAMES}
    source = (f"synthetic(seed={seed}{', salted' if secret else ''}, "
              f"n_train_label={n_train_label}, "
              f"n_train_unlabel={n_train_unlabel}, n_test={n_test}, n_corpus={n_corpus}, "
              f"{generator})")
    return TaskData(name=SALTED_TASK_NAME if secret else TASK_NAME, splits=splits,
                    label_names=LABEL_NAMES, corpus=corpus,
                    fingerprint=content_fingerprint(splits, LABEL_NAMES, corpus), source=source,
                    warnings=balance_warnings(splits, LABEL_NAMES, where))


def _distinct_sentences(generator: ReviewGenerator, vocabulary: Vocabulary,
                        rng: np.random.Generator, count: int) -> tuple[list[str], list[int]]:
    """Sample until ``count`` distinct sentences exist; keeps first occurrences in order."""
    kept: dict[str, int] = {}
    while len(kept) < count:
        missing = count - len(kept)
        texts, labels = generator.sample(missing + missing // 100 + 10, vocabulary, rng)
        for text, label in zip(texts, labels.tolist()):
            kept.setdefault(text, label)
    items = list(kept.items())[:count]
    return [text for text, _ in items], [label for _, label in items]
