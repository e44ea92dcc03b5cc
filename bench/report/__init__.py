"""Reports from a finished run folder: tables, figures, report.md/.html, and comparisons of runs.

It reads what ``bench.run.store`` wrote and recomputes nothing. It may import ``bench.measure`` and
``bench.run`` (the store's file names and format); never ``bench.regress`` or ``bench.cli``.
"""
