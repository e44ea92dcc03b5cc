"""RaBitQ (Gao and Long, SIGMOD 2024; faiss since 1.11): randomised binary quantisation of each
vector's direction, with an unbiased inner-product estimator, then an exact re-rank.

``rabitq`` is faiss ``IndexRaBitQ`` (every DB code scanned); ``ivf-rabitq`` is ``IndexIVFRaBitQ``
(codes of the residuals to ``nlist`` coarse centroids, ``nprobe`` lists scanned). Build parameter
``nb_bits``: 1 is the original one bit per dimension, more is the extended (multi-bit) RaBitQ.
Query parameters: ``qb``, the bits each query coordinate is quantised to (0: the query stays
float), and ``k_factor``: the ``k * k_factor`` best by the estimated score are re-scored on the
full embeddings, as faiss's ``IndexRefineFlat`` does, with its own routine
(``IndexFlat.compute_distance_subset``), and the best ``k`` kept. The quantiser (its centre, and
the coarse centroids) is trained on the train anchors when ``fit`` was given them, else on the DB.
``candidates`` counts the RaBitQ codes scanned (N, or the probed lists' sizes), as for IVF-PQ;
the exact re-rank scores ``k * k_factor`` of them again.
"""
from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from methods.base import SearchResult, TrainData, check_int_range
from methods.common.faiss_method import FaissMethod
from methods.registry import register

MAX_BITS = 9    # faiss's RaBitQ: 1 to 9 bits per dimension
MAX_QB = 8      # query quantisation bits (0: float queries)


@register
class RaBitQ(FaissMethod):
    """faiss IndexRaBitQ with an exact re-rank; query knobs ``qb`` and ``k_factor``."""

    name = "rabitq"
    build_defaults: dict[str, Any] = {"nb_bits": 1}
    query_defaults: dict[str, Any] = {"qb": 8, "k_factor": 10}

    _train_vectors: np.ndarray | None = None

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("nb_bits", params["nb_bits"], 1, MAX_BITS)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("qb", params["qb"], 0, MAX_QB)
        check_int_range("k_factor", params["k_factor"], 1)

    def _fit(self, train: TrainData) -> None:
        self._train_vectors = train.anchors

    def _make_index(self, d: int) -> faiss.Index:
        return faiss.IndexRaBitQ(d, faiss.METRIC_INNER_PRODUCT, self.params["nb_bits"])

    def _build(self, db: np.ndarray) -> None:
        train, self.trained_on = ((self._train_vectors, "train anchors") if self._train_vectors is not None
                                  else (db, "the DB"))
        self.index = self._make_index(db.shape[1])
        self.index.train(train)
        self.index.add(db)
        self.exact = faiss.IndexFlatIP(db.shape[1])  # the re-rank's full embeddings
        self.exact.add(db)

    def _coarse_search(self, q: np.ndarray, k_base: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels [nq, k_base] by the estimated score, codes scanned [nq])."""
        self.index.qb = self.query_params["qb"]
        _, labels = self.index.search(q, k_base)
        self.clock.lap("library")
        return labels, np.full(q.shape[0], self.index.ntotal, dtype=np.int64)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        k_base = min(k * self.query_params["k_factor"], max(self.n, 1))
        labels, scanned = self._coarse_search(q, k_base)
        distances = np.empty(labels.shape, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.exact.compute_distance_subset(q.shape[0], faiss.swig_ptr(q), labels.shape[1],
                                           faiss.swig_ptr(distances), faiss.swig_ptr(labels))
        distances[labels < 0] = -np.inf
        order = np.argsort(-distances, axis=1, kind="stable")[:, :k]
        self.clock.lap("rerank")
        ids, scores = np.take_along_axis(labels, order, 1), np.take_along_axis(distances, order, 1)
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return self.result(scores, ids, scanned)

    def index_bytes(self) -> int:
        """The RaBitQ index and the full embeddings the re-rank reads."""
        return int(faiss.serialize_index(self.index).nbytes + faiss.serialize_index(self.exact).nbytes)

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": self.index_bytes(), "nb_bits": self.params["nb_bits"],
                "code_bytes": int(self.index.code_size), "trained_on": self.trained_on}


@register
class IVFRaBitQ(RaBitQ):
    """faiss IndexIVFRaBitQ with an exact re-rank; query knobs ``nprobe``, ``qb``, ``k_factor``."""

    name = "ivf-rabitq"
    build_defaults: dict[str, Any] = {"nlist": 1024, "nb_bits": 1}
    query_defaults: dict[str, Any] = {"nprobe": 16, "qb": 8, "k_factor": 10}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        super()._check_build_params(params)
        check_int_range("nlist", params["nlist"], 1)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        super()._check_query_params(params)
        check_int_range("nprobe", params["nprobe"], 1, self.params["nlist"])

    def _make_index(self, d: int) -> faiss.Index:
        index = faiss.IndexIVFRaBitQ(faiss.IndexFlatIP(d), d, self.params["nlist"], faiss.METRIC_INNER_PRODUCT,
                                     True, self.params["nb_bits"])
        index.cp.seed = self.seed
        index.cp.min_points_per_centroid = 1
        return index

    def _build(self, db: np.ndarray) -> None:
        n_train = (self._train_vectors if self._train_vectors is not None else db).shape[0]
        if self.params["nlist"] > n_train:
            raise ValueError(f"nlist={self.params['nlist']} is out of range for {n_train} training vectors; "
                             f"allowed: 1 <= nlist <= {n_train}")
        super()._build(db)
        invlists = self.index.invlists
        self.list_sizes = np.array([invlists.list_size(i) for i in range(self.index.nlist)], dtype=np.int64)

    def _coarse_search(self, q: np.ndarray, k_base: int) -> tuple[np.ndarray, np.ndarray]:
        nprobe = self.query_params["nprobe"]
        self.index.nprobe = nprobe
        self.index.qb = self.query_params["qb"]
        centroid_scores, lists = self.index.quantizer.search(q, nprobe)
        self.clock.lap("coarse")
        _, labels = self.index.search_preassigned(q, k_base, lists, centroid_scores)
        self.clock.lap("library")
        return labels, self.list_sizes[lists].sum(axis=1)

    def _stats(self) -> dict[str, Any]:
        nlist = self.params["nlist"]
        return {**super()._stats(), "nlist": nlist, "n_buckets_total": nlist, "K": math.log2(nlist),
                "bucket_counts": self.list_sizes.copy()}
