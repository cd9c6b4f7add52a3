"""An optional narrative summary of a verdict, written by Claude or by a deterministic template.

Claude sees only aggregate numbers (verdicts, gains, intervals, PGR, trends), already formatted
by :func:`flows.report.format.fmt`, never examples, ids or labels. The narrative never replaces
a number: reports render numbers from verdict.json and show this text separately, labelled.
Any failure (no key, HTTP error, timeout) falls back to the template with one log line saying why.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flows.report.format import UNDEFINED, fmt, fmt_interval

LOG = logging.getLogger("w2s_transfer.summary")
DEFAULT_MODEL = "claude-sonnet-4-5"
SYSTEM_PROMPT = (
    "You summarise the statistical validation of weak-to-strong supervision methods for ML "
    "engineers. Write 4-8 plain sentences: which methods' gains are real at the production "
    "scale, which vanished or are harmful, whether gains shrink with model size, and what is "
    "still inconclusive. Quote numbers exactly as given (percentage points, already rounded) "
    "and never compute, round or invent new numbers. No headings, no lists.")


@dataclass(frozen=True)
class SummarySettings:
    """Where the summary comes from.

    ``api_key`` wins over ``secret_block`` (the name of a Prefect ``Secret`` block holding the
    key, loaded only when needed). Without a key the template is used.
    """

    api_key: str | None = None
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    secret_block: str | None = None
    timeout_s: float = 20.0
    max_tokens: int = 600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SummarySettings:
        """Read ``ANTHROPIC_API_KEY``, ``W2S_SUMMARY_MODEL``, ``ANTHROPIC_BASE_URL``,
        ``W2S_SUMMARY_SECRET_BLOCK`` and ``W2S_SUMMARY_TIMEOUT_S``."""
        env = os.environ if env is None else env
        timeout = env.get("W2S_SUMMARY_TIMEOUT_S")
        return cls(api_key=env.get("ANTHROPIC_API_KEY") or None,
                   model=env.get("W2S_SUMMARY_MODEL") or DEFAULT_MODEL,
                   base_url=env.get("ANTHROPIC_BASE_URL") or None,
                   secret_block=env.get("W2S_SUMMARY_SECRET_BLOCK") or None,
                   timeout_s=float(timeout) if timeout else 20.0)

    def resolve_api_key(self) -> str | None:
        """The API key: the setting itself, else the Prefect Secret block's value, else None."""
        if self.api_key:
            return self.api_key
        if not self.secret_block:
            return None
        from prefect.blocks.system import Secret  # lazy: prefect is heavy and often unneeded

        return str(Secret.load(self.secret_block).get())


@dataclass(frozen=True)
class Summary:
    """A narrative and where it came from (``source`` is ``claude`` or ``template``)."""

    text: str
    source: Literal["claude", "template"]
    model: str | None = None
    fallback_reason: str | None = None


def summary_facts(verdict: dict[str, Any]) -> dict[str, Any]:
    """The aggregate numbers a summary may use, picked field by field from the verdict.

    Only whitelisted aggregate fields are copied (so fields added to verdict.json later, or any
    example-level data, never reach the model); numbers are pre-formatted with ``fmt``.
    """
    methods = {}
    for method, decision in verdict["methods"].items():
        cells = []
        for cell in decision.get("cells", []):
            gain, pgr = cell.get("gain") or {}, cell.get("pgr") or {}
            base_pgr = cell.get("pgr_baseline") or {}
            cells.append({
                "rung": cell.get("rung"), "dataset": cell.get("dataset"),
                "strong_model": cell.get("strong_model"),
                "seeds": fmt(cell.get("n_seeds"), "count"),
                "gain_pp": fmt(gain.get("estimate"), "gain"),
                "gain_interval_pp": fmt_interval(gain.get("ci_low"), gain.get("ci_high"), "gain"),
                "p_adjusted": fmt(gain.get("p_adjusted"), "p"),
                "pgr": fmt(pgr.get("estimate"), "pgr") if pgr.get("defined") else UNDEFINED,
                "baseline_pgr": (fmt(base_pgr.get("estimate"), "pgr")
                                 if base_pgr.get("defined") else UNDEFINED),
                "mde80_pp": fmt(cell.get("mde80"), "mde")})
        trend = decision.get("trend") or {}
        methods[method] = {
            "verdict": decision.get("verdict"), "promote": bool(decision.get("promote")),
            "reasons": [str(r) for r in decision.get("reasons") or []],
            "trend_pp_per_decade": fmt(trend.get("slope_per_decade"), "slope") if trend else None,
            "trend_interval": (fmt_interval(trend.get("ci_low"), trend.get("ci_high"), "slope")
                               if trend else None),
            "cells": cells}
    return {"baseline": verdict.get("baseline"), "production_rung": verdict.get("production_rung"),
            "alpha": fmt(verdict.get("alpha"), "level"), "sesoi_pp": fmt(verdict.get("sesoi"), "mde"),
            "methods": methods}


