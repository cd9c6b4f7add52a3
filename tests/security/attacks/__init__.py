"""Attack programs of the security suite (tests/security): malicious W2S methods, each trying one
route class to the gold labels, to the stores and caches, to the host or to the audit.

Each is a plugin module (``attacks.<name>:<Class>``, described and run in the jail like any
plugin) or a script run as an ``external`` command (``python3 <script> {inputs} {outputs} ...``),
or both. They report what they got through their predictions only: the gold label where they
found one, 0.5 elsewhere (or a documented encoding), so the suite measures the outcome from the
outside. Run them only through the tests: unjailed, several of them read or damage what they
are pointed at.
"""
