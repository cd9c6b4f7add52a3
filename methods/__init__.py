"""W2S methods as sealed plugins: the Method protocol, the registry, built-ins, sandbox, audit.

Public entry points:
    ``methods.registry``: ``resolve_method``, ``parse_params``, ``register_method``,
        ``is_builtin``, ``list_methods``.
    ``methods.runner``: ``run_method`` (built-ins in-process, plugins sandboxed),
        ``default_hidden_paths``.
    ``methods.sandbox``: ``run_sandboxed``, ``sandbox_policy``.
    ``methods.audit``: ``audit_label_leak``, ``AuditResult``.
"""
