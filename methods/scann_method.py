"""ScaNN (Guo et al. 2020, as in ann-benchmarks): a k-means tree over the DB, anisotropic vector
quantization (AH) scoring of the points in the searched leaves, then exact re-scoring of the best
``reorder`` of them; inner product.

Build: ``num_leaves`` (tree partitions), ``dims_per_block`` and ``aq_threshold`` (the anisotropic
quantization's eta threshold). Query: ``leaves_to_search`` and ``reorder`` (exact re-scoring depth,
at least k). One thread for training and search, one query segment at a time with ScaNN's
one-query ``search`` (as ann-benchmarks times it): its batched path can choose other leaves for
the same query, which would make a query's answer depend on the batch it came in.
ScaNN does not report how many points it scored, so ``candidates`` are not measured
(``counts_candidates = False``). The final k are re-scored exactly, so scores are inner products.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import Method, SearchResult, check_float_range, check_int_range
from methods.common.library_result import padded_result
from methods.registry import register

TRAINING_SAMPLE = 100_000


@register
class ScaNN(Method):
    """ScaNN tree + AH + reorder (``scann_ops_pybind.builder(...).tree().score_ah().reorder()``)."""

    name = "scann"
    counts_candidates = False
    build_defaults = {"num_leaves": 256, "dims_per_block": 2, "aq_threshold": 0.2}
    query_defaults = {"leaves_to_search": 8, "reorder": 100}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("num_leaves", params["num_leaves"], 1, 1 << 20)
        check_int_range("dims_per_block", params["dims_per_block"], 1, 16)
        check_float_range("aq_threshold", params["aq_threshold"], 0.0, 1.0)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("leaves_to_search", params["leaves_to_search"], 1)
        check_int_range("reorder", params["reorder"], 1)

    def _build(self, db: np.ndarray) -> None:
        from scann.scann_ops.py import scann_ops_pybind

        leaves = min(self.params["num_leaves"], len(db))
        self.leaves = leaves
        builder = scann_ops_pybind.builder(db, 10, "dot_product")
        builder.set_n_training_threads(self.threads)
        # random_init=False: with random initial centres, ScaNN's k-means (re-seeding partitions under
        # min_partition_size) gives another tree on every build; this one is the same for the same DB
        self.searcher = (builder.tree(num_leaves=leaves, num_leaves_to_search=min(8, leaves),
                                      training_sample_size=min(len(db), TRAINING_SAMPLE), random_init=False)
                         .score_ah(self.params["dims_per_block"], anisotropic_quantization_threshold=
                                   self.params["aq_threshold"])
                         .reorder(100).build())
        self.searcher.set_num_threads(self.threads)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        kk = min(k, self.n)
        leaves = min(self.query_params["leaves_to_search"], self.leaves)
        reorder = max(self.query_params["reorder"], kk)
        ids = np.full((len(q), kk), -1, dtype=np.int64)
        scores = np.full((len(q), kk), -np.inf, dtype=np.float32)
        for i, row in enumerate(q):  # ScaNN's batched path can pick other leaves than its one-query path
            found, dots = self.searcher.search(row, final_num_neighbors=kk, leaves_to_search=leaves,
                                               pre_reorder_num_neighbors=reorder)
            ids[i, :len(found)], scores[i, :len(found)] = found, dots
        self.clock.lap("library")
        return padded_result(ids, scores, k, np.zeros(len(q), dtype=np.int64))

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": int(sum(len(v) if isinstance(v, (bytes, bytearray)) else np.asarray(v).nbytes
                                       for v in self._serialized().values())),
                "num_leaves": self.leaves}

    def _serialized(self) -> dict[str, Any]:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="scann-") as folder:
            self.searcher.serialize(folder)
            return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
