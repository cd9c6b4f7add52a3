"""The model ladder: named (weak, strong) rungs of growing size, loaded from YAML.

A ladder file names its models once and lists rungs that pair them::

    name: tiny
    models:
      tiny-64x2: {kind: tiny, hidden_size: 64, num_layers: 2, num_heads: 4, pretrain: {...}}
    rungs:
      - {name: r0, weak: tiny-48x2, strong: tiny-64x2}

Built-in ladders live in ``transfer/ladders/*.yaml``; any other path works the same way.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from w2s_common.errors import InputError
from w2s_common.validation import validation_input_error
from w2s_common.yamlio import node_line, read_yaml

LADDER_DIR = Path(__file__).with_name("ladders")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PretrainSpec(_Strict):
    """How a tiny model acquires latent knowledge from the task's unlabeled corpus (never test).

    ``svd`` (default): word vectors from positive PMI of sentence-level co-occurrence over the
    first ``corpus_sentences`` corpus sentences, truncated to ``rank`` dimensions by SVD, become
    the model's frozen input embeddings (Levy & Goldberg 2014). Larger models see more of the
    corpus and keep more dimensions, so they know more of the task's vocabulary.
    ``causal_lm``: next-token pretraining of the whole model for ``tokens`` tokens at ``lr``.
    """

    method: Literal["svd", "causal_lm"] = "svd"
    corpus_sentences: int | None = Field(None, gt=0, description="svd: corpus prefix used")
    rank: int | None = Field(None, gt=0, description="svd: informative dimensions kept")
    tokens: int | None = Field(None, gt=0, description="causal_lm: token budget")
    lr: float | None = Field(None, gt=0, lt=1, description="causal_lm: learning rate after warm-up")
    batch_size: int = Field(64, gt=0)
    warmup_frac: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _fields_of_the_method(self) -> PretrainSpec:
        needed = ("corpus_sentences", "rank") if self.method == "svd" else ("tokens", "lr")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"pretrain method {self.method!r} needs {', '.join(missing)}")
        return self


class TinyModelSpec(_Strict):
    """A Qwen2-architecture model built from ``Qwen2Config``; no downloads."""

    kind: Literal["tiny"]
    name: str = ""
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int | None = Field(None, gt=0)
    intermediate_size: int | None = Field(None, gt=0)
    pooling: Literal["mean", "last"] = Field("mean", description="features: mean over tokens "
                                             "or the last token, after the final norm")
    pretrain: PretrainSpec

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TinyModelSpec:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads "
                             f"{self.num_heads}")
        kv = self.num_kv_heads or self.num_heads
        if self.num_heads % kv:
            raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {kv}")
        if (self.pretrain.rank or 0) > self.hidden_size:
            raise ValueError(f"pretrain.rank {self.pretrain.rank} exceeds hidden_size "
                             f"{self.hidden_size}")
        return self

    @property
    def params(self) -> int | None:
        return None  # exact count depends on the vocabulary; see transfer.models.tiny


class HFModelSpec(_Strict):
    """A real checkpoint: a Hugging Face id (loaded from the local cache) or a local path."""

    kind: Literal["hf"]
    name: str = ""
    checkpoint: str = Field(min_length=1)
    params: int | None = Field(None, gt=0, description="parameter count (model card)")
    head: Literal["label_token", "seq_cls"] = "label_token"
    lora_r: int = Field(32, gt=0)
    lora_alpha: int = Field(64, gt=0)
    max_length: int = Field(512, gt=0)


ModelSpec = Annotated[TinyModelSpec | HFModelSpec, Field(discriminator="kind")]


# Rung and ladder names appear in tables, headings, file and flow-run names: one word.
RUNG_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Rung(_Strict):
    name: str = Field(min_length=1, pattern=RUNG_NAME_PATTERN)
    weak: ModelSpec
    strong: ModelSpec


class _RungRef(_Strict):
    name: str = Field(min_length=1, pattern=RUNG_NAME_PATTERN)
    weak: str
    strong: str


class _LadderFile(_Strict):
    name: str = Field(min_length=1, pattern=RUNG_NAME_PATTERN)
    description: str = ""
    training: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, ModelSpec]
    rungs: list[_RungRef] = Field(min_length=1)


class Ladder(_Strict):
    name: str
    description: str = ""
    catalog: dict[str, ModelSpec] = Field(default_factory=dict, description="every model the "
                                          "file defines (rungs and intermediates), smallest first")
    training: dict[str, Any] = Field(default_factory=dict,
                                     description="EngineConfig defaults for this ladder's arms")
    rungs: tuple[Rung, ...]
    source: str = ""

    def rung(self, name: str) -> Rung:
        for rung in self.rungs:
            if rung.name == name:
                return rung
        known = ", ".join(r.name for r in self.rungs)
        raise InputError(f"unknown rung {name!r}; ladder {self.name!r} has: {known}",
                         field="rung")

    def models(self) -> dict[str, TinyModelSpec | HFModelSpec]:
        """Every model the ladder defines by name, smallest first (rung models and models kept
        only as intermediates, e.g. for bootstrapping)."""
        if self.catalog:
            return dict(self.catalog)
        out: dict[str, TinyModelSpec | HFModelSpec] = {}
        for rung in self.rungs:
            out.setdefault(rung.weak.name, rung.weak)
            out.setdefault(rung.strong.name, rung.strong)
        return out

    def between(self, rung: Rung) -> list[str]:
        """Models strictly larger than the rung's weak model and smaller than its strong model."""
        low, high = _size_key(rung.weak), _size_key(rung.strong)
        return [name for name, spec in self.models().items() if low < _size_key(spec) < high]


