"""`w2s-transfer run-arm`: run one arm of one rung for one seed and write its predictions.

With ``--processes N`` the same command runs as N ranks under the deepspeed launcher. Each rank
reports to the parent in a file of its own (``--status-dir``): rank 0 its summary line, any rank
its one-line error and exit code. The parent reads those files, never the ranks' mixed output.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import typer

from flows.commands._errors import user_errors
from flows.commands._paths import nonempty_path
from w2s_common.names import MAX_SEED


def register(app: typer.Typer) -> None:
    @app.command("run-arm")
    def run_arm_command(
        ladder: str = typer.Option("tiny", help="ladder name or YAML path"),
        rung: str = typer.Option(..., help="rung name (see `w2s-transfer ladders`)"),
        arm: str = typer.Option(..., help="weak | ceiling | student"),
        seed: int = typer.Option(0, min=0, max=MAX_SEED, help="training seed"),
        out: Path = typer.Option(..., help="directory for predictions.parquet and metrics.json",
                                 parser=nonempty_path),
        data: Path = typer.Option(None, help="dataset directory (sandbox or generic JSONL); "
                                  "the built-in synthetic task by default", parser=nonempty_path),
        method: str = typer.Option(None, help="student method (registry name or module:attr); "
                                   "the baseline is 'vanilla'"),
        param: list[str] = typer.Option(None, "--param", help="method parameter key=value"),
        store: Path = typer.Option(None, help="run store (default $W2S_CACHE_DIR/store)",
                                   parser=nonempty_path),
        ds_config: str = typer.Option(None, help="DeepSpeed config name or path"),
        precision: str = typer.Option(None, help="fp32 | bf16"),
        processes: int = typer.Option(1, min=1, help="data-parallel processes (ranks under the "
                                      "deepspeed launcher; GPUs, or CPU processes here)"),
        unjailed: bool = typer.Option(False, help="run plugin and external-command code outside "
                                      "the jail (recorded in metrics.json; never promoted)"),
        status_dir: Path = typer.Option(None, hidden=True,
                                        help="(ranks of --processes) where each rank reports",
                                        parser=nonempty_path),
    ) -> None:
        """Run one arm (training what it needs first) and write DIR/predictions.parquet and
        DIR/metrics.json. A complete run in the store is reused, not recomputed."""
        if processes > 1:
            args = ["run-arm", "--ladder", ladder, "--rung", rung, "--arm", arm,
                    "--seed", str(seed), "--out", str(out)]
            for flag, value in (("--data", data), ("--method", method), ("--store", store),
                                ("--ds-config", ds_config), ("--precision", precision)):
                if value is not None:
                    args += [flag, str(value)]
            for item in param or []:
                args += ["--param", item]
            if unjailed:
                args.append("--unjailed")
            raise typer.Exit(_launch(args, processes))
        with user_errors(), _reporting(status_dir):
            summary = _run(ladder, rung, arm, seed, out, data, method, param or [], store,
                           {"ds_config": ds_config, "precision": precision}, unjailed)
        if summary:
            print(summary)
            _report(status_dir, {"summary": summary})


def _report(status_dir: Path | None, status: dict) -> None:
    """Write this rank's status to ``status_dir/rank-<RANK>.json`` (atomically), if asked to."""
    if status_dir is None:
        return
    from w2s_common.atomic import atomic_write_json

    atomic_write_json(Path(status_dir) / f"rank-{int(os.environ.get('RANK', '0'))}.json", status)


@contextlib.contextmanager
def _reporting(status_dir: Path | None) -> Iterator[None]:
    """Report a user error of this rank (the line ``user_errors`` prints, exit 2) to the parent,
    then let ``user_errors`` turn it into that line."""
    from flows.commands._errors import _one_line, _user_error_types

    try:
        yield
    except _user_error_types() as err:
        _report(status_dir, {"error": _one_line(err), "exit": 2})
        raise


def _launch(args: list[str], processes: int) -> int:
    """Run the same command as ``processes`` ranks under the deepspeed launcher; rank 0 writes
    the run and the output files, the other ranks train with it and wait for the store. Each
    rank's outcome comes back in its own status file; the first rank's error is shown, once."""
    from transfer.engine import launch_module

    with tempfile.TemporaryDirectory(prefix="w2s-ranks-") as status_dir:
        result = launch_module("flows.cli", [*args, "--status-dir", status_dir],
                               processes=processes, capture_output=True)
        statuses = {}
        for path in Path(status_dir).glob("rank-*.json"):
            statuses[int(path.stem.split("-", 1)[1])] = json.loads(path.read_text())
    errors = [statuses[rank] for rank in sorted(statuses) if "error" in statuses[rank]]
    if errors:
        print(f"error: {errors[0]['error']}", file=sys.stderr)
        return int(errors[0].get("exit", 1))
    if result.returncode != 0 or "summary" not in statuses.get(0, {}):
        tail = [ln for ln in result.stderr.splitlines() if ln.strip()][-1:] or ["(no output)"]
        print(f"error: {processes} ranks exited {result.returncode}: {tail[0]}", file=sys.stderr)
        return 1
    print(statuses[0]["summary"])
    return 0


def _run(ladder, rung, arm, seed, out, data, method, params, store, overrides,
         unjailed=False) -> str | None:
    """Run the arm; rank 0 copies its files to ``out`` and returns the summary line (other ranks
    return None)."""
    from flows.context import arm_context
    from methods.resolve import method_function
    from transfer.arms import run_arm
    from transfer.sealed import MethodUnsupported
    from w2s_common.errors import InputError
    from w2s_common.names import ARM_NAMES

    if arm not in ARM_NAMES:
        raise InputError(f"expected weak, ceiling or student, got {arm!r}", field="--arm")
    if arm != "student" and (method or params):
        raise InputError("--method and --param apply to the student arm only", field="--method")
    if arm == "student" and not method:
        method = "vanilla"
    ctx = arm_context(ladder, data, store, overrides)
    ctx.ladder.rung(rung)  # unknown rung: a clear error before any compute
    name, params_dict, fn = (None, None, None)
    if arm == "student":
        name, params_dict, fn = method_function(
            method, params, jail={"mode": "off" if unjailed else "required"})
    try:
        record = run_arm(ctx, rung, arm, seed, method=name, method_params=params_dict,
                         method_fn=fn)
    except MethodUnsupported as err:
        raise InputError(f"method {name} cannot run on rung {rung} of ladder "
                         f"{ctx.ladder.name}: {err}", field="--method") from None
    if int(os.environ.get("RANK", "0")) > 0:
        return None  # rank 0 writes the output files
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for file in ("predictions.parquet", "metrics.json"):
        partial = out / f".{file}.tmp"
        shutil.copy2(record.path / file, partial)
        partial.replace(out / file)
    metrics = record.metrics
    return (f"{metrics['arm']} rung={metrics['rung']} seed={metrics['seed']} "
            f"accuracy={metrics['accuracy']:.4f} n={metrics['n']} -> {out}")
