"""Sharded search on Ray: the plan for a DB larger than one machine's memory.

The DB's rows are cut into contiguous shards; each shard is held by its own Ray actor (on its own
machine, in a cluster), which builds one fitted method configuration over its rows. A query goes to
every shard; each returns its top-k (row ids made global by the shard's offset) and the seconds its
search took; the top-k are merged by score. Shards search in parallel, so a query's latency is the
**slowest shard's search plus the merge** (the network round trip is the cluster's, not measured
here). :func:`sharded_search` measures both per query. On one machine (a local Ray instance) the
shards would share its cores, so it asks them one after another, each alone on the machine as it
would be on its own; the round trip's wall time (every shard in turn, then the merge) is recorded
too, but it is not the plan's latency.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from methods.base import Method, SearchResult

from .cluster import require_ray


def shard_bounds(n_rows: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous row ranges covering ``[0, n_rows)``, as equal as can be."""
    if not 1 <= shards <= n_rows:
        raise ValueError(f"shards: expected 1..{n_rows} (the DB's rows), got {shards}")
    edges = np.linspace(0, n_rows, shards + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard ``(ids, scores)`` [m, k_s] (global ids, -1 for none) into the ``k`` best per row
    by score (higher is better), ties broken by the lower id."""
    ids = np.concatenate([p[0] for p in parts], axis=1)
    scores = np.concatenate([np.where(p[0] >= 0, p[1], -np.inf) for p in parts], axis=1).astype(np.float64)
    order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    top_ids = np.take_along_axis(ids, order, axis=1)
    top_scores = np.take_along_axis(scores, order, axis=1)
    top_ids = np.where(np.isfinite(top_scores), top_ids, -1)
    return top_ids, top_scores.astype(np.float32)


class ShardWorker:
    """One shard: a copy of a fitted method built over rows ``[start, stop)`` of the store at
    ``store_root`` (memory-mapped, then copied into this worker's memory by the build)."""

    def __init__(self, method: Method, store_root: str, start: int, stop: int, query_params: dict) -> None:
        rows = np.load(Path(store_root) / "rows.npy", mmap_mode="r")[start:stop]
        self.start = start
        t0 = time.perf_counter()
        method.warm_up()
        method.build(np.ascontiguousarray(rows))
        self.build_s = time.perf_counter() - t0
        method.set_query_params(**query_params)
        self.method = method

    def info(self) -> dict:
        """The shard's rows and build seconds."""
        return {"start": self.start, "build_s": self.build_s}

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Global ids, scores, candidates per query row, and the search's seconds."""
        t0 = time.perf_counter()
        res = self.method.search(q, k)
        seconds = time.perf_counter() - t0
        return np.where(res.ids >= 0, res.ids + self.start, -1), res.scores, res.candidates, seconds


@dataclass
class ShardedRun:
    """The outcome of :func:`sharded_search`: the merged result over every query segment, and one
    timing row per query (slowest shard, merge, their sum, the round trip's wall time, seconds)."""

    result: SearchResult
    timing: pd.DataFrame
    build_s: list[float]


def sharded_search(method: Method, store_root: Path | str, n_rows: int, shards: int, query_params: dict,
                   queries: np.ndarray, rows: Sequence[np.ndarray], k: int) -> ShardedRun:
    """Search ``queries`` (query segment embeddings; ``rows[i]``: the segments of query i) over
    the first ``n_rows`` rows of the store, cut into ``shards`` Ray actors, each a copy of the
    fitted, unbuilt ``method`` (its own thread count); one query at a time, as the latency harness
    does, each shard asked in turn."""
    ray = require_ray()
    actor = ray.remote(num_cpus=0)(ShardWorker)  # all alive at once on any instance; asked one at a time
    workers = [actor.remote(method, str(store_root), a, b, query_params) for a, b in shard_bounds(n_rows, shards)]
    build_s = [info["build_s"] for info in ray.get([w.info.remote() for w in workers])]
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    candidates = np.zeros(len(queries), dtype=np.int64)
    timing = []
    for number, idx in enumerate(rows):
        q = np.ascontiguousarray(queries[idx])
        t0 = time.perf_counter()
        parts = [ray.get(w.search.remote(q, k)) for w in workers]
        t1 = time.perf_counter()
        merged_ids, merged_scores = merge_topk([(p[0], p[1]) for p in parts], k)
        merge_s = time.perf_counter() - t1
        wall_s = time.perf_counter() - t0
        ids[idx], scores[idx] = merged_ids, merged_scores
        candidates[idx] = np.sum([p[2] for p in parts], axis=0)
        slowest = max(p[3] for p in parts)
        timing.append({"query": number, "slowest_shard_ms": 1e3 * slowest, "merge_ms": 1e3 * merge_s,
                       "latency_ms": 1e3 * (slowest + merge_s), "round_trip_ms": 1e3 * wall_s,
                       "shard_ms_mean": 1e3 * float(np.mean([p[3] for p in parts]))})
    for w in workers:
        ray.kill(w)
    return ShardedRun(SearchResult(ids, scores, candidates), pd.DataFrame(timing), build_s)
