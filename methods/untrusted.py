"""Start untrusted code (plugin jobs, external commands) the way the jail settings say.

The only two ways untrusted code runs: :func:`run_job` for ``python -m methods.jail_worker``
(plugins) and :func:`run_command` for external commands. Both go through the jail unless the
settings opt out (``mode: off``), and both record the isolation used (``methods.policy``).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from methods.jail import (
    JailLimits,
    JailResult,
    JailTimeout,
    JailUnavailable,
    run_jailed,
    run_process,
)
from methods.jail_runtime import JOB, OUT, JailRequest, JailSetupError, jail_spec
from methods.policy import Isolation, JailSettings, record
from w2s_common.errors import InputError

# An unjailed child still gets a scrubbed environment: no credentials, no server addresses.
UNJAILED_VARS = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONHASHSEED", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM",
                 "W2S_CACHE_DIR", "TORCH_EXTENSIONS_DIR")


def _jail_error(err: Exception, field: str) -> InputError:
    return InputError(f"{err} (to run unjailed instead, set `jail: {{mode: off}}` in the plan "
                      "or pass --unjailed; such a method is never promoted)", field=field)


def _run_unjailed(argv: Sequence[str], cwd: Path, timeout_s: float,
                  extra_env: dict[str, str], limits: JailLimits) -> JailResult:
    env = {name: os.environ[name] for name in UNJAILED_VARS if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({"HOME": str(cwd), **extra_env})
    return run_process(argv, env=env, cwd=str(cwd), limits=limits, timeout_s=timeout_s,
                       label="none")


def _readable(job: Path) -> None:
    """Make the job's inputs readable by the jail's uid (temp files are created 0600)."""
    for path in [job, *job.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def run_job(mode: str, job: Path, out: Path, settings: JailSettings, *,
            modules: Sequence[str] = (), model_paths: Sequence[str] = (),
            timeout_s: float | None = None,
            snapshots: Mapping[str, str] | None = None) -> tuple[JailResult, Isolation]:
    """Run ``python -m methods.jail_worker MODE`` on ``job``/``out`` (see methods.jail_worker).

    Args:
        mode: ``describe`` or ``run``.
        job, out: the host directories of the job's inputs and outputs.
        settings: the jail settings (``mode: off`` runs it as a plain subprocess).
        modules: modules the job imports (the plugin's, those of pickled objects).
        model_paths: checkpoint directories the trainer loads.
        timeout_s: wall-clock limit (default ``settings.timeout_s``).
        snapshots: the method's code snapshots (``methods.jail_runtime.code_mounts``).

    Raises:
        InputError: no jail can be built here and the settings require one; the job timed out.
    """
    limit = timeout_s if timeout_s is not None else settings.timeout_s
    _readable(job)
    try:
        if settings.mode == "off":
            paths = [p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p)]
            result = _run_unjailed([sys.executable, "-m", "methods.jail_worker", mode, str(job),
                                    str(out)], out, limit,
                                   {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))},
                                   settings.limits(use_gpu=True))
            isolation: Isolation = "unjailed"
        else:
            use_gpu = "CUDA_VISIBLE_DEVICES" not in os.environ or \
                os.environ["CUDA_VISIBLE_DEVICES"] not in ("", "-1")
            request = JailRequest(job_dir=job, out_dir=out, modules=tuple(modules),
                                  model_paths=tuple(model_paths),
                                  snapshots=None if snapshots is None else tuple(
                                      sorted(snapshots.items())),
                                  limits=settings.limits(use_gpu=_has_gpu() and use_gpu),
                                  use_gpu=_has_gpu() and use_gpu)
            result = run_jailed([sys.executable, "-m", "methods.jail_worker", mode],
                                jail_spec(request), timeout_s=limit)
            isolation = "jail"
    except (JailUnavailable, JailSetupError) as err:
        raise _jail_error(err, "jail") from None
    except JailTimeout as err:
        raise InputError(f"method job timed out after {err.timeout_s:g} s", field="jail.timeout_s"
                         ) from None
    record(isolation)
    return result, isolation


def run_command(argv: Sequence[str], job: Path, out: Path, settings: JailSettings, *,
                files: Mapping[str, str], timeout_s: float) -> tuple[JailResult, Isolation]:
    """Run an external method's command on ``job`` (mounted at ``/w2s/job``) writing to ``out``
    (``/w2s/out``); ``files`` maps each of the command's own files to its private copy
    (``methods.code_cache.file_copy``), mounted read-only at the file's path. Unjailed, the
    command sees the host paths of ``job`` and ``out`` and its files as they are instead.

    The wall-clock limit is the smaller of ``timeout_s`` (the method's own param) and the plan's
    ``jail.timeout_s``: a method's params may shorten the operator's limit, never lengthen it.
    """
    _readable(job)
    timeout_s = min(timeout_s, settings.timeout_s)
    try:
        if settings.mode == "off":
            real = [token.replace(JOB, str(job)).replace(OUT, str(out)) for token in argv]
            result = _run_unjailed(real, out, timeout_s, {}, settings.limits(use_gpu=True))
            isolation: Isolation = "unjailed"
        else:
            request = JailRequest(job_dir=job, out_dir=out, files=tuple(sorted(files.items())),
                                  limits=settings.limits(use_gpu=False))
            result = run_jailed(list(argv), jail_spec(request), timeout_s=timeout_s)
            isolation = "jail"
    except (JailUnavailable, JailSetupError) as err:
        raise _jail_error(err, "jail") from None
    except JailTimeout:
        raise
    record(isolation)
    return result, isolation


def _has_gpu() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))
