"""`w2s-transfer run-arm`: run one arm of one rung for one seed and write its predictions."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import typer

from flows.commands._errors import user_errors


def register(app: typer.Typer) -> None:
    @app.command("run-arm")
    def run_arm_command(
        ladder: str = typer.Option("tiny", help="ladder name or YAML path"),
        rung: str = typer.Option(..., help="rung name (see `w2s-transfer ladders`)"),
        arm: str = typer.Option(..., help="weak | ceiling | student"),
        seed: int = typer.Option(0, min=0, help="training seed"),
        out: Path = typer.Option(..., help="directory for predictions.parquet and metrics.json"),
        data: Path = typer.Option(None, help="dataset directory (sandbox or generic JSONL); "
                                  "the built-in synthetic task by default"),
        method: str = typer.Option(None, help="student method (registry name or module:attr); "
                                   "the baseline is 'vanilla'"),
        param: list[str] = typer.Option(None, "--param", help="method parameter key=value"),
        store: Path = typer.Option(None, help="run store (default $W2S_CACHE_DIR/store)"),
        ds_config: str = typer.Option(None, help="DeepSpeed config name or path"),
        precision: str = typer.Option(None, help="fp32 | bf16"),
        processes: int = typer.Option(1, min=1, help="data-parallel processes (ranks under the "
                                      "deepspeed launcher; GPUs, or CPU processes here)"),
        unjailed: bool = typer.Option(False, help="run plugin and external-command code outside "
                                      "the jail (recorded in metrics.json; never promoted)"),
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
        with user_errors():
            _run(ladder, rung, arm, seed, out, data, method, param or [], store,
                 {"ds_config": ds_config, "precision": precision}, unjailed)


def _launch(args: list[str], processes: int) -> int:
    """Run the same command as ``processes`` ranks under the deepspeed launcher; rank 0 writes
    the run and the output files, the other ranks train with it and wait for the store."""
    from transfer.engine import launch_module

    result = launch_module("flows.cli", args, processes=processes, capture_output=True)
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("error: "):  # a rank's one-line error, shown once
            print(line, file=sys.stderr)
            return 2
    for line in result.stdout.splitlines():
        if " accuracy=" in line:
            print(line.split("] ", 1)[-1] if line.startswith("[") else line)
    if result.returncode != 0:
        tail = [ln for ln in result.stderr.splitlines() if ln.strip()][-1:] or ["(no output)"]
        print(f"error: {processes} ranks exited {result.returncode}: {tail[0]}", file=sys.stderr)
    return 0 if result.returncode == 0 else 1


def _run(ladder, rung, arm, seed, out, data, method, params, store, overrides,
         unjailed=False) -> None:
    from flows.context import arm_context, method_function
    from transfer.arms import run_arm
    from transfer.errors import InputError
    from transfer.sealed import MethodUnsupported

    if arm not in ("weak", "ceiling", "student"):
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
        return  # rank 0 writes the output files
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for file in ("predictions.parquet", "metrics.json"):
        partial = out / f".{file}.tmp"
        shutil.copy2(record.path / file, partial)
        partial.replace(out / file)
    metrics = record.metrics
    print(f"{metrics['arm']} rung={metrics['rung']} seed={metrics['seed']} "
          f"accuracy={metrics['accuracy']:.4f} n={metrics['n']} -> {out}")
