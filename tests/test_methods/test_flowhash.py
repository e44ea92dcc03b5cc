"""FlowHash learns balanced, noise-robust bits where random hyperplanes do not.

Synthetic embeddings: 50 clusters in an anisotropic space (variance decaying across
dimensions) around a common offset, so that sign-of-random-hyperplane bits are unbalanced;
positives are the anchors plus small noise. FlowHash is fitted on train pairs and judged on
held-out pairs drawn from the same distribution.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from methods import TrainData, get_method
from methods.common.balance import bucket_balance
from methods.flow.model import TwoModeGaussian
from methods.flowhash import FlowHash
from methods.lsh import LSH

D, K, N_TRAIN, N_HELD_OUT = 128, 8, 10000, 5000


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def embeddings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` anchor/positive pairs; the mixture itself is fixed, ``seed`` draws the samples."""
    space = np.random.default_rng(123)
    scales = np.exp(-np.arange(D) / 24.0)
    offset = space.standard_normal(D)
    offset *= np.sqrt((scales ** 2).sum()) / np.linalg.norm(offset)
    centres = space.standard_normal((50, D)) * scales
    rng = np.random.default_rng(seed)
    x = offset + centres[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, D)) * scales
    anchors = normalise(x)
    positives = normalise(anchors + 0.15 * rng.standard_normal((n, D)) / np.sqrt(D))
    return anchors, positives


@pytest.fixture(scope="module")
def train() -> TrainData:
    return TrainData(*embeddings(N_TRAIN, seed=1))


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    return embeddings(N_HELD_OUT, seed=2)


@pytest.fixture(scope="module")
def flowhash(train: TrainData, held_out: tuple[np.ndarray, np.ndarray]) -> FlowHash:
    method = get_method("flowhash", K=K, seed=0)
    method.fit(train)
    method.build(held_out[0])
    return method


@pytest.fixture(scope="module")
def lsh(held_out: tuple[np.ndarray, np.ndarray]) -> LSH:
    method = get_method("lsh", K=K, seed=0)
    method.build(held_out[0])
    return method


def lsh_bits(method: LSH, x: np.ndarray) -> np.ndarray:
    return ((method.hash(x)[0][:, None] >> np.arange(K)) & 1).astype(bool)


def expected_bucket_size(method: FlowHash | LSH) -> float:
    stats = method.stats()
    return bucket_balance(stats["bucket_counts"], stats["n_buckets_total"])["expected_bucket_size"]


# The bounds below hold the flow's spread over seeds, not one draw: a flow stops early at an epoch that float
# rounding moves, so the same seed on another CPU is another draw (seed 0 passed a 1.5x bound on an AMD EPYC
# and gave 1.52x on an Intel Xeon; docs/distributed.md). Seeds 0-5 on the Xeon: expected bucket size 1.52x-1.76x
# the uniform N / 2^K, each bit's positive share 0.418-0.582; on the EPYC: 1.50x-1.75x, shares 0.428-0.575. LSH's
# seeds 0-2 on this data: 3.6x-7.3x, shares 0.08-0.78.
MOST_BUCKET_OVER_UNIFORM = 2.0
SHARE_BOUNDS = (0.35, 0.65)


def test_buckets_near_uniform_and_better_than_lsh(flowhash: FlowHash, lsh: LSH) -> None:
    uniform = N_HELD_OUT / 2 ** K
    flow_size, lsh_size = expected_bucket_size(flowhash), expected_bucket_size(lsh)
    assert flow_size <= MOST_BUCKET_OVER_UNIFORM * uniform, \
        f"flowhash {flow_size:.1f} vs uniform {uniform:.1f} (lsh {lsh_size:.1f})"
    assert flow_size < lsh_size, f"flowhash {flow_size:.1f} vs lsh {lsh_size:.1f}"


def test_each_latent_sign_is_balanced(flowhash: FlowHash, lsh: LSH, held_out: tuple[np.ndarray, np.ndarray]) -> None:
    positive_share = (flowhash.latent(held_out[0]) > 0).mean(axis=0)
    assert positive_share.shape == (K,)
    low, high = SHARE_BOUNDS
    assert np.all((positive_share >= low) & (positive_share <= high)), positive_share
    lsh_share = lsh_bits(lsh, held_out[0]).mean(axis=0)
    assert np.abs(positive_share - 0.5).mean() < np.abs(lsh_share - 0.5).mean(), (positive_share, lsh_share)


