"""Shared assertions of the CLI tests."""
from __future__ import annotations


def one_error_line(result) -> str:
    """Assert a CliRunner result failed on bad input: exit 2, one `error:` line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def install_builtin(monkeypatch, method):
    """Install ``method`` (an instance) as a trusted built-in for the test: it then runs in the
    calling process, where a label reader can reach the labels."""
    from methods import registry

    info = registry.MethodInfo(method, method.name, "builtin", "tests")
    registry._load_builtins()
    monkeypatch.setitem(registry._BUILTINS, method.name, info)
    monkeypatch.setitem(registry._RESOLVED, id(method), info)
    return method
