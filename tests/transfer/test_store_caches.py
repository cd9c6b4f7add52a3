"""Model caches (tokenizers, tiny bodies, features): built once even when several workers start
at the same moment; a changed entry is never used: it is moved aside, reported and rebuilt."""
from __future__ import annotations

import logging
import multiprocessing
import time

import numpy as np
import pytest

from transfer.cache import CACHE_MANIFEST, cached_entry, entry_path

FORK = multiprocessing.get_context("fork")
WORKERS, KEYS = 4, 5


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _builder(log, value):
    def build(directory):
        with open(log, "a") as handle:
            handle.write(f"{directory.name}\n")
        time.sleep(0.2)
        (directory / "data.txt").write_text(value)
        (directory / "sub").mkdir()
        (directory / "sub" / "more.txt").write_text(value * 2)
    return build


def _worker(log, barrier, queue):
    barrier.wait(timeout=60)
    try:
        contents = [cached_entry("things", f"key{k}", _builder(log, f"value {k}"), poll_s=0.02)
                    .read_verified("data.txt").decode() for k in range(KEYS)]
        queue.put(contents)
    except Exception as err:  # noqa: BLE001
        queue.put(f"{type(err).__name__}: {err}")


def test_entries_are_built_once_by_workers_starting_together(cache, tmp_path):
    log = tmp_path / "builds.log"
    barrier, queue = FORK.Barrier(WORKERS), FORK.Queue()
    workers = [FORK.Process(target=_worker, args=(log, barrier, queue)) for _ in range(WORKERS)]
    for process in workers:
        process.start()
    results = [queue.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=30)
    assert results == [[f"value {k}" for k in range(KEYS)]] * WORKERS, results
    assert len(log.read_text().splitlines()) == KEYS  # one build per entry, not per worker
    assert sorted(p.name for p in (cache / "things").iterdir()) == [f"key{k}" for k in range(KEYS)]
    assert list((cache / "leases").glob("*.lease")) == []


@pytest.mark.parametrize("change", ["edit", "add", "remove", "no_manifest"])
def test_a_changed_entry_is_reported_moved_aside_and_rebuilt(cache, tmp_path, caplog, change):
    log = tmp_path / "builds.log"
    build = _builder(log, "original")
    cached_entry("things", "k", build)
    entry = entry_path("things", "k")
    if change == "edit":
        (entry / "sub" / "more.txt").write_text("tampered")
    elif change == "add":
        (entry / "extra.txt").write_text("x")
    elif change == "remove":
        (entry / "data.txt").unlink()
    else:
        (entry / CACHE_MANIFEST).unlink()
    with caplog.at_level(logging.WARNING, logger="transfer.cache"):
        manifest = cached_entry("things", "k", build)
    assert manifest.read_verified("sub/more.txt") == b"originaloriginal"
    assert len(log.read_text().splitlines()) == 2  # rebuilt, not reused
    assert any("integrity check failed" in r.getMessage() and str(entry) in r.getMessage()
               for r in caplog.records), caplog.text
    [aside] = entry.parent.glob(".k.corrupt-*")  # kept for inspection
    assert aside.is_dir()


def _tiny_body_and_tokenizer():
    from transfer.data import build_word_tokenizer
    from transfer.ladder import load_ladder
    from transfer.models.tiny import build_tiny_lm

    texts = [f"the film was {w} and {v}"
             for w in ("good", "bad", "fine") for v in ("long", "short")]
    tokenizer = build_word_tokenizer(texts)
    spec = load_ladder("micro").models()["micro-16x1"]
    return build_tiny_lm(spec, tokenizer, seed=0), tokenizer, texts


def test_tampered_cached_features_are_never_loaded(cache):
    """The attack of issue 8: features scrambled on disk after they were cached."""
    from transfer.models.probe import FEATURES_FILE, cached_features

    body, tokenizer, texts = _tiny_body_and_tokenizer()
    loads = []

    def load_body():
        loads.append(1)
        return body

    clean = cached_features("body-key", None, tokenizer, texts, load_body=load_body)
    assert len(loads) == 1
    np.testing.assert_array_equal(
        cached_features("body-key", None, tokenizer, texts, load_body=load_body), clean)
    assert len(loads) == 1  # a verified hit: the body is not even loaded
    [path] = (cache / "features").glob(f"*/{FEATURES_FILE}")
    np.save(path, np.random.default_rng(0).normal(size=clean.shape).astype(np.float32))
    again = cached_features("body-key", None, tokenizer, texts, load_body=load_body)
    np.testing.assert_array_equal(again, clean)
    assert len(loads) == 2  # recomputed from the body


def test_a_tampered_tiny_body_is_rebuilt(cache):
    from safetensors.torch import load_file, save_file

    from transfer.data import build_word_tokenizer
    from transfer.ladder import load_ladder
    from transfer.models.tiny import pretrained_tiny_model

    corpus = [f"the film was {w} and {v}" for w in ("good", "bad", "fine", "dull")
              for v in ("long", "short", "odd")] * 5
    tokenizer = build_word_tokenizer(corpus)
    spec = load_ladder("micro").models()["micro-16x1"]
    model, path = pretrained_tiny_model(spec, tokenizer, corpus, "task-fp")
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    [safetensors] = path.glob("*.safetensors")
    state = load_file(safetensors)
    save_file({k: v * 0 for k, v in state.items()}, safetensors, metadata={"format": "pt"})
    rebuilt, same_path = pretrained_tiny_model(spec, tokenizer, corpus, "task-fp")
    assert same_path == path
    for key, value in rebuilt.state_dict().items():
        assert value.eq(weights[key]).all(), key
    assert list(path.parent.glob(f".{path.name}.corrupt-*"))
