"""Speedup of one method over another at a matched top-1 hit rate, read off Pareto curves."""
from __future__ import annotations

import numpy as np
import pandas as pd


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
    ok = points[points[accuracy] >= target - 1e-12]
    return float(ok[cost].min()) if len(ok) else float("nan")


def speedup(a: pd.DataFrame, b: pd.DataFrame, accuracy: str = "exact", cost: str = "latency_mean_ms",
            target: float | None = None) -> dict[str, float]:
    """B's cost / A's cost at the same accuracy.

    The matched accuracy is ``target`` or, by default, the highest accuracy both methods reach
    (the smaller of their best). Each method's cost there is its cheapest sweep point at or
    above that accuracy.
    """
    if target is None:
        target = min(float(a[accuracy].max()), float(b[accuracy].max()))
    ca, cb = cost_at(a, target, accuracy, cost), cost_at(b, target, accuracy, cost)
    return {"hit_rate": target, "cost_a": ca, "cost_b": cb,
            "speedup": cb / ca if ca > 0 and np.isfinite(ca) and np.isfinite(cb) else float("nan")}
