"""The paper's threshold probing and DB multi-insertion, query-directed LSH, and the PCA-sign ablation."""
from __future__ import annotations

from itertools import product

import numpy as np
import pytest
import torch

from methods import TrainData, get_method
from methods.common.hash_table import HashTable, pack_bits, threshold_expansion
from methods.flow.model import paper_agreement_loss


def brute_force_codes(z_row: np.ndarray, tau: float) -> set[int]:
    """Every code reachable by setting each bit with |z| <= tau either way (the definition)."""
    base = z_row > 0
    uncertain = np.flatnonzero(np.abs(z_row) <= tau)
    codes = set()
    for values in product([False, True], repeat=len(uncertain)):
        bits = base.copy()
        bits[uncertain] = values
        codes.add(int(pack_bits(bits[None])[0]))
    return codes


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.8, 2.0])
def test_threshold_probing_enumerates_exactly_the_codes_of_the_uncertain_bits(tau: float) -> None:
    z = np.random.default_rng(1).standard_normal((60, 8))
    rows, codes = threshold_expansion(z, tau)
    assert np.all(np.diff(rows) >= 0)  # grouped by row
    for i in range(len(z)):
        mine = codes[rows == i]
        assert mine[0] == pack_bits(z[i:i + 1] > 0)[0]  # own code first
        assert len(mine) == len(set(mine.tolist())) == 2 ** int((np.abs(z[i]) <= tau).sum())
        assert set(mine.tolist()) == brute_force_codes(z[i], tau)


def test_threshold_expansion_caps_the_uncertain_bits_at_the_most_uncertain() -> None:
    z = np.array([[0.01, -0.02, 0.03, -0.04, 5.0]])
    rows, codes = threshold_expansion(z, 1.0, max_bits=2)
    assert len(codes) == 4
    assert set(codes.tolist()) == brute_force_codes(np.array([0.01, -0.02, 9.0, -9.0, 5.0]), 1.0)


def test_db_multi_insertion_places_each_item_in_exactly_its_buckets_and_is_counted_once() -> None:
    rng = np.random.default_rng(2)
    z = rng.standard_normal((200, 6))
    db = rng.standard_normal((200, 4)).astype(np.float32)
    ids, codes = threshold_expansion(z, 0.5)
    table = HashTable.from_entries([(codes, ids)], db)
    for item in range(len(z)):
        buckets = {int(table.ucodes[0][b]) for b in range(len(table.ucodes[0]))
                   if item in table.order[0][table.offsets[0][b]:table.offsets[0][b + 1]]}
        assert buckets == brute_force_codes(z[item], 0.5)
    # probing every bucket finds each item once: repeats across buckets are not double-counted
    all_codes = np.unique(codes)
    qidx, found = table.gather(all_codes[None, :])
    assert sorted(found.tolist()) == list(range(len(z)))
    res = table.search(db[:3], [np.repeat(all_codes[None, :], 3, axis=0)], 5)
    assert (res.candidates == len(z)).all()


def test_directed_lsh_probes_come_out_in_non_decreasing_margin_cost() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 16)).astype(np.float32) + 0.3
    lsh = get_method("lsh-directed", K=10, L=2, seed=5)
    lsh.fit(TrainData(x[:300], x[:300]))
    lsh.build(x)
    q = x[300:340]
    margins = lsh.margins(q)
    from methods.common.hash_table import latent_probes

    for t in range(2):
        m = margins[:, t * 10:(t + 1) * 10]
        probes = latent_probes(m, 64)
        own = pack_bits(m > 0)
        flipped = ((probes ^ own[:, None])[..., None] >> np.arange(10)) & 1  # [nq, 64, K]: which bits differ
        cost = (flipped * np.abs(m)[:, None, :]).sum(axis=2)
        assert np.all(np.diff(cost, axis=1) >= -1e-6)
        assert (probes[:, 0] == own).all()
    np.testing.assert_allclose(lsh.center, x[:300].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(lsh.planes, axis=0), 1.0, rtol=1e-5)


