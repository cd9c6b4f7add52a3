"""An optional narrative summary of a verdict, written by Claude or by a deterministic template.

Claude sees only aggregate numbers (verdicts, gains, intervals, PGR, trends), already formatted
by :func:`stats.display.fmt`, never examples, ids or labels. The narrative never replaces
a number: reports render numbers from verdict.json and show this text separately, labelled.

Claude's text is checked before it is used (:func:`check_narrative`): every number in it must be
one of the numbers it was given (for a sentence about one method, that method's), and every
verdict word must be the verdict of a method the sentence names (or of some method). Any failure
(no key, HTTP error, timeout, a bad setting, a mismatch) falls back to the template; the reason
is logged and kept in ``Summary.fallback_reason`` (summary.json and the report show it).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from stats.display import UNDEFINED, fmt, fmt_interval, plain
from stats.verdict_model import Verdict
from stats.verdict_prose import narrative
from w2s_common.errors import InputError

LOG = logging.getLogger("w2s_transfer.summary")
DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_TIMEOUT_S = 20.0
MAX_TIMEOUT_S = 3600.0  # as flows/environment.py (ops branch) checks it
TIMEOUT_ENV = "W2S_SUMMARY_TIMEOUT_S"
SYSTEM_PROMPT = (
    "You summarise the statistical validation of weak-to-strong supervision methods for ML "
    "engineers. Write 4-8 plain sentences: which methods' gains are real at the production "
    "scale, which vanished or are harmful, whether gains shrink with model size, and what is "
    "still inconclusive. Quote numbers exactly as given (percentage points, already rounded) "
    "and never compute, round or invent new numbers. Use the words REAL, VANISHED, HARMFUL and "
    "INCONCLUSIVE only for the verdicts as given, one method per sentence where you can. No "
    "headings, no lists.")


def parse_timeout(raw: str | None) -> float:
    """``W2S_SUMMARY_TIMEOUT_S`` as seconds (default 20).

    Raises:
        InputError: not a number, not finite, not positive, or above 600 s.
    """
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        raise InputError(f"expected a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {raw!r}",
                         field=TIMEOUT_ENV)
    return value


def check_summary_settings(env: Mapping[str, str] | None = None) -> None:
    """Check the summary's environment settings (call before any compute: they are read only
    once the verdict exists).

    Raises:
        InputError: a bad ``W2S_SUMMARY_TIMEOUT_S``, or an ``ANTHROPIC_BASE_URL`` that is not an
            http(s) URL.
    """
    env = os.environ if env is None else env
    parse_timeout(env.get(TIMEOUT_ENV))
    base_url = env.get("ANTHROPIC_BASE_URL")
    if base_url and not re.match(r"^https?://[^\s/]+", base_url):
        raise InputError(f"expected an http(s) URL, got {base_url!r}", field="ANTHROPIC_BASE_URL")


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
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_tokens: int = 600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SummarySettings:
        """Read ``ANTHROPIC_API_KEY``, ``W2S_SUMMARY_MODEL``, ``ANTHROPIC_BASE_URL``,
        ``W2S_SUMMARY_SECRET_BLOCK`` and ``W2S_SUMMARY_TIMEOUT_S``.

        Raises:
            InputError: a bad setting (:func:`check_summary_settings`).
        """
        env = os.environ if env is None else env
        check_summary_settings(env)
        return cls(api_key=env.get("ANTHROPIC_API_KEY") or None,
                   model=env.get("W2S_SUMMARY_MODEL") or DEFAULT_MODEL,
                   base_url=env.get("ANTHROPIC_BASE_URL") or None,
                   secret_block=env.get("W2S_SUMMARY_SECRET_BLOCK") or None,
                   timeout_s=parse_timeout(env.get(TIMEOUT_ENV)))

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
    """A narrative and where it came from (``source`` is ``claude`` or ``template``).

    ``fallback_reason`` says why the template was used; ``rejected_text`` is the model's reply
    when it was refused for not matching verdict.json.
    """

    text: str
    source: Literal["claude", "template"]
    model: str | None = None
    fallback_reason: str | None = None
    rejected_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """What summary.json holds."""
        return {"text": self.text, "source": self.source, "model": self.model,
                "fallback_reason": self.fallback_reason, "rejected_text": self.rejected_text}


def summary_facts(verdict: Verdict) -> dict[str, Any]:
    """The aggregate numbers a summary may use, picked field by field from the verdict.

    Only these named aggregate fields are copied (so fields added to the verdict later, the
    binding, the data-quality records or any example-level data never reach the model); numbers
    are pre-formatted with :func:`stats.display.fmt`, as the report shows them.
    """
    methods = {}
    for method, decision in verdict.methods.items():
        cells = []
        for cell in decision.cells:
            gain, pgr, base_pgr = cell.gain, cell.pgr, cell.pgr_baseline
            cells.append({
                "rung": cell.rung, "dataset": cell.dataset, "strong_model": cell.strong_model,
                "seeds": fmt(cell.n_seeds, "count"),
                "gain_pp": fmt(gain.estimate, "gain"),
                "gain_interval_pp": fmt_interval(gain.ci_low, gain.ci_high, "gain"),
                "p_adjusted": fmt(gain.p_adjusted, "p"),
                "pgr": fmt(pgr.estimate, "pgr") if pgr.defined else UNDEFINED,
                "baseline_pgr": fmt(base_pgr.estimate, "pgr") if base_pgr.defined else UNDEFINED,
                "mde80_pp": fmt(cell.mde80, "mde")})
        trend = decision.trend
        methods[method] = {
            "verdict": decision.verdict, "promote": decision.promote,
            "reasons": list(decision.reasons),
            "trend_pp_per_decade": fmt(trend.slope_per_decade, "slope") if trend else None,
            "trend_interval": (fmt_interval(trend.ci_low, trend.ci_high, "slope")
                               if trend else None),
            "cells": cells}
    return {"baseline": verdict.baseline, "production_rung": verdict.production_rung,
            "alpha": fmt(verdict.alpha, "level"), "sesoi_pp": fmt(verdict.sesoi, "mde"),
            "methods": methods}


def build_prompt(verdict: Verdict) -> str:
    """The user message: the aggregate facts as JSON and what to write."""
    facts = json.dumps(summary_facts(verdict), indent=1)
    return ("Aggregate results of a weak-to-strong transfer validation (gains are method minus "
            "baseline accuracy in percentage points, intervals as given):\n"
            f"{facts}\n\nSummarise them for the team deciding which methods to promote.")


def template_summary(verdict: Verdict) -> str:
    """A deterministic narrative built from the verdict alone (same input, same text): the
    sentences of :func:`stats.verdict_prose.narrative` without the statistics' reasons (the
    report lists those), as one paragraph."""
    return " ".join(plain(sentence) for sentence in narrative(verdict, reasons=False))


def _ask_claude(verdict: Verdict, settings: SummarySettings, api_key: str) -> str:
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


def summarize(verdict: Verdict, settings: SummarySettings | None = None,
              logger: logging.Logger | logging.LoggerAdapter | None = None) -> Summary:
    """A narrative summary of ``verdict``: Claude's when configured and reachable, else the
    template.

    Args:
        verdict: the verdict.
        settings: defaults to :meth:`SummarySettings.from_env`.
        logger: where the fallback reason is logged (e.g. Prefect's run logger).

    Returns:
        A :class:`Summary`; ``fallback_reason`` says why the template was used.
    """
    log = logger or LOG
    if settings is None:
        try:
            settings = SummarySettings.from_env()
        except InputError as err:  # checked before compute too; never fail a finished run here
            reason = f"bad summary setting: {err}"
            log.warning("summary: %s; using the template summary", reason)
            return Summary(template_summary(verdict), "template", None, reason)
    try:
        api_key = settings.resolve_api_key()
    # A missing block or an unreachable Prefect API: any of many types.
    except Exception as err:  # noqa: BLE001 - falls back to the template summary
        reason = ("could not load the API key from Prefect Secret block "
                  f"{settings.secret_block!r} ({err})")
        log.warning("summary: %s; using the template summary", reason)
        return Summary(template_summary(verdict), "template", None, reason)
    if not api_key:
        reason = "no Anthropic API key configured (ANTHROPIC_API_KEY or W2S_SUMMARY_SECRET_BLOCK)"
        log.info("summary: %s; using the template summary", reason)
        return Summary(template_summary(verdict), "template", None, reason)
    try:
        text = _ask_claude(verdict, settings, api_key)
    # The SDK raises many types (timeouts, status, connection, parsing).
    except Exception as err:  # noqa: BLE001 - falls back to the template summary
        reason = f"Claude call failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
        log.warning("summary: %s; using the template summary", reason)
        return Summary(template_summary(verdict), "template", None, reason)
    mismatch = check_narrative(text, verdict)
    if mismatch:
        reason = f"Claude's summary did not match verdict.json: {mismatch}"
        log.warning("summary: %s; using the template summary", reason)
        return Summary(template_summary(verdict), "template", None, reason, rejected_text=text)
    return Summary(text, "claude", settings.model)


_NUMBER = re.compile(r"(?<![\w.])([+\-\u2212]?)(\d+(?:\.\d+)?)(?![\w])")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_VERDICT_WORD = re.compile(r"(?<![\w])(real|vanished|harmful|inconclusive)(?![\w])", re.I)
_HOLD_WORD = re.compile(r"(?<![\w])(HOLD)(?![\w])")  # "hold" is everyday English


def _numbers(text: str) -> list[tuple[str, Decimal]]:
    """``(sign, value)`` of every number in ``text`` (sign ``+``, ``-`` or empty)."""
    out = []
    for sign, digits in _NUMBER.findall(text):
        try:
            out.append(("-" if sign in ("-", "\u2212") else sign, Decimal(digits)))
        except InvalidOperation:
            continue
    return out


def _without(text: str, names: list[str]) -> str:
    """``text`` with every identifier in ``names`` blanked (model and rung names hold digits)."""
    for name in sorted(set(names), key=len, reverse=True):
        if name:
            text = re.sub(rf"(?<![\w]){re.escape(name)}(?![\w])", " ", text)
    return text


def _allowed(texts: list[str], names: list[str]) -> set[Decimal]:
    """Signed values of every number in ``texts`` (an unsigned one counts as positive)."""
    return {(-value if sign == "-" else value)
            for text in texts for sign, value in _numbers(_without(text, names))}


def _matches(sign: str, value: Decimal, allowed: set[Decimal]) -> bool:
    if sign == "-":
        return -value in allowed
    if sign == "+":
        return value in allowed
    return value in allowed or -value in allowed


def check_narrative(text: str, verdict: Verdict) -> str | None:
    """Why a model's narrative disagrees with ``verdict``, or None when it agrees.

    Checks, sentence by sentence:

    - every number (identifiers such as model and rung names blanked first) is one of the
      numbers in the facts the model was given (:func:`summary_facts`): a method's own numbers
      when the sentence names exactly that method, any method's otherwise, and the run-wide
      ones (alpha, SESOI, the interval level, counts of methods, datasets and rungs); equal
      values match (``4.7`` is ``+4.70``), a sign must agree;
    - every verdict word (REAL, VANISHED, HARMFUL, INCONCLUSIVE, any case; HOLD in capitals)
      is the verdict of the method the sentence names nearest to it (either side), or of some
      method when it names none.

    Returns:
        One line naming the first mismatch, or None.
    """
    facts = summary_facts(verdict)
    methods = facts["methods"]
    names = [facts.get("baseline") or "", facts.get("production_rung") or ""]
    names += list(methods)
    for info in methods.values():
        for cell in info["cells"]:
            names += [str(cell.get(k) or "") for k in ("rung", "dataset", "strong_model")]
    level = [f"{100 * (1 - verdict.alpha):g}"]
    datasets = {c.get("dataset") for info in methods.values() for c in info["cells"]}
    rungs = {c.get("rung") for info in methods.values() for c in info["cells"]}
    common = [json.dumps({k: v for k, v in facts.items() if k != "methods"}),
              *level, str(len(methods)), str(len(datasets)), str(len(rungs))]
    own = {m: _allowed([json.dumps(info)] + common, names) for m, info in methods.items()}
    anyone = set().union(*own.values()) if own else _allowed(common, names)
    verdicts = {m: str(info.get("verdict")) for m, info in methods.items()}
    for sentence in _SENTENCE.split(text.strip()):
        places = [(match.start(), match.end(), m) for m in methods for match in
                  re.finditer(rf"(?<![\w]){re.escape(m)}(?![\w])", sentence)]
        named = list(dict.fromkeys(m for _, _, m in places))  # in the order of ``methods``
        allowed = own[named[0]] if len(named) == 1 else anyone
        for sign, value in _numbers(_without(sentence, names)):
            if not _matches(sign, value, allowed):
                shown = f"{sign}{value}"
                whose = f" for {named[0]}" if len(named) == 1 else ""
                return f"the number {shown} is not in verdict.json{whose} (in: {_clip(sentence)})"
        words = [*_VERDICT_WORD.finditer(sentence), *_HOLD_WORD.finditer(sentence)]
        for word in words:
            owners = _nearest(places, word.start(), word.end())
            expected = {verdicts[m] for m in owners} if owners else set(verdicts.values())
            if word.group(1).upper() not in expected:
                whose = ", ".join(owners) if owners else "any method"
                return (f"the verdict word {word.group(1)!r} is not the verdict of {whose} "
                        f"({', '.join(sorted(expected)) or 'none'}) (in: {_clip(sentence)})")
    return None


def _nearest(places: list[tuple[int, int, str]], start: int, end: int) -> list[str]:
    """The method names of a sentence nearest a verdict word (characters between them), so
    that "A is VANISHED while B is REAL" is checked word by word, not against either method
    (attacker review 2026-12-05: a swap of two methods' verdicts in one sentence passed)."""
    gaps = [(start - name_end if name_end <= start else name_start - end, method)
            for name_start, name_end, method in places]
    closest = min((gap for gap, _ in gaps), default=None)
    return sorted({method for gap, method in gaps if gap == closest})


def _clip(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
