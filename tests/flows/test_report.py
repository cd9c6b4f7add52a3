"""Reports: every rendered number traces back to verdict.json; files are atomic and
self-contained."""
from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_app import product_app
from typer.testing import CliRunner

from flows.report.render import build_context, render_markdown, write_report
from flows.summary import Summary
from stats.display import fmt
from stats.verdict_model import Verdict


class NumberSpans(HTMLParser):
    """Collects every element carrying data-path (a number formatted from verdict.json)."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "data-path" in attributes:
            self._open = {**attributes, "text": ""}
        if tag == "table":
            self._table = attributes.get("id")
            self.tables[self._table or ""] = []
        if tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        if tag in ("td", "th") and self._table is not None:
            self._cell = []
        if tag == "img":
            self.images.append({k: v or "" for k, v in attributes.items()})

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data
        if self._cell is not None:
            self._cell.append(data)


def lookup(verdict: dict[str, Any], path: str) -> Any:
    value: Any = verdict
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def typed(verdict: dict[str, Any]) -> Verdict:
    """The fixture's verdict dict as the model the report renders (tests look paths up in the
    dict, the JSON the report's data-path attributes name)."""
    return Verdict.model_validate(verdict)


def parse(html: str) -> NumberSpans:
    parser = NumberSpans()
    parser.feed(html)
    return parser


def test_every_number_in_html_is_formatted_from_verdict_json(tmp_path: Path, verdict, results_table,
                                                             provenance) -> None:
    files = write_report(tmp_path, typed(verdict), results_table, provenance)
    html = files.html.read_text()
    spans = parse(html).spans
    assert spans, "no traced numbers rendered"
    for span in spans:
        value = lookup(verdict, span["data-path"])
        assert json.loads(span["data-value"]) == value, span
        assert span["text"] == fmt(value, span["data-kind"]), span
    paths = {span["data-path"] for span in spans}
    # Every method at every rung and dataset, with its interval.
    for method, decision in verdict["methods"].items():
        for index, _ in enumerate(decision["cells"]):
            for field in ("gain.estimate", "gain.ci_low", "gain.ci_high", "acc.weak",
                          "acc.ceiling"):
                assert f"methods.{method}.cells.{index}.{field}" in paths


def test_verdict_table_rows_match_the_verdict(tmp_path: Path, verdict, results_table) -> None:
    html = write_report(tmp_path, typed(verdict), results_table, {}).html.read_text()
    rows = parse(html).tables["verdict-table"]
    header, body = rows[0], rows[1:]
    production = verdict["production_rung"]
    expected = [(m, c) for m, d in verdict["methods"].items() for c in d["cells"]
                if c["rung"] == production]
    assert len(body) == len(expected)
    for row, (method, cell) in zip(body, expected):
        shown = dict(zip(header, row))
        decision = verdict["methods"][method]
        assert (shown["method"], shown["verdict"], shown["dataset"]) == (
            method, decision["verdict"], cell["dataset"])
        assert shown["promote"] == ("yes" if decision["promote"] else "no")
        assert shown["gain (pp)"] == fmt(cell["gain"]["estimate"], "gain")
        assert shown["gain CI"] == (f"[{fmt(cell['gain']['ci_low'], 'gain')}, "
                                    f"{fmt(cell['gain']['ci_high'], 'gain')}]")
        assert shown["p adjusted"] == fmt(cell["gain"]["p_adjusted"], "p")
        assert shown["MDE80 (pp)"] == fmt(cell["mde80"], "mde")
        assert shown["PGR"] == fmt(cell["pgr"]["estimate"], "pgr")


