"""``--engine ray`` on a local Ray instance of 2 CPUs the tests start themselves: embedding into
the same store as the local path (and resuming it), ``bench embed`` and ``bench run`` through
Ray giving the same deterministic columns as the local engine, the scaling sweep likewise, and
runs mixing node kinds refused."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="the ray extra (pip install -e '.[ray]') is not installed")

from bench.cli.main import main
from bench.distributed.cluster import cluster_nodes, connect
from bench.distributed.executor import RayExecutor
from bench.measure.metrics import deterministic_columns
from bench.run.config import config_from_dict
from bench.run.executor import LocalExecutor
from bench.run.runner import run_benchmark
from bench.run.store import PARTS, RunStoreError
from datasets.corpora.synth import SynthCorpus
from datasets.protocol import Protocol
from encoders.builtin.checkpoint import untrained_encoder
from encoders.builtin.nafp import EncoderConfig
from encoders.embed import corpus_segments
from encoders.ray_embed import ray_stream, shard_jobs
from encoders.store import fill_store, open_store

PROTOCOL = Protocol(hop_s=0.25)
TINY = EncoderConfig(channels=(8, 16, 16, 32), dim=16, head_hidden=8)
RAW = {"synth_tracks": 12, "train_pairs": 300,
       "queries": {"durations": [1, 2], "snrs": ["clean", 5], "reverbs": ["none"], "per_cell": 4, "seed": 1},
       "timing": {"warmup": 2, "repeats": 1, "latency_queries": 8, "batch_repeats": 1},
       "grids": {"flowhash": {"build": [{"K": 8, "n_blocks": 2, "epochs": 2, "max_steps": 20}],
                              "query": [{"n_probes": 1}, {"n_probes": 8}]},
                 "lsh": {"build": [{"K": 8, "L": 2}, {"K": 10, "L": 1}], "query": [{"radius": 0}, {"radius": 1}]}}}
CONFIG = config_from_dict(RAW, "the test's config")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the Ray workers are started with it in their environment."""
    return tmp_path_factory.mktemp("ray-cache")


