"""Exact inner-product search (faiss IndexFlatIP): the ground truth and the speed floor."""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from methods.base import SearchResult
from methods.common.faiss_method import FaissMethod
from methods.registry import register


@register
class Exhaustive(FaissMethod):
    """Brute-force scan of all N vectors; ``candidates`` is N for every query."""

    name = "exhaustive"

    def _build(self, db: np.ndarray) -> None:
        self.index = faiss.IndexFlatIP(db.shape[1])
        self.index.add(db)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        distances, labels = self.index.search(q, k)
        self.clock.lap("library")
        return self.result(distances, labels, np.full(q.shape[0], self.index.ntotal, dtype=np.int64))

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": self.index_bytes()}
