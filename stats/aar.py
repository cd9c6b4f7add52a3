"""Import the released ``cache_results/`` directory of the automated W2S research sandbox.

Layout: ``cache_results/<dataset>_<idea>/<hyperparameter key>/seed_<n>.json``.  ``weak_artifacts``
records give the weak arm (``weak_acc``), ``train_ceiling`` records the ceiling (``strong_acc``),
every other idea is a method (``transfer_acc``); the sandbox's fixed baselines are the means over
all weak and ceiling seeds, which is what the aggregate table reproduces.  Damaged records (null or
missing fields, unreadable JSON) are used for what they have and reported in ``notes``; a field of
the wrong type, out of range or not finite is refused with the record's file and the field
(``SandboxRecord``); the older nested ``cache_results/cache_results/`` copy is ignored and
reported, never double-counted.

Every record is also checked against its path and the other records (``AarImport.quality``, a
``stats.quality.DataQuality``): its ``seed`` and ``config.seed`` fields against the file name,
its ``idea_name`` against the directory, its stored ``weak_acc`` / ``strong_acc`` (the weak and
ceiling runs of the seed it was trained on) against the weak and ceiling runs filed under that
seed, its accuracy against a count over the test set (a value rounded to 4 decimals is not one),
and its stored ``fixed_weak_baseline`` / ``fixed_strong_baseline`` against the means of the weak
and ceiling runs in the directory.  ``analyze_table`` puts a method whose records contradict
their paths on a DATA-QUALITY hold.
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from stats.errors import StatsInputError
from stats.quality import DataQuality, RecordIssue
from stats.table import MAX_EXAMPLES
from w2s_common.errors import TOO_LONG_NUMBER
from w2s_common.names import MAX_SEED
from w2s_common.validation import validation_input_error

WEAK_IDEA = "weak_artifacts"
CEILING_IDEA = "train_ceiling"
BASELINE_IDEA = "vanilla_w2s"
RUNG = "sandbox"
_SEED_FILE = re.compile(r"^seed_(\d+)\.json$")
_IDEA_DIR = re.compile(r"^([A-Za-z0-9]+)_(.+)$")
_PARAMS = re.compile(r"(\d+(?:\.\d+)?)\s*([BM])\b", re.IGNORECASE)
# Far above any model (10^15 parameters): a larger size in a name is garbage, not a model.
MAX_PARAMS = 10**15


@dataclass
class AarImport:
    """The sandbox as an aggregate results table, plus what the import noticed.

    Attributes:
        table: aggregate form (rung, dataset, seed, arm, accuracy, n, model columns).
        notes: plain-language reports of skipped or repaired records.
        reported_pgr: (dataset, arm) -> mean of the records' own ``pgr`` fields.
        fixed_baselines: dataset -> {"weak": x, "ceiling": x} as stored in the method records.
        quality: record-by-record checks (pass to ``analyze_table(data_quality=...)``).
    """

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    reported_pgr: dict[tuple[str, str], float] = field(default_factory=dict)
    fixed_baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    quality: DataQuality = field(default_factory=DataQuality)


def is_aar_cache(path: str | Path) -> bool:
    """True when ``path`` is (or directly contains) a sandbox ``cache_results`` directory."""
    return _root(Path(path)) is not None


def _root(path: Path) -> Path | None:
    if not path.is_dir():
        return None
    for candidate in (path, path / "cache_results"):
        if candidate.is_dir() and any(_IDEA_DIR.match(p.name) and p.is_dir()
                                      and any(p.glob("*/seed_*.json"))
                                      for p in candidate.iterdir()):
            return candidate
    return None


def parse_params(model: str | None) -> int | None:
    """Parameter count from a model name such as ``Qwen/Qwen3-4B-Base`` (4e9), else None."""
    if not model:
        return None
    found = _PARAMS.findall(model.split("/")[-1].replace("_", "-"))
    if not found:
        return None
    number, unit = found[-1]
    count = float(number) * (1e9 if unit.upper() == "B" else 1e6)
    if not (math.isfinite(count) and count <= MAX_PARAMS):
        raise ValueError(f"names a size above {MAX_PARAMS:.0e} parameters; expected a model "
                         "name such as Qwen/Qwen3-4B-Base")
    return int(count)


# The fields of a sandbox record that the importer reads, typed: a field of the wrong type, out
# of range or not finite is refused with the record's file and the field, never guessed at. Null
# or missing fields are allowed (the released records have them) and used for what they have.
# strict: true is not 1.0, and "0.7" is not a number.
_Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
_Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_Count = Annotated[int, Field(strict=True, ge=0, le=MAX_EXAMPLES)]
_Size = Annotated[int, Field(strict=True, ge=1, le=MAX_EXAMPLES)]
_Seed = Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)]
_ModelName = Annotated[str, Field(strict=True), AfterValidator(lambda m: (parse_params(m), m)[1])]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # the records carry much more


class _FinalEval(_Fields):
    accuracy: _Fraction | None = None
    correct: _Count | None = None
    total: _Size | None = None

    @model_validator(mode="after")
    def _correct_within_total(self) -> _FinalEval:
        if self.correct is not None and self.total is not None and self.correct > self.total:
            raise ValueError(f"correct {self.correct} exceeds total {self.total}")
        return self


class _Eval(_Fields):
    final_eval: _FinalEval | None = None


class _DetailedEval(_Fields):
    weak: _Eval | None = None
    ceiling: _Eval | None = None
    strong: _Eval | None = None


class _TrainingStep(_Fields):
    transfer_acc: _Fraction | None = None


class _DataStep(_Fields):
    test_samples: _Size | None = None


class _Config(_Fields):
    seed: _Seed | None = None


class SandboxRecord(_Fields):
    """What the importer reads from one ``seed_<n>.json``."""

    weak_acc: _Fraction | None = None
    strong_acc: _Fraction | None = None
    transfer_acc: _Fraction | None = None
    pgr: _Finite | None = None
    fixed_weak_baseline: _Fraction | None = None
    fixed_strong_baseline: _Fraction | None = None
    seed: _Seed | None = None
    config: _Config | None = None
    idea_name: Annotated[str, Field(strict=True)] | None = None
    weak_model: _ModelName | None = None
    strong_model: _ModelName | None = None
    detailed_eval: _DetailedEval | None = None
    step11_sft_training: _TrainingStep | None = None
    step1_data_loading: _DataStep | None = None

    def final_eval(self, key: str) -> _FinalEval:
        """``detailed_eval.<key>.final_eval`` (empty when any level is missing)."""
        evaluation = getattr(self.detailed_eval, key, None) if self.detailed_eval else None
        return (evaluation.final_eval if evaluation else None) or _FinalEval()


_EVAL_KEY = {WEAK_IDEA: "weak", CEILING_IDEA: "ceiling"}  # every other idea: "strong"
_DIRECT_KEY = {WEAK_IDEA: "weak_acc", CEILING_IDEA: "strong_acc"}  # else: "transfer_acc"


def _accuracy(record: SandboxRecord, idea: str) -> tuple[float | None, float | None]:
    """(accuracy, n) with the fallbacks the released records need."""
    acc = getattr(record, _DIRECT_KEY.get(idea, "transfer_acc"))
    final = record.final_eval(_EVAL_KEY.get(idea, "strong"))
    if acc is None:
        acc = final.accuracy
    if acc is None and final.correct is not None and final.total:
        acc = final.correct / final.total
    n = float(final.total) if final.total else None
    if acc is None and idea not in _EVAL_KEY and record.step11_sft_training:
        acc = record.step11_sft_training.transfer_acc
    if n is None and record.step1_data_loading and record.step1_data_loading.test_samples:
        n = float(record.step1_data_loading.test_samples)
    return acc, n


def _read_record(file: Path) -> SandboxRecord | str:
    """The record in ``file``, or why it is unreadable (skipped and noted, as the module says).

    Raises:
        StatsInputError: a field of the wrong type or out of range (names the file and field).
    """
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"unreadable JSON ({type(err).__name__})"
    except ValueError:  # an integer past Python's conversion limit
        return f"unreadable JSON ({TOO_LONG_NUMBER})"
    except RecursionError:
        return "unreadable JSON (nested too deeply)"
    if not isinstance(raw, dict):
        return "not a JSON object"
    try:
        return SandboxRecord.model_validate(raw)
    except ValidationError as err:
        raise validation_input_error(err, path=file) from None


def _file_seed(file: Path, digits: str) -> int:
    seed = int(digits)
    if seed > MAX_SEED:
        raise StatsInputError(f"seed {digits} in the file name; expected a seed in 0..{MAX_SEED}",
                              path=file)
    return seed


def load_aar_cache(path: str | Path) -> AarImport:
    """Read a sandbox ``cache_results`` directory into an aggregate results table.

    Args:
        path: the ``cache_results`` directory or a directory that contains it.
    Returns:
        ``AarImport`` (arms: ``weak``, ``ceiling`` and the idea names; ``vanilla_w2s`` is the
        sandbox baseline).
    Raises:
        StatsInputError: not a sandbox directory, or no usable weak/ceiling/method records.
    """
    root = _root(Path(path))
    if root is None:
        raise StatsInputError("not a sandbox cache_results directory (expected "
                              "<dataset>_<idea>/<key>/seed_<n>.json files)", path=path)
    notes: list[str] = []
    nested = root / "cache_results"
    if nested.is_dir():
        count = sum(1 for _ in nested.rglob("seed_*.json"))
        notes.append(f"ignored the older nested copy {nested.name}/ under {root.name}/ "
                     f"({count} records) so nothing is double-counted")
    rows, reported, fixed = [], defaultdict(list), defaultdict(lambda: defaultdict(list))
    kept: list[dict] = []
    for idea_dir in sorted(p for p in root.iterdir() if p.is_dir() and p != nested):
        match = _IDEA_DIR.match(idea_dir.name)
        keys = [k for k in sorted(idea_dir.iterdir()) if k.is_dir()]
        if not match:
            notes.append(f"skipped {idea_dir.name}/: not a <dataset>_<idea> directory")
            continue
        dataset, idea = match.groups()
        filled = [k for k in keys if any(k.glob("seed_*.json"))]
        for k in keys:
            if k not in filled:
                notes.append(f"{idea_dir.name}/{k.name}: no seed records (skipped)")
        if not filled:
            continue
        filled.sort(key=lambda k: -sum(1 for _ in k.glob("seed_*.json")))
        for k in filled[1:]:
            notes.append(f"{idea_dir.name}/{k.name}: a second hyperparameter setting; used "
                         f"{filled[0].name} (most seeds) and ignored this one")
        rows.extend(_read_key_dir(filled[0], dataset, idea, notes, reported, fixed, kept))
    if not rows:
        raise StatsInputError("no usable records in the sandbox directory", path=path)
    table = pd.DataFrame(rows)
    _fill_missing_n(table, notes)
    _check_arms(table, path)
    table.attrs["kind"] = "aggregate"
    return AarImport(table, notes,
                     {k: float(np.mean(v)) for k, v in reported.items()},
                     {ds: {arm: float(np.mean(v)) for arm, v in d.items()}
                      for ds, d in fixed.items()},
                     record_quality(kept, table))


def _read_key_dir(key_dir: Path, dataset: str, idea: str, notes: list[str], reported, fixed,
                  kept: list[dict]) -> list[dict]:
    arm = {WEAK_IDEA: "weak", CEILING_IDEA: "ceiling"}.get(idea, idea)
    rows = []
    for file in sorted(key_dir.iterdir(), key=lambda p: p.name):
        m = _SEED_FILE.match(file.name)
        if not m:
            continue
        where = f"{key_dir.parent.name}/{file.name}"
        seed = _file_seed(file, m.group(1))  # seed and idea fields are checked in record_quality
        record = _read_record(file)
        if isinstance(record, str):
            notes.append(f"{where}: {record}, skipped")
            continue
        acc, n = _accuracy(record, idea)
        if acc is None:
            notes.append(f"{where}: no accuracy (fields null or missing), skipped")
            continue
        if record.pgr is not None:
            reported[(dataset, arm)].append(record.pgr)
        for value, base in ((record.fixed_weak_baseline, "weak"),
                            (record.fixed_strong_baseline, "ceiling")):
            if value is not None:
                fixed[dataset][base].append(value)
        kept.append(_record_facts(record, f"{key_dir.parent.name}/{key_dir.name}/{file.name}",
                                  dataset, idea, arm, seed, acc, n))
        weak_model = record.weak_model if arm != "ceiling" else None
        strong_model = record.strong_model if arm != "weak" else None
        rows.append({"rung": RUNG, "dataset": dataset, "seed": seed, "arm": arm, "accuracy": acc,
                     "n": n, "weak_model": weak_model, "strong_model": strong_model,
                     "weak_params": parse_params(weak_model),
                     "strong_params": parse_params(strong_model)})
    return rows


def _fill_missing_n(table: pd.DataFrame, notes: list[str]) -> None:
    """Weak records keep no test-set size; the test set is shared, so borrow the dataset's n."""
    for _dataset, rows in table.groupby("dataset"):
        known = rows["n"].dropna()
        missing = rows["n"].isna()
        if missing.any() and len(known):
            table.loc[rows.index[missing.to_numpy()], "n"] = float(known.mode().iloc[0])


