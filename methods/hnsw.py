"""Graph search: faiss IndexHNSWFlat with inner product; query knob ``efSearch``.

``candidates`` is the number of distance computations faiss reports
(``faiss.cvar.hnsw_stats.ndis``) for the whole batch, divided by the number of queries and
capped at N: the same value for every row of one ``search`` call, raised where a row returned
more ids than that average (every returned id was scored; with k far above efSearch's reach
the batch average can fall below one row's count). The build is
deterministic for a seed with ``threads=1``; parallel insertion may vary between runs.
"""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from methods.base import SearchResult, check_int_range
from methods.common.faiss_method import FaissMethod
from methods.registry import register


@register
class HNSW(FaissMethod):
    """faiss IndexHNSWFlat (graph degree ``M``, ``efConstruction``), searched with ``efSearch``."""

    name = "hnsw"
    build_defaults = {"M": 32, "efConstruction": 200}
    query_defaults = {"efSearch": 16}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("M", params["M"], 2, 1024)
        check_int_range("efConstruction", params["efConstruction"], 1)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("efSearch", params["efSearch"], 1)

    def _build(self, db: np.ndarray) -> None:
        self.index = faiss.IndexHNSWFlat(db.shape[1], self.params["M"], faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.rng = faiss.RandomGenerator(self.seed)  # level assignment
        self.index.hnsw.efConstruction = self.params["efConstruction"]
        self.index.add(db)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        self.index.hnsw.efSearch = self.query_params["efSearch"]
        faiss.cvar.hnsw_stats.reset()
        distances, labels = self.index.search(q, k)
        self.clock.lap("library")
        per_query = min(self.index.ntotal, round(faiss.cvar.hnsw_stats.ndis / q.shape[0]))
        return self.result(distances, labels, np.maximum(per_query, (labels >= 0).sum(axis=1)).astype(np.int64))

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": self.index_bytes(), "M": self.params["M"],
                "efConstruction": self.params["efConstruction"]}
