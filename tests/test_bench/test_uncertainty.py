"""The intervals cover what they claim: on synthetic per-query outcomes with a known rate, about
95% of the 95% intervals over many seeds contain it, and the paired interval of two methods with
the same hit probability contains 0 about 95% of the time."""
from __future__ import annotations

import numpy as np
import pytest

from bench.measure.operating_points import interpolated_cost
from bench.measure.uncertainty import (
    Interval,
    decide_difference,
    decide_speedup,
    mean_interval,
    paired_difference,
    stratified_rate_interval,
    stratified_weights,
    timed_speedup_interval,
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


# --------------------------------------------------------------------------- speedups with the timing inside


def _simulated_pair(seed: int, n: int = 400, n_timed: int = 200) -> tuple:
    """Two sweeps with known rates and mean latencies; per-query hits from a shared difficulty (each
    method's blurred a little), per-query latencies lognormal around each point's mean with a
    per-query speed shared by the points; returns (arguments of timed_speedup_interval, true ratio)."""
    rng = np.random.default_rng(seed)
    pa, ma = np.array([0.40, 0.55, 0.65, 0.72]), np.array([0.5, 1.0, 2.0, 4.0])
    pb, mb = np.array([0.35, 0.50, 0.62, 0.70, 0.74]), np.array([0.8, 1.5, 3.0, 6.0, 12.0])
    target = 0.60
    true = float(interpolated_cost(pb, mb, target) / interpolated_cost(pa, ma, target))
    u = rng.uniform(size=n)
    ha = (np.clip(u + 0.05 * rng.standard_normal(n), 0, 1)[None, :] < pa[:, None]).astype(float)
    hb = (np.clip(u + 0.05 * rng.standard_normal(n), 0, 1)[None, :] < pb[:, None]).astype(float)
    timed = np.zeros(n, bool)
    timed[rng.choice(n, n_timed, replace=False)] = True
    speed = rng.lognormal(0, 0.5, n)

    def latency(means: np.ndarray) -> np.ndarray:
        noise = rng.lognormal(0, 0.3, (len(means), n)) / np.exp(0.5 ** 2 / 2 + 0.3 ** 2 / 2)  # mean 1
        return np.where(timed[None, :], means[:, None] * speed[None, :] * noise, np.nan)

    return (ha, latency(ma), hb, latency(mb), np.arange(n) % 4, target), true


def test_the_timed_speedup_interval_covers_the_true_ratio_about_95_percent_and_is_centred() -> None:
    covered, position = [], []
    for seed in range(400):
        args, true = _simulated_pair(seed)
        iv = timed_speedup_interval(*args, n_boot=300, seed=seed)
        assert iv.low < iv.high and iv.contains(iv.estimate)  # never degenerate: the latencies vary
        covered.append(iv.contains(true))
        if 0 < iv.low and np.isfinite(iv.high):  # (a draw where a method misses the target puts 0 or inf there)
            position.append(np.log(iv.estimate / iv.low) / np.log(iv.high / iv.low))
    assert 0.92 <= np.mean(covered) <= 0.975, np.mean(covered)
    assert 0.4 <= np.median(position) <= 0.6  # the estimate sits in the middle of its interval, not on an edge


def test_a_method_that_does_not_reach_the_target_leaves_the_speedup_undetermined() -> None:
    (ha, la, hb, lb, cells, _), _ = _simulated_pair(0)
    iv = timed_speedup_interval(ha, la, hb, lb, cells, target=0.6, n_boot=300)
    assert decide_speedup(iv) == "faster"  # B is 1.9x as slow as A at 60% exact
    capped = np.repeat(ha[:1], len(ha), axis=0)  # A now tops out at its first point's rate, about 40%
    iv = timed_speedup_interval(capped, la, hb, lb, cells, target=0.55, n_boot=300)
    assert iv.estimate == 0.0 and iv.high == 0.0 and decide_speedup(iv) == "slower"  # it never reaches
    target = float(capped[-1].mean()) - 0.002  # reached in the sample, missed in many draws
    iv = timed_speedup_interval(capped, la, hb, lb, cells, target=target, n_boot=300)
    assert iv.low == 0.0 and 0 < iv.estimate and decide_speedup(iv) == "undetermined"


@pytest.mark.parametrize("low, high, decision", [
    (1.2, 3.0, "faster"), (0.3, 0.8, "slower"), (0.95, 1.05, "equivalent within 10%"), (0.8, 1.3, "undetermined"),
    (1.05, 1.3, "undetermined"), (1.2, np.inf, "faster"), (0.0, 0.5, "slower"), (np.nan, np.nan, "undetermined"),
])
def test_each_speedup_interval_gets_one_decision(low: float, high: float, decision: str) -> None:
    assert decide_speedup(Interval(1.0, low, high, "test")) == decision


@pytest.mark.parametrize("low, high, decision", [
    (0.01, 0.05, "higher"), (-0.05, -0.001, "lower"), (-0.008, 0.009, "equivalent within 1 point"),
    (-0.02, 0.03, "undetermined"),
])
def test_each_difference_interval_gets_one_decision(low: float, high: float, decision: str) -> None:
    assert decide_difference(Interval(0.0, low, high, "test")) == decision


@pytest.mark.parametrize("low, high, decision", [
    (0.0005, 0.0089, "equivalent within 1 point"), (-0.0069, -0.0005, "equivalent within 1 point"),
    (0.002, 0.0134, "higher"), (-0.02, -0.011, "lower"), (-0.0005, 0.0109, "undetermined"),
])
def test_an_equivalence_test_puts_the_margin_first(low: float, high: float, decision: str) -> None:
    """The model validation asks whether two rates are within 1 point: an interval inside the margin
    is equivalent even where it excludes 0 (the plain decision calls it higher or lower)."""
    assert decide_difference(Interval(0.0, low, high, "test"), equivalence_first=True) == decision
    if decision.startswith("equivalent"):
        assert decide_difference(Interval(0.0, low, high, "test")) in ("higher", "lower")


def test_bootstrap_draws_keep_each_cell_s_size_and_are_shared_read_only() -> None:
    cells = np.random.default_rng(4).choice(np.array(["1s snr=5", "2s clean", "3s snr=0"], dtype=object), 500)
    w = stratified_weights(cells, 300, seed=2)
    for label in np.unique(cells):  # every draw resamples a cell's queries within it
        assert (w[:, cells == label].sum(axis=1) == (cells == label).sum()).all()
    assert w.std(axis=0).min() > 0
    # the same draws for the same cells, named by strings or by their ranks; another seed differs
    codes = np.unique(cells, return_inverse=True)[1]
    assert stratified_weights(codes, 300, seed=2) is w and stratified_weights(list(cells), 300, seed=2) is w
    assert not np.array_equal(stratified_weights(cells, 300, seed=3), w)
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 7  # shared between callers: none may change it
