"""Per-stage latency breakdown and the harness's own overhead (no timed assertions: only how the
measured parts relate to each other)."""
from __future__ import annotations

import numpy as np
import pytest

from bench.measure.overhead import NoWork, harness_overhead
from bench.measure.timing import time_interleaved, time_queries
from bench.run.result_checks import MethodResultError, check_stage_times
from methods import TrainData, get_method
from methods.exhaustive import Exhaustive


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    db = rng.standard_normal((2000, 32)).astype(np.float32)
    q = db[rng.choice(2000, 60)] + 0.1 * rng.standard_normal((60, 32)).astype(np.float32)
    rows = [np.arange(i, i + 3) for i in range(0, 60, 3)]  # 20 queries of 3 segments
    return db, q, rows


HASH_STAGES = {"checks", "hash", "probes", "gather", "rerank", "topk", "rest"}


@pytest.mark.parametrize("name,build,query,stages", [
    ("lsh", {"K": 10, "L": 2}, {"radius": 1}, HASH_STAGES),
    ("lsh", {"K": 10, "kernels": "numpy"}, {"radius": 1}, HASH_STAGES),
    ("flowhash", {"K": 8, "n_blocks": 2, "epochs": 1}, {"tau": 0.5}, HASH_STAGES),
    ("exhaustive", {}, {}, {"checks", "library", "rest"}),
    ("ivf", {"nlist": 16}, {"nprobe": 4}, {"checks", "coarse", "library", "rest"}),
    ("binary-hash", {"K": 10}, {"nflip": 1}, {"checks", "hash", "library", "rerank", "topk", "rest"}),
])
def test_stages_are_named_and_add_up_to_at_most_the_whole_call(name, build, query, stages, data) -> None:
    db, q, rows = data
    method = get_method(name, seed=0, **build)
    method.fit(TrainData(db[:1500], db[:1500]))
    method.warm_up()
    method.build(db)
    method.set_query_params(**query)
    timing = time_queries(method, q, rows, 10, warmup=2, repeats=3)
    assert set(timing.stage_seconds) == stages
    assert all(v >= 0 for v in timing.stage_seconds.values())
    assert method.clock.calls == 3 * len(rows)  # only the timed calls, not the warm-up
    coverage = check_stage_times(timing.stage_seconds, timing.call_seconds, name, query)
    assert 0 < coverage <= 1.01
    method.search(q, 10)  # untimed calls leave the clock alone
    assert method.clock.calls == 3 * len(rows)


def test_stages_adding_up_to_more_than_the_call_are_refused() -> None:
    with pytest.raises(MethodResultError, match="more than the"):
        check_stage_times({"hash": 2e-3, "rest": 1e-3}, 2e-3, "broken", {})


def test_harness_overhead_is_the_cost_of_a_search_that_does_nothing(data) -> None:
    db, q, rows = data
    cost = harness_overhead(q, rows, 10, warmup=2, repeats=3)
    assert 0 < cost["checks_s"] <= cost["call_s"]  # the checks are timed inside each timed call
    method = NoWork()
    method.build(db)
    result = method.search(q[:3], 5)
    assert (result.ids == -1).all() and (result.candidates == 0).all()


class Logged(Exhaustive):
    """Exact search that logs each search call: (its tag, the query's first row, its ``mark`` parameter)."""

    name = "logged-exhaustive"
    query_defaults = {"mark": 0}
    log: list[tuple[str, int, int]] = []

    def __init__(self, tag: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tag = tag

    def _search(self, q: np.ndarray, k: int):
        Logged.log.append((self.tag, int(round(float(q[0, 0]) * 1e6)), self.query_params["mark"]))
        return super()._search(q, k)


def test_the_interleaved_timer_alternates_methods_by_round_and_keeps_every_repeat(data) -> None:
    db, q, rows = data
    a, b = Logged("A"), Logged("B")
    for method in (a, b):
        method.build(db)
    Logged.log.clear()
    timings = time_interleaved([a, b], [q, q], rows, 10, warmup=2, repeats=3)
    assert [tag for tag, _, _ in Logged.log[:4]] == ["A", "A", "B", "B"]  # the warm-up before the rounds
    n, block = len(rows), len(rows) + 2  # each block: 2 untimed calls, then the timed queries
    calls = Logged.log[4:]
    assert [tag for tag, _, _ in calls] == (["A"] * block + ["B"] * block + ["B"] * block + ["A"] * block
                                            + ["A"] * block + ["B"] * block)
    first_rows = [int(round(float(q[r[0], 0]) * 1e6)) for r in rows]
    assert [row for _, row, _ in calls[2:block]] == first_rows  # every round walks the same timed queries in order
    assert [row for _, row, _ in calls[3 * block + 2:4 * block]] == first_rows
    for timing in timings:
        assert timing.repeats.shape == (3, n) and (timing.repeats > 0).all()
        assert np.array_equal(timing.seconds, np.median(timing.repeats, axis=0))
        assert set(timing.stage_seconds) == {"checks", "library", "rest"}
        assert timing.call_seconds == pytest.approx(timing.repeats.mean())
    alone = time_queries(a, q, rows, 10, warmup=2, repeats=2)  # one method: the same timer
    assert alone.repeats.shape == (2, n)


def test_interleaved_points_of_one_method_each_run_at_their_own_query_parameters(data) -> None:
    db, q, rows = data
    a = Logged("A")
    a.build(db)
    Logged.log.clear()
    timings = time_interleaved([a, a], [q, q], rows, 10, warmup=1, repeats=2, params=[{"mark": 1}, {"mark": 2}])
    block = len(rows) + 1
    marks = [mark for _, _, mark in Logged.log[2:]]
    assert marks == [1] * block + [2] * block + [2] * block + [1] * block
    assert [t.repeats.shape for t in timings] == [(2, len(rows))] * 2
    with pytest.raises(ValueError, match="2 methods, 2 query matrices and 1 parameter sets"):
        time_interleaved([a, a], [q, q], rows, 10, warmup=1, repeats=2, params=[{"mark": 1}])


