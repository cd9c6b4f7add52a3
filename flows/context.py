"""Build the objects every entry point needs (ladder, task, store, engine config) from options."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transfer.errors import InputError


def engine_config(ladder, overrides: dict[str, Any] | None = None):
    """The ladder's training defaults with ``overrides`` on top, validated."""
    from pydantic import ValidationError

    from transfer.engine import EngineConfig

    settings = {**ladder.training, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        return EngineConfig(**settings)
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(first["msg"], field=".".join(str(p) for p in first["loc"])) from None


def arm_context(ladder: str | Path, data: str | Path | None, store: str | Path | None,
                overrides: dict[str, Any] | None = None, data_seed: int = 0):
    """An `ArmContext` for one (ladder, dataset): shared backends, one store."""
    from transfer.arms import ArmContext
    from transfer.ladder import load_ladder
    from transfer.store import RunStore

    ladder_obj = load_ladder(ladder)
    task = load_dataset(data, data_seed)
    return ArmContext(ladder=ladder_obj, task=task, store=RunStore(store),
                      engine_config=engine_config(ladder_obj, overrides))


# Caches the trainer reads inside the sandbox (pretrained bodies, features, tokenizers).
TRAINER_CACHES = ("models", "features", "tokenizers")


def hidden_paths(ctx, data: str | Path | None) -> list[str]:
    """Paths a sandboxed method must not read: the dataset's files and the run store.

    The evaluator's sources (``methods.runner.default_hidden_paths``) are added by
    :func:`method_function` itself, so that no caller can forget them.

    Args:
        ctx: the ``ArmContext`` whose store holds scored runs (gold labels in ``correct``).
        data: the ``--data`` argument; ``None``/``"synthetic"`` has no files to hide.

    Returns:
        absolute paths, existing or not (the sandbox skips missing ones).

    Raises:
        InputError: a hidden path contains a cache the trainer reads (e.g. ``--store`` set to the
            cache root), so hiding it would break training.
    """
    from transfer.fsutil import cache_dir

    hidden: list[tuple[str, str]] = [("--store", str(Path(ctx.store.root).resolve()))]
    if data is not None and str(data) != "synthetic":
        hidden.append(("--data", str(Path(data).resolve())))
    caches = [(cache_dir() / name).resolve() for name in TRAINER_CACHES]
    for option, path in hidden:
        for cache in caches:
            if cache == Path(path) or Path(path) in cache.parents:
                raise InputError(f"{path} contains the trainer's cache {cache}, which methods "
                                 "must read; choose a directory beside it", field=option)
    return [path for _, path in hidden]


def method_function(name: str, params: list[str] | dict[str, Any] | None, *, ctx=None,
                    data: str | Path | None = None, hide: Sequence[str | Path] = (),
                    isolation: str = "auto", timeout_s: float = 24 * 3600.0):
    """Resolve a method and its params into ``(label, params_dict, fn(data, trainer))``.

    ``fn`` runs the method through ``methods.runner.run_method``: built-ins in this process,
    plugins (entry points, ``module:attr``) in the sandbox worker, which sees neither the
    paths of :func:`hidden_paths` (``ctx``, ``data``), nor ``hide``, nor the evaluator's
    sources (``default_hidden_paths``), but does see the trainer's caches (``$W2S_CACHE_DIR``
    is passed on, so it reuses what this process built). ``fn.isolation``
    lists how each call was isolated (``in-process``, ``namespace`` or ``subprocess``).

    Args:
        name: built-in name, entry-point name or ``module:attr``.
        params: ``key=value`` strings (CLI) or a typed mapping (plans, run specs).
        ctx, data: the ``ArmContext`` and ``--data`` the method will run on; their store and
            dataset files are hidden. Leave both out only to check a name and params.
        hide: more paths untrusted code must not read.
        isolation: ``auto``, ``namespace`` (refuse the unisolated fallback) or ``subprocess``.
        timeout_s: limit for one sandboxed plugin run.

    Returns:
        ``(method name, params as a JSON-able dict, fn)``.

    Raises:
        InputError: unknown method or bad params (one line, naming the field), or a store
            that contains the trainer's caches.
    """
    from methods.registry import parse_params, resolve_method
    from methods.runner import default_hidden_paths, run_method
    from transfer.fsutil import cache_dir

    method = resolve_method(name)
    parsed = parse_params(method, params if isinstance(params, dict) else list(params or []))
    params_dict = parsed.model_dump(mode="json")
    hidden = [*(hidden_paths(ctx, data) if ctx is not None else []), *(str(p) for p in hide),
              *default_hidden_paths()]

    def run(student_data, trainer):
        done = run_method(method, student_data, trainer, parsed, hide=hidden, isolation=isolation,
                          timeout_s=timeout_s, env_extra={"W2S_CACHE_DIR": str(cache_dir())})
        run.isolation.append(done.isolation)
        return done.probs

    run.isolation = []
    return method.name, params_dict, run


def load_dataset(path: str | Path | None, data_seed: int = 0):
    """A task by path; ``None`` or ``"synthetic"`` is the built-in synthetic task."""
    from transfer.data import load_task

    if path is not None and str(path) == "synthetic":
        path = None
    return load_task(path, seed=data_seed)
