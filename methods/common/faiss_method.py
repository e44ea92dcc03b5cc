"""Pieces every faiss-backed method shares: thread setting, index bytes, result clean-up."""
from __future__ import annotations

import faiss
import numpy as np

from methods.base import Method, SearchResult, pad_result


class FaissMethod(Method):
    """A Method whose index is one faiss index in ``self.index``."""

    index: faiss.Index

    def _apply_threads(self) -> None:
        faiss.omp_set_num_threads(self.threads)

    def index_bytes(self) -> int:
        """Serialised size of the faiss index (vectors or codes included)."""
        return int(faiss.serialize_index(self.index).nbytes)

    @staticmethod
    def result(distances: np.ndarray, labels: np.ndarray, candidates: np.ndarray) -> SearchResult:
        """A SearchResult from faiss output: its -FLT_MAX padding becomes -inf."""
        return pad_result(labels, distances, candidates)
