"""Operating points and speedups: which sweep point stands for a method, by a named selector, and
one method's speedup over another at a matched top-1 hit rate, read off their sweeps.

Every caller that picks a point (the CLI summary, the reports, the README tables, the scaling
analysis, the regression check) picks it here, by one of these selectors:

- :func:`highest_rate`: the point with the highest hit rate;
- :func:`cheapest_reaching`: the cheapest point reaching a target hit rate;
- :func:`best_under_budget`: the highest hit rate whose cost is within a budget;
- :func:`cheapest`: the cheapest point, whatever its hit rate;
- :func:`matched_rate`: the hit rate two methods are compared at, the highest both reach.

Ties are broken the same way everywhere: by the other measure (lower cost, or higher hit rate),
then by configuration label and sweep index, so a selector returns one point, deterministically.
No selector interpolates between sweep points: each returns a point that was measured. Only
:func:`interpolated_cost`, the cost at a fixed target for the decided speedups, reads between them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: The method under study, whose speedup over every other method the decided tables give.
FOCUS = "flowhash"
#: The reference method: exact search, whose hit rate the target is a share of.
REFERENCE = "exhaustive"
#: The decided speedups compare methods at each of these shares of exact search's hit rate
#: (docs/protocol.md): 90%, near the top of what the hashing methods reach, and 80%, where they all
#: reach and their speeds can be compared even when one stops short of 90%.
TARGET_SHARES = (0.8, 0.9)
TARGET_SHARE = 0.9
#: The ANN view (docs/protocol.md, "Recall"): QPS at recall@10 of at least RECALL_TARGET, as
#: ann-benchmarks reads its plots, and the decided speedups at each of RECALL_TARGETS (recall@10):
#: 0.9, the ANN convention, and 0.5, where the bucket-probing hash methods, which stop at a
#: recall@10 of 0.55 to 0.77 in the headline run, can be compared at all.
RECALL_TARGET = 0.9
RECALL_TARGETS = (0.5, 0.9)
#: Front points within this many hit-rate units of the target are compared too: a bootstrap draw
#: moves the rates by about this much (two standard errors at 2,000 queries), and with them the
#: points that bracket the target.
COMPARED_WINDOW = 0.02
#: Columns that break the remaining ties, when the points carry them.
TIE_BREAK = ("label", "param_index")
#: Hit rates this close count as equal (float noise of rates computed from counts).
RATE_EPS = 1e-12


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


def best_under_budget(points: pd.DataFrame, budget: float, rate: str = "exact",
                      cost: str = "latency_mean_ms") -> pd.Series | None:
    """The point with the highest ``rate`` among those whose ``cost`` is at most ``budget`` (None
    when no point is within it)."""
    ok = points[points[cost] <= budget]
    return highest_rate(ok, rate, cost) if len(ok) else None


def matched_rate(a: pd.DataFrame, b: pd.DataFrame, rate: str = "exact") -> float:
    """The hit rate two methods are compared at: the highest both reach (the smaller of their best)."""
    return min(float(a[rate].max()), float(b[rate].max()))


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


def interpolated_cost(rates: np.ndarray, costs: np.ndarray, target: float) -> np.ndarray:
    """Each sweep's cost at hit rate ``target``, interpolated along its Pareto front: between the
    cheapest point reaching ``target`` (rate r2, cost c2) and the front point just below it (the
    highest rate r1 among the cheaper points, at cost c1), ``log cost`` is linear in the rate,
    ``c1 * (c2 / c1) ** ((target - r1) / (r2 - r1))``; ``c2`` itself when no cheaper point exists,
    ``inf`` when no point reaches ``target``.

    ``rates`` and ``costs`` are [..., points] (a leading axis holds bootstrap draws); the result
    is [...]. Unlike :func:`cost_at`, the cost moves continuously with the rates, so a bootstrap
    over queries sees it move instead of jumping between sweep points. The sweep is taken to be
    ordered by work, as faiss's ``OperatingPointsWithRanges`` assumes: a point costs more only to
    reach more.
    """
    rates, costs = np.asarray(rates, dtype=float), np.asarray(costs, dtype=float)
    costs = np.where(np.isfinite(costs), costs, np.inf)
    reach = rates >= target - RATE_EPS
    reach_cost = np.where(reach, costs, np.inf)
    c2 = reach_cost.min(axis=-1)
    r2 = np.take_along_axis(rates, reach_cost.argmin(axis=-1)[..., None], axis=-1)[..., 0]
    cheaper = costs < c2[..., None]
    r1 = np.where(cheaper, rates, -np.inf).max(axis=-1)
    c1 = np.where(cheaper & (rates >= r1[..., None]), costs, np.inf).min(axis=-1)
    ok = np.isfinite(c2) & np.isfinite(c1) & (c1 > 0) & (r2 > r1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        frac = np.where(ok, (target - r1) / np.where(ok, r2 - r1, 1.0), 1.0)
        inner = c1 * np.power(np.where(ok, c2 / c1, 1.0), frac)
    return np.where(ok, inner, c2)


def compared_points(points: pd.DataFrame, target: float, window: float = COMPARED_WINDOW, rate: str = "exact",
                    cost: str = "latency_mean_ms") -> pd.DataFrame:
    """The points of one method that its cost at ``target`` (:func:`interpolated_cost`) reads, in
    the data and in a bootstrap draw: on its Pareto front, the cheapest point reaching ``target``,
    the front point just below it, and every front point whose rate lies within ``window`` of
    ``target``. Empty when the method has no point within ``window`` of the target or above it."""
    front = pareto_front(points, rate, cost)
    reach = front[front[rate] >= target - RATE_EPS]
    keep = set(front.index[(front[rate] - target).abs() <= window])
    if len(reach):
        first = front.index.get_loc(reach.index[0])
        keep.update(front.index[max(0, first - 1):first + 1])
    return front.loc[[i for i in front.index if i in keep]]
