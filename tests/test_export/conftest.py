"""A small synth run shared by the export and precomputed-vector tests, in a module-wide cache."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.run.config import RunConfig, TimingConfig
from datasets.queries.queryset import QuerySetConfig
from tests.helpers import write_rirs

QUERIES = QuerySetConfig(durations=(1.0, 2.0), snrs=(None, 5.0), reverbs=(None,), per_cell=5, seed=3)
TIMING = TimingConfig(warmup=1, repeats=1, latency_queries=8, batch_repeats=0, interleaved_repeats=1)


@pytest.fixture(scope="package")
def small(tmp_path_factory: pytest.TempPathFactory):
    """(config, root): 12 synth tracks, folder rooms, 200 + 50 train pairs, a package-wide cache."""
    root = tmp_path_factory.mktemp("export")
    write_rirs(root / "rirs")
    config = RunConfig(synth_tracks=12, rooms=str(root / "rirs"), queries=QUERIES, train_pairs=200, held_out_pairs=50,
                       timing=TIMING,
                       grids={"lsh": {"build": [{"K": 8, "L": 2}], "query": [{"radius": 0}, {"radius": 1}]},
                              "pca-sign": {"build": [{"K": 8}], "query": [{"n_probes": 1}, {"n_probes": 4}]}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(root / "cache"))
        yield config, root


def run_dir_of(outcome) -> Path:
    """The run folder of a run_benchmark outcome."""
    return Path(outcome.root)
