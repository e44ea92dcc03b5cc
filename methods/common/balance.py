"""Bucket-balance statistics of a hash table or an IVF index (docs/protocol.md, Metrics)."""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def bucket_balance(counts: np.ndarray, n_buckets_total: int) -> dict[str, float]:
    """Balance of an occupancy histogram over ``n_buckets_total`` buckets.

    ``counts`` holds the item count of some buckets (usually only the non-empty ones); the
    buckets it does not list are empty. Returned keys:

    - ``n``: items; ``n_buckets_total``; ``n_nonempty``; ``nonempty_fraction``
    - ``entropy_bits`` H of the occupancy distribution and ``normalised_entropy``
      H / log2(n_buckets_total) (H/K for 2^K buckets; 1.0 is perfectly uniform)
    - ``max_load``, ``mean_load`` (N / n_buckets_total) and ``max_mean_ratio``
    - ``cv``: coefficient of variation of the load over all buckets, empty ones included
    - ``expected_bucket_size``: sum(c^2)/N, the bucket size a data-distributed query sees, against
      two references for the same N and B = n_buckets_total:
      ``random_bucket_size`` = 1 + (N-1)/B, the expectation under random (uniform, independent)
      hashing, and ``floor_bucket_size``, its value under perfect balance (every bucket holds
      floor or ceil of N/B; about max(1, N/B)). ``expected_vs_random`` and ``expected_vs_floor``
      are the ratios: 1 is as good as a random hash / as perfect balance. When N < B even a
      perfect random hash has ``expected_vs_mean_load`` = expected / (N/B) of about 1 + B/N, so
      that ratio (the one once called "expected/uniform") is kept under its true name only.
    """
    c = np.asarray(counts, dtype=np.float64).ravel()
    n_buckets_total = int(n_buckets_total)
    if n_buckets_total < 1:
        raise ValueError(f"n_buckets_total={n_buckets_total} is out of range; allowed: n_buckets_total >= 1")
    if c.size > n_buckets_total:
        raise ValueError(f"counts has {c.size} buckets, more than n_buckets_total={n_buckets_total}")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("counts must be finite and non-negative")
    n = float(c.sum())
    nonempty = c[c > 0]
    mean_load = n / n_buckets_total
    log_b = math.log2(n_buckets_total)
    if n == 0:
        nan = float("nan")
        return {"n": 0.0, "n_buckets_total": float(n_buckets_total), "n_nonempty": 0.0,
                "nonempty_fraction": 0.0, "entropy_bits": 0.0, "normalised_entropy": nan,
                "max_load": 0.0, "mean_load": 0.0, "max_mean_ratio": nan, "cv": nan,
                "expected_bucket_size": 0.0, "random_bucket_size": nan, "floor_bucket_size": nan,
                "expected_vs_random": nan, "expected_vs_floor": nan, "expected_vs_mean_load": nan}
    p = nonempty / n
    entropy = float(-(p * np.log2(p)).sum())
    sum_sq = float((nonempty ** 2).sum())
    variance = max(sum_sq / n_buckets_total - mean_load ** 2, 0.0)
    expected = sum_sq / n
    return {
        "n": n,
        "n_buckets_total": float(n_buckets_total),
        "n_nonempty": float(nonempty.size),
        "nonempty_fraction": nonempty.size / n_buckets_total,
        "entropy_bits": entropy,
        "normalised_entropy": entropy / log_b if log_b > 0 else 1.0,
        "max_load": float(nonempty.max()),
        "mean_load": mean_load,
        "max_mean_ratio": float(nonempty.max()) / mean_load,
        "cv": math.sqrt(variance) / mean_load,
        "expected_bucket_size": expected,
        "random_bucket_size": float(random_bucket_size(n, n_buckets_total)),
        "floor_bucket_size": float(floor_bucket_size(n, n_buckets_total)),
        "expected_vs_random": float(expected / random_bucket_size(n, n_buckets_total)),
        "expected_vs_floor": float(expected / floor_bucket_size(n, n_buckets_total)),
        "expected_vs_mean_load": expected / mean_load,
    }


def random_bucket_size(n: ArrayLike, n_buckets_total: ArrayLike) -> np.ndarray:
    """Expected sum(c^2)/N of N items hashed uniformly and independently into B buckets: 1 + (N-1)/B
    (elementwise over arrays of N and B)."""
    return 1.0 + (np.asarray(n, dtype=np.float64) - 1.0) / np.asarray(n_buckets_total, dtype=np.float64)


def floor_bucket_size(n: ArrayLike, n_buckets_total: ArrayLike) -> np.ndarray:
    """sum(c^2)/N under perfect balance: N mod B buckets of ceil(N/B) items, the rest of floor(N/B)
    (elementwise over arrays of N and B)."""
    n = np.rint(np.asarray(n, dtype=np.float64))
    buckets = np.asarray(n_buckets_total, dtype=np.float64)
    full = np.floor(n / buckets)
    rest = n - full * buckets
    return (rest * (full + 1) ** 2 + (buckets - rest) * full ** 2) / n
