"""RaBitQ through faiss: a deeper exact re-rank finds more of the exact top-k, more bits estimate
better, scores are exact inner products after the re-rank, and the IVF variant scanning every
list counts the whole DB as scanned."""
from __future__ import annotations

import numpy as np
import pytest

from bench.measure.recall import exact_top_scores, recall_at, returned_scores
from methods import TrainData, get_method


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((40, 64))
    db = centres[rng.integers(0, 40, 4000)] + 0.6 * rng.standard_normal((4000, 64))
    q = centres[rng.integers(0, 40, 300)] + 0.6 * rng.standard_normal((300, 64))
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(db), unit(q)


def recall10(method, db: np.ndarray, q: np.ndarray) -> float:
    result = method.search(q, 10)
    np.testing.assert_allclose(result.scores, returned_scores(db, q, result.ids), rtol=1e-5, atol=1e-6)
    return float(recall_at(result.ids, returned_scores(db, q, result.ids), exact_top_scores(db, q, 10, 1), 10).mean())


def test_rerank_depth_and_bits_raise_recall(data: tuple[np.ndarray, np.ndarray]) -> None:
    db, q = data
    recalls = {}
    for bits in (1, 4):
        method = get_method("rabitq", nb_bits=bits)
        method.build(db)
        for k_factor in (1, 8):
            method.set_query_params(k_factor=k_factor)
            recalls[bits, k_factor] = recall10(method, db, q)
    assert recalls[1, 8] > recalls[1, 1] + 0.1
    assert recalls[4, 1] > recalls[1, 1]
    assert recalls[4, 8] > 0.98


def test_ivf_rabitq_scanning_every_list_matches_the_flat_index(data: tuple[np.ndarray, np.ndarray]) -> None:
    db, q = data
    method = get_method("ivf-rabitq", nlist=16, nb_bits=4)
    method.fit(TrainData(db[:2000], db[:2000]))
    method.build(db)
    method.set_query_params(nprobe=16, k_factor=8)
    assert recall10(method, db, q) > 0.98
    assert (method.search(q, 10).candidates == len(db)).all()
    method.set_query_params(nprobe=1)
    assert (method.search(q, 10).candidates < len(db)).all()
    assert method.stats()["trained_on"] == "train anchors"