def _check_arms(table: pd.DataFrame, path) -> None:
    arms = set(table["arm"])
    for needed in ("weak", "ceiling"):
        if needed not in arms:
            raise StatsInputError(f"no usable {WEAK_IDEA if needed == 'weak' else CEILING_IDEA} "
                                  "records", path=path)
    if not arms - {"weak", "ceiling"}:
        raise StatsInputError("no method records besides the weak and ceiling baselines",
                              path=path)


def _record_facts(record: SandboxRecord, path: str, dataset: str, idea: str, arm: str,
                  seed: int, acc: float, n: float | None) -> dict:
    """What a record says about itself, for ``record_quality``."""
    final = record.final_eval(_EVAL_KEY.get(idea, "strong"))
    counts = (final.correct, final.total) if final.correct is not None and final.total else None
    return {"path": path, "dataset": dataset, "idea": idea, "arm": arm, "seed": seed,
            "acc": acc, "n": n, "counts": counts,
            "seed_field": record.seed,
            "config_seed": record.config.seed if record.config else None,
            "idea_field": record.idea_name,
            "weak_acc": record.weak_acc if arm != "weak" else None,
            "strong_acc": record.strong_acc if arm != "ceiling" else None,
            "fixed_weak": record.fixed_weak_baseline,
            "fixed_strong": record.fixed_strong_baseline}


