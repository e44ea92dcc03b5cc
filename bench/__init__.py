"""FlowHash bench: the harness, top of the one-way flow datasets -> encoders -> methods -> bench.

It may import datasets, encoders and methods; none of them may import it. Its subpackages, each
importing only those listed before it:

- ``measure/``: how every number is measured and defined: search timing, hit-rate metrics, speedup;
- ``run/``: a benchmark run: config, its inputs (corpus, query set, embeddings), the runner, the
  run folder's result store, the environment record;
- ``report/``: reading a finished run folder: tables, figures, report.md/.html, run comparison;
- ``regress/``: the CI regression check: fixed scenario, measurement, baseline comparison;
- ``cli/``: ``python -m bench``, one module per subcommand. Nothing imports it but ``__main__``.
"""

__version__ = "0.1.0"
