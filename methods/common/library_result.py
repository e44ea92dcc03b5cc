"""Turning another ANN library's answer into a ``SearchResult``: ids and inner products padded to k."""
from __future__ import annotations

import numpy as np

from methods.base import SearchResult, pad_result


def padded_result(ids: np.ndarray, scores: np.ndarray, k: int, candidates: np.ndarray) -> SearchResult:
    """A SearchResult of ``k`` columns from a library's [nq, k'] ids and inner products (k' <= k,
    any id < 0 or beyond its row's answers marked invalid), best first, ``-1`` / ``-inf`` after
    the found ids; ``candidates`` is raised to at least the ids found in each row."""
    ids = np.asarray(ids, dtype=np.int64).reshape(len(candidates), -1)
    scores = np.asarray(scores, dtype=np.float32).reshape(ids.shape)
    valid = (ids >= 0) & np.isfinite(scores)
    order = np.argsort(np.where(valid, -scores, np.inf), axis=1, kind="stable")
    ids = np.take_along_axis(np.where(valid, ids, -1), order, axis=1)
    scores = np.take_along_axis(np.where(valid, scores, -np.inf), order, axis=1)
    out_ids = np.full((len(ids), k), -1, dtype=np.int64)
    out_scores = np.full((len(ids), k), -np.inf, dtype=np.float32)
    width = min(k, ids.shape[1])
    out_ids[:, :width], out_scores[:, :width] = ids[:, :width], scores[:, :width]
    found = (out_ids >= 0).sum(axis=1)
    return pad_result(out_ids, out_scores, np.maximum(np.asarray(candidates, dtype=np.int64), found))
