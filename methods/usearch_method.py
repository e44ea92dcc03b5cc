"""Graph search with USearch (Unum's HNSW, single-file C++ with SIMD kernels), inner product.

Build ``connectivity`` (graph degree) and ``expansion_add``; query ``expansion_search``; one
thread for insertion and search. ``candidates``: the distances USearch reports it computed for
the batch (``computed_distances``), divided by the number of queries and capped at N, the same
value for every row of one ``search`` call (as for faiss's HNSW).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import Method, SearchResult, check_int_range
from methods.common.library_result import padded_result
from methods.registry import register


@register
class USearch(Method):
    """``usearch.index.Index(metric="ip", dtype="f32")``."""

    name = "usearch"
    build_defaults = {"connectivity": 16, "expansion_add": 128}
    query_defaults = {"expansion_search": 16}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("connectivity", params["connectivity"], 2, 1024)
        check_int_range("expansion_add", params["expansion_add"], 1)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("expansion_search", params["expansion_search"], 1)

    def _build(self, db: np.ndarray) -> None:
        from usearch.index import Index

        self.index = Index(ndim=db.shape[1], metric="ip", dtype="f32", connectivity=self.params["connectivity"],
                           expansion_add=self.params["expansion_add"])
        self.index.add(np.arange(len(db), dtype=np.uint64), db, threads=1)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        kk = min(k, self.n)
        self.index.expansion_search = max(self.query_params["expansion_search"], kk)
        matches = self.index.search(q, kk, threads=1)
        self.clock.lap("library")
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(len(q), -1)
        # one query gives a Matches holding only what was found, a batch BatchMatches padded past its counts
        counts = np.asarray(getattr(matches, "counts", [keys.shape[1]])).reshape(-1, 1)
        keys = np.where(np.arange(keys.shape[1])[None, :] < counts, keys, -1)
        per_query = min(self.n, round(int(matches.computed_distances) / len(q)))
        # USearch's "ip" distance is 1 - <q, x>
        scores = 1.0 - np.asarray(matches.distances, dtype=np.float32).reshape(keys.shape)
        return padded_result(keys, scores, k, np.full(len(q), per_query, dtype=np.int64))

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": int(self.index.serialized_length), "connectivity": self.params["connectivity"],
                "expansion_add": self.params["expansion_add"]}