def test_pair_bits_agree_more_than_lsh(flowhash: FlowHash, lsh: LSH,
                                       held_out: tuple[np.ndarray, np.ndarray]) -> None:
    anchors, positives = held_out
    flow_agree = np.mean((flowhash.latent(anchors) > 0) == (flowhash.latent(positives) > 0))
    lsh_agree = np.mean(lsh_bits(lsh, anchors) == lsh_bits(lsh, positives))
    assert flow_agree > lsh_agree, f"flowhash {flow_agree:.4f} vs lsh {lsh_agree:.4f}"


def test_fit_is_deterministic_for_a_seed(flowhash: FlowHash, train: TrainData,
                                         held_out: tuple[np.ndarray, np.ndarray]) -> None:
    again = get_method("flowhash", K=K, seed=0)
    again.fit(train)
    assert np.array_equal(again.latent(held_out[0]), flowhash.latent(held_out[0]))
    assert again.history == flowhash.history


def test_other_seed_gives_another_flow(train: TrainData) -> None:
    small = TrainData(train.anchors[:2000], train.positives[:2000])
    latents = []
    for seed in (0, 1):
        method = get_method("flowhash", K=K, seed=seed, epochs=1)
        method.fit(small)
        latents.append(method.latent(small.anchors[:100]))
    assert not np.array_equal(*latents)


def test_training_logs_loss_and_balance_each_epoch(train: TrainData, caplog: pytest.LogCaptureFixture) -> None:
    small = TrainData(train.anchors[:2000], train.positives[:2000])
    method = get_method("flowhash", K=K, epochs=3, batch_size=500)
    with caplog.at_level(logging.INFO, logger="methods.flowhash"):
        method.fit(small)
    lines = [r.getMessage() for r in caplog.records if r.name == "methods.flowhash"]
    assert len(lines) == 3 and all("loss" in line and "bucket size" in line for line in lines)
    assert [h["epoch"] for h in method.history] == [1, 2, 3]
    assert method.history[-1]["step"] == 12
    for key in ("loss", "nll", "agreement", "expected_bucket_size", "normalised_entropy"):
        assert math.isfinite(method.history[-1][key])


def test_max_steps_bounds_training(train: TrainData) -> None:
    method = get_method("flowhash", K=K, epochs=50, max_steps=7, batch_size=1000)
    method.fit(TrainData(train.anchors[:3000], train.positives[:3000]))
    assert method.history[-1]["step"] == 7 and len(method.history) == 3


def test_numpy_hasher_matches_the_nflows_flow(flowhash: FlowHash,
                                              held_out: tuple[np.ndarray, np.ndarray]) -> None:
    x = held_out[0][:2000]
    with torch.inference_mode():
        reference = flowhash.flow.transform_to_noise(torch.from_numpy(flowhash.projection(x))).numpy()
    np.testing.assert_allclose(flowhash.latent(x), reference, atol=1e-4)


def test_gmm_base_trains_and_hashes(train: TrainData) -> None:
    small = TrainData(train.anchors[:2000], train.positives[:2000])
    method = get_method("flowhash", K=K, base="gmm", epochs=2)
    method.fit(small)
    method.build(small.anchors)
    z = method.latent(small.anchors)
    assert np.all(np.isfinite(z)) and 0.0 < (z > 0).mean() < 1.0
    method.set_query_params(n_probes=4)
    assert np.all(method.search(small.anchors[:10], 1).ids[:, 0] == np.arange(10))


def test_two_mode_gaussian_density_and_samples() -> None:
    base = TwoModeGaussian(3)
    x = torch.tensor([[0.0, 2.0, -2.0], [1.0, -3.0, 5.0]])

    def pdf(v: float, m: float) -> float:
        return math.exp(-0.5 * (v - m) ** 2) / math.sqrt(2 * math.pi)

    def mixture(v: float) -> float:
        return math.log(0.5 * pdf(v, -2.0) + 0.5 * pdf(v, 2.0))
    expected = [sum(mixture(float(v)) for v in row) for row in x]
    np.testing.assert_allclose(base.log_prob(x).numpy(), expected, rtol=1e-5)
    torch.manual_seed(0)
    samples = base.sample(20000)
    assert samples.shape == (20000, 3)
    assert abs(float((samples > 0).float().mean()) - 0.5) < 0.02
    assert abs(float(samples.abs().mean()) - 2.0) < 0.1


def test_build_before_fit_is_an_error(held_out: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        get_method("flowhash").build(held_out[0])