def test_undefined_pgr_is_a_word_and_a_note_never_a_number(tmp_path: Path, verdict,
                                                           results_table) -> None:
    undefined = [(m, i) for m, d in verdict["methods"].items() for i, c in enumerate(d["cells"])
                 if not c["pgr"]["defined"]]
    assert undefined, "fixture must contain an undefined PGR"
    html = write_report(tmp_path, typed(verdict), results_table, {}).html.read_text()
    parsed = parse(html)
    paths = {span["data-path"] for span in parsed.spans}
    for method, index in undefined:
        assert f"methods.{method}.cells.{index}.pgr.estimate" not in paths
    cells = parsed.tables["cell-table"]
    header = cells[0]
    undefined_rows = [dict(zip(header, row)) for row in cells[1:]
                      if dict(zip(header, row))["rung"] == "xs"
                      and dict(zip(header, row))["dataset"] == "reviews-small"]
    assert undefined_rows and all(row["PGR"] == "undefined" for row in undefined_rows)
    assert "PGR undefined (ceiling not above the weak model), shown as a gap" in html


def test_html_is_self_contained_with_embedded_plots(tmp_path: Path, verdict, results_table,
                                                    provenance) -> None:
    html = write_report(tmp_path, typed(verdict), results_table, provenance).html.read_text()
    images = parse(html).images
    assert {image["data-figure"] for image in images} == {"forest", "pgr", "seeds"}
    assert all(image["src"].startswith("data:image/png;base64,") for image in images)
    assert not re.search(r"""(src|href)=["'](https?:|//|/)""", html), (
        "external resource in report.html")
    assert "<script" not in html and "<link" not in html
    assert provenance["git_commit"] in html and provenance["plan"]["plan_hash"] in html


def test_markdown_carries_the_same_numbers(tmp_path: Path, verdict, results_table) -> None:
    files = write_report(tmp_path, typed(verdict), results_table, {})
    markdown = files.markdown.read_text()
    for _method, decision in verdict["methods"].items():
        for cell in decision["cells"]:
            gain = cell["gain"]
            interval = f"[{fmt(gain['ci_low'], 'gain')}, {fmt(gain['ci_high'], 'gain')}]"
            assert f"| {fmt(gain['estimate'], 'gain')} | {interval} |" in markdown
    for plot in files.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({plot.relative_to(tmp_path)})" in markdown
    no_images = render_markdown(build_context(typed(verdict), results_table, {}), images=False)
    assert "report_files/" not in no_images and no_images == files.artifact_markdown
    assert "## Verdicts" in no_images


def test_narrative_is_separate_and_labelled(tmp_path: Path, verdict, results_table) -> None:
    summary = Summary("Narrative <b>text</b> 99.99 made up.", "claude", "claude-test")
    html = write_report(tmp_path, typed(verdict), results_table, {}, summary).html.read_text()
    assert "Narrative &lt;b&gt;text&lt;/b&gt;" in html, "narrative must be escaped"
    assert "written by Claude (claude-test)" in html and "authoritative" in html
    # The narrative's numbers are not traced numbers of the report.
    assert all(span["text"] != "99.99" for span in parse(html).spans)
    assert json.loads((tmp_path / "summary.json").read_text())["source"] == "claude"


def test_summary_md_report_and_template_say_the_same_sentences(tmp_path: Path, verdict,
                                                              results_table) -> None:
    """Each method's decision and trend sentences (stats.verdict_prose) stand, word for word,
    in summary.md, in the report's own sections (md and html) and in the template narrative;
    summary.md, which lists the statistics' reasons, says an estimated trend once, in them."""
    from flows.summary import template_summary
    from stats.display import plain
    from stats.verdict import summary_markdown
    from stats.verdict_prose import trend_sentence, verdict_sentence

    model = typed(verdict)
    narrative = template_summary(model)
    files = write_report(tmp_path, model, results_table, {}, Summary(narrative, "template"))
    report_md = files.markdown.read_text().split("## Narrative summary")[0]
    report_html = unescape(re.sub(r"<[^>]+>", "", files.html.read_text()
                                       .split('id="narrative"')[0]))
    summary_md = summary_markdown(model)
    for method, decision in verdict["methods"].items():
        decided = plain(verdict_sentence(model, "methods", method))
        assert decided.startswith(f"{method} is {decision['verdict']}")
        trend = plain(trend_sentence(model, "methods", method))
        stated = any(r.startswith("trend: ") for r in decision["reasons"])
        for sentence in (decided, trend):
            for where, text in (("summary.md", summary_md), ("report.md", report_md),
                                ("report.html", report_html), ("template", narrative)):
                if where == "summary.md" and sentence == trend and stated:
                    assert sentence not in text  # said once, by the reasons below
                    continue
                assert sentence in text, (where, sentence)
        for reason in decision["reasons"]:
            assert reason in summary_md


