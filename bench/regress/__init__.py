"""The CI regression check: a fixed scenario (``scenario.yml``), its measurement, and the baseline comparison.

It may import ``bench.measure`` and ``bench.run`` (it builds and sweeps methods with the runner's
functions); never ``bench.report`` or ``bench.cli``. Only the ``regress`` subcommand imports it.
"""
