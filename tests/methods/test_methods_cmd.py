"""`w2s-transfer methods`: the listing, as a table and as JSON."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from flows.cli import app


def test_json_lists_every_builtin_with_source_and_typed_params():
    result = CliRunner().invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    listed = {entry["name"]: entry for entry in json.loads(result.output)}
    assert {"vanilla", "aux_conf", "confident", "bootstrap", "em_posterior", "zero_shot_prior",
            "external"} <= set(listed)
    assert listed["aux_conf"]["source"].startswith("Burns et al. 2023, arXiv:2312.09390")
    assert listed["aux_conf"]["params"][0] == {
        "name": "a_max", "type": "float", "required": False, "default": 0.5,
        "description": "final weight of the self-training term"}
    command = listed["external"]["params"][0]
    assert command["name"] == "command" and command["required"] and command["type"] == "str"
    assert all(entry["origin"] == "builtin" for entry in listed.values())


def test_table_shows_names_sources_and_params():
    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    for text in ("em_posterior", "outside [low, high]", "a_max: float = 0.5",
                 "command: str (required)", "automated W2S research sandbox"):
        assert text in result.output
