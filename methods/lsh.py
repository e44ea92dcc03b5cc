"""Random-hyperplane LSH (Charikar): K sign bits per table, L tables, Hamming-radius multi-probe.

Hyperplanes pass through the origin (no centring), as in the classic scheme; they are
drawn from a Gaussian seeded by ``seed`` once the dimension is known (at ``build``).
Candidates are re-ranked on the full embeddings by the shared ``HashTable``.
``stats()["bucket_counts"]`` is table 0's occupancy (every table is drawn the same way);
the others are ``self.table.bucket_counts(t)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import Method, SearchResult, check_int_range
from methods.common.hash_table import (
    MAX_BITS,
    HashTable,
    check_kernels,
    hamming_ball_probes,
    hamming_ball_size,
    pack_bits,
    warm_up,
)
from methods.registry import register


@register
class LSH(Method):
    """Random-hyperplane LSH with multi-probe by Hamming radius (radius 0 = own bucket)."""

    name = "lsh"
    build_defaults = {"K": 16, "L": 1, "kernels": "numba"}
    query_defaults = {"radius": 0}
    threads_over_batch = False  # one thread a batch; the kernels release the GIL

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("K", params["K"], 1, MAX_BITS)
        check_int_range("L", params["L"], 1)
        check_kernels(params["kernels"])

    def _warm_up(self) -> None:
        warm_up(self.params["kernels"])

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("radius", params["radius"], 0, self.params["K"])

    def draw_planes(self, d: int) -> None:
        """Draw the L*K hyperplanes for dimension ``d`` from ``seed`` (the same for every method reusing them)."""
        rng = np.random.default_rng(self.seed)
        self.planes = rng.standard_normal((d, self.params["L"] * self.params["K"])).astype(np.float32)

    def sign_bits(self, x: np.ndarray) -> np.ndarray:
        """The L*K sign bits of ``x`` [n, d]: bool [n, L*K]; table t uses columns t*K .. t*K+K-1."""
        return x @ self.planes > 0

    def hash(self, x: np.ndarray) -> np.ndarray:
        """Codes of ``x`` [n, d] in every table: int64 [L, n]."""
        K, L = self.params["K"], self.params["L"]
        bits = self.sign_bits(x)  # [n, L*K]
        return np.stack([pack_bits(bits[:, t * K:(t + 1) * K]) for t in range(L)])

    def _build(self, db: np.ndarray) -> None:
        self.draw_planes(db.shape[1])
        self.table = HashTable(self.hash(db), db, self.params["kernels"])

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        K = self.params["K"]
        n_probes = hamming_ball_size(K, self.query_params["radius"])
        codes = self.hash(q)
        self.clock.lap("hash")
        probes = [hamming_ball_probes(table_codes, K, n_probes) for table_codes in codes]
        self.clock.lap("probes")
        return self.table.search(q, probes, k, self.clock)

    def _stats(self) -> dict[str, Any]:
        K = self.params["K"]
        return {
            "index_bytes": self.table.nbytes() + self.planes.nbytes,
            "K": K,
            "L": self.params["L"],
            "n_buckets_total": 2 ** K,
            "bucket_counts": self.table.bucket_counts(0),
        }
