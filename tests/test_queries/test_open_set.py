"""Open-set queries and the transform axis: absent songs are never hits, thresholds hold their
false-positive rate, held-out tracks stay out of the DB, and adding an axis moves no other query."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.measure.metrics import query_outcomes
from bench.measure.open_set import calibrated_threshold, open_set_measures, roc_points
from datasets.corpora.folder import FolderCorpus
from datasets.protocol import Protocol
from datasets.queries.matching import hit_levels
from datasets.queries.open_set import ABSENT, CALIBRATION, PRESENT, ROLE
from datasets.queries.queryset import QuerySetConfig, build_queryset
from methods.base import SearchResult
from tests.conftest import write_tracks

FRACTIONS = {"train": 0.3, "val": 0.3, "test": 0.4}
GRID = dict(durations=(1.0,), snrs=(None, 10.0), reverbs=(None,), per_cell=4, seed=5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> FolderCorpus:
    root = tmp_path_factory.mktemp("music")
    write_tracks(root, [(f"t{i:02d}.wav", 4.0, 8000, "WAV") for i in range(40)])
    return FolderCorpus(root, Protocol(), FRACTIONS)


def test_an_absent_query_is_never_a_hit_even_when_nothing_is_found() -> None:
    true_track = np.array([3, -1, -1, -1])  # -1: the song is in no DB
    pred_track = np.array([3, -1, 3, 0])
    levels = hit_levels(pred_track, np.array([5, -1, 5, 0]), true_track, np.array([5, 0, 5, 0]))
    assert levels["exact"].tolist() == [True, False, False, False]
    assert not levels["track"][1:].any()


def test_query_outcomes_score_each_answer_and_never_count_an_absent_song() -> None:
    manifest = pd.DataFrame({"query_id": ["a", "b"], "duration_s": 1.0, "snr": "clean", "reverb": "none",
                             "track_id": ["in-db", "not-in-db"], "true_segment": [0, 0], "start_s": 0.0,
                             ROLE: [PRESENT, ABSENT]})
    index = pd.DataFrame({"query": [0, 1], "j": [0, 0]})
    result = SearchResult(np.array([[0], [0]]), np.array([[0.9], [0.4]], dtype=np.float32), np.array([1, 1]))
    out = query_outcomes(result, index, manifest, np.array([0]), pd.Index(["in-db"]), np.array([0]), 0.5)
    assert out["exact"].tolist() == [True, False] and out["time"].tolist() == [True, False]
    assert out["score"].to_numpy() == pytest.approx([0.9, 0.4])
    assert out[ROLE].tolist() == [PRESENT, ABSENT]


@pytest.mark.parametrize("fpr", [0.01, 0.001])
def test_a_calibrated_threshold_gives_the_stated_false_positive_rate(fpr: float) -> None:
    rng = np.random.default_rng(0)
    calibration, test = rng.gamma(2.0, 1.0, 400_000), rng.gamma(2.0, 1.0, 400_000)
    threshold = calibrated_threshold(calibration, fpr)
    assert np.mean(calibration > threshold) <= fpr
    assert np.mean(test > threshold) == pytest.approx(fpr, rel=0.15)


def test_a_threshold_from_too_few_calibration_scores_is_their_maximum() -> None:
    scores = np.array([0.1, 0.7, 0.3])
    assert calibrated_threshold(scores, 0.01) == 0.7
    assert calibrated_threshold(np.arange(200.0), 0.01) == 197.0  # two of 200 may lie above


def test_open_set_measures_count_accepted_exact_hits_and_accepted_absent_songs() -> None:
    rng = np.random.default_rng(1)
    calibration = rng.uniform(0, 1, 1000)
    present_score = np.array([2.0, 2.0, 2.0, 0.5])
    outcomes = pd.DataFrame({
        ROLE: [PRESENT] * 4 + [ABSENT] * 2 + [CALIBRATION] * 1000,
        "score": np.concatenate([present_score, [5.0, 0.2], calibration]),
        "exact": [True, True, False, True] + [False] * 1002})
    m = open_set_measures(outcomes)
    assert m["n_present"] == 4 and m["n_absent"] == 2 and m["n_calibration"] == 1000
    assert m["threshold_1pct"] == pytest.approx(np.sort(calibration)[::-1][10])
    assert m["tpr_1pct"] == 0.5  # two accepted exact hits of four; the wrong answer and the low score are not
    assert m["fpr_1pct"] == 0.5  # the absent song scoring 5.0 is accepted
    assert m["resolved_1pct"] and m["resolved_0p1pct"] and m["score_meaningful"]
    roc = roc_points(outcomes)
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    assert roc["tpr"].iloc[-1] == 0.75 and roc["fpr"].iloc[-1] == 1.0


def test_a_constant_score_is_reported_as_meaningless() -> None:
    outcomes = pd.DataFrame({ROLE: [PRESENT, ABSENT, CALIBRATION], "score": [1.0, 1.0, 1.0],
                             "exact": [True, False, False]})
    assert not open_set_measures(outcomes)["score_meaningful"]


def test_open_set_queries_come_from_held_out_tracks_that_no_db_holds(corpus: FolderCorpus, banks,
                                                                      tmp_path: Path) -> None:
    noise, rooms = banks
    qs = build_queryset(corpus, noise, rooms, QuerySetConfig(**GRID, absent_share=0.25), tmp_path, progress=False)
    m, db_tracks = qs.manifest(), set(qs.segments()["track_id"])
    held = qs.info["open_set"]["held_out_tracks"]
    split = {t.track_id: s for s in ("train", "val", "test") for t in corpus.tracks(s)}
    assert m[ROLE].value_counts().to_dict() == {PRESENT: 6, ABSENT: 2, CALIBRATION: 2}
    assert set(m.loc[m[ROLE] == PRESENT, "track_id"]) <= db_tracks
    assert not set(m.loc[m[ROLE] != PRESENT, "track_id"]) & db_tracks
    assert set(m.loc[m[ROLE] == ABSENT, "track_id"]) <= set(held["test"])
    assert {split[t] for t in m.loc[m[ROLE] == CALIBRATION, "track_id"]} == {"val"}
    assert set(m.loc[m[ROLE] == CALIBRATION, "track_id"]) <= set(held["val"])
    assert not set(held["test"]) & db_tracks and set(held["test"]) <= {t for t, s in split.items() if s == "test"}


def test_a_present_query_keeps_its_seed_when_absent_queries_join(corpus: FolderCorpus, banks,
                                                                 tmp_path: Path) -> None:
    noise, rooms = banks
    closed = build_queryset(corpus, noise, rooms, QuerySetConfig(**GRID), tmp_path / "a", progress=False)
    opened = build_queryset(corpus, noise, rooms, QuerySetConfig(**GRID, absent_share=0.25), tmp_path / "b",
                            progress=False)
    a, b = closed.manifest(), opened.manifest()
    b = b[b[ROLE] == PRESENT]
    assert set(b["seed"]) <= set(a["seed"])


@pytest.mark.parametrize("value, message", [
    (0.6, "queries.absent_share=0.6: allowed a number in [0, 0.5]"),
    (-0.1, "allowed a number in [0, 0.5]"),
])
def test_a_bad_absent_share_names_the_field_and_the_range(value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        QuerySetConfig(absent_share=value)


def test_open_set_queries_need_the_test_split() -> None:
    with pytest.raises(ValueError, match="need split 'test'"):
        QuerySetConfig(absent_share=0.2, split="val")


def test_adding_a_transform_moves_no_other_query_and_changing_one_changes_the_hash(corpus: FolderCorpus, banks,
                                                                                 tmp_path: Path) -> None:
    noise, rooms = banks
    grid = {**GRID, "snrs": (None,)}
    plain = build_queryset(corpus, noise, rooms, QuerySetConfig(**grid), tmp_path / "plain", progress=False)
    up1 = build_queryset(corpus, noise, rooms, QuerySetConfig(**grid, transforms=("none", "pitch:1")),
                         tmp_path / "up1", progress=False)
    up2 = build_queryset(corpus, noise, rooms, QuerySetConfig(**grid, transforms=("none", "pitch:2")),
                         tmp_path / "up2", progress=False)
    p, u = plain.manifest(), up1.manifest()
    untouched = u[u["transform"] == "none"]
    assert len(untouched) == len(p) and (u["transform"] == "pitch:1").sum() == len(p)
    for (_, a), (_, b) in zip(p.iterrows(), untouched.iterrows()):
        assert (a.track_id, a.start_sample, a.seed) == (b.track_id, b.start_sample, b.seed)
        assert np.array_equal(plain.load_query(a.query_id), up1.load_query(b.query_id))
    shifted = u[u["transform"] == "pitch:1"]
    assert not np.array_equal(up1.load_query(shifted.iloc[0]["query_id"]),
                              plain.load_query(p.iloc[0]["query_id"]))
    assert len({plain.content_hash, up1.content_hash, up2.content_hash}) == 3
    assert up1.info["libraries"]["pedalboard"] and "libraries" not in plain.info


def test_a_sped_up_query_reads_more_source_than_it_lasts(corpus: FolderCorpus, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    config = QuerySetConfig(**{**GRID, "snrs": (None,), "reverbs": (0.6,)}, transforms=("stretch:1.25",))
    qs = build_queryset(corpus, noise, rooms, config, tmp_path, progress=False)
    m = qs.manifest()
    assert (m["source_samples"] == 10_000).all() and (m["n_samples"] == 8_000).all()
    assert all(len(qs.load_query(q)) == 8_000 for q in m["query_id"])


def test_the_db_leaves_out_the_held_out_tracks_of_every_split(corpus: FolderCorpus, banks, tmp_path: Path) -> None:
    from bench.run.inputs import _db_table

    noise, rooms = banks
    qs = build_queryset(corpus, noise, rooms, QuerySetConfig(**GRID, absent_share=0.25), tmp_path, progress=False)
    db, _ = _db_table(corpus, qs, ("test", "val"), progress=False)
    held = qs.info["open_set"]["held_out_tracks"]
    assert held["test"] and held["val"]
    assert not set(db["track_id"]) & (set(held["test"]) | set(held["val"]))
    val = {t.track_id for t in corpus.tracks("val")}
    assert set(db.loc[db["split"] == "val", "track_id"]) == val - set(held["val"])


def test_robustness_decisions_follow_the_interval_of_the_share_kept() -> None:
    from bench.measure.robustness import robustness_table, survival

    assert survival(0.92, 1.1) == "survives" and survival(0.5, 0.85) == "fails" and survival(0.8, 1.0) == "undetermined"
    rng = np.random.default_rng(0)
    outcomes = pd.DataFrame({"transform": ["none"] * 400 + ["mp3:64"] * 400 + ["pitch:2"] * 400,
                             "exact": np.concatenate([rng.random(400) < 0.8, rng.random(400) < 0.8,
                                                      rng.random(400) < 0.2])})
    table = robustness_table(outcomes).set_index("transform")
    assert table.loc["pitch:2", "decision"] == "fails" and table.loc["pitch:2", "axis"] == "pitch shift"
    assert table.loc["mp3:64", "decision"] == "survives"  # same rate: the share kept is near 1, its interval above 0.9
    assert table.loc["none", "exact_lo"] < table.loc["none", "exact"] < table.loc["none", "exact_hi"]