@pytest.fixture(scope="module")
def local_ray(cache):
    """A local Ray instance of 2 CPUs for this module, shut down after it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(cache))
        resources = connect(num_cpus=2)
        yield resources
    ray.shutdown()


@pytest.fixture
def shared_cache(cache, monkeypatch):
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(cache))


def _world():
    corpus = SynthCorpus(PROTOCOL, n_tracks=5, min_duration_s=30, max_duration_s=40, progress=False)
    corpus.ensure_cached()
    return corpus, untrained_encoder(PROTOCOL, TINY, seed=0), corpus_segments(corpus).assign(source="synth")


def test_shards_hold_whole_tracks_in_order():
    jobs = [("s", f"t{i}", np.arange(n)) for i, n in enumerate((5, 3, 9, 1, 2))]
    shards = shard_jobs(jobs, 6)
    assert [[j[1] for j in s] for s in shards] == [["t0", "t1"], ["t2"], ["t3", "t4"]]
    assert [j for s in shards for j in s] == jobs


def test_the_local_instance_has_the_cpus_asked_for_and_one_node_kind(local_ray):
    assert local_ray["CPU"] == 2
    nodes = cluster_nodes()
    assert len(nodes) == 1 and nodes[0].cpus == 2 and nodes[0].machine["cpu_count"] >= 1
    described = RayExecutor().describe()
    assert described["engine"] == "ray" and described["latency_node_kind"] == nodes[0].kind


def test_ray_workers_fill_the_same_store_and_an_interrupted_fill_resumes(local_ray, shared_cache, tmp_path):
    corpus, encoder, index = _world()
    local = fill_store(tmp_path / "local", "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=150)
    stream = ray_stream(encoder, {"synth": corpus}, workers=2, shard_rows=60)

    def interrupted(jobs):
        for i, rows in enumerate(stream(jobs)):
            if i == 3:
                raise KeyboardInterrupt
            yield rows

    with pytest.raises(KeyboardInterrupt):
        fill_store(tmp_path / "ray", "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=60,
                   stream=interrupted)
    state = json.loads((tmp_path / "ray" / "state.json").read_text())
    assert 0 < state["rows_done"] < len(index) and not state["complete"]
    resumed = fill_store(tmp_path / "ray", "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=60,
                         stream=stream)
    assert resumed.state["complete"] and len(resumed.state["chunks"]) > 2
    pd.testing.assert_frame_equal(resumed.index, local.index)
    np.testing.assert_allclose(np.asarray(resumed.rows), np.asarray(local.rows), atol=1e-5)
    open_store(tmp_path / "ray", "k", verify=True)


def test_bench_embed_through_ray_reports_its_workers(local_ray, shared_cache, tmp_path, capsys):
    assert main(["embed", "--engine", "ray", "--workers", "2", "--synth-tracks", "6", "--no-progress",
                 "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "2 Ray workers of 1 CPU" in out and "embedded in" in out
    store = open_store(tmp_path / "store", verify=True)
    assert store.state["complete"] and len(store) > 0


def _deterministic(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["label", "query_params", *[c for c in ("duration_s", "snr", "reverb") if c in frame.columns]]
    return frame.sort_values(keys)[keys + deterministic_columns(frame)].reset_index(drop=True)


@pytest.mark.slow
def test_bench_run_on_ray_gives_the_local_runs_deterministic_columns(local_ray, shared_cache, tmp_path, capsys):
    ray_dir, local_dir = tmp_path / "ray", tmp_path / "local"
    config = tmp_path / "config.yml"
    config.write_text(json.dumps(RAW))
    assert main(["run", "--config", str(config), "--method", "flowhash", "lsh", "--engine", "ray", "--run-dir",
                 str(ray_dir), "--no-progress"]) == 0
    capsys.readouterr()
    local = run_benchmark(CONFIG, ["flowhash", "lsh"], run_dir=local_dir, progress=False, executor=LocalExecutor())
    on_ray = pd.read_parquet(ray_dir / "results.parquet")
    assert len(on_ray) == len(local.results) and len(deterministic_columns(on_ray)) >= 20
    pd.testing.assert_frame_equal(_deterministic(on_ray), _deterministic(local.results), check_exact=True)
    pd.testing.assert_frame_equal(_deterministic(pd.read_parquet(ray_dir / "points.parquet")),
                                  _deterministic(local.points), check_exact=True)
    info = json.loads((ray_dir / "run.json").read_text())
    assert info["engine"]["engine"] == "ray" and len(info["node_kinds"]) == 1
    assert on_ray["node"].notna().all() and on_ray["node_kind"].nunique() == 1


@pytest.mark.slow
def test_a_run_mixing_node_kinds_is_refused_unless_asked_for(shared_cache, tmp_path):
    config = replace(CONFIG, grids={"lsh": {"build": [{"K": 8, "L": 2}], "query": [{"radius": 0}]}})
    run_benchmark(config, ["lsh"], run_dir=tmp_path / "run", progress=False)
    marker = next(p for p in (tmp_path / "run" / PARTS).glob("*.json")
                  if json.loads(p.read_text())["label"] != "exhaustive")
    meta = json.loads(marker.read_text())
    meta["node"] = {**meta["node"], "cpu": "Another CPU 9000"}
    marker.write_text(json.dumps(meta))
    with pytest.raises(RunStoreError, match="nodes of 2 kinds.*--mix-nodes"):
        run_benchmark(config, ["lsh"], run_dir=tmp_path / "run", progress=False)
    out = run_benchmark(config, ["lsh"], run_dir=tmp_path / "run", progress=False, mix_nodes=True)
    assert len(out.info["node_kinds"]) == 2


@pytest.mark.slow
def test_the_scaling_sweep_on_ray_gives_the_local_sweeps_deterministic_columns(local_ray, shared_cache, tmp_path):
    import copy

    from bench.scale.config import scale_config_from_dict
    from bench.scale.sweep import run_scale
    from tests.helpers import TINY

    config = scale_config_from_dict(copy.deepcopy(TINY), "tiny")
    on_ray = run_scale(config, tmp_path / "ray", progress=False, executor=RayExecutor())  # embeds the store on Ray
    local = run_scale(config, tmp_path / "local", progress=False)
    assert on_ray.info["engine"]["engine"] == "ray" and len(on_ray.info["sizes"]) == 3
    keys = ["n_db", "label", "query_params"]
    a, b = (o.points.sort_values(keys).reset_index(drop=True) for o in (on_ray, local))
    pd.testing.assert_frame_equal(a[keys + deterministic_columns(a)], b[keys + deterministic_columns(b)],
                                  check_exact=True)
