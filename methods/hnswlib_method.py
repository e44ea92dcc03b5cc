"""Graph search with hnswlib (Malkov & Yashunin's reference HNSW, as in ann-benchmarks), inner product.

Build ``M`` and ``ef_construction``, query ``ef`` (hnswlib searches with max(ef, k)); one thread
for insertion and search. hnswlib does not report how many distances a search computed, so its
``candidates`` are not measured (``counts_candidates = False``: the harness leaves them out
rather than show the k ids it returned as the work done).
"""
from __future__ import annotations

from typing import Any

import hnswlib
import numpy as np

from methods.base import Method, SearchResult, check_int_range
from methods.common.library_result import padded_result
from methods.registry import register


@register
class HnswLib(Method):
    """hnswlib ``Index(space="ip")`` with graph degree ``M``, built with ``ef_construction``,
    searched with ``ef``."""

    name = "hnswlib"
    counts_candidates = False
    build_defaults = {"M": 32, "ef_construction": 200}
    query_defaults = {"ef": 16}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("M", params["M"], 2, 1024)
        check_int_range("ef_construction", params["ef_construction"], 1)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("ef", params["ef"], 1)

    def _build(self, db: np.ndarray) -> None:
        self.index = hnswlib.Index(space="ip", dim=db.shape[1])
        self.index.init_index(max_elements=len(db), ef_construction=self.params["ef_construction"],
                              M=self.params["M"], random_seed=self.seed)
        self.index.add_items(db, np.arange(len(db)), num_threads=1)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        kk = min(k, self.n)
        self.index.set_ef(max(self.query_params["ef"], kk))
        labels, distances = self.index.knn_query(q, k=kk, num_threads=1)
        self.clock.lap("library")
        # hnswlib's "ip" distance is 1 - <q, x>
        return padded_result(labels, 1.0 - distances, k, np.zeros(len(q), dtype=np.int64))

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": int(self.index.index_file_size()), "M": self.params["M"],
                "ef_construction": self.params["ef_construction"]}
