"""Every registered method honours the Method contract (methods/base.py).

Parametrized from the registry, so a newly registered method is checked automatically, with
its default build parameters and the first and last points of its query sweep: the built-in
modules, installed ``bench.methods`` entry points, and the plugin files named in the
environment variable ``BENCH_PLUGINS`` (paths joined by the OS path separator), e.g.
``BENCH_PLUGINS=my_method.py pytest tests/test_methods/test_methods_conformance.py -k my-method``.

Each method gets data of its ``input_kind``: L2-normalised 128-d vectors from a Gaussian
mixture for "embedding" methods, spectral images (``encoders.spectral``) of 1 s segments of
synthetic tone music for "spectrogram" methods, and for "audio" methods the tone tracks
themselves (an ``AudioDB``) with each DB segment's audio as a query of its own.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import pytest

from bench.run.result_checks import check_search_result
from datasets.protocol import Protocol
from encoders.embed import cut_segments
from encoders.spectral import SpectralConfig, SpectralImage
from methods import Method, TrainData, get_method, load_grid, method_class, method_names
from methods.base import AudioDB, audio_query_rows
from methods.common.balance import bucket_balance
from methods.registry import load_plugin
from tests.conftest import tone_track

N, D, N_TRAIN, N_CLUSTERS = 5000, 128, 4000, 50

for _plugin in filter(None, os.environ.get("BENCH_PLUGINS", "").split(os.pathsep)):
    load_plugin(_plugin)


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def mixture(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """``n`` L2-normalised points around random centres of a Gaussian mixture."""
    return normalise(centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, D)))


def spectral_images(seed: int, n: int) -> np.ndarray:
    """``n`` spectral images of consecutive 1 s segments (0.5 s hop) of a synthetic tone track."""
    protocol = Protocol()
    audio = tone_track(seed, (n + 1) * protocol.hop_s, protocol.sample_rate)
    return SpectralImage(protocol, SpectralConfig())(cut_segments(audio, protocol)[:n])


AUDIO_TRACKS = 25  # of N / 25 segments each


FIND_SEGMENTS = 10  # an audio method identifies a 5.5 s query (landmarks need more than a segment or two)


def audio_data() -> tuple[AudioDB, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """An AudioDB of tone tracks holding N segments, each segment's audio as a query row of its
    own, and findable queries: (rows, each query's first row, its DB row), queries of
    FIND_SEGMENTS segments starting at DB rows 0, 5, 10, ... (within their track)."""
    protocol = Protocol()
    per_track = N // AUDIO_TRACKS
    seconds = protocol.segment_s + (per_track - 1) * protocol.hop_s
    tracks = [tone_track(100 + t, seconds, protocol.sample_rate) for t in range(AUDIO_TRACKS)]
    rows = [np.arange(t * per_track, (t + 1) * per_track) for t in range(AUDIO_TRACKS)]
    db = AudioDB(protocol.sample_rate, protocol.segment_s, protocol.hop_s, tracks, rows)
    segments = np.concatenate([cut_segments(t, protocol)[:per_track] for t in tracks])
    assert len(segments) == N
    starts = np.array([r for r in range(0, 1000, 5) if r % per_track <= per_track - FIND_SEGMENTS])
    rows = (starts[:, None] + np.arange(FIND_SEGMENTS)).ravel()
    number = np.repeat(np.arange(len(starts)), FIND_SEGMENTS)
    j = np.tile(np.arange(FIND_SEGMENTS), len(starts))
    findable = (audio_query_rows(segments[rows], number, j), np.arange(len(starts)) * FIND_SEGMENTS, starts)
    return db, audio_query_rows(segments, np.arange(N), np.zeros(N)), findable


@pytest.fixture(scope="module")
def all_data() -> dict[str, dict[str, np.ndarray]]:
    """Test data of each input kind: ``db`` [N, d] (an AudioDB for audio methods), ``queries``
    (rows that should find DB row i; the DB matrix itself where it is one), ``anchors`` and
    ``positives`` [n_train, d]."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((N_CLUSTERS, D))
    anchors = mixture(rng, centres, N_TRAIN)
    positives = normalise(anchors + 0.05 * rng.standard_normal(anchors.shape))
    spec_anchors = spectral_images(1, N_TRAIN // 4)  # spectrogram methods do not learn from them
    spec_positives = (spec_anchors + 0.3 * rng.standard_normal(spec_anchors.shape)).astype(np.float32)
    db = mixture(rng, centres, N)
    spec = spectral_images(0, N)
    audio_db, audio_queries, audio_findable = audio_data()
    first = np.arange(1000)
    return {"embedding": {"db": db, "queries": db, "findable": (db[:1000], first, first),
                          "anchors": anchors, "positives": positives},
            "spectrogram": {"db": spec, "queries": spec, "findable": (spec[:1000], first, first),
                            "anchors": spec_anchors, "positives": spec_positives},
            "audio": {"db": audio_db, "queries": audio_queries, "findable": audio_findable,
                      "anchors": anchors, "positives": positives}}


@pytest.fixture(scope="module")
def data(all_data: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The embedding test data (for tests that are not about one method's input)."""
    return all_data["embedding"]


@pytest.fixture(scope="module")
def inputs(all_data: dict[str, dict[str, np.ndarray]]) -> Callable[[str], dict[str, np.ndarray]]:
    """The test data of a method's input kind."""
    return lambda name: all_data[method_class(name).input_kind]


def make_built(name: str, data: dict[str, np.ndarray]) -> Method:
    method = get_method(name, seed=0, threads=1, **load_grid(name)["build"][0])
    method.fit(TrainData(data["anchors"], data["positives"]))
    method.build(data["db"])
    return method


@pytest.fixture(scope="module")
def built(inputs: Callable[[str], dict[str, np.ndarray]]) -> Callable[[str], Method]:
    """Each method fitted and built once per module (default build parameters)."""
    cache: dict[str, Method] = {}

    def get(name: str) -> Method:
        if name not in cache:
            cache[name] = make_built(name, inputs(name))
        return cache[name]
    return get


def sweep_ends() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for name in method_names():
        query = load_grid(name)["query"]
        cases.append((name, query[0]))
        if query[-1] != query[0]:
            cases.append((name, query[-1]))
    return cases


def case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, params = case
    return name + "".join(f"-{k}{v}" for k, v in params.items())


SWEEP_ENDS = sweep_ends()
LAST_POINTS = [(name, load_grid(name)["query"][-1]) for name in method_names()]


@pytest.fixture
def at_point(case: tuple[str, dict[str, Any]], built: Callable[[str], Method],
             inputs: Callable[[str], dict[str, np.ndarray]]) -> tuple[Method, np.ndarray]:
    """The case's method, built over its DB and set to the case's query point, and the query rows
    (row i should find DB row i: the DB matrix itself, or for audio methods each DB segment's audio)."""
    name, params = case
    method = built(name)
    method.set_query_params(**params)
    return method, inputs(name)["queries"]


def check_result(method: Method, result: Any, nq: int, k: int) -> None:
    """The harness's own checks of every search result (``bench.run.result_checks``), then what
    ``methods.base.pad_result`` guarantees beyond them: exact dtypes, and -inf scores exactly where
    the ids are -1."""
    check_search_result(result, method.name, method.query_params, nq, k, N)
    assert result.ids.dtype == np.int64 and result.scores.dtype == np.float32 and result.candidates.dtype == np.int64
    assert np.array_equal(result.ids == -1, np.isneginf(result.scores)), "-1 ids and -inf scores go together"


@pytest.mark.parametrize("case", SWEEP_ENDS, ids=case_id)
def test_thousand_queries(at_point: tuple[Method, np.ndarray]) -> None:
    method, db = at_point
    result = method.search(db[:1000], 10)
    check_result(method, result, 1000, 10)


@pytest.mark.parametrize("case", SWEEP_ENDS, ids=case_id)
def test_one_query_matches_the_batch(at_point: tuple[Method, np.ndarray]) -> None:
    method, db = at_point
    batch = method.search(db[:50], 10)
    for i in (0, 17):
        single = method.search(db[i], 10)  # a 1-d vector is one query
        check_result(method, single, 1, 10)
        assert single.ids[0, 0] == batch.ids[i, 0]
        np.testing.assert_allclose(single.scores[0, 0], batch.scores[i, 0], rtol=1e-5)


@pytest.mark.parametrize("case", SWEEP_ENDS, ids=case_id)
def test_k_beyond_the_candidates_pads(case: tuple[str, dict[str, Any]], at_point: tuple[Method, np.ndarray],
                                      inputs: Callable[[str], dict[str, Any]]) -> None:
    method, _ = at_point
    queries, first, _ = inputs(case[0])["findable"]
    k = N + 5
    rows = queries[:first[3]] if len(first) > 3 else queries[:3]  # three queries, all their rows
    result = method.search(rows, k)
    check_result(method, result, len(rows), k)
    n_valid = (result.ids >= 0).sum(axis=1)
    assert np.all(n_valid <= N) and np.all(n_valid >= 1)


@pytest.mark.parametrize("case", SWEEP_ENDS, ids=case_id)
def test_float64_queries_accepted(at_point: tuple[Method, np.ndarray]) -> None:
    method, db = at_point
    q = db[:20]
    as32, as64 = method.search(q, 5), method.search(q.astype(np.float64), 5)
    assert np.array_equal(as32.ids, as64.ids)
    np.testing.assert_allclose(as32.scores, as64.scores, rtol=1e-6)


@pytest.mark.parametrize("case", LAST_POINTS, ids=case_id)
def test_db_vectors_find_themselves(case: tuple[str, dict[str, Any]], at_point: tuple[Method, np.ndarray],
                                    inputs: Callable[[str], dict[str, Any]]) -> None:
    method, _ = at_point
    queries, first, target = inputs(case[0])["findable"]
    result = method.search(queries, 10)
    recall_at_1 = float(np.mean(result.ids[first, 0] == target))
    assert recall_at_1 >= (0.9 if method.approximate_scores else 1.0), f"recall@1 {recall_at_1}"


@pytest.mark.parametrize("name", method_names())
def test_deterministic_for_a_seed(name: str, built: Callable[[str], Method],
                                  inputs: Callable[[str], dict[str, np.ndarray]]) -> None:
    data = inputs(name)
    first, second = built(name), make_built(name, data)
    for params in (load_grid(name)["query"][0], load_grid(name)["query"][-1]):
        first.set_query_params(**params)
        second.set_query_params(**params)
        a, b = first.search(data["queries"][:200], 10), second.search(data["queries"][:200], 10)
        assert np.array_equal(a.ids, b.ids)
        assert np.array_equal(a.scores, b.scores)
        assert np.array_equal(a.candidates, b.candidates)


@pytest.mark.parametrize("name", method_names())
def test_dimension_mismatch_is_a_value_error(name: str, built: Callable[[str], Method],
                                             inputs: Callable[[str], dict[str, np.ndarray]]) -> None:
    data = inputs(name)
    with pytest.raises(ValueError, match="d=64"):
        built(name).search(np.zeros((2, 64), dtype=np.float32), 5)
    fitted = get_method(name, **load_grid(name)["build"][0])
    fitted.fit(TrainData(data["anchors"], data["positives"]))
    if isinstance(data["db"], AudioDB):
        with pytest.raises(ValueError, match="AudioDB"):
            fitted.build(data["queries"])  # an audio method builds over an AudioDB, not a matrix
    else:
        with pytest.raises(ValueError, match="d=64"):
            fitted.build(data["db"][:, :64])
    with pytest.raises(ValueError, match="positives"):
        fitted.fit(TrainData(data["anchors"], data["positives"][:10]))


@pytest.mark.parametrize("name", method_names())
def test_stats(name: str, built: Callable[[str], Method], inputs: Callable[[str], dict[str, np.ndarray]]) -> None:
    stats = built(name).stats()
    assert stats["n"] == N and stats["d"] == inputs(name)["queries"].shape[1]
    assert isinstance(stats["index_bytes"], int) and stats["index_bytes"] > 0
    if "bucket_counts" in stats:
        counts = np.asarray(stats["bucket_counts"])
        assert counts.sum() == N and counts.size <= stats["n_buckets_total"]
        assert stats["n_buckets_total"] == round(2 ** stats["K"])
        balance = bucket_balance(counts, stats["n_buckets_total"])
        assert 0.0 <= balance["normalised_entropy"] <= 1.0


@pytest.mark.parametrize("name", method_names())
def test_grid_points_are_valid(name: str) -> None:
    grid = load_grid(name)
    for build_params in grid["build"]:  # the whole query sweep runs on every build configuration
        method = get_method(name, **build_params)
        for query_params in grid["query"]:
            method.set_query_params(**query_params)


def test_unknown_method_lists_the_choices() -> None:
    with pytest.raises(ValueError) as err:
        get_method("no-such-method")
    for name in method_names():
        assert name in str(err.value)


@pytest.mark.parametrize("name, build, query, message", [
    ("lsh", {}, {"radius": -1}, r"radius=-1 .*0 <= radius <= 16"),
    ("lsh", {"K": 31}, None, r"K=31 .*1 <= K <= 30"),
    ("lsh", {"L": 0}, None, r"L=0 .*L >= 1"),
    ("flowhash", {"K": 31}, None, r"K=31 .*2 <= K <= 30"),
    ("flowhash", {}, {"n_probes": 0}, r"n_probes=0 .*1 <= n_probes <= 4096"),
    ("flowhash", {"K": 8}, {"n_probes": 257}, r"n_probes=257 .*1 <= n_probes <= 256"),
    ("flowhash", {"base": "laplace"}, None, r"base='laplace'.*gmm, normal"),
    ("ivf", {"nlist": 16}, {"nprobe": 17}, r"nprobe=17 .*1 <= nprobe <= 16"),
    ("ivfpq", {}, {"nprobe": 300}, r"nprobe=300 .*1 <= nprobe <= 256"),
    ("hnsw", {}, {"efSearch": 0}, r"efSearch=0 .*efSearch >= 1"),
    ("lsh", {"bits": 8}, None, r"unknown build parameter.*'bits'.*allowed"),
    ("ivf", {}, {"radius": 1}, r"unknown query parameter.*'radius'.*nprobe"),
])
def test_bad_parameters_are_clear_value_errors(name: str, build: dict[str, Any], query: dict[str, Any] | None,
                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        method = get_method(name, **build)
        if query is not None:
            method.set_query_params(**query)


def test_nlist_above_the_training_set_is_a_value_error(data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match=r"nlist=256 .*1 <= nlist <= 100"):
        get_method("ivf").build(data["db"][:100])


def test_search_before_build_is_an_error(data: dict[str, np.ndarray]) -> None:
    for name in method_names():
        with pytest.raises(RuntimeError, match="build"):
            get_method(name).search(data["db"][:1], 1)


def test_register_a_plugin_method(tmp_path: Any, data: dict[str, np.ndarray]) -> None:
    from methods.exhaustive import Exhaustive
    from methods.registry import METHODS, register

    grid = tmp_path / "plugin.yml"
    grid.write_text("build:\n  - {}\nquery:\n  - {}\n")

    class Plugin(Exhaustive):
        name = "plugin-exact"
        config_file = str(grid)

    try:
        assert register(Plugin) is Plugin
        assert "plugin-exact" in method_names()
        assert load_grid("plugin-exact") == {"build": [{}], "query": [{}]}
        method = get_method("plugin-exact")
        method.build(data["db"])
        assert method.search(data["db"][:3], 1).ids[:, 0].tolist() == [0, 1, 2]

        class Clash(Exhaustive):
            name = "plugin-exact"
        with pytest.raises(ValueError, match="already registered"):
            register(Clash)
    finally:
        METHODS.pop("plugin-exact", None)
