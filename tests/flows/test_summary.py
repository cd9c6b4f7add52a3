"""Claude summary end to end against a local Messages-API server; template fallback on failure."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flows.summary import Summary, SummarySettings, summarize, summary_facts, template_summary
from stats.display import fmt, plain
from stats.verdict_model import DataQualityRecord, RecordIssue, Verdict
from stats.verdict_prose import trend_sentence, verdict_sentence


class MessagesServer:
    """A tiny HTTP server speaking POST /v1/messages; ``mode`` is ok, error or hang; ``reply``
    is the text it answers with."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.reply = "aux_conf's gain holds at scale."
        self.requests: list[dict[str, Any]] = []
        self.raw_bodies: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                server.raw_bodies.append(body)
                server.requests.append({"path": self.path,
                                        "headers": {k.lower(): v
                                                    for k, v in self.headers.items()},
                                        "json": json.loads(body)})
                if server.mode == "hang":
                    time.sleep(3)
                if server.mode == "error" or self.path != "/v1/messages":
                    self._send(500, {"type": "error", "error": {"type": "api_error",
                                                                "message": "overloaded"}})
                    return
                request = json.loads(body)
                self._send(200, {
                    "id": "msg_local_1", "type": "message", "role": "assistant",
                    "model": request["model"], "stop_reason": "end_turn", "stop_sequence": None,
                    "content": [{"type": "text", "text": server.reply}],
                    "usage": {"input_tokens": 321, "output_tokens": 12}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left (the hang case)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MessagesServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def verdict(verdict: dict[str, Any]) -> Verdict:
    """The conftest's verdict as the typed model the summary reads."""
    return Verdict.model_validate(verdict)


@pytest.fixture
def server() -> Iterator[MessagesServer]:
    with MessagesServer() as running:
        yield running


def settings_for(server: MessagesServer, **overrides: Any) -> SummarySettings:
    return SummarySettings(**{"api_key": "test-key", "base_url": server.url, "model": "claude-test",
                              "timeout_s": 5.0, **overrides})


def test_claude_summary_through_the_messages_api(server, verdict, results_table) -> None:
    summary = summarize(verdict, settings_for(server))
    assert summary == Summary("aux_conf's gain holds at scale.", "claude", "claude-test", None)
    (request,) = server.requests
    assert request["path"] == "/v1/messages"
    # The SDK sends the key as x-api-key or (anthropic>=2) as a bearer token.
    headers = request["headers"]
    assert (headers.get("x-api-key") == "test-key"
            or headers.get("authorization") == "Bearer test-key")
    body = request["json"]
    assert body["model"] == "claude-test" and body["max_tokens"] > 0
    prompt = body["messages"][0]["content"]
    # Aggregate numbers, formatted exactly as the report shows them.
    cell = verdict.methods["aux_conf"].cells[-1]
    assert fmt(cell.gain.estimate, "gain") in prompt
    assert "aux_conf" in prompt and "REAL" in prompt
    # Never examples, ids or labels.
    raw = server.raw_bodies[0]
    example_ids = set(results_table["example_id"])
    assert not [eid for eid in example_ids if eid in raw]
    assert "example_id" not in raw and "-test-" not in raw


def test_only_whitelisted_fields_reach_the_prompt(verdict) -> None:
    # Fields of the verdict that name records, notes or code are not aggregate numbers: none
    # of them may reach the model.
    verdict.data_quality = DataQualityRecord(
        issues=[RecordIssue(dataset="d", arm="a", record="secret-example-1", kind="k",
                            message="m", breaks_pairing=True)],
        notes=["secret-example-2"], pairings=[])
    verdict.methods["aux_conf"].cells[0].notes = ["secret-example-3"]
    verdict.binding = {"secret": "secret-example-4"}
    verdict.notes = ["secret-example-5"]
    assert "secret-example-3" in verdict.to_json()  # the file has them
    text = json.dumps(summary_facts(verdict))
    assert "secret-example" not in text


def test_http_500_falls_back_to_template(server, verdict, caplog) -> None:
    server.mode = "error"
    with caplog.at_level(logging.WARNING, logger="w2s_transfer.summary"):
        summary = summarize(verdict, settings_for(server))
    assert summary.source == "template" and summary.text == template_summary(verdict)
    assert "InternalServerError" in summary.fallback_reason
    assert any("using the template summary" in record.message for record in caplog.records)
    assert len(server.requests) == 1, "no retries: a failed summary must not slow the run"


def test_hanging_server_times_out_to_template(server, verdict) -> None:
    server.mode = "hang"
    started = time.monotonic()
    summary = summarize(verdict, settings_for(server, timeout_s=0.5))
    assert time.monotonic() - started < 2.5
    assert summary.source == "template" and "Timeout" in summary.fallback_reason


def test_no_key_uses_template_without_network(verdict) -> None:
    summary = summarize(verdict, SummarySettings.from_env({}))
    assert summary.source == "template" and "no Anthropic API key" in summary.fallback_reason


def test_key_from_prefect_secret_block(prefect_harness, server, verdict) -> None:
    from prefect.blocks.system import Secret

    Secret(value="block-key").save("w2s-test-anthropic-key", overwrite=True)
    summary = summarize(verdict, settings_for(server, api_key=None,
                                              secret_block="w2s-test-anthropic-key"))
    assert summary.source == "claude"
    headers = server.requests[-1]["headers"]
    assert (headers.get("x-api-key") == "block-key"
            or headers.get("authorization") == "Bearer block-key")

    missing = summarize(verdict, settings_for(server, api_key=None, secret_block="no-such-block"))
    assert missing.source == "template"
    assert "Secret block 'no-such-block'" in missing.fallback_reason


def test_settings_from_environment() -> None:
    settings = SummarySettings.from_env({"ANTHROPIC_API_KEY": "k", "W2S_SUMMARY_MODEL": "m",
                                         "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
                                         "W2S_SUMMARY_SECRET_BLOCK": "anthropic-key",
                                         "W2S_SUMMARY_TIMEOUT_S": "3"})
    assert (settings.api_key, settings.model, settings.base_url, settings.secret_block,
            settings.timeout_s) == ("k", "m", "http://127.0.0.1:9", "anthropic-key", 3.0)
    assert settings.resolve_api_key() == "k"


def test_template_is_deterministic_and_quotes_report_numbers(verdict) -> None:
    text = template_summary(verdict)
    assert text == template_summary(verdict)
    for method, decision in verdict.methods.items():
        assert f"{method} is {decision.verdict}" in text
        production = [c for c in decision.cells if c.rung == verdict.production_rung]
        for cell in production:
            assert fmt(cell.gain.estimate, "gain") in text
        # The sentences are stats.verdict_prose's, as in summary.md and the report.
        assert plain(verdict_sentence(verdict, "methods", method)) in text
        assert plain(trend_sentence(verdict, "methods", method)) in text


# --- issue 9: the model's text is checked against verdict.json -------------------------------

def test_invented_number_is_replaced_by_the_template(server, verdict, results_table,
                                                     tmp_path) -> None:
    from flows.report.render import write_report

    server.reply = ("aux_conf is REAL +4.70 pp at the production rung and may be promoted. "
                    "confident is HARMFUL.")
    summary = summarize(verdict, settings_for(server))
    assert summary.source == "template" and summary.text == template_summary(verdict)
    assert "did not match verdict.json" in summary.fallback_reason
    assert "+4.70" in summary.fallback_reason and "aux_conf" in summary.fallback_reason
    assert summary.rejected_text == server.reply
    files = write_report(tmp_path, verdict, results_table, {}, summary)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["source"] == "template" and saved["fallback_reason"] == summary.fallback_reason
    assert saved["rejected_text"] == server.reply
    assert "did not match verdict.json" in files.markdown.read_text()
    assert "+4.70" not in files.markdown.read_text().split("## Narrative summary")[1].split(
        "##")[0].replace(summary.fallback_reason, "")


@pytest.mark.parametrize(("reply", "why"), [
    ("confident is REAL at the largest rung.", "the verdict word 'REAL' is not the verdict of "
     "confident"),
    ("em_posterior gained {aux_gain} pp.", "is not in verdict.json for em_posterior"),
    ("aux_conf lost {neg_aux} pp.", "is not in verdict.json for aux_conf"),
    ("Every method vanished.", "'vanished' is not the verdict of any method"),
    # Two methods' verdicts swapped in one sentence: each word is checked against its nearest
    # method (attacker review 2026-12-05: this passed while any named method's verdict did).
    ("aux_conf is HARMFUL, while confident is REAL.", "the verdict word 'HARMFUL' is not the "
     "verdict of aux_conf"),
])
def test_wrong_words_and_misattributed_numbers_are_refused(server, verdict, reply, why) -> None:
    production = verdict.production_rung
    aux = next(c for c in verdict.methods["aux_conf"].cells if c.rung == production)
    gain = fmt(aux.gain.estimate, "gain")
    server.reply = reply.format(aux_gain=gain, neg_aux="-" + gain.lstrip("+"))
    summary = summarize(verdict, settings_for(server))
    assert summary.source == "template" and why in summary.fallback_reason


def test_a_faithful_summary_is_kept(server, verdict) -> None:
    production = verdict.production_rung
    aux = next(c for c in verdict.methods["aux_conf"].cells if c.rung == production)
    gain, low, high = (fmt(getattr(aux.gain, k), "gain") for k in ("estimate", "ci_low",
                                                                   "ci_high"))
    server.reply = (f"aux_conf is REAL at the production rung ({gain} pp, 95% interval {low} "
                    f"to {high}). confident is HARMFUL and em_posterior remains inconclusive "
                    "across 3 methods.")
    summary = summarize(verdict, settings_for(server))
    assert summary.source == "claude", summary.fallback_reason
    assert summary.text == server.reply


def test_fallback_reasons_reach_summary_json_and_the_report(server, verdict, results_table,
                                                            tmp_path) -> None:
    from flows.report.render import write_report

    server.mode = "error"
    summary = summarize(verdict, settings_for(server))
    files = write_report(tmp_path, verdict, results_table, {}, summary)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert "InternalServerError" in saved["fallback_reason"]
    assert "InternalServerError" in files.markdown.read_text()
    assert "InternalServerError" in files.html.read_text()
    no_key = summarize(verdict, SummarySettings.from_env({}))
    files = write_report(tmp_path, verdict, results_table, {}, no_key)
    assert "no Anthropic API key configured" in files.markdown.read_text()


@pytest.mark.parametrize("value", ["abc", "0", "-3", "nan", "inf", "1e9"])
def test_bad_timeout_is_rejected_before_compute(value, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.summary import check_summary_settings
    from w2s_common.errors import InputError

    with pytest.raises(InputError, match="W2S_SUMMARY_TIMEOUT_S: expected a number of seconds"):
        check_summary_settings({"W2S_SUMMARY_TIMEOUT_S": value})
    # The validate command stops before any compute: one line, exit 2, nothing written.
    monkeypatch.setenv("W2S_SUMMARY_TIMEOUT_S", value)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", "flows/plans/micro-ci.yaml", "--out", str(out),
                                      "--store", str(tmp_path / "store")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: W2S_SUMMARY_TIMEOUT_S: expected a number of seconds")
    assert result.stderr.count("\n") == 1 and not out.exists()
    # And if it is bad only at the end (set after the checks), the run still gets its report.
    summary = summarize(Verdict.model_validate({
        "schema_version": 1, "alpha": 0.05, "sesoi": 0.01, "methods": {}, "baseline": "vanilla",
        "production_rung": "m1"}))
    assert summary.source == "template" and "bad summary setting" in summary.fallback_reason


def test_bad_base_url_is_rejected() -> None:
    from flows.summary import check_summary_settings
    from w2s_common.errors import InputError

    with pytest.raises(InputError, match="ANTHROPIC_BASE_URL: expected an http"):
        check_summary_settings({"ANTHROPIC_BASE_URL": "localhost:9"})
    check_summary_settings({"W2S_SUMMARY_TIMEOUT_S": "3", "ANTHROPIC_BASE_URL": "http://h:1"})
