"""Significance reports: ``report.md`` and a self-contained ``report.html`` from verdict.json.

Kept import-light (no matplotlib here) so that the gate can use :mod:`flows.report.verdict`
without paying for plotting; rendering lives in :mod:`flows.report.render`.
"""
