"""TEMPLATE of a search method: copy this file, rename the method, fill in the hooks.

Two ways to use the copy (docs/adding-a-method.md walks through both):

- as a built-in: ``methods/<module>.py`` plus ``methods/<name>.yml``; the registry imports every
  module of ``methods/`` and the conformance test (tests/test_methods/test_methods_conformance.py) checks it;
- as a plugin, anywhere: ``python -m bench run --plugin path/to/<module>.py --method <name>``
  with ``<name>.yml`` beside the file (or an installed package's ``bench.methods`` entry point).

As shipped it is a small working method, ``my-method``: a PCA shortlist. ``fit`` learns a
``dims``-dimensional PCA from the train anchors; ``build`` projects the DB; ``search`` ranks
the whole DB by the inner product of the projections, keeps the best ``shortlist`` rows and
re-ranks those on the full embeddings. ``candidates`` is ``shortlist``: the DB vectors whose
full embedding was scored. Try it:

    python -m bench list --plugin docs/method_template.py my-method
    python -m bench run --plugin docs/method_template.py --method my-method lsh
"""
from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import Method, SearchResult, TrainData, check_int_range, pad_result
from methods.common.projection import PCAWhitening
from methods.registry import register


@register  # registers the class under ``name`` when the module is imported
class MyMethod(Method):
    """PCA shortlist, re-ranked on the full embeddings (the method template); knob ``shortlist``."""

    name = "my-method"                   # what --method and results use; the grid is <name>.yml beside this file
    build_defaults = {"dims": 16}        # every build parameter, with its default
    query_defaults = {"shortlist": 100}  # every query parameter, with its default
    # input_kind = "spectrogram"  # uncomment to receive the harness's spectral images instead of embeddings
    #                             # (encoders/spectral.py); such a method must not override _fit
    # approximate_scores = True   # set when scores are not exact inner products <q, x>

    projection: PCAWhitening | None = None

    # ---- parameter checks: raise ValueError naming the parameter and the allowed range --------

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("dims", params["dims"], 1)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("shortlist", params["shortlist"], 1)

    # ---- learning: only from the train split (anchor/positive embedding pairs) ---------------

    def _fit(self, train: TrainData) -> None:
        """Optional: delete this method if yours learns nothing (the harness then skips fit)."""
        dims, d = self.params["dims"], train.anchors.shape[1]
        if dims > d:
            raise ValueError(f"dims={dims} is out of range for d={d}; allowed: 1 <= dims <= {d}")
        self.projection = PCAWhitening.fit(train.anchors, dims, whiten=False)

    # ---- index and search ----------------------------------------------------------------

    def _build(self, db: np.ndarray) -> None:
        """``db`` is float32 [N, d], already checked; row i gets id i."""
        if self.projection is None:
            raise RuntimeError(f"{self.name}: call fit(train) before build()")
        self.db = db
        self.db_low = self.projection(db)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        """``q`` is float32 [nq, d], already checked. Return ids/scores [nq, k] (best first, -1/-inf
        padding) and the candidates scored per query. Never time anything here: the harness does."""
        shortlist = min(self.query_params["shortlist"], self.n)
        coarse = self.projection(q) @ self.db_low.T                                  # [nq, N]
        rows = np.argpartition(-coarse, shortlist - 1, axis=1)[:, :shortlist]
        rows = np.sort(rows, axis=1)                                                 # ties go to the lower id
        scores = np.einsum("qcd,qd->qc", self.db[rows], q)                           # exact <q, x> re-rank
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        ids, top = np.take_along_axis(rows, best, axis=1), np.take_along_axis(scores, best, axis=1)
        if ids.shape[1] < k:                                                         # fewer candidates than k
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            top = np.pad(top, ((0, 0), (0, pad)), constant_values=-np.inf)
        return pad_result(ids, top, np.full(q.shape[0], shortlist))

    def _stats(self) -> dict[str, Any]:
        """``index_bytes`` (int) is required; hashing methods add ``bucket_counts`` (non-empty bucket
        sizes), ``n_buckets_total`` and ``K`` so the run records bucket balance."""
        return {"index_bytes": int(self.db.nbytes + self.db_low.nbytes + self.projection.nbytes),
                "dims": self.params["dims"]}
