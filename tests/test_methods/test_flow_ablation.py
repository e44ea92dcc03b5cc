"""What issue 33 adds to FlowHash: a flow that recovers most of the bits of a known bijection, the learned
projection's loss terms, the latent diagnostics and the cap share, the held-out pairs' use."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from scipy.stats import norm

from methods import TrainData, get_method
from methods.common.latent_diagnostics import latent_diagnostics
from methods.common.learned_projection import fold_batch_norm, info_nce, l2_hinge, make_head
from methods.flow.model import TwoModeGaussian, base_abs_cdf, base_abs_pdf


def two_mode_samples(n: int, K: int, seed: int) -> np.ndarray:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TwoModeGaussian(K).sample(n).numpy().astype(np.float64)


def matched_agreement(bits: np.ndarray, truth: np.ndarray) -> float:
    """Mean agreement of each true bit with the learned bit that best matches it (up to sign)."""
    agree = np.array([[np.mean(bits[:, j] == truth[:, i]) for j in range(bits.shape[1])]
                      for i in range(truth.shape[1])])
    return float(np.mean(np.maximum(agree, 1 - agree).max(axis=1)))


def test_a_trained_flow_recovers_most_of_the_bits_behind_a_known_bijection() -> None:
    # z from the two-mode base; x = exp(z / 2) per dimension, scaled differently: a monotone
    # bijection whose sign threshold is not where PCA centring puts it
    K, n = 4, 8000
    scales = np.linspace(1.0, 2.0, K)

    def bijection(z: np.ndarray) -> np.ndarray:
        return (np.exp(z / 2) * scales).astype(np.float32)

    z = two_mode_samples(n, K, seed=0)
    positives = bijection(z + 0.05 * np.random.default_rng(1).standard_normal(z.shape))
    train = TrainData(bijection(z), positives)
    flow = get_method("flowhash", K=K, n_blocks=8, seed=0)  # trained until the held-out loss stops improving
    flow.fit(train)
    held = two_mode_samples(4000, K, seed=2)
    recovered = matched_agreement(flow.latent(bijection(held)) > 0, held > 0)
    # The bound holds the flow's spread over seeds, not one draw (an early-stopped fit is another draw on another
    # CPU kind). Seeds 0-9 on an AMD EPYC recovered 0.857-0.980: 0.955-0.980 for five, 0.857 and 0.862 for two
    # whose latent mixes two true bits; trained with patience 40, one of them reaches a lower held-out loss than
    # seed 0's and still recovers 0.863, so the likelihood does not single out the true bits here. PCA-sign
    # (thresholds at the mean) recovers 0.9025, between the two groups: the flow is not reliably better than it
    # on this toy, and the test no longer claims so. Unrelated bits agree 0.50-0.52.
    assert recovered >= 0.80, recovered
    assert flow.training["stopped"] == "early stopping"


def test_the_learned_heads_loss_terms_match_a_hand_computed_case() -> None:
    ha = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    hp = torch.tensor([[0.0, 1.0], [3.0, 0.0], [0.0, 1.0]])
    # row 0: ||a0 - p0|| = 1; to anchors (0, 5, 1) and to positives (1, 3, 1): 0.5 * mean(1, 8, 2) = 11/6
    # row 1: ||a1 - p1|| = 4; to anchors (5, 0, sqrt 18), to positives (sqrt 18, 4, sqrt 18)
    # row 2: ||a2 - p2|| = 0 -> hinge 0
    r1_neg = 0.5 * (5 + 0 + math.sqrt(18) + math.sqrt(18) + 4 + math.sqrt(18)) / 3
    expected = (max(0.0, 1 - 11 / 6) + max(0.0, 4 - r1_neg) + 0.0) / 3
    assert float(l2_hinge(ha, hp)) == pytest.approx(expected, abs=1e-6)

    a = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    p = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), dim=1)
    s = (a @ p.T / 0.1).numpy()
    by_hand = -np.mean([s[i, i] - np.log(np.exp(s[i]).sum()) for i in range(2)])
    assert float(info_nce(a, p)) == pytest.approx(by_hand, rel=1e-5)


def test_the_heads_numpy_replay_folds_batch_norm_exactly() -> None:
    torch.manual_seed(0)
    head = make_head(16, 4)
    head.train()
    head(torch.randn(256, 16) * 2 + 1)  # moves the running statistics off their defaults
    head.eval()
    x = torch.randn(50, 16)
    w1, b1, w2, b2 = fold_batch_norm(head)
    replay = np.maximum(x.numpy() @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(replay, head(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_flowhash_with_the_learned_projection_stops_on_the_given_held_out_pairs() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 32)).astype(np.float32)
    held = rng.standard_normal((300, 32)).astype(np.float32)
    train = TrainData(x, x + 0.05, held, held + 0.05)
    m = get_method("flowhash", K=8, n_blocks=2, projection="learned", patience=2, epochs=20, seed=0)
    m.fit(train)
    m.build(x[:500])
    stats = m.stats()
    assert stats["training"]["validation_pairs"] == 300 and stats["training"]["held_out_tracks"]
    assert stats["projection"]["kind"] == "learned" and stats["projection"]["training"]["held_out_pairs"] == 300
    assert len(stats["training_curve"]) == stats["training"]["epochs"]
    assert all("val_loss" in e for e in stats["training_curve"])
    # pca-sign shares the fitted head: the same projection, bit for bit
    plain = get_method("pca-sign", K=8, projection="learned", seed=0)
    plain.fit(train)
    np.testing.assert_array_equal(plain.projection(x[:10]), m.projection(x[:10]))


def test_latent_diagnostics_are_right_on_latents_of_known_shape() -> None:
    K, taus = 8, (0.25, 0.5, 1.0)
    cdf, pdf = partial(base_abs_cdf, "gmm"), partial(base_abs_pdf, "gmm")
    z = two_mode_samples(60000, K, seed=3).astype(np.float32)
    d = latent_diagnostics(z, taus, 8, cdf, pdf)
    assert np.allclose(d["ones_share"], 0.5, atol=0.01)
    for tau in taus:
        u = d["uncertain"][f"{tau:g}"]
        assert u["base_mean_bits"] == pytest.approx(K * float(cdf(tau)))
        assert u["mean_bits"] == pytest.approx(u["base_mean_bits"], rel=0.05)
    assert d["uncertain"]["1"]["base_mean_bits"] / K == pytest.approx(0.157, abs=0.001)
    edges = np.asarray(d["abs_z"]["edges"])
    mass_gap = np.sum(np.abs(np.asarray(d["abs_z"]["density"]) - d["abs_z"]["base_density"]) * np.diff(edges))
    assert mass_gap < 0.05
    assert d["expected_over_random"] == pytest.approx(1.0, abs=0.05)
    # a latent shifted off zero: its bits lean to one side, and the shift is seen
    shifted = latent_diagnostics(z + 1.0, taus, 8, cdf, pdf)
    lean = 0.5 * (norm.cdf(3.0) + norm.cdf(-1.0))  # P(z + 1 > 0) under the base
    assert np.allclose(shifted["ones_share"], lean, atol=0.01)
    assert shifted["expected_over_random"] > d["expected_over_random"] + 0.1
    # a latent squeezed toward 0 has more uncertain bits than the base predicts
    squeezed = latent_diagnostics(0.3 * z, taus, 8, cdf, pdf)
    assert squeezed["uncertain"]["1"]["mean_bits"] > 2 * squeezed["uncertain"]["1"]["base_mean_bits"]


def test_the_cap_share_counts_the_rows_with_more_uncertain_bits_than_the_cap() -> None:
    K, cap = 12, 8
    rows = []
    for small in (0, 7, 8, 9, 12):  # rows with that many |z| <= 0.5
        row = np.full(K, 3.0, dtype=np.float32)
        row[:small] = 0.2
        rows.append(row)
    z = np.array(rows)
    d = latent_diagnostics(z, (0.5, 0.1), cap, partial(base_abs_cdf, "gmm"), partial(base_abs_pdf, "gmm"))
    assert d["uncertain"]["0.5"]["capped_share"] == pytest.approx(2 / 5)  # 9 and 12 exceed 8
    assert d["uncertain"]["0.5"]["mean_bits"] == pytest.approx((0 + 7 + 8 + 9 + 12) / 5)
    assert d["uncertain"]["0.1"]["capped_share"] == 0.0
