"""Operating points and speedups: which sweep point stands for a method, by a named selector, and
one method's speedup over another at a matched top-1 hit rate, read off their sweeps.

Every caller that picks a point (the CLI summary, the reports, the README tables, the scaling
analysis, the regression check) picks it here, by one of these selectors:

- :func:`highest_rate`: the point with the highest hit rate;
- :func:`near_best`: the cheapest point within ``tolerance`` of the method's highest hit rate;
- :func:`cheapest_reaching`: the cheapest point reaching a target hit rate;
- :func:`best_under_budget`: the highest hit rate whose cost is within a budget;
- :func:`cheapest`: the cheapest point, whatever its hit rate;
- :func:`matched_rate`: the hit rate two methods are compared at, the highest both reach.

Ties are broken the same way everywhere: by the other measure (lower cost, or higher hit rate),
then by configuration label and sweep index, so a selector returns one point, deterministically.
No selector interpolates between sweep points: each returns a point that was measured.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

#: Columns that break the remaining ties, when the points carry them.
TIE_BREAK = ("label", "param_index")
#: Hit rates this close count as equal (float noise of rates computed from counts).
RATE_EPS = 1e-12

Selector = Callable[[pd.DataFrame], "pd.Series | None"]
"""Picks one point of one method's (or configuration's) sweep, or None when none qualifies."""


def _ordered(points: pd.DataFrame, keys: list[str], ascending: list[bool]) -> pd.DataFrame:
    extra = [c for c in TIE_BREAK if c in points.columns]
    return points.sort_values([*keys, *extra], ascending=[*ascending, *[True] * len(extra)], kind="mergesort")


def highest_rate(points: pd.DataFrame, rate: str = "exact", cost: str = "latency_mean_ms") -> pd.Series:
    """The point with the highest ``rate`` (the cheapest by ``cost`` among equals)."""
    return _ordered(points, [rate, cost], [False, True]).iloc[0]


def cheapest(points: pd.DataFrame, rate: str = "exact", cost: str = "latency_mean_ms") -> pd.Series:
    """The point with the lowest ``cost`` (the highest ``rate`` among equals)."""
    return _ordered(points, [cost, rate], [True, False]).iloc[0]


def cheapest_reaching(points: pd.DataFrame, target: float, rate: str = "exact",
                      cost: str = "latency_mean_ms") -> pd.Series | None:
    """The cheapest point whose ``rate`` reaches ``target`` (None when no point does)."""
    ok = points[points[rate] >= target - RATE_EPS]
    return cheapest(ok, rate, cost) if len(ok) else None


def near_best(points: pd.DataFrame, tolerance: float, rate: str = "exact",
              cost: str = "latency_mean_ms") -> pd.Series:
    """The cheapest point within ``tolerance`` (a fraction: 0.01 is one point) of the highest ``rate``."""
    return cheapest_reaching(points, float(points[rate].max()) - tolerance, rate, cost)


def best_under_budget(points: pd.DataFrame, budget: float, rate: str = "exact",
                      cost: str = "latency_mean_ms") -> pd.Series | None:
    """The point with the highest ``rate`` among those whose ``cost`` is at most ``budget`` (None
    when no point is within it)."""
    ok = points[points[cost] <= budget]
    return highest_rate(ok, rate, cost) if len(ok) else None


def matched_rate(a: pd.DataFrame, b: pd.DataFrame, rate: str = "exact") -> float:
    """The hit rate two methods are compared at: the highest both reach (the smaller of their best)."""
    return min(float(a[rate].max()), float(b[rate].max()))


def per_method(points: pd.DataFrame, select: Selector, by: str = "method") -> pd.DataFrame:
    """``select`` applied to each ``by`` group's points (in order of appearance); groups where it
    finds no point are left out."""
    rows = [row for _, g in points.groupby(by, sort=False) if (row := select(g)) is not None]
    return pd.DataFrame(rows)


def pareto_front(points: pd.DataFrame, accuracy: str = "exact", cost: str = "latency_mean_ms") -> pd.DataFrame:
    """The points no other point beats on both accuracy (higher) and cost (lower), by rising cost."""
    ordered = points.sort_values([cost, accuracy], ascending=[True, False])
    best = -np.inf
    keep = []
    for idx, acc in zip(ordered.index, ordered[accuracy]):
        if acc > best:
            keep.append(idx)
            best = acc
    return ordered.loc[keep]


def cost_at(points: pd.DataFrame, target: float, accuracy: str, cost: str) -> float:
    """The lowest cost at which a method reaches ``target`` accuracy (NaN if it never does)."""
    point = cheapest_reaching(points, target, accuracy, cost)
    return float("nan") if point is None else float(point[cost])


def speedup(a: pd.DataFrame, b: pd.DataFrame, accuracy: str = "exact", cost: str = "latency_mean_ms",
            target: float | None = None) -> dict[str, float]:
    """B's cost / A's cost at the same accuracy.

    The matched accuracy is ``target`` or, by default, :func:`matched_rate`. Each method's cost
    there is its cheapest sweep point at or above that accuracy (:func:`cost_at`).
    """
    if target is None:
        target = matched_rate(a, b, accuracy)
    ca, cb = cost_at(a, target, accuracy, cost), cost_at(b, target, accuracy, cost)
    return {"hit_rate": target, "cost_a": ca, "cost_b": cb,
            "speedup": cb / ca if ca > 0 and np.isfinite(ca) and np.isfinite(cb) else float("nan")}
