"""Recall against exact search (bench/measure/recall.py): exact search scores 1, ties count as
found, a wrong or repeated answer does not (a run's recall columns: tests/test_bench/test_end_to_end.py)."""
from __future__ import annotations

import numpy as np
import pytest

from bench.measure.recall import exact_top_scores, per_query, recall_at, returned_scores, segment_recalls
from methods import get_method


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exhaustive_search_has_recall_one() -> None:
    rng = np.random.default_rng(0)
    db, q = unit(rng.standard_normal((3000, 32))), unit(rng.standard_normal((200, 32)))
    method = get_method("exhaustive")
    method.build(db)
    result = method.search(q, 10)
    recalls = segment_recalls(db, q, result.ids, exact_top_scores(db, q, 10, threads=1))
    assert set(recalls) == {"recall1", "recall10"}
    np.testing.assert_array_equal(recalls["recall1"], 1.0)
    np.testing.assert_array_equal(recalls["recall10"], 1.0)


def test_recall_by_hand_with_ties() -> None:
    # DB: e0 twice (rows 0 and 1: a tie), then e1, e2, e3; the query is e0 + a little e1
    e = np.eye(4, dtype=np.float32)
    db = np.stack([e[0], e[0], e[1], e[2], e[3]])
    q = unit(np.array([[1.0, 0.2, 0.1, 0.0]], np.float32))
    exact = exact_top_scores(db, q, 2, threads=1)  # the two copies of e0
    np.testing.assert_allclose(exact[0], [q[0, 0], q[0, 0]], rtol=1e-6)

    def recall(ids: list[int], k: int) -> float:
        ids_a = np.array([ids], np.int64)
        return float(recall_at(ids_a, returned_scores(db, q, ids_a), exact, k)[0])

    assert recall([1, 0], 2) == 1.0      # either order of the tied copies
    assert recall([1, 2], 1) == 1.0      # the other copy of a tie is as good a first neighbour
    assert recall([2, 1], 1) == 0.0      # e1 first: a wrong first neighbour
    assert recall([0, 2], 2) == 0.5      # e1 is not tied with the second copy of e0
    assert recall([0, 0], 2) == 0.5      # an id listed twice counts once
    assert recall([-1, 1], 2) == 0.5     # padding is never a neighbour
    # a tie at the k-th place: with e1 = e2 in score, either fills the third place
    q2 = unit(np.array([[1.0, 0.3, 0.3, 0.0]], np.float32))
    exact3 = exact_top_scores(db, q2, 3, threads=1)
    for third in (2, 3):
        ids = np.array([[0, 1, third]], np.int64)
        assert recall_at(ids, returned_scores(db, q2, ids), exact3, 3)[0] == 1.0
    ids = np.array([[0, 1, 4]], np.int64)
    assert recall_at(ids, returned_scores(db, q2, ids), exact3, 3)[0] == pytest.approx(2 / 3)


def test_per_query_recall_averages_its_segments() -> None:
    recalls = {"recall10": np.array([1.0, 0.5, 0.0, 0.2])}
    out = per_query(recalls, np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(out["recall10"], [0.75, 0.1])
