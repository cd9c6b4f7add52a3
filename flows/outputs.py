"""Write a campaign's outputs: verdict.json, results.parquet, report.md/html, provenance."""
from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stats.verdict_model import Verdict

if TYPE_CHECKING:
    from flows.resolved import ResolvedMethod


def write_verdict(out: Path, plan, results: pd.DataFrame, runs: list[Any], *,
                  looks: list[dict[str, Any]], seeds_used: dict[str, list[int]],
                  methods: Mapping[str, ResolvedMethod], key: bytes | None = None,
                  git_commit: str | None = None,
                  audits: Mapping[str, list[Any]] | None = None,
                  reuse_check: Mapping[str, Any] | None = None) -> Verdict:
    """Derive the verdict and write results.parquet, verdict.json (bound, and signed with
    ``key``), summary.md and estimates.csv into ``out``, each atomically.

    Args:
        out: the output directory (created).
        plan: the ``flows.plan.Plan``.
        results: the results table with its run columns (``transfer.results``).
        runs: the runs it was built from (``RunRecord`` objects).
        looks, seeds_used: the sequential design's record.
        methods: plan entry name -> its ``flows.resolved.ResolvedMethod`` (``Campaign.methods``).
        key: the verdict HMAC key, if any (``flows.binding.verdict_key``).
        git_commit: the checkout's commit.
        audits: results name -> its label-leak audit cells (``Campaign.audits``).
        reuse_check: what the reuse check did (bound: ``flows.binding.make_binding``).

    Returns:
        The ``stats.Verdict`` (with its binding; the signature is only in the file).
    """
    from flows.binding import make_binding, sign
    from flows.derive import derive_verdict, sequential_record
    from stats import write_outputs as write_stats_outputs
    from w2s_common.atomic import atomic_write_bytes, atomic_write_text

    labels = {name: info.label for name, info in methods.items()}
    sequential = sequential_record(plan, looks, seeds_used)
    verdict = derive_verdict(plan, results, runs, labels, sequential=sequential, audits=audits)
    buffer = io.BytesIO()
    results.to_parquet(buffer, index=False)
    results_bytes = buffer.getvalue()
    verdict.binding = make_binding(plan=plan, methods=methods, runs=runs,
                                      results_sha256=hashlib.sha256(results_bytes).hexdigest(),
                                      git_commit=git_commit, reuse_check=reuse_check)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.parquet", results_bytes)
    paths = write_stats_outputs(verdict, out)
    if key:
        # Signed over the file as written (NaN already null, numpy already plain numbers).
        written = json.loads(paths["verdict"].read_text())
        written["hmac"] = sign(written, key)
        atomic_write_text(paths["verdict"], json.dumps(written, indent=2, allow_nan=False) + "\n")
    return verdict


def write_outputs(campaign, results: pd.DataFrame, seeds_used: dict[str, list[int]]
                  ) -> Verdict:
    """Statistics over every seed run, then every output file (each written atomically).

    verdict.json is bound to what it was derived from (``flows.binding``: the plan, the commit,
    the code fingerprints of the runs, the sha256 of results.parquet) and, with a verdict key,
    signed.
    """
    from flows.report.provenance import collect_provenance, git_commit
    from flows.report.render import write_report
    from flows.reuse_check import summary as reuse_check_summary
    from flows.summary import summarize
    from w2s_common.atomic import atomic_write_text

    records = campaign.records()
    checked = reuse_check_summary(campaign, records)
    verdict = write_verdict(campaign.out, campaign.plan, results, records,
                            looks=campaign.looks, seeds_used=seeds_used,
                            methods=campaign.methods, key=campaign.verdict_key,
                            git_commit=git_commit(), audits=campaign.audits,
                            reuse_check=checked)
    extra = {"arms_executed": len(campaign.executed_arms), "runs": len(set(campaign.runs)),
             "store": str(campaign.store),
             "code": {name: info.code.as_dict() for name, info in campaign.methods.items()}}
    if campaign.plan.controls:
        extra["controls"] = {c.label: c.spec().as_dict() for c in campaign.plan.controls}
    extra["reuse_check"] = checked
    provenance = collect_provenance(plan=campaign.plan, results=results,
                                    timings=campaign.timings, extra=extra)
    atomic_write_text(campaign.out / "provenance.json", json.dumps(provenance, indent=2,
                                                                   default=str))
    summary = summarize(verdict)
    files = write_report(campaign.out, verdict, results, provenance, summary)
    campaign.report_markdown = files.artifact_markdown
    return verdict
