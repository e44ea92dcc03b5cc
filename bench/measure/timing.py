"""The only place that times search: per-query latency with warm-up and repeats, its per-stage
breakdown, batch QPS, and the harness's own overhead."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from methods.base import Method


@dataclass
class QueryTiming:
    """What ``time_queries`` measured."""

    seconds: np.ndarray             # [n timed queries]: seconds per query, median over the repeats
    repeats: np.ndarray             # [repeats, n timed queries]: every repeat's seconds
    stage_seconds: dict[str, float]  # mean seconds per call of each stage the search marked
    call_seconds: float              # mean seconds per timed call (every repeat), which the stages add up to


def latency_sample(n_queries: int, size: int, seed: int) -> np.ndarray:
    """A fixed random subset of query numbers (sorted) whose latency is measured."""
    if size >= n_queries:
        return np.arange(n_queries)
    return np.sort(np.random.default_rng(seed).choice(n_queries, size=size, replace=False))


def time_queries(method: Method, queries: np.ndarray, rows: Sequence[np.ndarray], k: int,
                 warmup: int, repeats: int) -> QueryTiming:
    """Seconds per query (median over ``repeats`` passes): one ``search`` call per query with all
    of its segments, preceded by ``warmup`` untimed calls; and, from the same timed calls, the mean
    time of each stage the method marks (``methods/stages.py``).

    ``queries`` is the method's own query matrix, one row per query segment: the embeddings, or
    the spectral images for a method whose ``input_kind`` is "spectrogram" (``RunInputs.matrices``);
    computing it (encoder or spectral front end) is not part of the search time."""
    return time_interleaved([method], [queries], rows, k, warmup, repeats)[0]


def _warmed_up(methods: Sequence[Method], queries: Sequence[np.ndarray], rows: Sequence[np.ndarray], k: int,
               warmup: int, params: Sequence[dict] | None) -> tuple[list[list[np.ndarray]], list[dict | None]]:
    """Each point's per-query batches and query parameters (None: leave the method's own), checked to
    be one per method, after ``warmup`` untimed calls of each point."""
    batches = [[np.ascontiguousarray(q[r]) for r in rows] for q in queries]
    settings = list(params) if params is not None else [None] * len(methods)
    if not len(methods) == len(batches) == len(settings):
        raise ValueError(f"{len(methods)} methods, {len(batches)} query matrices and {len(settings)} parameter sets")
    for m, own in enumerate(batches):
        if settings[m] is not None:
            methods[m].set_query_params(**settings[m])
        for b in own[:warmup]:
            methods[m].search(b, k)
    return batches, settings


def time_interleaved(methods: Sequence[Method], queries: Sequence[np.ndarray], rows: Sequence[np.ndarray], k: int,
                     warmup: int, repeats: int, params: Sequence[dict] | None = None) -> list[QueryTiming]:
    """:func:`time_queries` for several points at once, in interleaved rounds over the same timed
    queries, so that the machine's drift (another job, frequency scaling) falls on all of them
    alike: each round times every query once with each point in turn, the order reversed every
    other round (A B, B A, A B, ...). ``queries[m]`` is point ``m``'s query matrix; ``params[m]``,
    when given, its query parameters, set before each of its blocks (points may then share one
    built method). Every round's time of every query is kept (``QueryTiming.repeats``); within a
    round a point's calls run back to back after ``min(warmup, 3)`` untimed calls of its own, so its
    caches are as warm as when it is timed alone; ``warmup`` untimed calls precede the first round."""
    batches, settings = _warmed_up(methods, queries, rows, k, warmup, params)

    def enter(m: int) -> None:
        if settings[m] is not None:
            methods[m].set_query_params(**settings[m])

    times = np.empty((len(methods), repeats, len(rows)))
    stage_ns: list[dict[str, int]] = [{} for _ in methods]
    calls = [0] * len(methods)
    for method in methods:
        method.clock.reset()
    rep = i = 0
    try:
        for rep in range(repeats):
            order = range(len(methods)) if rep % 2 == 0 else reversed(range(len(methods)))
            for m in order:
                method, clock = methods[m], methods[m].clock
                enter(m)
                if len(methods) > 1:
                    for b in batches[m][:min(warmup, 3)]:
                        method.search(b, k)
                before, calls_before = dict(clock.totals), clock.calls
                clock.enabled = True
                try:
                    for i, b in enumerate(batches[m]):
                        t0 = time.perf_counter()
                        method.search(b, k)
                        times[m, rep, i] = time.perf_counter() - t0
                finally:
                    clock.enabled = False
                for stage, ns in clock.totals.items():
                    stage_ns[m][stage] = stage_ns[m].get(stage, 0) + ns - before.get(stage, 0)
                calls[m] += clock.calls - calls_before
    except BaseException as exc:
        exc.add_note(f"at timed query {i} of {len(rows)} (its rows {rows[i].tolist()[:8]}), repeat {rep}")
        raise
    return [QueryTiming(np.median(t, axis=0), t, {s: ns / 1e9 / max(1, n) for s, ns in own.items()}, float(t.mean()))
            for t, own, n in zip(times, stage_ns, calls)]


def time_alternating(methods: Sequence[Method], queries: Sequence[np.ndarray], rows: Sequence[np.ndarray], k: int,
                     warmup: int, rounds: int, params: Sequence[dict] | None = None) -> np.ndarray:
    """Seconds per query [len(methods), rounds, len(rows)] of several points alternated query by
    query: each round times query 1 with every point in turn, then query 2, ..., the order of the
    points reversed every other query, so that drift on the scale of one query's time falls on all
    of them alike (:func:`time_interleaved` alternates whole blocks of queries, which a machine's
    drift over one block's tens of seconds can tilt). ``queries``, ``params`` and ``warmup`` as
    there; no stage breakdown."""
    batches, settings = _warmed_up(methods, queries, rows, k, warmup, params)
    times = np.empty((len(methods), rounds, len(rows)))
    for rep in range(rounds):
        for i in range(len(rows)):
            order = range(len(methods)) if (rep + i) % 2 == 0 else reversed(range(len(methods)))
            for m in order:
                if settings[m] is not None:
                    methods[m].set_query_params(**settings[m])
                t0 = time.perf_counter()
                methods[m].search(batches[m][i], k)
                times[m, rep, i] = time.perf_counter() - t0
    return times


def time_batch(method: Method, queries: np.ndarray, k: int, repeats: int) -> float:
    """Seconds for one ``search`` call over every query segment at once (median of repeats)."""
    method.search(queries[: min(len(queries), 64)], k)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        method.search(queries, k)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
