"""The word-level tokenizer: vocabulary order, specials, normalisation, padding, limits."""
from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from transfer.data import build_word_tokenizer, synthetic_task

TEXTS = ["b a c", "Zeta alpha beta", "c c B", "e é"]


def test_specials_first_then_words_by_count_then_alphabetically():
    tokenizer = build_word_tokenizer(TEXTS)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    order = sorted(tokenizer.get_vocab(), key=tokenizer.get_vocab().get)
    # counts: c 3, b 2, then a, alpha, beta, e, zeta, é once each (lowercased)
    assert order == ["<pad>", "<unk>", "<bos>", "<eos>", "c", "b", "a", "alpha", "beta", "e",
                     "zeta", "é"]
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id,
            tokenizer.eos_token_id) == (0, 1, 2, 3)


def test_same_texts_same_ids_regardless_of_order():
    forward = build_word_tokenizer(TEXTS).get_vocab()
    assert build_word_tokenizer(list(reversed(TEXTS))).get_vocab() == forward


def test_lowercases_splits_punctuation_and_maps_unknown_words():
    tokenizer = build_word_tokenizer(["question : answer a b"])
    ids = tokenizer("Question: ANSWER zzz", add_special_tokens=True)["input_ids"]
    vocab = tokenizer.get_vocab()
    assert ids == [vocab["question"], vocab[":"], vocab["answer"], tokenizer.unk_token_id]


def test_pads_on_the_right():
    tokenizer = build_word_tokenizer(TEXTS)
    batch = tokenizer(["a", "a b c"], padding=True)
    assert batch["input_ids"][0] == [tokenizer.get_vocab()["a"], 0, 0]
    assert batch["attention_mask"][0] == [1, 0, 0]


def test_min_count_and_max_vocab():
    assert set(build_word_tokenizer(TEXTS, min_count=2).get_vocab()) == {
        "<pad>", "<unk>", "<bos>", "<eos>", "c", "b"}
    assert len(build_word_tokenizer(TEXTS, max_vocab=6)) == 6
    with pytest.raises(ValueError, match="max_vocab must exceed the 4 special tokens"):
        build_word_tokenizer(TEXTS, max_vocab=4)
    with pytest.raises(ValueError, match="min_count must be at least 1"):
        build_word_tokenizer(TEXTS, min_count=0)
    with pytest.raises(ValueError, match="no word occurs at least 5 time"):
        build_word_tokenizer(TEXTS, min_count=5)


def test_built_from_the_synthetic_corpus_covers_every_pseudo_word():
    task = synthetic_task(n_train_label=200, n_train_unlabel=200, n_test=200, n_corpus=20_000)
    tokenizer = build_word_tokenizer(task.corpus)
    encoded = tokenizer(list(task.test.texts[:100]))["input_ids"]
    assert all(tokenizer.unk_token_id not in ids for ids in encoded)
    assert len(tokenizer) <= 4 + 1200


def test_special_token_strings_map_to_their_ids_and_survive_save_and_reload(tmp_path):
    tokenizer = build_word_tokenizer(TEXTS)
    vocab = tokenizer.get_vocab()
    expected = [tokenizer.bos_token_id, vocab["a"], vocab["c"], tokenizer.eos_token_id]
    assert tokenizer("<bos> a C <eos>")["input_ids"] == expected
    tokenizer.save_pretrained(tmp_path)
    reloaded = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert reloaded("<bos> a C <eos>")["input_ids"] == expected
    assert reloaded.get_vocab() == vocab and reloaded.padding_side == "right"
    assert reloaded.pad_token_id == 0