def has_label_tokens(spec: TinyModelSpec | HFModelSpec) -> bool:
    """Whether the model reads its classes from label tokens (and so has a zero-shot prior):
    a causal-LM checkpoint with ``head: label_token``. Tiny models are probes on frozen
    features and have none; a ``seq_cls`` head has none."""
    return isinstance(spec, HFModelSpec) and spec.head == "label_token"


def spec_fingerprint(spec: BaseModel) -> str:
    """A short stable hash of a spec's content (used in cache keys)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def is_ladder_path(name_or_path: str | Path) -> bool:
    """Whether ``load_ladder`` reads ``name_or_path`` as a file (it has a suffix) rather than a
    built-in ladder's name."""
    return bool(Path(name_or_path).suffix)


def load_ladder(name_or_path: str | Path) -> Ladder:
    """Load a ladder by built-in name (``tiny``, ``micro``, ``qwen``) or from a YAML path.

    Raises:
        InputError: unknown name, unreadable YAML, unknown keys, impossible specs, rungs naming
            models that are not defined, or rungs whose strong model is not larger than the weak.
    """
    path = Path(name_or_path)
    if not is_ladder_path(path):
        path = LADDER_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise InputError(f"unknown ladder {str(name_or_path)!r}; built in: "
                             f"{', '.join(builtin_ladder_names())}", field="ladder")
    return _load_ladder_file(str(path.resolve()))


@lru_cache(maxsize=32)
def _load_ladder_file(path: str) -> Ladder:
    raw, root = read_yaml(path, "ladder file")
    try:
        parsed = _LadderFile.model_validate(raw)
    except ValidationError as err:
        # The model kind's tag is no key of the file.
        raise validation_input_error(err, path=path, root=root, drop=("tiny", "hf")) from None
    models = {name: spec.model_copy(update={"name": name}) for name, spec in parsed.models.items()}
    rungs = []
    for index, ref in enumerate(parsed.rungs):
        for role in ("weak", "strong"):
            if getattr(ref, role) not in models:
                raise InputError(f"model {getattr(ref, role)!r} is not defined under models",
                                 path=path, line=node_line(root, ("rungs", index, role)),
                                 field=f"rungs.{index}.{role}")
        weak, strong = models[ref.weak], models[ref.strong]
        if 0 < _size_key(strong) <= _size_key(weak):
            raise InputError(f"rung {ref.name!r}: the strong model must be larger than the weak",
                             path=path, line=node_line(root, ("rungs", index)),
                             field=f"rungs.{index}")
        rungs.append(Rung(name=ref.name, weak=weak, strong=strong))
    names = [r.name for r in rungs]
    if len(set(names)) != len(names):
        raise InputError("rung names must be unique", path=path, field="rungs")
    rungs.sort(key=lambda r: _size_key(r.strong))
    _check_training(parsed.training, path, root)
    catalog = dict(sorted(models.items(), key=lambda item: _size_key(item[1])))
    return Ladder(name=parsed.name, description=parsed.description, rungs=tuple(rungs),
                  catalog=catalog, training=parsed.training, source=path)


def _check_training(training: dict[str, Any], path: str, root: yaml.Node) -> None:
    from transfer.engine.config import EngineConfig

    try:
        EngineConfig(**training)
    except ValidationError as err:
        raise validation_input_error(err, path=path, root=root, prefix=("training",)) from None


def _size_key(spec: TinyModelSpec | HFModelSpec) -> float:
    if isinstance(spec, TinyModelSpec):
        # Parameter count of the body (embeddings excluded): ~12 h^2 per layer.
        return 12.0 * spec.hidden_size ** 2 * spec.num_layers
    return float(spec.params or 0)


def builtin_ladder_names() -> list[str]:
    return sorted(p.stem for p in LADDER_DIR.glob("*.yaml"))


def model_params(spec: TinyModelSpec | HFModelSpec) -> int | None:
    """Parameter count used for scale: non-embedding for tiny models, the model card's for real
    checkpoints (None when the ladder does not say)."""
    if isinstance(spec, TinyModelSpec):
        return tiny_non_embedding_params(spec)
    return spec.params


def tiny_non_embedding_params(spec: TinyModelSpec) -> int:
    """Non-embedding parameters of a tiny model (the count scaling laws use, Kaplan et al.
    2020), from its shape: ``transformers.Qwen2ForCausalLM``'s layout, tied embeddings.

    Per layer: q, k and v projections with biases (``h·h + h`` and twice ``h·kv + kv``, with
    ``kv = num_kv_heads · h / num_heads``), the output projection ``h·h``, the SwiGLU MLP
    ``3·h·i`` and two RMSNorm weights ``2·h``; then the final norm ``h``. Counted here rather
    than by building the model on the meta device because the campaign's parent process,
    which trains nothing, would import transformers for it (1.8 s per validate);
    ``transfer.models.tiny.non_embedding_params`` counts the built model and the tests check
    that both agree.
    """
    h, i = spec.hidden_size, spec.intermediate_size or 4 * spec.hidden_size
    kv = (spec.num_kv_heads or spec.num_heads) * (h // spec.num_heads)
    per_layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    return spec.num_layers * per_layer + h
