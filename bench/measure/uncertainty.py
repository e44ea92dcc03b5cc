"""How sure a hit rate is: confidence intervals, paired comparisons of two methods, and the
interval of a matched-hit-rate speedup (definitions in docs/protocol.md, "Uncertainty").

Hit outcomes are binary per query, so a bootstrap over the queries of a cell is a binomial draw
at the cell's observed rate, and a bootstrap stratified by cell (the queries of every cell
resampled within it, the cell sizes kept) is a sum of independent binomials: it is drawn so, in
closed form, without resampling query indices. A pair of methods answers the same queries, so
their paired outcomes per cell are a multinomial over (both, only A, only B, neither).
Every interval is 95% by default and seeded; the method used is named in what is returned.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

LEVEL = 0.95
N_BOOT = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval, and how the interval was made."""

    estimate: float
    low: float
    high: float
    method: str

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in [low, high]."""
        return self.low - 1e-12 <= value <= self.high + 1e-12


def wilson_interval(hits: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson's score interval of a binomial rate ``hits / n`` (a cell's own interval)."""
    if n <= 0:
        return Interval(float("nan"), float("nan"), float("nan"), "wilson")
    z = float(norm.ppf(0.5 + level / 2))
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if hits == 0 else max(0.0, float(centre - half))  # exact at the ends, not off by rounding
    high = 1.0 if hits == n else min(1.0, float(centre + half))
    return Interval(p, low, high, "wilson")


def _percentile(draws: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
    return float(lo), float(hi)


def stratified_rate_interval(hits: np.ndarray, cells: np.ndarray, level: float = LEVEL, n_boot: int = N_BOOT,
                             seed: int = 0) -> Interval:
    """The overall hit rate of per-query booleans ``hits`` and its percentile-bootstrap interval,
    resampling the queries of each cell (``cells``: a label per query) within the cell."""
    hits = np.asarray(hits, dtype=bool)
    _, cell = np.unique(np.asarray(cells), return_inverse=True)
    n = np.bincount(cell)
    k = np.bincount(cell, weights=hits).astype(np.int64)
    rng = np.random.default_rng(seed)
    draws = rng.binomial(n[None, :], (k / n)[None, :], size=(n_boot, len(n))).sum(axis=1) / n.sum()
    lo, hi = _percentile(draws, level)
    return Interval(float(hits.mean()), lo, hi, f"stratified bootstrap ({n_boot}, seed {seed})")


@dataclass(frozen=True)
class PairedComparison:
    """Method A's hit rate minus method B's on the same queries."""

    difference: Interval  # paired, stratified bootstrap of rate(A) - rate(B)
    only_a: int           # queries A found and B did not
    only_b: int
    mcnemar_p: float      # exact (binomial) McNemar test of only_a against only_b

    @property
    def significant(self) -> bool:
        """Whether the difference's interval leaves out 0."""
        return not self.difference.contains(0.0)


def paired_difference(a: np.ndarray, b: np.ndarray, cells: np.ndarray, level: float = LEVEL,
                      n_boot: int = N_BOOT, seed: int = 0) -> PairedComparison:
    """Paired comparison of two methods' per-query booleans ``a`` and ``b`` (the same queries, in
    the same order): the difference of their hit rates with a bootstrap interval that resamples
    query pairs within each cell, and the exact McNemar test on the discordant pairs."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes must be of the same queries: {a.shape} vs {b.shape}")
    _, cell = np.unique(np.asarray(cells), return_inverse=True)
    kind = np.where(a & ~b, 1, np.where(~a & b, 2, 0))  # 0: concordant
    counts = np.zeros((cell.max() + 1 if len(cell) else 0, 3), dtype=np.int64)
    np.add.at(counts, (cell, kind), 1)
    n = counts.sum(axis=1)
    rng = np.random.default_rng(seed)
    total = np.zeros(n_boot)
    for c in range(len(n)):
        draw = rng.multinomial(n[c], counts[c] / n[c], size=n_boot)
        total += draw[:, 1] - draw[:, 2]
    draws = total / n.sum()
    lo, hi = _percentile(draws, level)
    only_a, only_b = int(counts[:, 1].sum()), int(counts[:, 2].sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    estimate = float(a.mean() - b.mean()) if len(a) else float("nan")
    return PairedComparison(Interval(estimate, lo, hi, f"paired stratified bootstrap ({n_boot}, seed {seed})"),
                            only_a, only_b, float(p))


def mean_interval(values: np.ndarray, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """The mean of ``values`` (e.g. per-query latencies) and its percentile-bootstrap interval."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), "bootstrap")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    lo, hi = _percentile(draws, level)
    return Interval(float(values.mean()), lo, hi, f"bootstrap ({n_boot}, seed {seed})")


def queries_for_half_width(half_width: float, rate: float = 0.5, level: float = LEVEL) -> int:
    """Queries a cell needs for a normal-approximation interval of +-``half_width`` at ``rate``."""
    z = float(norm.ppf(0.5 + level / 2))
    return int(np.ceil(z * z * rate * (1 - rate) / half_width ** 2))
