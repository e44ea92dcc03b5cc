"""The compiled hot paths (numba) against the NumPy reference: probes, candidates, ids, latents."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods import TrainData, get_method
from methods.common import hash_kernels
from methods.common.hash_table import DENSE_MAX_BITS, HashTable, latent_probes, threshold_expansion
from methods.flow.compiled import MAX_COMPILED_ROWS, CompiledFlow
from methods.flow.inference import NumpyFlow
from methods.flow.model import make_transform


@pytest.mark.parametrize("n_bits", [6, 12, 16, 20])
@pytest.mark.parametrize("n_probes", [1, 2, 5, 13, 14, 64, 128])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_margin_probes_equal_the_reference(n_bits: int, n_probes: int, dtype: type) -> None:
    if n_probes > 2 ** n_bits:
        pytest.skip("more probes than codes")
    z = np.random.default_rng(n_bits * 1000 + n_probes).standard_normal((60, n_bits)).astype(dtype)
    np.testing.assert_array_equal(latent_probes(z, n_probes, "numba"), latent_probes(z, n_probes))


def test_compiled_margin_probes_break_cost_ties_as_the_reference() -> None:
    # few distinct |z|: many subsets cost the same; with all 2^K probes there is no cut to pick at,
    # so the order is the reference's (cost, then fewer flips, then lexicographic in rank) throughout
    rng = np.random.default_rng(3)
    z = rng.choice([-1.0, -0.5, 0.5, 1.0], size=(40, 5)).astype(np.float32)
    np.testing.assert_array_equal(latent_probes(z, 32, "numba"), latent_probes(z, 32))


@pytest.mark.parametrize("tau", [0.0, 0.3, 1.0, 5.0])
def test_compiled_threshold_expansion_equals_the_reference(tau: float) -> None:
    z = np.random.default_rng(7).standard_normal((300, 16)).astype(np.float32)
    for max_bits in (4, 8):
        rows, codes = threshold_expansion(z, tau, max_bits, "numba")
        ref_rows, ref_codes = threshold_expansion(z, tau, max_bits)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(codes, ref_codes)


def tables(n_tables: int, repeats: bool, seed: int = 0,
           n_bits: int = 9) -> tuple[HashTable, HashTable, np.ndarray, list[np.ndarray]]:
    """The same index twice (reference and compiled), with some duplicate DB rows (exact score ties).
    Codes of more than DENSE_MAX_BITS bits take the compiled gather's binary-search path."""
    rng = np.random.default_rng(seed)
    n, d = 3000, 24
    db = rng.standard_normal((n, d)).astype(np.float32)
    db[100:140] = db[0]  # identical embeddings: equal scores, resolved by the tie rules
    codes = rng.integers(0, 2 ** n_bits, (n_tables, n))
    if repeats:
        entries = [(np.concatenate([c, rng.integers(0, 2 ** n_bits, n // 3)]),
                    np.concatenate([np.arange(n), rng.integers(0, n, n // 3)])) for c in codes]
        ref, fast = HashTable.from_entries(entries, db), HashTable.from_entries(entries, db, "numba")
    else:
        ref, fast = HashTable(codes, db), HashTable(codes, db, "numba")
    q = rng.standard_normal((50, d)).astype(np.float32)
    q[:5] = db[0]
    probes = [rng.integers(0, 2 ** n_bits, (50, 17)) for _ in range(n_tables)]
    return ref, fast, q, probes


@pytest.mark.parametrize("n_tables,repeats,n_bits", [(1, False, 9), (1, True, 9), (4, False, 9), (2, False, 24)])
def test_compiled_search_gives_the_reference_candidates_and_ids(n_tables: int, repeats: bool, n_bits: int) -> None:
    ref, fast, q, probes = tables(n_tables, repeats, n_bits=n_bits)
    if n_bits == 24:  # sparse codes: probe near the DB's own codes so that buckets are hit
        probes = [np.concatenate([p[:, :5], fast.ucodes[t][:50 * 12].reshape(50, 12)], axis=1)
                  for t, p in enumerate(probes)]
    assert (fast._dense_bits > 0) == (n_bits <= DENSE_MAX_BITS)
    for k in (1, 10, 60):
        expected, got = ref.search(q, probes, k), fast.search(q, probes, k)
        np.testing.assert_array_equal(got.candidates, expected.candidates)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-5, atol=1e-5)
    assert (expected.candidates > 0).all() and (expected.ids[:5, :10] >= 0).all()


def test_compiled_gather_removes_repeats_across_tables() -> None:
    ref, fast, q, probes = tables(4, True, seed=1)
    pairs = [(np.repeat(np.arange(q.shape[0]), p.shape[1]), p.ravel()) for p in probes]
    qidx, ids = ref.gather_pairs(pairs)
    probe_ptr = np.concatenate([[0], np.cumsum([p[0].size for p in pairs])])
    qptr, got = hash_kernels.gather(q.shape[0], fast.n, fast._flat_table_ptr, fast._flat_ucodes, fast._flat_offsets,
                                    fast._flat_order, probe_ptr, np.concatenate([p[0] for p in pairs]),
                                    np.concatenate([p[1] for p in pairs]), True, fast._dense, fast._dense_bits)
    for i in range(q.shape[0]):
        mine = got[qptr[i]:qptr[i + 1]]
        assert mine.size == np.unique(mine).size
        np.testing.assert_array_equal(np.sort(mine), ids[qidx == i])


def trained_like_flow(features: int, seed: int = 0) -> NumpyFlow:
    """A flow with initialised ActNorm and perturbed weights (not the identity a fresh one starts as)."""
    torch.manual_seed(seed)
    transform = make_transform(features, 10, 64)
    transform(torch.randn(256, features))  # ActNorm's data-dependent initialisation
    with torch.no_grad():
        for p in transform.parameters():
            p += 0.05 * torch.randn_like(p)
    transform.eval()
    return NumpyFlow.from_transform(transform)


@pytest.mark.parametrize("features", [16, 5])
def test_compiled_flow_equals_the_numpy_replay(features: int) -> None:
    reference = trained_like_flow(features)
    compiled = CompiledFlow(reference)
    x = np.random.default_rng(1).standard_normal((2000, features)).astype(np.float32)
    expected = reference(x)
    got = np.concatenate([compiled(x[i:i + MAX_COMPILED_ROWS]) for i in range(0, len(x), MAX_COMPILED_ROWS)])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(compiled(x), expected)  # a big batch goes to the NumPy replay itself
    sure = np.abs(expected) > 1e-3  # a sign may only differ where float32 rounding could flip it
    np.testing.assert_array_equal((got > 0)[sure], (expected > 0)[sure])
    for rows in (1, 3):
        np.testing.assert_allclose(compiled(x[:rows]), expected[:rows], rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def pairs(make_pairs) -> TrainData:
    return make_pairs(1500, 32, 0)


@pytest.mark.parametrize("name,build,queries", [
    ("lsh", {"K": 10, "L": 2}, [{"radius": 0}, {"radius": 2}]),
    ("lsh-directed", {"K": 10, "L": 3}, [{"n_probes": 1}, {"n_probes": 20}]),
    ("itq", {"K": 10}, [{"n_probes": 1}, {"n_probes": 40}]),
    ("pca-sign", {"K": 10, "tau_db": 0.3}, [{"n_probes": 8}, {"tau": 0.5}]),
    ("flowhash", {"K": 10, "n_blocks": 2, "epochs": 2}, [{"n_probes": 16}, {"tau": 0.5}]),
    ("binary-hash", {"K": 10, "L": 2}, [{"nflip": 0}, {"nflip": 2}]),
])
def test_methods_answer_the_same_with_either_kernels(name: str, build: dict, queries: list[dict],
                                                      pairs: TrainData) -> None:
    rng = np.random.default_rng(2)
    db = pairs.anchors[:1000]
    q = db[rng.choice(1000, 80)] + 0.05 * rng.standard_normal((80, 32)).astype(np.float32)
    results = {}
    for kernels in ("numpy", "numba"):
        method = get_method(name, seed=0, kernels=kernels, **build)
        method.fit(pairs)
        method.warm_up()
        method.build(db)
        for qp in queries:
            method.set_query_params(**qp)
            results[kernels, str(qp)] = method.search(q, 10)
    for qp in queries:
        expected, got = results["numpy", str(qp)], results["numba", str(qp)]
        np.testing.assert_array_equal(got.candidates, expected.candidates)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-4, atol=1e-4)
