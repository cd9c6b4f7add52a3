"""Shared assertions of the CLI tests."""
from __future__ import annotations


def one_error_line(result) -> str:
    """Assert a CliRunner result failed on bad input: exit 2, one `error:` line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]