def test_centred_hyperplanes_split_off_centre_data_more_evenly() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4000, 32)).astype(np.float32) + 1.0  # far from the origin
    expected = {}
    for center in (False, True):
        lsh = get_method("lsh-directed", K=12, center=center)
        lsh.fit(TrainData(x[:2000], x[:2000]))
        lsh.build(x)
        counts = lsh.stats()["bucket_counts"]
        expected[center] = float((counts ** 2).sum() / counts.sum())
    assert expected[True] < 0.5 * expected[False]


@pytest.fixture(scope="module")
def pairs(make_pairs) -> TrainData:
    return make_pairs(1500, 24, 6)


def test_the_zero_coupling_ablation_is_pca_sign(pairs: TrainData) -> None:
    x = pairs.anchors
    zero = get_method("flowhash", K=8, n_blocks=0)
    sign = get_method("pca-sign", K=8)
    for m in (zero, sign):
        m.fit(pairs)
        m.build(x)
    np.testing.assert_array_equal(zero.latent(x), sign.latent(x))
    np.testing.assert_array_equal(zero.codes, sign.codes)
    # and both are the signs of an independently computed centred PCA, up to each axis's sign
    centred = x.astype(np.float64) - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    independent = centred @ vt[:8].T > 0
    bits = sign.latent(x) > 0
    for j in range(8):
        agree = (bits[:, j] == independent[:, j]).mean()
        assert agree > 0.999 or agree < 0.001, j


def test_paper_configuration_trains_with_early_stopping_and_multi_inserts(pairs: TrainData) -> None:
    params = dict(K=8, base="gmm", objective="paper", patience=2, epochs=60, max_steps=300, batch_size=256)
    plain = get_method("flowhash", **params)
    plain.fit(pairs)
    plain.build(pairs.anchors)
    training = plain.stats()["training"]
    assert training["stopped"] in ("early stopping", "max_steps", "epochs") and 0 < training["steps"] <= 300
    assert training["best_epoch"] >= 1 and training["validation_pairs"] == 150
    multi = get_method("flowhash", tau_db=1.0, **params)
    multi.fit(pairs)  # the same inputs and training parameters: the fitted flow is reused, not retrained
    assert multi.transform is plain.transform
    multi.build(pairs.anchors)
    assert multi.stats()["entries_per_item"] > 1.0 and multi.stats()["index_bytes"] > plain.stats()["index_bytes"]
    np.testing.assert_array_equal(multi.stats()["bucket_counts"], plain.stats()["bucket_counts"])
    multi.set_query_params(tau=0.5)
    res = multi.search(pairs.positives[:50], 5)
    assert (res.ids[:, 0] >= 0).all()
    multi.set_query_params(n_probes=4)  # switching probing resets the other knob
    assert multi.query_params == {"n_probes": 4, "tau": 0.0}
    with pytest.raises(ValueError, match="exclude each other"):
        multi.set_query_params(n_probes=4, tau=0.5)
    with pytest.raises(ValueError, match="objective='paper' needs base='gmm'"):
        get_method("flowhash", objective="paper", base="normal")


def test_paper_agreement_term_rewards_pairs_under_the_same_mode() -> None:
    same = paper_agreement_loss(torch.tensor([[2.0, -2.0]]), torch.tensor([[1.9, -2.1]]))
    opposite = paper_agreement_loss(torch.tensor([[2.0, -2.0]]), torch.tensor([[-1.9, 2.1]]))
    assert same < opposite


def test_the_paper_objective_keeps_every_bit_balanced(pairs: TrainData) -> None:
    """The authors' NLL is the whole latent's; scaled per dimension, their agreement term weighed
    K times more and drove bits to one side (H/K 0.3 on real data): every bit must stay split."""
    m = get_method("flowhash", K=16, base="gmm", objective="paper", patience=3, epochs=60, max_steps=400,
                   batch_size=256)
    m.fit(pairs)
    ones = (m.latent(pairs.anchors) > 0).mean(axis=0)
    assert ones.min() > 0.25 and ones.max() < 0.75, ones