def test_absent_optional_fields_render_as_na(tmp_path: Path, verdict, results_table) -> None:
    for decision in verdict["methods"].values():
        decision.pop("trend", None)
        for cell in decision["cells"]:
            cell.pop("mde80")
            cell["strong_params"] = None
            del cell["gain"]["p_equivalence"]
    files = write_report(tmp_path, typed(verdict), results_table, {})
    text = files.markdown.read_text()
    assert "n/a" in text and "no trend estimated" in text
    assert "rungs are shown in ladder order" in text


def test_writes_are_atomic_and_replace_old_reports(tmp_path: Path, verdict, results_table) -> None:
    (tmp_path / "report.html").write_text("old")
    write_report(tmp_path, typed(verdict), results_table, {})
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_report_command_rerenders_from_saved_results(saved_run: Path, verdict) -> None:
    result = CliRunner().invoke(product_app(), ["report", str(saved_run)])
    assert result.exit_code == 0, result.stderr
    html = (saved_run / "report.html").read_text()
    for span in parse(html).spans:
        assert span["text"] == fmt(lookup(verdict, span["data-path"]), span["data-kind"])
    assert "deterministic template" in html
    # A saved narrative is reused, not regenerated.
    (saved_run / "summary.json").write_text(json.dumps({"text": "kept narrative",
                                                        "source": "claude", "model": "m"}))
    assert CliRunner().invoke(product_app(), ["report", str(saved_run)]).exit_code == 0
    assert "kept narrative" in (saved_run / "report.html").read_text()


@pytest.mark.parametrize(("breakage", "expected"), [
    (lambda d: (d / "verdict.json").unlink(), "verdict.json: verdict file not found"),
    (lambda d: (d / "results.parquet").unlink(), "no results.parquet: `report` re-renders a "
                                                 "validate run's output"),
    (lambda d: (d / "verdict.json").write_text('{"schema_version": 1, "alpha"'),
     "invalid or truncated JSON"),
    (lambda d: (d / "results.parquet").write_bytes(b"not parquet"), "cannot read parquet"),
    (lambda d: pd.DataFrame({"x": [1]}).to_parquet(d / "results.parquet"),
     "missing ['rung', 'dataset', 'seed', 'arm']"),
    (lambda d: (d / "provenance.json").write_text("[]"),
     "provenance.json:1: expected a JSON object"),
    (lambda d: (d / "summary.json").write_text('{"text": 1}'), "summary.json: expected"),
])
def test_report_command_bad_inputs_exit_2(saved_run: Path, breakage, expected) -> None:
    breakage(saved_run)
    result = CliRunner().invoke(product_app(), ["report", str(saved_run)])
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and result.stderr.count("\n") == 1


def test_report_command_missing_directory_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(product_app(), ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "expected an output directory" in result.stderr


def test_a_results_table_that_is_not_the_verdict_s_is_refused(saved_run: Path) -> None:
    """helper-44: `report DIR` rendered whatever results.parquet lay beside the verdict, so a
    report could show one table's figures beside another table's verdicts."""
    import hashlib

    from flows.report.saved import load_saved_run

    verdict_path = saved_run / "verdict.json"
    verdict = json.loads(verdict_path.read_text())
    table = (saved_run / "results.parquet").read_bytes()
    verdict["binding"] = {"results_sha256": hashlib.sha256(table).hexdigest()}
    verdict_path.write_text(json.dumps(verdict))
    assert len(load_saved_run(saved_run).results) > 0  # the bound table: rendered

    other = pd.read_parquet(saved_run / "results.parquet").iloc[:-1]
    other.to_parquet(saved_run / "results.parquet")
    result = CliRunner().invoke(product_app(), ["report", str(saved_run)])
    assert result.exit_code == 2, result.output
    assert f"{saved_run / 'results.parquet'}: sha256 " in result.output
    assert "is not the table the verdict was derived from" in result.output
