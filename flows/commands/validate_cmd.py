"""`w2s-transfer validate PLAN --out DIR` and `w2s-transfer demo --out DIR`."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from flows.commands._errors import user_errors
from flows.commands._paths import nonempty_path

if TYPE_CHECKING:
    from stats.verdict_model import Verdict


class Executor(str, Enum):
    local = "local"
    pool = "pool"


DEMO_PLAN = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"


def run_validate(plan: Path, out: Path, store: Path | None, executor: str | None = None,
                 work_pool: str | None = None) -> Verdict:
    """Check everything (exit 2 on problems, before compute and before writing anything), hold
    the output directory (refused if another live validation holds it), then run the validate
    flow in Prefect's embedded mode (flows/embedded.py), or on the server PREFECT_API_URL names
    (the pool executor needs one its workers reach)."""
    from flows import warm_start
    from flows.campaign import Campaign, Prepared
    from flows.embedded import configure_embedded_prefect, embedded_prefect
    from flows.outdir import exclusive_out

    warm_start.allow_main()  # the command's entry point defines nothing outside a main guard

    compute = {"executor": executor, "work_pool": work_pool}
    configure_embedded_prefect()  # before prefect is imported (the pool check imports it)
    with user_errors():
        campaign = Campaign.prepare(plan, out, store, compute=compute)
    from flows.progress import rich_bar

    with user_errors(), exclusive_out(out), embedded_prefect(out / "prefect.log"):
        from flows.validate import validate_flow

        with rich_bar(f"validate {plan.name}"):
            return validate_flow(str(plan), str(out), str(store) if store else None,
                                 executor=executor, work_pool=work_pool,
                                 prepared=Prepared(campaign))


def print_verdicts(verdict: Verdict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from flows.report.tables import (
        CONTROL_COLUMNS,
        VERDICT_COLUMNS,
        control_rows,
        plain_rows,
        verdict_rows,
    )

    # The terminal gets the decisive columns; report.html has all of them.
    shown = ["method", "verdict", "promote", "dataset", "gain (pp)", "gain CI", "decision CI",
             "p adjusted",
             "PGR", "baseline PGR", "MDE80 (pp)", "seeds"]
    index = [VERDICT_COLUMNS.index(c) for c in shown]
    table = Table(*shown, title=f"verdicts at rung {verdict.production_rung}")
    for row in plain_rows(verdict_rows(verdict)):
        table.add_row(*[str(row[i]) for i in index])
    console = Console()
    console.width = max(console.width, 175)  # pipes default to 80 columns
    console.print(table)
    rows = plain_rows(control_rows(verdict))
    if rows:
        # A control's decision interval is the one its verdict reads (at its own level).
        shown = [c for c in CONTROL_COLUMNS if c not in ("promote", "MDE80 (pp)", "gain CI")]
        index = [CONTROL_COLUMNS.index(c) for c in shown]
        controls = Table(*shown, title="controls of the pipeline (never promoted)")
        for row in rows:
            controls.add_row(*[str(row[i]) for i in index])
        console.print(controls)
    if verdict.audits is not None:
        flagged = sorted(name for name, cells in verdict.audits.items()
                         if any(not c.clean for c in cells))
        cells = sum(len(c) for c in verdict.audits.values())
        console.print(f"label-leak audit: {cells} cell(s) of {len(verdict.audits)} method(s) "
                      "(the baseline included), "
                      + (f"FLAGGED: {', '.join(flagged)}" if flagged else "all clean"),
                      markup=False)
    reuse = _reuse_check_line(out)
    if reuse:
        console.print(reuse, markup=False)
    console.print(f"report: {(out / 'report.html').resolve()}")


def _reuse_check_line(out: Path) -> str | None:
    """What the reuse check did (provenance.json), when the campaign reused any run."""
    import json

    try:
        checked = json.loads((out / "provenance.json").read_text()).get("reuse_check") or {}
    except (OSError, ValueError):
        return None
    reused, fed = checked.get("runs_reused") or 0, checked.get("runs_from_shared_cache") or 0
    if not reused and not fed:
        return None
    rests = f"{reused} run(s) reused from the store" + (
        f", {fed} computed from shared cache entries" if fed else "")
    if not checked.get("runs_compared"):
        return f"reuse check: {rests}, none recomputed (reuse_check.cells: 0)"
    return (f"reuse check: {rests}; "
            f"{checked['runs_compared']} run(s) of {checked['cells_recomputed']} secretly drawn "
            f"cell(s) recomputed, largest difference {checked['largest_difference']:.3g} "
            f"(tolerance {checked['tolerance']:g})")


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        plan: Path = typer.Argument(..., help="plan YAML, or a built-in plan's name (demo, "
                                              "micro-ci, tiny-ci)", parser=nonempty_path),
        out: Path = typer.Option(Path("reports/validate"), help="output directory",
                                 parser=nonempty_path),
        store: Path = typer.Option(None, help="run store (default $W2S_CACHE_DIR/store)",
                                   parser=nonempty_path),
        executor: Executor = typer.Option(None, help="where groups run (default: the plan's "
                                          "compute.executor, else local): local subprocesses, "
                                          "or flow runs on a Prefect work pool"),
        work_pool: str = typer.Option(None, help="work pool of the pool executor (default: the "
                                      "plan's compute.work_pool, else w2s-process)"),
    ) -> None:
        """Run a plan through the `validate` flow (Prefect embedded mode, or the server
        PREFECT_API_URL names) and print verdicts."""
        print_verdicts(run_validate(plan, out, store, executor.value if executor else None,
                                    work_pool), out)

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("reports/demo"), help="output directory",
                                 parser=nonempty_path),
        store: Path = typer.Option(None, help="run store (default $W2S_CACHE_DIR/store)",
                                   parser=nonempty_path),
    ) -> None:
        """The main job: the demo plan (tiny ladder, vanilla vs aux_conf, em_posterior,
        confident, and a +2 pp spike-in and a null control; 3 seeds, up to 6 through the
        sequential design)."""
        print_verdicts(run_validate(DEMO_PLAN, out, store), out)

    register_sweep(app)


def register_sweep(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        registry: Path = typer.Argument(Path("infra/sweep-registry.yaml"),
                                        help="registry of methods to validate",
                                        parser=nonempty_path),
        store: Path = typer.Option(None, help="run store (default $W2S_CACHE_DIR/store)",
                                   parser=nonempty_path),
    ) -> None:
        """Validate every method of a registry file (the nightly job), one report each."""
        from flows.campaign import Prepared
        from flows.embedded import configure_embedded_prefect, embedded_prefect
        from flows.outdir import exclusive_out

        configure_embedded_prefect()  # before prefect is imported (flows.sweep imports it)
        from flows.sweep import prepare_sweep

        with user_errors():
            prepared = prepare_sweep(registry, store)  # every plan checked; nothing written
        out = Path(prepared[0].out)
        with user_errors(), exclusive_out(out, "out in the registry"), \
                embedded_prefect(out / "prefect.log"):
            from flows.sweep import sweep_flow

            summary = sweep_flow(str(registry), str(store) if store else None,
                                 prepared=Prepared(prepared))
        for method, row in summary.items():
            if row.get("failed"):
                print(f"{method}: FAILED ({row['failed']})")
            else:
                print(f"{method}: {row['verdict']} promote={row['promote']} "
                      f"report={row['report']}")
        failed = [method for method, row in summary.items() if row.get("failed")]
        if failed:
            print(f"error: {len(failed)} of {len(summary)} methods failed: {', '.join(failed)} "
                  f"(sweep.json says why)", file=sys.stderr)
            raise typer.Exit(2)
