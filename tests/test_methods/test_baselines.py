"""The minhash (Waveprint), itq and binary-hash baselines: what the conformance test cannot see."""
from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from datasets.protocol import Protocol
from encoders.embed import cut_segments
from encoders.spectral import SpectralConfig, SpectralImage
from methods import TrainData, get_method
from methods.common.balance import bucket_balance
from methods.common.projection import PCAWhitening
from methods.itq import itq_rotation
from methods.minhash import haar_1d, haar_2d
from tests.conftest import tone_track

from .test_methods_conformance import mixture, normalise

D = 128


@pytest.fixture(scope="module")
def embeddings() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, D))
    anchors = mixture(rng, centres, 3000)
    positives = normalise(anchors + 0.05 * rng.standard_normal(anchors.shape))
    return {"db": mixture(rng, centres, 3000), "anchors": anchors, "positives": positives,
            "queries": normalise(mixture(rng, centres, 300))}


@pytest.fixture(scope="module")
def spectra() -> dict[str, np.ndarray]:
    """DB spectral images on the 0.5 s grid of a tone track, and queries 40 ms off the grid with noise."""
    protocol = Protocol()
    audio = tone_track(5, 200.0, protocol.sample_rate)
    frontend = SpectralImage(protocol, SpectralConfig())
    db = frontend(cut_segments(audio, protocol))
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(db) - 2, 100)
    shift = int(0.04 * protocol.sample_rate)
    segs = np.stack([audio[s * protocol.hop_samples + shift:][:protocol.segment_samples] for s in starts])
    segs = segs + 0.05 * rng.standard_normal(segs.shape).astype(np.float32)  # about 10 dB SNR
    return {"db": db, "queries": frontend(segs), "truth": starts}


def test_haar_is_the_orthonormal_standard_decomposition() -> None:
    assert np.allclose(haar_1d(np.array([1.0, 1.0, 1.0, 1.0])), [2.0, 0.0, 0.0, 0.0])
    assert np.allclose(haar_1d(np.array([1.0, -1.0, 0.0, 0.0])), [0.0, 0.0, np.sqrt(2), 0.0])
    x = np.random.default_rng(0).standard_normal((3, 8, 16)).astype(np.float32)
    h_rows, h_cols = haar_1d(np.eye(8)).T, haar_1d(np.eye(16)).T  # column j = transform of e_j
    np.testing.assert_allclose(haar_2d(x), h_rows @ x @ h_cols.T, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(haar_2d(x), axis=(1, 2)), np.linalg.norm(x, axis=(1, 2)), rtol=1e-5)


def test_minhash_signatures_are_datasketchs(spectra: dict[str, np.ndarray]) -> None:
    method = get_method("minhash", seed=4, num_perm=64, bands=16, rows=4)
    method.build(spectra["db"])
    elements = method.fingerprint(spectra["queries"][:5])
    assert elements.shape == (5, method.params["top_t"])
    assert np.all(np.diff(elements // 2, axis=1) > 0)  # one element per kept coefficient
    for row, signature in zip(elements, method.signatures(elements)):
        reference = MinHash(num_perm=64, seed=4)
        reference.update_batch([int(e).to_bytes(4, "little") for e in row])
        assert np.array_equal(signature, reference.hashvalues)


def test_minhash_finds_off_grid_noisy_segments(spectra: dict[str, np.ndarray]) -> None:
    method = get_method("minhash")
    method.build(spectra["db"])
    candidates = []
    for probe_bands in (5, 40):
        method.set_query_params(probe_bands=probe_bands)
        result = method.search(spectra["queries"], 10)
        candidates.append(result.candidates)
    assert np.all(candidates[1] >= candidates[0])  # more bands probed, a superset of candidates
    assert np.mean(result.ids[:, 0] == spectra["truth"]) >= 0.6  # 0.75 now; chance is 1/400
    assert np.all(result.scores[:, 0] <= 1.0) and np.all(result.scores[result.ids >= 0] >= 0.0)


def test_minhash_needs_a_power_of_two_image() -> None:
    method = get_method("minhash")
    with pytest.raises(ValueError, match=r"d=96 is not image_bands=32 x a power of two frames"):
        method.build(np.zeros((4, 96), dtype=np.float32))
    with pytest.raises(ValueError, match=r"bands=50 is out of range; allowed: 2 <= bands <= 40"):
        get_method("minhash", num_perm=120, rows=3, bands=50)


@pytest.mark.parametrize("K, L", [(16, 1), (10, 1), (8, 3)])
def test_binary_hash_sees_what_lsh_sees(K: int, L: int, embeddings: dict[str, np.ndarray]) -> None:
    lsh, binary = get_method("lsh", K=K, L=L), get_method("binary-hash", K=K, L=L)
    lsh.build(embeddings["db"])
    binary.build(embeddings["db"])
    assert np.array_equal(np.sort(lsh.stats()["bucket_counts"]), np.sort(binary.stats()["bucket_counts"]))
    for radius in (0, 1, 2):
        lsh.set_query_params(radius=radius)
        binary.set_query_params(nflip=radius)
        a, b = lsh.search(embeddings["queries"], 10), binary.search(embeddings["queries"], 10)
        assert np.array_equal(a.candidates, b.candidates)
        assert np.array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6, atol=1e-6)


def test_itq_rotation_lowers_quantisation_loss_and_balances_buckets(embeddings: dict[str, np.ndarray]) -> None:
    train = TrainData(embeddings["anchors"], embeddings["positives"])
    v = PCAWhitening.fit(train.anchors, 10, whiten=False)(train.anchors).astype(np.float64)
    start, _ = itq_rotation(v, 0, seed=0)  # the random rotation ITQ starts from
    rotation, losses = itq_rotation(v, 50, seed=0)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(10), atol=1e-9)
    start_loss = np.square(np.where(v @ start >= 0, 1.0, -1.0) - v @ start).sum() / len(v)
    assert losses[-1] < start_loss and np.all(np.diff(losses) <= 1e-9 * losses[0])  # never goes up



def test_itq_centres_what_lsh_does_not(embeddings: dict[str, np.ndarray]) -> None:
    """Embeddings share a mean direction: LSH's planes through the origin split them unevenly,
    ITQ's centred, rotated PCA bits are near balanced one by one, so its buckets are more even."""
    rng = np.random.default_rng(1)
    scales = np.linspace(2.0, 0.2, D)
    x = normalise(3.0 * rng.standard_normal(D) / np.sqrt(D) + scales * rng.standard_normal((6000, D)) / np.sqrt(D))
    itq = get_method("itq", K=10)
    itq.fit(TrainData(x[:3000], x[:3000]))
    bits = itq.latent(x[3000:]) > 0
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.1)
    itq.build(x[3000:])
    lsh = get_method("lsh", K=10)
    lsh.build(x[3000:])
    size = {m.name: bucket_balance(m.stats()["bucket_counts"], 2 ** 10)["expected_bucket_size"] for m in (itq, lsh)}
    assert size["itq"] < size["lsh"]
