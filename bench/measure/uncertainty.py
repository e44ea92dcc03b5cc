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
from functools import lru_cache

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


def stratified_weights(cells: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n queries] bootstrap multiplicities: each draw resamples the queries of every cell
    within the cell (a multinomial over the cell's queries), the cell sizes kept. Read-only: the
    same cells, ``n_boot`` and seed give the same draws, so they are made once and shared (a report
    decides every pair of methods on one run's queries, and each draw costs a tenth of a second)."""
    codes = np.unique(np.asarray(cells), return_inverse=True)[1].astype(np.int64).ravel()
    return _stratified_weights(codes.tobytes(), n_boot, seed)


@lru_cache(maxsize=8)
def _stratified_weights(codes_bytes: bytes, n_boot: int, seed: int) -> np.ndarray:
    """:func:`stratified_weights` of the cells' codes (their labels' ranks, so the cells are drawn in
    the same order as by their labels)."""
    cells = np.frombuffer(codes_bytes, dtype=np.int64)
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_boot, len(cells)))
    for label in np.unique(cells):
        idx = np.flatnonzero(cells == label)
        weights[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    weights.flags.writeable = False
    return weights


def speedup_interval(hits_a: np.ndarray, cost_a: np.ndarray, hits_b: np.ndarray, cost_b: np.ndarray,
                     cells: np.ndarray, level: float = LEVEL, n_boot: int = 1000, seed: int = 0,
                     query_cost_a: np.ndarray | None = None, query_cost_b: np.ndarray | None = None,
                     weights: np.ndarray | None = None) -> Interval:
    """B's cost / A's cost at the highest hit rate both reach (bench.measure.operating_points), with the whole
    procedure bootstrapped over the queries (stratified by cell, the same draw for both methods):
    each draw's hit rates of every sweep point pick the matched rate and each method's cheapest
    point reaching it. ``hits_*`` [points, queries] are per-query hits of each sweep point, in the
    same query order; ``cost_*`` [points] each point's cost, or, with ``query_cost_*`` [points,
    queries] (e.g. candidates), the cost is resampled with the queries too. Draws where a cost is
    not finite are left out. ``weights``: the draws of :func:`stratified_weights`, when already made."""
    hits_a, hits_b = np.asarray(hits_a, dtype=float), np.asarray(hits_b, dtype=float)
    n = hits_a.shape[1]

    def ratio(rate_a: np.ndarray, ca: np.ndarray, rate_b: np.ndarray, cb: np.ndarray) -> np.ndarray:
        target = np.minimum(rate_a.max(axis=-1), rate_b.max(axis=-1))[..., None] - 1e-12
        best_a = np.where(rate_a >= target, ca, np.inf).min(axis=-1)
        best_b = np.where(rate_b >= target, cb, np.inf).min(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return best_b / best_a

    point = float(ratio(hits_a.mean(axis=1), np.asarray(cost_a, float), hits_b.mean(axis=1),
                        np.asarray(cost_b, float)))
    w = stratified_weights(cells, n_boot, seed) if weights is None else weights
    rate_a, rate_b = w @ hits_a.T / n, w @ hits_b.T / n
    ca = w @ np.asarray(query_cost_a, float).T / n if query_cost_a is not None else np.asarray(cost_a, float)[None]
    cb = w @ np.asarray(query_cost_b, float).T / n if query_cost_b is not None else np.asarray(cost_b, float)[None]
    return _finite_draws_interval(point, ratio(rate_a, ca, rate_b, cb), level,
                                  f"bootstrap of the matched-rate procedure ({n_boot}, seed {seed})")


def _finite_draws_interval(point: float, draws: np.ndarray, level: float, method: str) -> Interval:
    """``point`` with the percentile interval of its finite bootstrap ``draws`` (NaN bounds when none is)."""
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return Interval(point, float("nan"), float("nan"), method)
    lo, hi = _percentile(draws, level)
    return Interval(point, lo, hi, method)


#: A speedup is "faster" when its interval lies above this ratio, "slower" below its inverse,
#: "equivalent" within both; and a hit-rate difference "equivalent" within this many points.
SPEEDUP_MARGIN = 1.1
RATE_MARGIN = 0.01


def decide_ratio(interval: Interval, margin: float) -> str:
    """What a ratio's interval decides: "higher" (it lies above ``margin``), "lower" (below
    ``1 / margin``), "equivalent within N%" (inside both) or "undetermined" (it straddles a bound,
    or is not finite)."""
    lo, hi = interval.low, interval.high  # NaN bounds compare false: undetermined
    if lo > margin:
        return "higher"
    if hi < 1 / margin:
        return "lower"
    if lo >= 1 / margin and hi <= margin:
        return f"equivalent within {100 * (margin - 1):.0f}%"
    return "undetermined"


def decide_speedup(interval: Interval, margin: float = SPEEDUP_MARGIN) -> str:
    """What a speedup's interval decides: "faster" (it lies above ``margin``), "slower" (below
    ``1 / margin``), "equivalent within 10%" (inside both), or "undetermined" (it straddles a
    bound, or is not finite)."""
    return {"higher": "faster", "lower": "slower"}.get(decision := decide_ratio(interval, margin), decision)


def paired_ratio(a: np.ndarray, b: np.ndarray, cells: np.ndarray, level: float = LEVEL, n_boot: int = N_BOOT,
                 seed: int = 0) -> Interval:
    """mean(a) / mean(b) of per-query values measured on the same queries (e.g. candidates, or
    latencies, under two DBs), with a bootstrap interval that resamples the queries within each
    cell, the same draw for both."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values must be of the same queries: {a.shape} vs {b.shape}")
    w = stratified_weights(cells, n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = float(a.mean() / b.mean())
        draws = (w @ a) / (w @ b)
    return _finite_draws_interval(point, draws, level, f"paired stratified bootstrap ({n_boot}, seed {seed})")


def decide_difference(interval: Interval, margin: float = RATE_MARGIN, equivalence_first: bool = False) -> str:
    """What a hit-rate difference's interval (A minus B) decides: "higher" (it lies above 0),
    "lower" (below 0), "equivalent within 1 point" (inside [-margin, margin]) or "undetermined".
    With ``equivalence_first`` (a test of equivalence, as the model validation asks), an interval
    inside the margin is equivalent even where it also lies above or below 0."""
    lo, hi = interval.low, interval.high
    if equivalence_first and lo >= -margin and hi <= margin:
        return f"equivalent within {100 * margin:g} point{'s' if margin != 0.01 else ''}"
    if lo > 0:
        return "higher"
    if hi < 0:
        return "lower"
    if lo >= -margin and hi <= margin:
        return f"equivalent within {100 * margin:g} point{'s' if margin != 0.01 else ''}"
    return "undetermined"


def timed_speedup_interval(hits_a: np.ndarray, latency_a: np.ndarray, hits_b: np.ndarray, latency_b: np.ndarray,
                           cells: np.ndarray, target: float, level: float = LEVEL, n_boot: int = 1000,
                           seed: int = 0) -> Interval:
    """B's cost / A's cost at the fixed hit rate ``target``, each interpolated along its sweep
    (``bench.measure.operating_points.interpolated_cost``), with the timing inside the interval:
    the queries are resampled (stratified by cell, one draw for both methods) and every draw
    recomputes each sweep point's hit rate and its mean latency over the draw's timed queries.

    ``hits_*`` [points, queries] per-query hits of each sweep point; ``latency_*`` [points, queries]
    per-query latency, NaN for queries not timed (the same queries timed at every point). The
    target is held fixed: it is not a maximum the bootstrap re-takes. A draw where a method does
    not reach ``target`` gives a ratio of 0 (A) or infinity (B), and is kept: a method that reaches
    the target in only some draws leaves the interval open to 0 or infinity (undetermined) instead
    of being decided on the draws that happen to reach; one that never reaches it is slower.
    """
    from .operating_points import interpolated_cost

    hits_a, hits_b = np.asarray(hits_a, dtype=float), np.asarray(hits_b, dtype=float)
    lat_a, lat_b = np.asarray(latency_a, dtype=float), np.asarray(latency_b, dtype=float)
    n = hits_a.shape[1]

    def cost(w: np.ndarray, hits: np.ndarray, lat: np.ndarray) -> np.ndarray:
        timed = np.isfinite(lat)
        rates = w @ hits.T / n
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (w @ np.where(timed, lat, 0.0).T) / (w @ timed.T.astype(float))
        return interpolated_cost(rates, means, target)

    one = np.ones((1, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        point = float((cost(one, hits_b, lat_b) / cost(one, hits_a, lat_a))[0])
    w = stratified_weights(cells, n_boot, seed)
    ca, cb = cost(w, hits_a, lat_a), cost(w, hits_b, lat_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.where(np.isinf(ca) & np.isinf(cb), np.nan, cb / ca)
    draws = draws[~np.isnan(draws)]
    method = (f"stratified bootstrap over queries of hit rates and per-query latencies at a fixed {target:.4f} "
              f"exact, cost interpolated along each sweep ({n_boot}, seed {seed})")
    if len(draws) == 0:
        return Interval(point, float("nan"), float("nan"), method)
    lo, hi = (float(x) for x in np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf"))
    return Interval(point, lo, hi, method)