def _seed_with(value: float | None, runs: dict[int, float]) -> int | None:
    """The seed whose run has exactly this accuracy (None when none or several do)."""
    if value is None:
        return None
    hits = [s for s, v in runs.items() if abs(v - value) <= 1e-9]
    return hits[0] if len(hits) == 1 else None


def _is_rounded(acc: float, n: float | None) -> bool:
    """True when ``acc`` has at most 4 decimals but is not a count over ``n`` examples."""
    if n is None or n < 1 or round(acc, 4) != acc:
        return False
    return abs(acc * n - round(acc * n)) > 1e-6


def record_quality(kept: list[dict], table: pd.DataFrame) -> DataQuality:
    """Check every record against its path and the other records (module docstring).

    Args:
        kept: facts of every record used (``_record_facts``).
        table: the imported aggregate table (weak and ceiling runs per seed).
    Returns:
        ``DataQuality`` with the issues, the pairings the records suggest ("records' seed
        fields", "records' stored weak/ceiling runs") and dataset-level notes.
    """
    quality = DataQuality()
    runs = {(ds, arm): dict(zip(rows["seed"].astype(int), rows["accuracy"].astype(float)))
            for (ds, arm), rows in table.groupby(["dataset", "arm"])}
    by_field: dict[tuple[str, str, int], int] = {}
    by_runs: dict[tuple[str, str, int], int] = {}
    claims: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for f in kept:
        said = [v for v in (f["seed_field"], f["config_seed"]) if isinstance(v, int)]
        if said:
            claims[(f["dataset"], f["arm"], said[0])].append(f["path"])
    for f in kept:
        where, ds, arm, seed = f["path"], f["dataset"], f["arm"], f["seed"]
        fields = {name: f[key]
                  for name, key in (("seed", "seed_field"), ("config.seed", "config_seed"))
                  if f[key] is not None}
        wrong = {name: v for name, v in fields.items() if v != seed}
        if wrong:
            said = next(iter(wrong.values()))
            others = [p for p in claims.get((ds, arm, said), []) if p != where]
            also = f" (as do {len(others)} other records of {arm} on {ds})" if others else ""
            text = ", ".join(f"{k} {v!r}" for k, v in wrong.items())
            quality.issues.append(RecordIssue(
                ds, arm, where, "seed_field",
                f"{where}: the record says {text}{also}, but its file name says seed {seed}"))
            if isinstance(said, int):
                by_field[(ds, arm, seed)] = said
        if f["idea_field"] not in (None, f["idea"]):
            quality.issues.append(RecordIssue(
                ds, arm, where, "idea_field",
                f"{where}: the record says idea {f['idea_field']!r}, but it is filed under "
                f"{f['idea']!r}"))
        if arm not in ("weak", "ceiling"):
            weak_seed = _seed_with(f["weak_acc"], runs.get((ds, "weak"), {}))
            ceil_seed = _seed_with(f["strong_acc"], runs.get((ds, "ceiling"), {}))
            trained = {s for s in (weak_seed, ceil_seed) if s is not None}
            if trained and seed not in trained:
                other = sorted(trained)[0]
                quality.issues.append(RecordIssue(
                    ds, arm, where, "trained_on_other_seed",
                    f"{where}: its stored weak/ceiling accuracies are those of the seed-{other} "
                    f"runs, not of seed {seed}, so it was trained on seed {other}'s weak labels"))
                by_runs[(ds, arm, seed)] = other
        if _is_rounded(f["acc"], f["n"]):
            exact = (f" ({f['counts'][0]}/{f['counts'][1]} = {f['counts'][0] / f['counts'][1]:.6f} "
                     "by its own counts)") if f["counts"] else ""
            quality.issues.append(RecordIssue(
                ds, arm, where, "rounded",
                f"{where}: accuracy {f['acc']} is rounded to 4 decimals, not a count over "
                f"{int(f['n'])} test examples{exact}"))
    _stored_baselines(kept, runs, quality)
    if by_field:
        quality.pairings["records' seed fields"] = by_field
    if by_runs:
        quality.pairings["records' stored weak/ceiling runs"] = by_runs
    return quality


