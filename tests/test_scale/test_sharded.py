"""Sharded search on a local Ray instance (bench/distributed/sharded.py): shards of one store, each
searched by its own actor, merged by score, give exact search's answers; the merge alone is checked
against a full sort; the plan's latency is the slowest shard plus the merge."""
from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra (pip install -e '.[ray]') is not installed")

from bench.distributed.cluster import connect
from bench.distributed.sharded import merge_topk, shard_bounds, sharded_search
from methods.registry import method_class


@pytest.fixture(scope="module")
def local_ray():
    resources = connect(num_cpus=2)
    yield resources
    ray.shutdown()


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_shards_cover_the_rows_once():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(5, 1) == [(0, 5)]
    with pytest.raises(ValueError, match="shards: expected 1..5"):
        shard_bounds(5, 6)


def test_the_merge_keeps_the_k_best_of_all_shards():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((6, 40)).astype(np.float32)
    ids = np.tile(np.arange(40), (6, 1))
    ids[0, :3] = -1  # padding in one shard's answer
    parts = [(ids[:, i:i + 10], scores[:, i:i + 10]) for i in range(0, 40, 10)]
    got_ids, got_scores = merge_topk(parts, 5)
    masked = np.where(ids >= 0, scores, -np.inf)
    want = np.argsort(-masked, axis=1, kind="stable")[:, :5]
    assert np.array_equal(got_ids, np.take_along_axis(ids, want, axis=1))
    assert np.allclose(got_scores, np.take_along_axis(masked, want, axis=1))


def test_sharded_exhaustive_search_gives_exact_search_answers(local_ray, tmp_path):
    rng = np.random.default_rng(1)
    db = _unit(rng.standard_normal((3000, 16)))
    np.save(tmp_path / "rows.npy", db)
    queries = _unit(db[rng.integers(0, 3000, 40)] + 0.3 * rng.standard_normal((40, 16)))
    rows = [np.arange(i, i + 4) for i in range(0, 40, 4)]
    whole = method_class("exhaustive")()
    whole.build(db)
    want = whole.search(queries, 10)
    run = sharded_search(method_class("exhaustive")(), tmp_path, 3000, 3, {}, queries, rows, 10)
    assert np.array_equal(run.result.ids, want.ids)
    assert np.allclose(run.result.scores, want.scores, atol=1e-6)
    assert np.array_equal(run.result.candidates, want.candidates)  # every row scored once, across the shards
    t = run.timing
    assert len(t) == len(rows) and len(run.build_s) == 3
    assert np.allclose(t["latency_ms"], t["slowest_shard_ms"] + t["merge_ms"])
    assert (t["slowest_shard_ms"] >= t["shard_ms_mean"]).all()


@pytest.mark.slow
def test_the_sharded_plan_on_a_finished_scaling_run(local_ray, tmp_path, monkeypatch, capsys):
    """``bench scale --shards``: exhaustive search cut into shards finds what it finds on the whole
    DB, query for query, scoring as many rows."""
    import copy

    import pandas as pd
    import yaml

    from bench.cli.main import main
    from tests.helpers import TINY

    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path / "cache"))
    raw = copy.deepcopy(TINY)
    raw.update({"sizes": ["base", 2500], "methods": ["lsh-directed"], "distractors": {"real": False, "fill": True}})
    (tmp_path / "scale.yml").write_text(yaml.safe_dump(raw))
    assert main(["scale", "--config", str(tmp_path / "scale.yml"), "--run-dir", str(tmp_path / "run"), "--no-progress",
                 "--shards", "3", "--shard-methods", "exhaustive", "lsh-directed"]) == 0
    table = pd.read_csv(tmp_path / "run" / "sharded.csv").set_index("method")
    assert set(table.index) == {"exhaustive", "lsh-directed"} and (table["shards"] == 3).all()
    ex = table.loc["exhaustive"]
    assert ex["exact_sharded"] == ex["exact_whole"] and ex["candidates_sharded"] == ex["candidates_whole"]
    # every shard probes its own tables of the same hash functions: the same candidates in all, so no fewer hits
    assert table.loc["lsh-directed", "exact_sharded"] >= table.loc["lsh-directed", "exact_whole"] - 1e-9
    assert (table["latency_mean_ms"] > 0).all() and (table["n_db"] == 2500).all()
    assert "sharded plan:" in capsys.readouterr().out
    assert main(["scale", "--config", str(tmp_path / "scale.yml"), "--run-dir", str(tmp_path / "run"),
                 "--no-progress", "--shards", "3", "--shard-methods", "hnsw"]) == 2
    err = capsys.readouterr()
    assert "--shard-methods hnsw: not among this run's methods (exhaustive, lsh-directed)" in err.err
    assert "done in an earlier run" not in err.out  # refused before the sweep
