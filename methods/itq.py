"""PCA + iterative quantisation (ITQ; Gong & Lazebnik, CVPR 2011): learned K-bit codes.

Hash function, fitted on the train anchors (clean train-split embeddings; nothing is learned
from the DB): centre, project onto the top-K principal axes (plain PCA, not whitened), then
rotate by the K x K orthogonal matrix R that ITQ finds by alternating, for ``n_iter``
iterations from a random rotation drawn from ``seed``, B = sign(V R) and the orthogonal
Procrustes solution R = U W^T of the SVD V^T B = U S W^T (minimising the quantisation loss
||B - V R||_F). Bit j = [z_j > 0] with z = (x - mean) @ (P R).

It sits between the other two hashers on the shared ``HashTable`` (the same buckets,
multi-probe and re-ranking code, so only the hash function differs): like LSH it is linear,
like FlowHash it is learned and centred, so its bits are near balanced one at a time, but
nothing balances them jointly. On the default synth run its buckets are in fact less even than
LSH's (expected bucket size / uniform 36.0 vs LSH 29.4 and FlowHash 25.9 at K=16; 5.59 vs 4.50
and 3.53 at K=12) although its single bits are more balanced and less correlated: its PCA axes
follow the embeddings' cluster structure, so near-duplicate segments share whole codes, which is
also why it scans fewer candidates than both at a matched hit rate. Multi-probe follows FlowHash:
query knob ``n_probes``, own bucket first, then the least certain bits (smallest |z|) flipped
first, probes ordered by the summed |z| of the flipped bits (``hash_table.probe_codes``).
Candidates are re-ranked on the full embeddings.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import Method, SearchResult, TrainData, check_int_range
from methods.common.hash_table import MAX_BITS, HashTable, check_kernels, latent_probes, pack_bits, warm_up
from methods.common.projection import PCAWhitening
from methods.registry import register

MAX_PROBES = 4096  # as FlowHash: probe sets come from a template over at most 12 bits


def itq_rotation(v: np.ndarray, n_iter: int, seed: int) -> tuple[np.ndarray, list[float]]:
    """ITQ's rotation of PCA-projected data ``v`` [n, K]: (R [K, K] float64, quantisation loss per iteration)."""
    v = np.asarray(v, dtype=np.float64)
    k = v.shape[1]
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((k, k)))
    rotation = q * np.sign(np.diag(r))  # a uniformly random orthogonal matrix
    losses = []
    for _ in range(n_iter):
        codes = np.where(v @ rotation >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ codes)
        rotation = u @ wt
        losses.append(float(np.square(np.where(v @ rotation >= 0, 1.0, -1.0) - v @ rotation).sum() / v.shape[0]))
    return rotation, losses


@register
class ITQ(Method):
    """PCA + iterative quantisation to K bits on the shared hash table; query knob ``n_probes``."""

    name = "itq"
    build_defaults = {"K": 16, "n_iter": 50, "kernels": "numba"}
    query_defaults = {"n_probes": 1}
    threads_over_batch = False  # one thread a batch; the kernels release the GIL

    projection: PCAWhitening | None = None

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("K", params["K"], 1, MAX_BITS)
        check_int_range("n_iter", params["n_iter"], 0)
        check_kernels(params["kernels"])

    def _warm_up(self) -> None:
        warm_up(self.params["kernels"])

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("n_probes", params["n_probes"], 1, min(2 ** self.params["K"], MAX_PROBES))

    def _fit(self, train: TrainData) -> None:
        K, d = self.params["K"], train.anchors.shape[1]
        if K > d:
            raise ValueError(f"K={K} is out of range for d={d}; allowed: 1 <= K <= {min(d, MAX_BITS)}")
        pca = PCAWhitening.fit(train.anchors, K, whiten=False)
        rotation, self.losses = itq_rotation(pca(train.anchors), self.params["n_iter"], self.seed)
        self.projection = PCAWhitening(mean=pca.mean, matrix=(pca.matrix @ rotation).astype(np.float32))

    def latent(self, x: np.ndarray) -> np.ndarray:
        """Rotated PCA projection z [n, K] of embeddings ``x`` [n, d]; the hash bits are z > 0."""
        if self.projection is None:
            raise RuntimeError("itq: call fit(train) before build() or search()")
        return self.projection(x)

    def _build(self, db: np.ndarray) -> None:
        self.table = HashTable(pack_bits(self.latent(db) > 0), db, self.params["kernels"])

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        z = self.latent(q)
        self.clock.lap("hash")
        probes = latent_probes(z, self.query_params["n_probes"], self.params["kernels"])
        self.clock.lap("probes")
        return self.table.search(q, probes, k, self.clock)

    def _stats(self) -> dict[str, Any]:
        K = self.params["K"]
        return {
            "index_bytes": self.table.nbytes() + self.projection.nbytes,
            "K": K,
            "L": 1,
            "n_buckets_total": 2 ** K,
            "bucket_counts": self.table.bucket_counts(0),
            "quantisation_loss": self.losses[-1] if self.losses else None,
        }
