"""How a hash's latent compares with the base it should follow, and what probing it costs.

For latents z [n, K] (bits z > 0) of the DB rows: the share of ones per bit; a histogram of |z|
against the base's density of |z|; at each threshold tau, the mean number of uncertain bits per
row (|z| <= tau: threshold probing and DB multi-insertion expand each into both values) beside
the base's prediction K P(|z| <= tau), and the share of rows with more than ``cap`` of them (the
expansion keeps the ``cap`` most uncertain, so those rows are truncated); and the buckets'
expected size over a random hash's.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from methods.common.balance import bucket_balance
from methods.common.hash_table import pack_bits

DIAGNOSTIC_TAUS = (0.25, 0.5, 1.0)
HIST_EDGES = np.linspace(0.0, 6.0, 49)  # |z| bins of 0.125; mass beyond 6 is counted in "beyond"


def latent_diagnostics(z: np.ndarray, taus: list[float] | tuple[float, ...], cap: int,
                       base_abs_cdf: Callable[[np.ndarray], np.ndarray],
                       base_abs_pdf: Callable[[np.ndarray], np.ndarray]) -> dict:
    """The diagnostics of latents ``z`` [n, K] (module docstring), JSON-ready. ``base_abs_cdf(t)``
    and ``base_abs_pdf(r)`` give the base's P(|z_k| <= t) and density of |z_k|."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"z must be a non-empty [n, K] array, got shape {z.shape}")
    n, K = z.shape
    a = np.abs(z)
    counts, _ = np.histogram(a, bins=HIST_EDGES)
    widths = np.diff(HIST_EDGES)
    centres = 0.5 * (HIST_EDGES[1:] + HIST_EDGES[:-1])
    uncertain = {}
    for tau in taus:
        per_row = (a <= tau).sum(axis=1)
        uncertain[f"{tau:g}"] = {"mean_bits": float(per_row.mean()),
                                 "base_mean_bits": float(K * base_abs_cdf(np.float64(tau))),
                                 "capped_share": float((per_row > cap).mean())}
    balance = bucket_balance(np.unique(pack_bits(z > 0), return_counts=True)[1], 2 ** K)
    return {"n": n, "K": K, "cap": cap,
            "ones_share": [float(v) for v in (z > 0).mean(axis=0)],
            "abs_z": {"edges": [float(e) for e in HIST_EDGES],
                      "density": [float(v) for v in counts / (n * K * widths)],
                      "base_density": [float(v) for v in base_abs_pdf(centres)],
                      "beyond": float((a > HIST_EDGES[-1]).mean())},
            "uncertain": uncertain,
            "expected_over_random": float(balance["expected_bucket_size"] / balance["random_bucket_size"])}
