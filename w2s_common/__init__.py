"""The leaf of shared primitives: what every room (flows, methods, transfer, stats) may import.

It imports nothing of ours (an import contract in pyproject.toml checks this), holds no labels
and no evaluator code, and is copied into the method jail (methods.jail_runtime.JAIL_MODULES).

- `w2s_common.errors`: `InputError`, the one-line user error (``path:line: field: message``);
- `w2s_common.atomic`: atomic file writes;
- `w2s_common.yamlio`: a user's YAML file with the line of each node;
- `w2s_common.validation`: the first pydantic ValidationError as one line;
- `w2s_common.names`: the names of arms, splits, verdicts and the results table's columns;
- `w2s_common.versions`: installed package versions.
"""
