"""The only place that times search: per-query latency with warm-up and repeats, and batch QPS."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from methods.base import Method


def latency_sample(n_queries: int, size: int, seed: int) -> np.ndarray:
    """A fixed random subset of query numbers (sorted) whose latency is measured."""
    if size >= n_queries:
        return np.arange(n_queries)
    return np.sort(np.random.default_rng(seed).choice(n_queries, size=size, replace=False))


def time_queries(method: Method, query_emb: np.ndarray, rows: Sequence[np.ndarray], k: int,
                 warmup: int, repeats: int) -> np.ndarray:
    """Seconds per query (median over ``repeats`` passes): one ``search`` call per query with all
    of its segments, preceded by ``warmup`` untimed calls."""
    batches = [np.ascontiguousarray(query_emb[r]) for r in rows]
    for b in batches[:warmup]:
        method.search(b, k)
    times = np.empty((repeats, len(batches)))
    for rep in range(repeats):
        for i, b in enumerate(batches):
            t0 = time.perf_counter()
            method.search(b, k)
            times[rep, i] = time.perf_counter() - t0
    return np.median(times, axis=0)


def time_batch(method: Method, query_emb: np.ndarray, k: int, repeats: int) -> float:
    """Seconds for one ``search`` call over every query segment at once (median of repeats)."""
    method.search(query_emb[: min(len(query_emb), 64)], k)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        method.search(query_emb, k)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
