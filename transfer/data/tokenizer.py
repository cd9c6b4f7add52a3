"""A word-level tokenizer for the tiny models, built from a task's corpus (never its test texts)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


def build_word_tokenizer(texts: Iterable[str], min_count: int = 1,
                         max_vocab: int | None = None) -> PreTrainedTokenizerFast:
    """Build a lowercasing word-level tokenizer from ``texts``.

    Words are what the ``Whitespace`` pre-tokenizer yields (runs of word characters, and runs
    of punctuation) after lowercasing. Ids 0-3 are ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``;
    words follow by descending count, ties alphabetically, so the same texts always give the
    same ids. Unknown words map to ``<unk>``. Padding is on the right. No special tokens are
    added automatically (as with Qwen tokenizers); callers add ``<bos>``/``<eos>`` if wanted.

    Args:
        texts: the corpus (e.g. ``TaskData.corpus``).
        min_count: drop words seen fewer times than this.
        max_vocab: largest vocabulary size including the 4 special tokens (None: no limit).

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with pad/unk/bos/eos tokens set.

    Raises:
        ValueError: ``min_count`` < 1, ``max_vocab`` leaves no room for a word, or the texts
            hold no word that passes ``min_count``.
    """
    # Imported on use: ``transfer.data`` is imported by every validate's parent process, which
    # reads datasets but builds no tokenizer (tokenizers and transformers cost it about 0.7 s).
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    if max_vocab is not None and max_vocab <= len(SPECIAL_TOKENS):
        raise ValueError(f"max_vocab must exceed the {len(SPECIAL_TOKENS)} special tokens, "
                         f"got {max_vocab}")
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    # The trainer orders words by count, then alphabetically (checked by the tests).
    trainer = trainers.WordLevelTrainer(
        vocab_size=max_vocab if max_vocab is not None else 2**31 - 1,
        min_frequency=min_count, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise ValueError(f"no word occurs at least {min_count} time(s) in the texts")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, unk_token=UNK,
                                   bos_token=BOS, eos_token=EOS, padding_side="right")