def build_prompt(verdict: dict[str, Any]) -> str:
    """The user message: the aggregate facts as JSON and what to write."""
    facts = json.dumps(summary_facts(verdict), indent=1)
    return ("Aggregate results of a weak-to-strong transfer validation (gains are method minus "
            "baseline accuracy in percentage points, intervals as given):\n"
            f"{facts}\n\nSummarise them for the team deciding which methods to promote.")


def template_summary(verdict: dict[str, Any]) -> str:
    """A deterministic narrative built from the verdict alone (same input, same text)."""
    facts = summary_facts(verdict)
    rung = facts["production_rung"]
    sentences = [f"{len(facts['methods'])} candidate method(s) were compared with "
                 f"{facts['baseline']} (SESOI {facts['sesoi_pp']} pp, alpha {facts['alpha']}); "
                 f"decisions are taken at the production rung {rung}."]
    for method, info in facts["methods"].items():
        at_production = [c for c in info["cells"] if c["rung"] == rung]
        gains = "; ".join(f"{c['gain_pp']} pp {c['gain_interval_pp']} on {c['dataset']}, "
                          f"PGR {c['pgr']} vs {c['baseline_pgr']}" for c in at_production)
        sentence = f"{method} is {info['verdict']}"
        sentence += f" ({gains})" if gains else ""
        sentence += " and may be promoted." if info["promote"] else " and is not promoted."
        if info["trend_pp_per_decade"] is not None:
            sentence += (f" Its gain changes by {info['trend_pp_per_decade']} pp per tenfold model "
                         f"size {info['trend_interval']}.")
        sentences.append(sentence)
    return " ".join(sentences)


def _ask_claude(verdict: dict[str, Any], settings: SummarySettings, api_key: str) -> str:
    import anthropic

    client = anthropic.Anthropic(api_key=api_key, base_url=settings.base_url,
                                 timeout=settings.timeout_s, max_retries=0)
    message = client.messages.create(model=settings.model, max_tokens=settings.max_tokens,
                                     system=SYSTEM_PROMPT,
                                     messages=[{"role": "user", "content": build_prompt(verdict)}])
    text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
    if not text.strip():
        raise ValueError("the response held no text")
    return text.strip()


def summarize(verdict: dict[str, Any], settings: SummarySettings | None = None,
              logger: logging.Logger | logging.LoggerAdapter | None = None) -> Summary:
    """A narrative summary of ``verdict``: Claude's when configured and reachable, else the template.

    Args:
        verdict: the verdict dict.
        settings: defaults to :meth:`SummarySettings.from_env`.
        logger: where the fallback reason is logged (e.g. Prefect's run logger).

    Returns:
        A :class:`Summary`; ``fallback_reason`` says why the template was used.
    """
    settings = settings or SummarySettings.from_env()
    log = logger or LOG
    try:
        api_key = settings.resolve_api_key()
    except Exception as err:  # a missing block or an unreachable Prefect API: any of many types
        reason = f"could not load the API key from Prefect Secret block {settings.secret_block!r} ({err})"
        log.warning("summary: %s; using the template summary", reason)
        return Summary(template_summary(verdict), "template", None, reason)
    if not api_key:
        reason = "no Anthropic API key configured (ANTHROPIC_API_KEY or W2S_SUMMARY_SECRET_BLOCK)"
        log.info("summary: %s; using the template summary", reason)
        return Summary(template_summary(verdict), "template", None, reason)
    try:
        text = _ask_claude(verdict, settings, api_key)
    except Exception as err:  # the SDK raises many types (timeouts, status, connection, parsing)
        reason = f"Claude call failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
        log.warning("summary: %s; using the template summary", reason)
        return Summary(template_summary(verdict), "template", None, reason)
    return Summary(text, "claude", settings.model)
