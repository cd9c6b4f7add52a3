"""``w2s-transfer analyze PATH --out DIR``: verdicts from a results table or a sandbox cache."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.commands._errors import user_errors


def _output_dir(out: str) -> Path:
    """``--out`` as a directory; an empty value would write into the working directory."""
    from w2s_common.errors import InputError

    if not out.strip():
        raise InputError("empty; expected an output directory", field="--out")
    verdict = Path(out) / "verdict.json"
    try:
        existing = json.loads(verdict.read_text(errors="replace")) if verdict.is_file() else None
    except (OSError, ValueError):
        existing = None  # unreadable: not a validate run's, and analyze writes over it
    bound = isinstance(existing, dict) and existing.get("binding") is not None
    if bound:
        # A validate run's verdict is bound to its plan, code and results and is what the gate
        # reads; analyze's would replace it unbound (helper-46: the gate then refused it).
        raise InputError(f"{verdict} is a validate run's bound verdict, which analyze would "
                         "replace; choose another output directory", field="--out")
    return Path(out)


def _without_controls(table, baseline: str):
    """The table without control arms (``control:<kind>:<name>``, as `validate` writes them)
    and only the seeds some candidate ran, as `validate` analyses its candidates
    (``flows.derive.without_arms``); and the control arms left out. A validate run's
    results.parquet analysed here had shown its spike-in control as a candidate, "REAL
    (promote)" (review 2026-12-05)."""
    from flows.derive import without_arms
    from transfer.controls import is_control_label

    controls = sorted(a for a in map(str, table["arm"].unique()) if is_control_label(a))
    return without_arms(table, set(controls), baseline), controls


def _from_validate(path: Path) -> bool:
    """Whether a parquet table carries the run columns `validate` writes."""
    if path.suffix != ".parquet":
        return False
    import pyarrow.parquet as pq

    from transfer.results import RUN_COLUMNS

    try:
        return RUN_COLUMNS[0] in pq.read_schema(path).names
    except (OSError, ValueError):
        return False  # load_table has read it; a schema it cannot show is not validate's


# analyze_table's arguments the CLI's options set, by the option's name.
OPTION_FIELDS = {name: "--" + name.replace("_", "-") for name in (
    "baseline", "sesoi", "alpha", "correction", "n_boot", "sesoi_pgr", "estimand")}


def analyze(
    path: Path = typer.Argument(
        ..., help="Results table (.parquet/.csv) or a sandbox cache_results/ directory."),
    # str, not Path: typer turns an empty value into Path("."), the working directory
    out: str = typer.Option(
        ..., "--out", help="Output directory for verdict.json, summary.md, estimates.csv."),
    baseline: str = typer.Option(
        None, "--baseline",
        help="Baseline arm (default: vanilla; vanilla_w2s for a sandbox cache)."),
    sesoi: float = typer.Option(
        0.01, "--sesoi",
        help="Smallest effect size of interest, accuracy fraction (0.01 = 1 point)."),
    sesoi_pgr: float = typer.Option(
        None, "--sesoi-pgr",
        help="SESOI as a fraction of the weak-ceiling gap (overrides --sesoi per cell)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Test level."),
    correction: str = typer.Option(
        "holm", "--correction", help="Confirmatory correction: holm, bonferroni, bh, none."),
    n_boot: int = typer.Option(
        2000, "--n-boot", help="Bootstrap replicates for the cross-check (0: off)."),
    claims: Path = typer.Option(
        None, "--claims", help="JSON file of claimed numbers {method: {\"pgr\": x}}."),
    estimand: str = typer.Option(
        "population", "--estimand",
        help="population: the gain on the task's items (default); test_set: on these test "
             "items (narrower intervals; docs/stats.md)."),
) -> None:
    """Decide whether each method's gain is REAL, VANISHED, HARMFUL or INCONCLUSIVE (or HOLD:
    a data-quality hold on records that contradict their paths)."""
    with user_errors():
        from stats.aar import BASELINE_IDEA, is_aar_cache, load_aar_cache
        from stats.analyze import analyze_table
        from stats.claims import check_claim_targets, load_claims
        from stats.table import load_table
        from stats.verdict import write_outputs
        from w2s_common.errors import InputError

        out_dir = _output_dir(out)
        claimed = load_claims(claims) if claims is not None else None
        notes: list[str] = []
        quality = None
        if path.is_dir() and is_aar_cache(path):
            imported = load_aar_cache(path)
            table, notes, quality = imported.table, imported.notes, imported.quality
            baseline = baseline or BASELINE_IDEA
        elif path.is_dir():
            raise InputError("a directory that is not a sandbox cache_results/ (expected a "
                                  ".parquet/.csv results table or cache_results/)", path=path)
        else:
            table = load_table(path)
            baseline = baseline or "vanilla"
            if _from_validate(path):
                notes.append("a validate run's results analysed as a fixed sample: the run's "
                             "own verdict.json decided each method at the level of the "
                             "sequential look it stopped at (docs/stats.md, \"After sequential "
                             "looks\"), so with several looks its verdicts and decision "
                             "intervals may differ from these; `gate --plan` re-derives that "
                             "one")
        table, controls = _without_controls(table, baseline)
        if controls:
            notes.append(f"control arms left out: {', '.join(controls)} (a control's verdict "
                         "needs its plan: kind, level, never promoted; `validate` writes it "
                         "under `controls`)")
        if claimed is not None:
            check_claim_targets(claimed, table, baseline, claims)
        try:
            verdict = analyze_table(table, baseline=baseline, sesoi=sesoi, alpha=alpha,
                                    correction=correction, claims=claimed,
                                    n_boot=n_boot, sesoi_pgr=sesoi_pgr, notes=notes,
                                    data_quality=quality, estimand=estimand)
        except InputError as err:
            if err.path is None and err.field in OPTION_FIELDS:
                # Named as the user gave it: the option, not the engine's argument.
                raise InputError(err.message, field=OPTION_FIELDS[err.field]) from None
            raise
        paths = write_outputs(verdict, out_dir)
    for method, entry in verdict.methods.items():
        typer.echo(f"{method}: {entry.verdict}" + (" (promote)" if entry.promote else ""))
    typer.echo(f"wrote {paths['verdict']}, {paths['summary']}, {paths['estimates']}")


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command to the CLI."""
    app.command("analyze")(analyze)
