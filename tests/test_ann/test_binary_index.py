"""binary-index: a faiss binary index over FlowHash's occupied codes finds the same codes a
brute-force Hamming search does when its search budget covers the index, and with every code
probed it re-ranks the whole DB."""
from __future__ import annotations

import numpy as np
import pytest

from methods import TrainData, get_method
from methods.binary_index import pack_codes


def mixture(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, centres.shape[1]))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, 64))
    train = mixture(rng, 1500, centres)
    positives = (train + 0.05 * rng.standard_normal(train.shape)).astype(np.float32)
    return {"db": mixture(rng, 2000, centres), "q": mixture(rng, 60, centres), "train": train,
            "positives": positives}


def built(data: dict[str, np.ndarray], **params) -> object:
    # a short fixed budget: the test is about the index, not the flow's quality
    method = get_method("binary-index", codes="flowhash", K=12, **params)
    method.fit(TrainData(data["train"], data["positives"]))
    method.build(data["db"])
    return method


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_the_index_finds_the_brute_force_hamming_neighbours(data: dict[str, np.ndarray], index: str) -> None:
    method = built(data, index=index, nlist=16)
    n_codes = len(method.ucodes)
    weights = np.left_shift(np.int64(1), np.arange(12, dtype=np.int64))
    codes = pack_codes((method.ucodes[:, None] & weights) != 0)
    qbits = pack_codes(method.hasher.latent(data["q"]) > 0)
    dist = hamming(qbits, codes)  # [nq, occupied codes]
    m = min(40, n_codes)
    method.set_query_params(n_probes=m, efSearch=4 * n_codes, nprobe=16)  # the budget covers the index
    rows, probed = method.probes(data["q"])
    position = {int(c): i for i, c in enumerate(method.ucodes)}
    for r in range(len(data["q"])):
        mine = np.sort(dist[r, [position[int(c)] for c in probed[rows == r]]])
        # tie-aware: the same multiset of distances as the m nearest by brute force
        np.testing.assert_array_equal(mine, np.sort(dist[r])[:m])


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_every_code_probed_re_ranks_the_whole_db(data: dict[str, np.ndarray], index: str) -> None:
    method = built(data, index=index, nlist=16)
    method.set_query_params(n_probes=len(method.ucodes), efSearch=4 * len(method.ucodes), nprobe=16)
    result = method.search(data["q"], 10)
    assert (result.candidates == len(data["db"])).all()
    exact = np.argsort(-(data["q"] @ data["db"].T), axis=1)[:, 0]
    np.testing.assert_array_equal(result.ids[:, 0], exact)


def test_binary_index_reuses_the_flow_it_shares_with_flowhash(data: dict[str, np.ndarray]) -> None:
    flow = get_method("flowhash", K=12)
    flow.fit(TrainData(data["train"], data["positives"]))
    method = built(data)
    np.testing.assert_array_equal(method.hasher.latent(data["q"]) > 0, flow.latent(data["q"]) > 0)
    assert method.hasher.training == flow.training  # one training, remembered


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="codes='lsh'"):
        get_method("binary-index", codes="lsh")
    with pytest.raises(ValueError, match="projection='learned' is not allowed with codes='itq'"):
        get_method("binary-index", codes="itq", projection="learned")
    method = get_method("binary-index", index="ivf", nlist=8)
    with pytest.raises(ValueError, match="nprobe"):
        method.set_query_params(nprobe=9)
    get_method("binary-index", index="hnsw", nlist=8).set_query_params(nprobe=1024)  # not its knob