def _stored_baselines(kept: list[dict], runs: dict, quality: DataQuality) -> None:
    """Compare the records' stored fixed baselines with the means of the runs in the directory."""
    groups: dict[tuple[str, str, float], list[str]] = defaultdict(list)
    for f in kept:
        for arm, key in (("weak", "fixed_weak"), ("ceiling", "fixed_strong")):
            if f[key] is not None:
                groups[(f["dataset"], arm, f[key])].append(f["path"])
    for (ds, arm, stored), paths in sorted(groups.items()):
        values = runs.get((ds, arm))
        if not values:
            continue
        mean = float(np.mean(list(values.values())))
        field_name = "fixed_weak_baseline" if arm == "weak" else "fixed_strong_baseline"
        if abs(stored - mean) <= 5e-5 + 1e-12:  # equal up to rounding to 4 decimals
            continue
        quality.notes.append(
            f"{ds}: {len(paths)} record(s) store {field_name} {stored:.4f}, but the "
            f"{len(values)} {arm} runs in the directory average {mean:.4f}; the records' own PGR "
            "was computed against other baselines")
        for path in paths:
            quality.issues.append(RecordIssue(
                ds, next(f["arm"] for f in kept if f["path"] == path), path, "stored_baseline",
                f"{path}: stores {field_name} {stored:.4f}; the {arm} runs average {mean:.4f}"))
