"""One benchmark run: its config, its inputs, the runner, the run folder's store, the environment.

The runner fits and builds each method configuration, sweeps its query parameters and writes
results into the run folder (``store``). It may import ``datasets``, ``encoders``, ``methods`` and
``bench.measure``; never ``bench.report``, ``bench.regress`` or ``bench.cli``, which import it.
"""
