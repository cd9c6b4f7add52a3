"""Write a campaign's outputs: verdict.json, results.parquet, report.md/html, provenance."""
from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd


def write_outputs(campaign, results: pd.DataFrame, seeds_used: dict[str, list[int]]) -> dict[str, Any]:
    """Statistics over every seed run, then every output file (each written atomically)."""
    from transfer.fsutil import atomic_write_bytes, atomic_write_text
    from flows.guards import apply_promotion_guards
    from flows.report.provenance import collect_provenance
    from flows.report.render import write_report
    from flows.summary import summarize
    from stats import analyze_table
    from stats import write_outputs as write_stats_outputs

    plan = campaign.plan
    claims = ({name: claim.model_dump() for name, claim in plan.claims.items()}
              if plan.claims else None)
    verdict = analyze_table(results, baseline=plan.baseline, sesoi=plan.sesoi, alpha=plan.alpha,
                            correction=plan.correction, claims=claims)
    apply_promotion_guards(verdict, campaign.records())
    verdict["jail"] = plan.jail.mode
    verdict["plan"] = {"name": plan.name, "plan_hash": plan.plan_hash}
    verdict["sequential"] = {"looks": campaign.looks, "seeds_used": seeds_used,
                             "seed_budget": plan.seeds.max}
    campaign.out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    results.to_parquet(buffer, index=False)
    atomic_write_bytes(campaign.out / "results.parquet", buffer.getvalue())
    write_stats_outputs(verdict, campaign.out)
    provenance = collect_provenance(plan=plan, results=results, timings=campaign.timings,
                                    extra={"arms_executed": len(campaign.executed_arms),
                                           "runs": len(set(campaign.runs)),
                                           "store": str(campaign.store)})
    atomic_write_text(campaign.out / "provenance.json", json.dumps(provenance, indent=2,
                                                                   default=str))
    summary = summarize(verdict)
    files = write_report(campaign.out, verdict, results, provenance, summary)
    campaign.report_markdown = files.artifact_markdown
    return verdict
