"""Ladders: built-ins load in size order; bad ladder files are one-line errors with file:line."""
from __future__ import annotations

import pytest

from transfer.ladder import builtin_ladder_names, load_ladder, model_params
from w2s_common.errors import InputError


def test_builtin_ladders_are_ordered_by_strong_size():
    assert {"tiny", "micro", "qwen"} <= set(builtin_ladder_names())
    for name in builtin_ladder_names():
        ladder = load_ladder(name)
        sizes = [model_params(r.strong) for r in ladder.rungs]
        assert sizes == sorted(sizes), name
        for rung in ladder.rungs:
            assert model_params(rung.weak) < model_params(rung.strong)


@pytest.mark.parametrize("shape", [
    {},  # each built-in tiny model's own shape (below)
    {"hidden_size": 48, "num_layers": 3, "num_heads": 6, "num_kv_heads": 2},
    {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "intermediate_size": 40},
])
def test_the_analytic_tiny_parameter_count_equals_the_built_models(shape):
    """model_params counts from the shape (the parent process imports no transformers); it
    must equal the count of the model transformers builds, for grouped-query attention and a
    set intermediate size too."""
    from transfer.ladder import TinyModelSpec
    from transfer.models.tiny import non_embedding_params

    specs = {model.name: model for name in builtin_ladder_names()
             for rung in load_ladder(name).rungs for model in (rung.weak, rung.strong)
             if isinstance(model, TinyModelSpec)}
    assert specs, "no built-in ladder has a tiny model"
    if shape:
        base = next(iter(specs.values()))
        specs = {"variant": base.model_copy(update=shape)}
    for name, spec in specs.items():
        assert model_params(spec) == non_embedding_params(spec), name


def test_tiny_ladder_has_three_growing_rungs_and_chained_checkpoints():
    ladder = load_ladder("tiny")
    assert len(ladder.rungs) >= 3
    for lower, upper in zip(ladder.rungs, ladder.rungs[1:]):
        assert lower.strong.name == upper.weak.name


def test_qwen_ladder_starts_at_the_discovery_pair_and_reaches_70b_class():
    ladder = load_ladder("qwen")
    assert ladder.rungs[0].weak.checkpoint == "Qwen/Qwen1.5-0.5B-Chat"
    assert ladder.rungs[0].strong.checkpoint == "Qwen/Qwen3-4B-Base"
    assert model_params(ladder.rungs[-1].strong) >= 65e9


def _write(tmp_path, text):
    path = tmp_path / "ladder.yaml"
    path.write_text(text)
    return path


GOOD_MODELS = ("models:\n"
               "  a: {kind: tiny, hidden_size: 16, num_layers: 1, num_heads: 2,"
               " pretrain: {corpus_sentences: 100, rank: 2}}\n"
               "  b: {kind: tiny, hidden_size: 32, num_layers: 1, num_heads: 2,"
               " pretrain: {corpus_sentences: 100, rank: 2}}\n")


@pytest.mark.parametrize("body, expected", [
    ("name: x\n" + GOOD_MODELS + "rungs:\n  - {name: r, weak: a, strong: b, colour: red}\n",
     ["ladder.yaml:6", "rungs.0.colour", "Extra inputs are not permitted"]),
    ("name: x\n" + GOOD_MODELS + "rungs:\n  - {name: r, weak: a, strong: zzz}\n",
     ["ladder.yaml:6", "rungs.0.strong", "'zzz' is not defined"]),
    ("name: x\n" + GOOD_MODELS + "rungs:\n  - {name: r, weak: b, strong: a}\n",
     ["ladder.yaml:6", "strong model must be larger"]),
    ("name: x\nmodels:\n  a: {kind: tiny, hidden_size: 30, num_layers: 1, num_heads: 4, "
     "pretrain: {corpus_sentences: 10, rank: 2}}\nrungs:\n  - {name: r, weak: a, strong: a}\n",
     ["ladder.yaml:3", "models.a", "not divisible by num_heads"]),
    ("name: x\n" + GOOD_MODELS
     + "training: {epochs: 0}\nrungs:\n  - {name: r, weak: a, strong: b}\n",
     ["ladder.yaml:5", "training.epochs", "greater than or equal to 1"]),
    ("name: x\nmodels: [\n", ["ladder.yaml", "invalid YAML"]),
])
def test_bad_ladder_files_name_file_line_and_field(tmp_path, body, expected):
    with pytest.raises(InputError) as err:
        load_ladder(_write(tmp_path, body))
    message = str(err.value)
    for part in expected:
        assert part in message, message
    assert "\n" not in message


def test_unknown_ladder_name_lists_the_builtins():
    with pytest.raises(InputError, match="unknown ladder 'nope'.*tiny"):
        load_ladder("nope")


def test_unknown_rung_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown rung 'r9'.*r0, r1, r2"):
        load_ladder("tiny").rung("r9")


def test_pretrain_method_needs_its_own_fields(tmp_path):
    body = ("name: x\nmodels:\n  a: {kind: tiny, hidden_size: 16, num_layers: 1, num_heads: 2, "
            "pretrain: {method: causal_lm, rank: 2}}\nrungs:\n  - {name: r, weak: a, strong: a}\n")
    with pytest.raises(InputError, match="ladder.yaml:3: models.a.pretrain: .*needs tokens, lr"):
        load_ladder(_write(tmp_path, body))


def test_rung_and_ladder_names_are_one_word(tmp_path):
    """helper-44: a rung named "m\\n1" passed preparation and broke every table it is in."""
    from transfer.ladder import LADDER_DIR, load_ladder
    from w2s_common.errors import InputError

    path = tmp_path / "odd.yaml"
    path.write_text((LADDER_DIR / "micro.yaml").read_text().replace("{name: m1,",
                                                                      '{name: "m\\n1",'))
    with pytest.raises(InputError, match=r"odd\.yaml:\d+: rungs\.1\.name: String should match"):
        load_ladder(path)
