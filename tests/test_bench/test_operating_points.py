"""The operating-point selectors (bench/measure/operating_points.py) on hand-made sweeps: ties,
rates no point reaches, budgets no point meets, and that no selector invents a point between two."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.measure.operating_points import (
    best_under_budget,
    cheapest,
    cheapest_reaching,
    compared_points,
    cost_at,
    highest_rate,
    interpolated_cost,
    matched_rate,
    speedup,
)
from bench.report.tables import budget_operating_points


def sweep(rows: list[tuple]) -> pd.DataFrame:
    """Points of one method: (label, param_index, exact, latency_mean_ms, candidates_mean)."""
    return pd.DataFrame(rows, columns=["label", "param_index", "exact", "latency_mean_ms", "candidates_mean"]).assign(
        method="m")


SWEEP = sweep([("m(K=8)", 0, 0.50, 1.0, 100), ("m(K=8)", 1, 0.70, 2.0, 300), ("m(K=8)", 2, 0.80, 4.0, 900),
               ("m(K=16)", 0, 0.80, 3.0, 500), ("m(K=16)", 1, 0.795, 2.5, 400)])


def test_highest_rate_breaks_a_tie_by_cost_then_label_and_sweep_index() -> None:
    assert (highest_rate(SWEEP)["label"], highest_rate(SWEEP)["param_index"]) == ("m(K=16)", 0)  # 3.0 ms < 4.0 ms
    by_candidates = highest_rate(SWEEP, cost="candidates_mean")
    assert by_candidates["candidates_mean"] == 500
    tied = sweep([("b", 1, 0.8, 2.0, 1), ("a", 3, 0.8, 2.0, 1), ("a", 2, 0.8, 2.0, 1)])
    assert (highest_rate(tied)["label"], highest_rate(tied)["param_index"]) == ("a", 2)
    assert (cheapest(tied)["label"], cheapest(tied)["param_index"]) == ("a", 2)


def test_cheapest_reaching_takes_a_measured_point_and_none_when_no_point_reaches() -> None:
    point = cheapest_reaching(SWEEP, 0.75)
    assert point["latency_mean_ms"] == 2.5  # 0.795 reaches 0.75; nothing between 2.0 and 2.5 ms is made up
    assert cheapest_reaching(SWEEP, 0.80)["latency_mean_ms"] == 3.0
    assert cheapest_reaching(SWEEP, 0.81) is None
    assert math.isnan(cost_at(SWEEP, 0.81, "exact", "latency_mean_ms"))
    assert cost_at(SWEEP, 0.7, "exact", "candidates_mean") == 300


def test_within_a_point_of_the_best_and_under_a_budget() -> None:
    assert cheapest_reaching(SWEEP, SWEEP["exact"].max() - 0.01)["latency_mean_ms"] == 2.5  # within 1 point of 0.80
    assert best_under_budget(SWEEP, 2.9)["exact"] == 0.795
    assert best_under_budget(SWEEP, 0.5) is None
    ops = budget_operating_points(SWEEP, 0.5)  # none within: the cheapest point, marked
    assert ops["latency_mean_ms"].iloc[0] == 1.0 and not ops["within_budget"].iloc[0]


def test_matched_rate_and_speedup_use_the_same_selectors() -> None:
    other = sweep([("o", 0, 0.6, 5.0, 1000), ("o", 1, 0.79, 10.0, 2000)]).assign(method="o")
    assert matched_rate(SWEEP, other) == 0.79
    s = speedup(SWEEP, other)
    assert s == {"hit_rate": 0.79, "cost_a": 2.5, "cost_b": 10.0, "speedup": 4.0}


@pytest.mark.parametrize("selector", [highest_rate, cheapest])
def test_selectors_return_a_row_of_the_sweep(selector) -> None:
    row = selector(SWEEP)
    assert ((SWEEP["label"] == row["label"]) & (SWEEP["param_index"] == row["param_index"])).sum() == 1


def test_interpolated_cost_follows_the_front_in_log_cost_and_is_inf_when_unreached() -> None:
    rates, costs = np.array([0.5, 0.7, 0.8, 0.795]), np.array([1.0, 2.0, 4.0, 2.5])
    assert interpolated_cost(rates, costs, 0.4) == 1.0  # the cheapest point already reaches it
    assert interpolated_cost(rates, costs, 0.7) == pytest.approx(2.0)
    assert interpolated_cost(rates, costs, 0.6) == pytest.approx(np.sqrt(2.0))  # halfway in log cost
    assert interpolated_cost(rates, costs, 0.8) == pytest.approx(4.0)
    assert interpolated_cost(rates, costs, 0.81) == np.inf
    assert interpolated_cost(rates, costs, 0.7975) == pytest.approx(2.5 * (4.0 / 2.5) ** 0.5)
    draws = interpolated_cost(np.stack([rates, rates - 0.1]), np.stack([costs, costs]), 0.7)
    assert draws[0] == pytest.approx(2.0) and draws[1] == pytest.approx(2.5 * (4.0 / 2.5) ** ((0.7 - 0.695) / 0.005))



def test_compared_points_bracket_the_target_on_the_front_and_take_the_points_near_it() -> None:
    rates, costs = [0.30, 0.50, 0.55, 0.62, 0.64, 0.70, 0.58], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    pts = sweep([("m", i, r, c, 0) for i, (r, c) in enumerate(zip(rates, costs))])
    chosen = compared_points(pts, target=0.60, window=0.02)
    # the cheapest reaching 0.60 (0.62), the front point below it (0.55), and those within 0.02 on the front
    # (0.62; 0.58 is beaten by 0.62 at less cost, so off the front and never read)
    assert chosen["exact"].tolist() == [0.55, 0.62]
    wide = compared_points(pts, target=0.60, window=0.045)
    assert wide["exact"].tolist() == [0.55, 0.62, 0.64]
    assert compared_points(pts, target=0.30, window=0.0)["exact"].tolist() == [0.30]  # nothing cheaper
    assert compared_points(pts, target=0.71, window=0.02)["exact"].tolist() == [0.70]  # unreached, but near
    assert compared_points(pts, target=0.80, window=0.02).empty  # unreached and far: no point is read


def _decided_inputs(focus_sweep_ms: float, focus_retimed_ms: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One point each of exhaustive (not re-timed), flowhash and lsh (both re-timed), 200 queries
    in 4 condition cells; every method finds the same queries."""
    rng = np.random.default_rng(0)
    n = 200
    hits = rng.random(n) < 0.8
    rows, pts = [], []
    for method, sweep_ms, retimed_ms in (("exhaustive", 4.0, np.nan), ("flowhash", focus_sweep_ms, focus_retimed_ms),
                                         ("lsh", 2.0, 1.0)):
        label = f"{method}()"
        lat = sweep_ms * np.exp(0.1 * rng.standard_normal(n))
        again = retimed_ms * np.exp(0.1 * rng.standard_normal(n))
        rows.append(pd.DataFrame({"label": label, "query_params": "{}", "query_id": np.arange(n),
                                  "duration_s": np.arange(n) % 2, "snr": "clean", "reverb": (np.arange(n) // 2) % 2,
                                  "exact": hits, "latency_ms": lat, "retimed_ms": again}))
        pts.append({"method": method, "label": label, "query_params": "{}", "param_index": 0,
                    "exact": hits.mean(), "latency_mean_ms": lat.mean(), "candidates_mean": 1.0})
    return pd.DataFrame(pts), pd.concat(rows, ignore_index=True)


def test_decided_speedups_read_both_sides_of_a_pair_under_one_timing_regime() -> None:
    from bench.report.tables import decided_speedups
    # flowhash's sweep latency is 2 ms, its interleaved re-timing 1 ms: against exhaustive (never
    # re-timed) both sides are read at their sweep's, against lsh (re-timed) both at the re-timing's
    points, outcomes = _decided_inputs(focus_sweep_ms=2.0, focus_retimed_ms=1.0)
    table = decided_speedups(outcomes, points, focus="flowhash", shares=(0.9,), n_boot=200).set_index("other")
    assert table.loc["exhaustive", "speedup"] == pytest.approx(2.0, rel=0.1)  # 4 ms / 2 ms, not 4 / 1
    assert table.loc["lsh", "speedup"] == pytest.approx(1.0, rel=0.1)         # 1 ms / 1 ms
    assert table.loc["exhaustive", "focus_ms"] == pytest.approx(2.0, rel=0.1)
    assert table.loc["lsh", "focus_ms"] == pytest.approx(1.0, rel=0.1)


def test_decided_speedups_read_a_pair_at_the_latencies_timed_beside_each_other() -> None:
    from bench.report.tables import decided_speedups
    # timed in pairs (timing.interleave: pairs): flowhash beside lsh at 0.5 ms, lsh beside flowhash at
    # 1 ms; the columns of the one group of every point (1 ms each) are not read where the pair's are
    points, outcomes = _decided_inputs(focus_sweep_ms=2.0, focus_retimed_ms=1.0)
    is_focus, is_lsh = outcomes["label"] == "flowhash()", outcomes["label"] == "lsh()"
    rng = np.random.default_rng(1)
    outcomes["retimed_ms:lsh"] = np.where(is_focus, 0.5 * np.exp(0.1 * rng.standard_normal(len(outcomes))), np.nan)
    outcomes["retimed_ms:flowhash"] = np.where(is_lsh, outcomes["retimed_ms"], np.nan)
    table = decided_speedups(outcomes, points, focus="flowhash", shares=(0.9,), n_boot=200).set_index("other")
    assert table.loc["lsh", "focus_ms"] == pytest.approx(0.5, rel=0.1)
    assert table.loc["lsh", "speedup"] == pytest.approx(2.0, rel=0.1)        # 1 ms / 0.5 ms
    assert table.loc["exhaustive", "speedup"] == pytest.approx(2.0, rel=0.1)  # still the sweep's on both sides
    # a pair column on one side only is no pair: both sides fall back to the one group's re-timing
    table = decided_speedups(outcomes.drop(columns=["retimed_ms:flowhash"]), points, focus="flowhash", shares=(0.9,),
                             n_boot=200).set_index("other")
    assert table.loc["lsh", "focus_ms"] == pytest.approx(1.0, rel=0.1)
