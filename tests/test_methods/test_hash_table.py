"""The shared hash table: probe sequences, candidate gathering, re-ranking, bucket balance."""
from __future__ import annotations

import math

import numpy as np
import pytest

from methods.common.balance import bucket_balance
from methods.common.hash_table import HashTable, hamming_ball_size, pack_bits, probe_codes


def popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each int64 (codes here have at most 30 bits)."""
    x = np.asarray(x, dtype=np.int64)
    return sum((x >> b) & 1 for b in range(31))


def identity_order(nq: int, n_bits: int) -> np.ndarray:
    return np.broadcast_to(np.arange(n_bits), (nq, n_bits))


@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_radius_probes_are_the_hamming_ball_in_distance_order(radius: int) -> None:
    n_bits = 10
    rng = np.random.default_rng(radius)
    queries = rng.integers(0, 2 ** n_bits, 20)
    n_probes = hamming_ball_size(n_bits, radius)
    assert n_probes == sum(math.comb(n_bits, i) for i in range(radius + 1))
    probes = probe_codes(queries, identity_order(20, n_bits), n_probes)
    assert probes.shape == (20, n_probes) and probes.dtype == np.int64
    all_codes = np.arange(2 ** n_bits)
    for q, row in zip(queries, probes):
        dist = popcount(row ^ q)
        assert row[0] == q
        assert np.all(np.diff(dist) >= 0), "probes must come in non-decreasing Hamming distance"
        expected = all_codes[popcount(all_codes ^ q) <= radius]
        assert np.array_equal(np.sort(row), expected)


def test_radius_probes_with_30_bits_stay_in_range() -> None:
    queries = np.array([0, 2 ** 30 - 1], dtype=np.int64)
    probes = probe_codes(queries, identity_order(2, 30), hamming_ball_size(30, 2))
    assert probes.shape == (2, 1 + 30 + 435)
    assert probes.min() >= 0 and probes.max() < 2 ** 30
    assert all(len(set(row)) == row.size for row in probes)


@pytest.mark.parametrize("n_tables", [1, 3])
@pytest.mark.parametrize("radius", [0, 1, 2])
def test_candidates_match_brute_force(n_tables: int, radius: int) -> None:
    n_bits, n, nq, d = 8, 3000, 40, 16
    rng = np.random.default_rng(10 * n_tables + radius)
    db_codes = rng.integers(0, 2 ** n_bits, (n_tables, n))
    q_codes = rng.integers(0, 2 ** n_bits, (n_tables, nq))
    db = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    table = HashTable(db_codes, db)
    n_probes = hamming_ball_size(n_bits, radius)
    probes = [probe_codes(q_codes[t], identity_order(nq, n_bits), n_probes) for t in range(n_tables)]
    qidx, ids = table.gather(probes)
    result = table.search(q, probes, k=n)
    for i in range(nq):
        within = np.zeros(n, dtype=bool)
        for t in range(n_tables):
            within |= popcount(db_codes[t] ^ q_codes[t, i]) <= radius
        expected = np.flatnonzero(within)
        assert np.array_equal(np.sort(ids[qidx == i]), expected)
        assert result.candidates[i] == expected.size
        # re-ranking: exactly the candidates, by inner product, descending, then padding
        valid = result.ids[i][result.ids[i] >= 0]
        assert np.array_equal(np.sort(valid), expected)
        np.testing.assert_allclose(result.scores[i, :valid.size], db[valid] @ q[i], rtol=1e-5, atol=1e-6)
        assert np.all(np.diff(result.scores[i, :valid.size]) <= 0)
        assert np.all(result.ids[i, valid.size:] == -1) and np.all(np.isneginf(result.scores[i, valid.size:]))


def test_search_keeps_the_top_k() -> None:
    rng = np.random.default_rng(3)
    n, d, k = 500, 8, 5
    db = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((4, d)).astype(np.float32)
    table = HashTable(np.zeros(n, dtype=np.int64), db)  # one bucket: every item is a candidate
    result = table.search(q, np.zeros((4, 1), dtype=np.int64), k)
    expected = np.argsort(-(q @ db.T), axis=1)[:, :k]
    assert np.array_equal(result.ids, expected)
    assert np.array_equal(result.candidates, np.full(4, n))


def test_missing_buckets_give_padding_and_zero_candidates() -> None:
    db = np.eye(4, dtype=np.float32)
    table = HashTable(np.array([1, 1, 2, 7]), db)
    result = table.search(db[:2], np.array([[3], [1]]), k=3)
    assert result.candidates.tolist() == [0, 2]
    assert result.ids[0].tolist() == [-1, -1, -1]
    assert result.ids[1].tolist() == [1, 0, -1]  # query e1 scores item 1 above item 0
    assert table.bucket_counts().tolist() == [2, 1, 1]


def test_uncertainty_order_flips_least_certain_bits_first() -> None:
    n_bits = 6
    rng = np.random.default_rng(7)
    z = rng.standard_normal((50, n_bits))
    codes = pack_bits(z > 0)
    flip_order = np.argsort(np.abs(z), axis=1, kind="stable")
    costs = np.take_along_axis(np.abs(z), flip_order, axis=1)
    probes = probe_codes(codes, flip_order, 2 ** n_bits, costs)
    assert np.array_equal(probes[:, 0], codes), "probe 0 is the own bucket"
    assert np.array_equal(probes[:, 1], codes ^ (1 << np.abs(z).argmin(axis=1))), \
        "probe 1 flips the smallest-|z| bit"
    for i in range(z.shape[0]):
        assert sorted(probes[i]) == list(range(2 ** n_bits)), "all 2^K codes, each once"
        flipped = ((probes[i][:, None] ^ codes[i]) >> np.arange(n_bits)) & 1
        cost = flipped @ np.abs(z[i])
        assert np.all(np.diff(cost) >= -1e-12), "probes ordered by summed |z| of the flipped bits"


def test_uncertainty_order_with_many_bits_is_ordered_and_distinct() -> None:
    rng = np.random.default_rng(8)
    z = rng.standard_normal((30, 20))
    codes = pack_bits(z > 0)
    flip_order = np.argsort(np.abs(z), axis=1, kind="stable")
    costs = np.take_along_axis(np.abs(z), flip_order, axis=1)
    for n_probes in (1, 2, 5, 13, 128):
        probes = probe_codes(codes, flip_order, n_probes, costs)
        assert probes.shape == (30, n_probes)
        for i in range(30):
            assert len(set(probes[i])) == n_probes
            flipped = ((probes[i][:, None] ^ codes[i]) >> np.arange(20)) & 1
            assert np.all(np.diff(flipped @ np.abs(z[i])) >= -1e-12)


def test_probe_codes_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_probes=0"):
        probe_codes(np.zeros(1), identity_order(1, 4), 0)
    with pytest.raises(ValueError, match="n_probes=17"):
        probe_codes(np.zeros(1), identity_order(1, 4), 17)
    with pytest.raises(ValueError, match="K=31"):
        probe_codes(np.zeros(1), identity_order(1, 31), 1)


def test_pack_bits() -> None:
    bits = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=bool)
    assert pack_bits(bits).tolist() == [5, 0, 7]
    assert pack_bits(np.ones((1, 30), dtype=bool))[0] == 2 ** 30 - 1


def test_bucket_balance_extremes() -> None:
    uniform = bucket_balance(np.full(16, 10), 16)
    assert uniform["normalised_entropy"] == pytest.approx(1.0)
    assert uniform["expected_bucket_size"] == pytest.approx(10.0)
    assert uniform["expected_vs_floor"] == pytest.approx(1.0) and uniform["expected_vs_mean_load"] == pytest.approx(1.0)
    assert uniform["random_bucket_size"] == pytest.approx(1 + 159 / 16)
    assert uniform["cv"] == pytest.approx(0.0)
    assert uniform["nonempty_fraction"] == 1.0 and uniform["max_mean_ratio"] == pytest.approx(1.0)
    single = bucket_balance(np.array([160]), 16)  # empty buckets need not be listed
    assert single["normalised_entropy"] == pytest.approx(0.0)
    assert single["expected_bucket_size"] == pytest.approx(160.0)
    assert single["nonempty_fraction"] == pytest.approx(1 / 16)
    assert single["max_mean_ratio"] == pytest.approx(16.0)
    assert single["cv"] == pytest.approx(math.sqrt(15))
    with pytest.raises(ValueError, match="n_buckets_total"):
        bucket_balance(np.ones(5), 4)


@pytest.mark.parametrize("n, K", [(14_331, 16), (3_283, 12), (50_000, 10), (300, 14)])
def test_a_random_hash_scores_its_reference_not_the_mean_load(n: int, K: int) -> None:
    codes = np.random.default_rng(n).integers(0, 2 ** K, size=n)
    b = bucket_balance(np.unique(codes, return_counts=True)[1], 2 ** K)
    assert b["random_bucket_size"] == pytest.approx(1 + (n - 1) / 2 ** K)
    assert b["expected_vs_random"] == pytest.approx(1.0, rel=0.04)  # within a few percent of 1 + (N-1)/2^K
    if n < 2 ** K:  # the old "expected/uniform" is far from 1 for a perfect random hash
        assert b["expected_vs_mean_load"] > 1 + 0.9 * 2 ** K / n


@pytest.mark.parametrize("n, buckets", [(10, 16), (16, 16), (17, 16), (1000, 64)])
def test_the_perfect_balance_floor_is_floor_or_ceil_per_bucket(n: int, buckets: int) -> None:
    q, r = divmod(n, buckets)
    counts = np.array([q + 1] * r + [q] * (buckets - r))
    b = bucket_balance(counts[counts > 0], buckets)
    assert b["expected_vs_floor"] == pytest.approx(1.0)
    assert b["floor_bucket_size"] == pytest.approx(max(1.0, n / buckets), rel=0.1)


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_hamming_ball_probes_are_probe_codes_in_identity_order(radius: int) -> None:
    from methods.common.hash_table import hamming_ball_probes

    codes = np.random.default_rng(radius).integers(0, 2 ** 12, 30)
    n_probes = hamming_ball_size(12, radius)
    np.testing.assert_array_equal(hamming_ball_probes(codes, 12, n_probes),
                                  probe_codes(codes, identity_order(30, 12), n_probes))
