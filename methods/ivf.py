"""Inverted-file indexes: faiss IndexIVFFlat (``ivf``) and IndexIVFPQ (``ivfpq``).

The coarse quantizer (and the PQ codebooks) are trained in ``build()`` on the DB itself,
as ann-benchmarks does, unless ``fit()`` was given train data: then they are trained on
the train anchors (clean train-split embeddings), so nothing is learned from the DB.
Search assigns queries to their ``nprobe`` nearest lists once and hands that assignment
to ``search_preassigned``; ``candidates`` is the summed size of the probed lists (the
vectors or PQ codes scanned). ``ivfpq`` scores are approximate (asymmetric distance
computation on PQ codes), not exact inner products, and are not re-ranked.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import faiss
import numpy as np

from methods.base import SearchResult, TrainData, check_int_range
from methods.common.faiss_method import FaissMethod
from methods.registry import register

log = logging.getLogger(__name__)
POINTS_PER_CENTROID = 39  # faiss's own minimum before it warns about too few training points


@register
class IVF(FaissMethod):
    """faiss IndexIVFFlat with an inner-product coarse quantizer; query knob ``nprobe``."""

    name = "ivf"
    build_defaults = {"nlist": 256}
    query_defaults = {"nprobe": 1}

    _train_vectors: np.ndarray | None = None

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("nlist", params["nlist"], 1)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("nprobe", params["nprobe"], 1, self.params["nlist"])

    def _fit(self, train: TrainData) -> None:
        self._train_vectors = train.anchors

    def _make_index(self, d: int) -> faiss.IndexIVF:
        return faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, self.params["nlist"], faiss.METRIC_INNER_PRODUCT)

    def _check_training_set(self, n_train: int, source: str) -> None:
        nlist = self.params["nlist"]
        if nlist > n_train:
            raise ValueError(f"nlist={nlist} is out of range for {n_train} training vectors ({source}); "
                             f"allowed: 1 <= nlist <= {n_train}")

    def _warn_few_points(self, n_train: int, source: str) -> None:
        """Log one warning for a thin training set; silence faiss's per-clustering repeats of it."""
        nlist = self.params["nlist"]
        if n_train < POINTS_PER_CENTROID * nlist:
            log.warning("%s: training nlist=%d lists on %d vectors (%s); faiss suggests >= %d",
                        self.name, nlist, n_train, source, POINTS_PER_CENTROID * nlist)
        self.index.cp.min_points_per_centroid = 1

    def _build(self, db: np.ndarray) -> None:
        if self._train_vectors is not None:
            train, source = self._train_vectors, "train anchors"
        else:
            train, source = db, "the DB"
        self._check_training_set(train.shape[0], source)
        self.trained_on = source
        self.index = self._make_index(db.shape[1])
        self.index.cp.seed = self.seed  # coarse k-means
        self._warn_few_points(train.shape[0], source)
        self.index.train(train)
        self.index.add(db)
        invlists = self.index.invlists
        self.list_sizes = np.array([invlists.list_size(i) for i in range(self.index.nlist)], dtype=np.int64)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        nprobe = self.query_params["nprobe"]
        self.index.nprobe = nprobe
        centroid_scores, lists = self.index.quantizer.search(q, nprobe)
        self.clock.lap("coarse")
        distances, labels = self.index.search_preassigned(q, k, lists, centroid_scores)
        self.clock.lap("library")
        return self.result(distances, labels, self.list_sizes[lists].sum(axis=1))

    def _stats(self) -> dict[str, Any]:
        nlist = self.params["nlist"]
        return {
            "index_bytes": self.index_bytes(),
            "nlist": nlist,
            "n_buckets_total": nlist,
            "K": math.log2(nlist),
            "bucket_counts": self.list_sizes.copy(),
            "trained_on": self.trained_on,
        }


@register
class IVFPQ(IVF):
    """faiss IndexIVFPQ (PQ ``M`` x ``nbits`` on residuals); scores are approximate (ADC)."""

    name = "ivfpq"
    approximate_scores = True
    build_defaults = {"nlist": 256, "M": 64, "nbits": 8}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        super()._check_build_params(params)
        check_int_range("M", params["M"], 1)
        check_int_range("nbits", params["nbits"], 1, 16)

    def _make_index(self, d: int) -> faiss.IndexIVF:
        M, nbits = self.params["M"], self.params["nbits"]
        if d % M:
            raise ValueError(f"M={M} must divide the dimension d={d}; allowed: a divisor of {d}")
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, self.params["nlist"], M, nbits, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = self.seed
        return index

    def _check_training_set(self, n_train: int, source: str) -> None:
        super()._check_training_set(n_train, source)
        need = 2 ** self.params["nbits"]
        if n_train < need:
            raise ValueError(f"nbits={self.params['nbits']} needs at least {need} training vectors for its "
                             f"codebooks, {source} has {n_train}; allowed: nbits <= {int(math.log2(n_train))}")

    def _warn_few_points(self, n_train: int, source: str) -> None:
        super()._warn_few_points(n_train, source)
        n_codes = 2 ** self.params["nbits"]
        if n_train < POINTS_PER_CENTROID * n_codes:
            log.warning("%s: training %d PQ sub-quantizers of %d centroids on %d vectors (%s); "
                        "faiss suggests >= %d", self.name, self.params["M"], n_codes, n_train, source,
                        POINTS_PER_CENTROID * n_codes)
        self.index.pq.cp.min_points_per_centroid = 1

    def _stats(self) -> dict[str, Any]:
        return {**super()._stats(), "M": self.params["M"], "nbits": self.params["nbits"]}
