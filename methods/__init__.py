"""W2S methods as sealed plugins: the Method protocol, the registry, built-ins, the jail, audit.

Public entry points:
    ``methods.registry``: ``resolve_method``, ``resolve_with_params``, ``parse_params``,
        ``register_method``, ``is_builtin``, ``list_methods``.
    ``methods.resolve``: ``method_function`` (a method and its params as the function a student
        arm runs, under the plan's jail policy).
    ``methods.runner``: ``run_method`` (built-ins in-process, plugins in the jail).
    ``methods.policy``: ``JailSettings`` (the plan's ``jail:`` settings).
    ``methods.audit``: ``audit_label_leak``, ``AuditResult``.
"""
