"""Robustness to a transform axis: each transformed cell's hit rate against the same method's
untransformed rate, and whether the method survives it (definitions in docs/protocol.md).

A method *survives* a transform when the whole 95% interval of the share of its untransformed
hit rate it keeps lies at or above ``RETAINED`` (90%), *fails* it when the whole interval lies
below, and is *undetermined* otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from datasets.queries.transforms import NONE

from .uncertainty import wilson_interval

RETAINED = 0.9
BOOTSTRAP = 2000
AXES = {"stretch": "tempo (time stretch)", "pitch": "pitch shift", "speed": "speed (resampled)",
        "mp3": "codec", "opus": "codec", "phone": "phone line"}


def axis_of(transform: str) -> str:
    """The axis a transform label belongs to ('stretch:1.05' -> 'tempo (time stretch)'); 'none' for none."""
    return NONE if transform == NONE else AXES[transform.split(":")[0]]


def retained_interval(base: np.ndarray, other: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """The share of the base rate that ``other`` keeps (mean(other) / mean(base)) and its 95% interval:
    a seeded bootstrap of the two independent query sets (NaN when the base rate is 0)."""
    base, other = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    if len(base) == 0 or len(other) == 0 or base.mean() == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    b = base[rng.integers(0, len(base), (BOOTSTRAP, len(base)))].mean(axis=1)
    o = other[rng.integers(0, len(other), (BOOTSTRAP, len(other)))].mean(axis=1)
    ratios = o[b > 0] / b[b > 0]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(other.mean() / base.mean()), float(low), float(high)


def survival(low: float, high: float) -> str:
    """'survives', 'fails' or 'undetermined' from the interval of the retained share."""
    if not np.isfinite(low):
        return "undetermined"
    if low >= RETAINED:
        return "survives"
    if high < RETAINED:
        return "fails"
    return "undetermined"


def robustness_table(outcomes: pd.DataFrame, level: str = "exact", seed: int = 0) -> pd.DataFrame:
    """One row per transform of one method's outcomes at one sweep point (present queries, with a
    ``transform`` column): the hit rate at ``level`` with its Wilson interval, the share of the
    untransformed rate kept with its bootstrap interval, and the survival decision."""
    base = outcomes.loc[outcomes["transform"] == NONE, level].to_numpy()
    rows = []
    for transform, g in outcomes.groupby("transform", sort=False):
        hits = g[level].to_numpy()
        ci = wilson_interval(int(hits.sum()), len(hits))
        row = {"transform": transform, "axis": axis_of(transform), "n_queries": len(hits), level: ci.estimate,
               f"{level}_lo": ci.low, f"{level}_hi": ci.high}
        if transform != NONE:
            kept, low, high = retained_interval(base, hits, seed)
            row.update(retained=kept, retained_lo=low, retained_hi=high, decision=survival(low, high))
        rows.append(row)
    return pd.DataFrame(rows)
