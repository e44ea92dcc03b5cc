"""Recall against exact search, the ANN view (docs/protocol.md, "Recall"): of each query segment's
exact top-k by inner product over the same DB, how many a method returns in its own top k.

Ties are handled as faiss's tie-aware checks do: a DB item whose exact score equals the k-th
exact score (within float rounding, :data:`TIE_TOLERANCE`) is as good a k-th neighbour as the one
exact search happened to list, so a returned item counts when its exact score reaches the k-th
exact score. A method's own scores are not trusted (they may be estimates): the returned ids are
scored again here, exactly.
"""
from __future__ import annotations

import hashlib

import faiss
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from datasets.cache import atomic_save_npy, cache_dir

#: The recall depths reported: recall@1 and recall@10 (columns ``recall1``, ``recall10``).
RECALL_KS = (1, 10)
#: Exact scores this close count as tied (float32 inner products of unit vectors computed by
#: different routines differ in the last bits).
TIE_TOLERANCE = 1e-5
#: Query rows scored per call when gathering the returned items' embeddings.
CHUNK = 4096


def recall_column(k: int) -> str:
    """The outcomes/points column of recall@k."""
    return f"recall{k}"


def cached_exact_scores(db: np.ndarray, queries: np.ndarray, k: int, threads: int) -> np.ndarray:
    """:func:`exact_top_scores`, kept on disk (``cache_dir("neighbours")``) by a digest of the DB,
    the queries and ``k``: a scaling run's configurations at one size share one exact search."""
    digest = hashlib.sha256()
    for array in (db, queries):
        digest.update(str(array.shape).encode())
        for start in range(0, len(array), 65536):
            digest.update(np.ascontiguousarray(array[start:start + 65536], dtype=np.float32).tobytes())
    path = cache_dir("neighbours") / f"{digest.hexdigest()[:32]}-k{k}.npy"
    if path.exists():
        try:
            scores = np.load(path)
            if scores.shape == (len(queries), k):
                return scores
        except (OSError, ValueError):
            pass  # damaged: computed again below
    scores = exact_top_scores(db, queries, k, threads)
    atomic_save_npy(path, scores)
    return scores


def exact_top_scores(db: np.ndarray, queries: np.ndarray, k: int, threads: int) -> np.ndarray:
    """[nq, k] exact scores of each query row's top ``k`` DB items by inner product, descending
    (faiss IndexFlatIP on ``threads`` threads); ``-inf`` where the DB holds fewer than ``k``."""
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(np.ascontiguousarray(db, dtype=np.float32))
    with threadpool_limits(limits=threads):
        faiss.omp_set_num_threads(threads)
        scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(db)))
    scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    if scores.shape[1] < k:
        scores = np.pad(scores, ((0, 0), (0, k - scores.shape[1])), constant_values=-np.inf)
    return scores


def returned_scores(db: np.ndarray, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """[nq, k] exact inner products of each query row with the DB items it was given (``ids``,
    ``-1`` padding scored ``-inf``)."""
    out = np.full(ids.shape, -np.inf, dtype=np.float32)
    for start in range(0, len(ids), CHUNK):
        block = ids[start:start + CHUNK]
        valid = block >= 0
        rows, cols = np.nonzero(valid)
        vectors = np.asarray(db[block[valid]], dtype=np.float32)
        out[start + rows, cols] = np.einsum("ij,ij->i", vectors, queries[start + rows])
    return out


def recall_at(ids: np.ndarray, scores: np.ndarray, exact: np.ndarray, k: int,
              tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Recall@k of each query row, tie-aware: the share of ``k`` met by the distinct returned ids
    among the row's first ``k`` (``ids`` [nq, >= k], their exact ``scores``) whose exact score
    reaches the row's k-th exact score (``exact`` [nq, >= k], descending) less ``tolerance``.
    A row whose DB holds fewer than ``k`` items is scored against the items there are."""
    ids, scores = ids[:, :k], scores[:, :k]
    available = np.isfinite(exact[:, :k]).sum(axis=1)  # k, unless the DB holds fewer items
    kth = exact[np.arange(len(exact)), np.maximum(available - 1, 0)]
    good = (ids >= 0) & (scores >= kth[:, None] - tolerance)
    # an id listed twice counts once
    order = np.sort(np.where(good, ids, -1), axis=1)
    distinct = (order >= 0) & np.concatenate([np.ones((len(order), 1), bool), order[:, 1:] != order[:, :-1]], axis=1)
    return np.minimum(distinct.sum(axis=1), available) / np.maximum(available, 1)


def segment_recalls(db: np.ndarray, queries: np.ndarray, ids: np.ndarray, exact: np.ndarray,
                    ks: tuple[int, ...] = RECALL_KS) -> dict[str, np.ndarray]:
    """Recall@k of every query segment for each of ``ks`` no deeper than the answers (``ids``
    [nq, k_run]) and the exact scores (``exact`` [nq, >= max k]): ``{"recall1": [nq], ...}``."""
    scores = returned_scores(db, queries, ids)
    return {recall_column(k): recall_at(ids, scores, exact, k) for k in ks
            if k <= ids.shape[1] and k <= exact.shape[1]}


def per_query(recalls: dict[str, np.ndarray], query: np.ndarray, n_queries: int) -> pd.DataFrame:
    """Each query's recall@k, the mean over its segments (``query``: each segment's query number)."""
    counts = np.bincount(query, minlength=n_queries)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({col: np.bincount(query, weights=v, minlength=n_queries) / counts
                             for col, v in recalls.items()})
