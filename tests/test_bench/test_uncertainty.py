"""The intervals cover what they claim: on synthetic per-query outcomes with a known rate, about
95% of the 95% intervals over many seeds contain it, and the paired interval of two methods with
the same hit probability contains 0 about 95% of the time."""
from __future__ import annotations

import numpy as np
import pytest

from bench.measure.uncertainty import (
    mean_interval,
    paired_difference,
    queries_for_half_width,
    stratified_rate_interval,
    wilson_interval,
)

REPS = 400
CELLS, PER_CELL = 28, 30  # the headline grid's cells of 30 queries (one duration)


def _world(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-query hit probabilities (cells of different difficulty, queries within a cell too) and
    each query's cell."""
    cell_rate = rng.uniform(0.2, 0.9, CELLS)
    p = np.clip(np.repeat(cell_rate, PER_CELL) + rng.uniform(-0.1, 0.1, CELLS * PER_CELL), 0, 1)
    return p, np.repeat(np.arange(CELLS), PER_CELL)


def test_stratified_interval_covers_the_true_rate_about_95_percent() -> None:
    p, cells = _world(np.random.default_rng(0))
    truth = p.mean()
    covered = 0
    for seed in range(REPS):
        hits = np.random.default_rng(1000 + seed).random(len(p)) < p
        covered += stratified_rate_interval(hits, cells, n_boot=500, seed=seed).contains(truth)
    assert 0.91 <= covered / REPS <= 0.985, covered / REPS


def test_wilson_interval_of_one_cell_covers_about_95_percent() -> None:
    for rate in (0.1, 0.5, 0.8):
        rng = np.random.default_rng(int(rate * 100))
        hits = rng.binomial(PER_CELL, rate, size=REPS)
        covered = np.mean([wilson_interval(int(h), PER_CELL).contains(rate) for h in hits])
        assert 0.90 <= covered <= 0.99, (rate, covered)
    assert wilson_interval(0, 30).low == 0.0 and wilson_interval(30, 30).high == 1.0


def test_paired_interval_of_two_equal_methods_contains_zero_about_95_percent() -> None:
    p, cells = _world(np.random.default_rng(1))
    covered, rejected = 0, 0
    for seed in range(REPS):
        rng = np.random.default_rng(5000 + seed)
        a, b = rng.random(len(p)) < p, rng.random(len(p)) < p
        cmp = paired_difference(a, b, cells, n_boot=500, seed=seed)
        covered += cmp.difference.contains(0.0)
        rejected += cmp.mcnemar_p < 0.05
    assert 0.91 <= covered / REPS <= 0.985, covered / REPS
    assert rejected / REPS <= 0.08  # the exact test is at most its level (conservative)


def test_a_real_difference_is_found_and_identical_methods_differ_by_nothing() -> None:
    p, cells = _world(np.random.default_rng(2))
    rng = np.random.default_rng(3)
    a = rng.random(len(p)) < np.clip(p + 0.15, 0, 1)
    b = rng.random(len(p)) < p
    cmp = paired_difference(a, b, cells, seed=0)
    assert cmp.significant and cmp.difference.low > 0 and cmp.mcnemar_p < 0.01
    assert cmp.only_a == int((a & ~b).sum()) and cmp.only_b == int((~a & b).sum())
    same = paired_difference(a, a, cells, seed=0)
    assert same.difference.estimate == 0 and same.difference.low == same.difference.high == 0
    assert same.mcnemar_p == 1.0 and not same.significant
    with pytest.raises(ValueError, match="same queries"):
        paired_difference(a, b[:-1], cells)


def test_intervals_are_seeded_and_named() -> None:
    p, cells = _world(np.random.default_rng(4))
    hits = np.random.default_rng(5).random(len(p)) < p
    one, two = stratified_rate_interval(hits, cells, seed=7), stratified_rate_interval(hits, cells, seed=7)
    assert one == two and "seed 7" in one.method and one.low < one.estimate < one.high
    lat = mean_interval(np.random.default_rng(6).exponential(1.0, 400), seed=1)
    assert lat.low < lat.estimate < lat.high and lat.high - lat.low < 0.3


def test_queries_a_cell_needs() -> None:
    assert queries_for_half_width(0.02) == 2401  # +-2 points at 50%, 95%
    assert queries_for_half_width(0.09) == 119


def test_speedup_interval_brackets_the_matched_rate_speedup() -> None:
    import pandas as pd

    from bench.measure.operating_points import speedup
    from bench.measure.uncertainty import speedup_interval

    p, cells = _world(np.random.default_rng(8))
    rng = np.random.default_rng(9)
    # a sweep of 6 points each: hit probability rises with cost; B needs 3x A's cost for the same rate
    lift = np.linspace(-0.3, 0.05, 6)[:, None]
    hits_a = rng.random((6, len(p))) < np.clip(p + lift, 0, 1)
    hits_b = rng.random((6, len(p))) < np.clip(p + lift, 0, 1)
    cost_a, cost_b = np.geomspace(1, 32, 6), 3 * np.geomspace(1, 32, 6)
    ci = speedup_interval(hits_a, cost_a, hits_b, cost_b, cells, n_boot=400, seed=0)
    frame = lambda h, c: pd.DataFrame({"exact": h.mean(axis=1), "latency_mean_ms": c})  # noqa: E731
    assert ci.estimate == pytest.approx(speedup(frame(hits_a, cost_a), frame(hits_b, cost_b))["speedup"])
    assert ci.low <= ci.estimate <= ci.high and ci.low > 0.5 and ci.high < 20
    same = speedup_interval(hits_a, cost_a, hits_a, cost_a, cells, n_boot=200, seed=0)
    assert same.estimate == 1.0 and same.low == same.high == 1.0
