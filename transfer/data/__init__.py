"""Task data: binary tasks with train_label / train_unlabel / test splits and a corpus.

Public API:
    load_task(path | None, *, seed=0) -> TaskData     (None: the built-in synthetic task)
    synthetic_task(seed=0, n_train_label=2000, n_train_unlabel=2000, n_test=2000,
                   n_corpus=50000) -> TaskData
    build_word_tokenizer(texts, min_count=1, max_vocab=None) -> PreTrainedTokenizerFast
    Example, Split, TaskData, DataWarning, SPLIT_NAMES, ReviewGenerator

Label 1 is the positive label: every probability in the system is P(label == 1).
"""
from transfer.data.loader import load_directory, load_task
from transfer.data.schema import SPLIT_NAMES, DataWarning, Example, Split, TaskData
from transfer.data.synthetic import ReviewGenerator, Vocabulary, synthetic_task
from transfer.data.tokenizer import build_word_tokenizer

__all__ = ["SPLIT_NAMES", "DataWarning", "Example", "ReviewGenerator", "Split", "TaskData",
           "Vocabulary", "build_word_tokenizer", "load_directory", "load_task", "synthetic_task"]
