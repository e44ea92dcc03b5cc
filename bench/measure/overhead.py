"""The harness's own cost per timed query: the timing loop plus ``Method.search``'s checks,
measured on a method whose search does no work."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from methods.base import Method, SearchResult

from .timing import time_queries


class NoWork(Method):
    """A method whose search returns a ready empty answer (never registered: not a benchmark method)."""

    name = "no-work"

    def _build(self, db: np.ndarray) -> None:
        self._answers: dict[tuple[int, int], SearchResult] = {}

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        key = (q.shape[0], k)
        if key not in self._answers:
            self._answers[key] = SearchResult(ids=np.full(key, -1, dtype=np.int64),
                                              scores=np.full(key, -np.inf, dtype=np.float32),
                                              candidates=np.zeros(key[0], dtype=np.int64))
        return self._answers[key]

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": 0}


def harness_overhead(queries: np.ndarray, rows: Sequence[np.ndarray], k: int, warmup: int,
                     repeats: int) -> dict[str, float]:
    """Mean seconds per call of a search that does no work, over every repeat of the run's timed
    queries (``call_s``), and the part of it ``Method.search`` spends in its checks (``checks_s``),
    a mean over the same calls: the checks run inside each timed call, so ``checks_s <= call_s``
    always (a per-query median of the calls would not bound a mean of the checks, which one slow
    call pulls up)."""
    method = NoWork()
    method.build(queries[:1])
    timing = time_queries(method, queries, rows, k, warmup, repeats)
    return {"call_s": timing.call_seconds, "checks_s": timing.stage_seconds.get("checks", 0.0)}
