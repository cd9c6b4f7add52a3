"""Read a JSONL file into (line number, object) pairs, with errors that name file and line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from w2s_common.errors import TOO_LONG_NUMBER, InputError
from w2s_common.jsonkeys import RepeatedKey, one_value_per_key


def parse_json(text: str, path: Path, line: int | None = None, *,
               field: str | None = None) -> Any:
    """``json.loads`` of a task file's text (one JSONL line, or all of labels.json).

    Raises:
        InputError: malformed JSON, or JSON nested deeper than Python's parser can follow
            (``RecursionError``: a line of thousands of ``[``), naming ``path``, ``line`` and
            ``field`` (each when given).
    """
    try:
        return json.loads(text, object_pairs_hook=one_value_per_key)
    except json.JSONDecodeError as err:
        raise InputError(f"malformed JSON: {err.msg} at column {err.colno}", path=path,
                         line=line, field=field) from None
    except RepeatedKey as err:
        raise InputError(str(err), path=path, line=line, field=field) from None
    except ValueError:  # an integer past Python's conversion limit
        raise InputError(TOO_LONG_NUMBER, path=path, line=line, field=field) from None
    except RecursionError:
        raise InputError("JSON nested too deeply (expected arrays and objects less than about "
                         "1000 levels deep)", path=path, line=line, field=field) from None


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Parse every non-blank line of ``path`` as a JSON object.

    Args:
        path: the JSONL file.

    Returns:
        ``(line_number, row)`` pairs, line numbers 1-based as an editor shows them.

    Raises:
        InputError: the file is missing or not UTF-8, a line is not valid JSON (or nested too
            deeply), or a line holds something other than a JSON object.
    """
    if not path.exists():
        raise InputError("missing file: every task directory needs train_label.jsonl, "
                         "train_unlabel.jsonl and test.jsonl", path=path)
    if not path.is_file():  # a directory, or a FIFO whose read would block forever
        raise InputError("expected a regular file", path=path)
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"file is not valid UTF-8 (byte {err.start})", path=path) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    # split("\n"), not splitlines(): JSON strings may legally hold U+2028 and similar separators.
    for line_number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        row = parse_json(line, path, line_number)
        if not isinstance(row, dict):
            raise InputError(f"expected a JSON object per line, got {type(row).__name__}",
                             path=path, line=line_number)
        rows.append((line_number, row))
    return rows
