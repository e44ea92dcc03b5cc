"""`bench run` with the methods outside faiss: audfprint end to end on the raw audio, and the ANN
libraries (hnswlib, ScaNN, USearch); end-to-end latency beside search-only latency for every method."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.run.config import RunConfig, TimingConfig
from bench.run.runner import run_benchmark
from datasets.queries.queryset import QuerySetConfig
from tests.helpers import write_rirs

QUERIES = QuerySetConfig(durations=(3.0, 6.0), snrs=(None, 10.0), reverbs=(None,), per_cell=8, seed=2)
TIMING = TimingConfig(warmup=2, repeats=1, latency_queries=12, batch_repeats=1)
GRIDS = {"audfprint": {"build": [{"density": 20, "fanout": 3, "hashbits": 20, "depth": 100}],
                       "query": [{"shifts": 1, "min_count": 5}, {"shifts": 4, "min_count": 2}]},
         "hnswlib": {"build": [{"M": 16, "ef_construction": 100}], "query": [{"ef": 16}, {"ef": 128}]},
         "scann": {"build": [{"num_leaves": 32, "dims_per_block": 2, "aq_threshold": 0.2}],
                   "query": [{"leaves_to_search": 2, "reorder": 100}, {"leaves_to_search": 32, "reorder": 100}]},
         "usearch": {"build": [{"connectivity": 16, "expansion_add": 100}],
                     "query": [{"expansion_search": 16}, {"expansion_search": 128}]}}


@pytest.mark.slow
def test_audfprint_and_the_ann_libraries_run_beside_exact_search(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_rirs(tmp_path / "rirs")
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path / "cache"))
    config = RunConfig(synth_tracks=16, rooms=str(tmp_path / "rirs"), queries=QUERIES, timing=TIMING, grids=GRIDS)
    config = replace(config, db_splits=("test",))
    run_benchmark(config, list(GRIDS), run_dir=tmp_path / "run", progress=False)
    points = pd.read_parquet(tmp_path / "run" / "points.parquet")
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert set(points["method"]) == {"exhaustive", *GRIDS}
    for col in ("e2e_mean_ms", "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms"):
        assert col in points.columns and col in results.columns
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    encoder_ms = info["encoder"]["ms_per_segment"]
    by = points.set_index("label")
    # embedding methods: search + the encoder for every segment of the query (3 s: 5, 6 s: 11 segments)
    exact = by.loc["exhaustive"]
    assert exact["e2e_mean_ms"] > exact["latency_mean_ms"] + 4 * encoder_ms
    assert exact["e2e_mean_ms"] < exact["latency_mean_ms"] + 12 * encoder_ms
    # audfprint's analysis is inside its search: nothing is added
    afp = points[points["method"] == "audfprint"]
    np.testing.assert_allclose(afp["e2e_mean_ms"], afp["latency_mean_ms"])
    # the libraries that do not report their work have no candidates; the others do
    for method in ("hnswlib", "scann"):
        assert points.loc[points["method"] == method, "candidates_mean"].isna().all()
    for method in ("usearch", "audfprint", "exhaustive"):
        assert (points.loc[points["method"] == method, "candidates_mean"] > 0).all()
    # every ANN library reaches exact search's hit rate at its widest point; audfprint finds
    # the clean 6 s queries of this synthetic music at the right offset
    top = float(exact["exact"])
    for method in ("hnswlib", "scann", "usearch"):
        assert points.loc[points["method"] == method, "exact"].max() >= top - 0.05, method
    clean = results[(results["method"] == "audfprint") & (results["duration_s"] == 6.0)
                    & (results["snr"].astype(str) == "clean")]
    assert clean["exact"].max() >= 0.75
    # recall against exact search: 1 for exact search, within [0, 1] for the embedding methods, none
    # for audfprint (it does not search the embeddings); per query in the outcomes too
    assert (exact["recall1"], exact["recall10"]) == (1.0, 1.0)
    embedding = points[points["method"].isin(["hnswlib", "scann", "usearch"])]
    assert embedding["recall10"].between(0, 1).all() and embedding["recall10"].max() > 0.9
    assert points.loc[points["method"] == "audfprint", "recall10"].isna().all()
    outcomes = pd.read_parquet(tmp_path / "run" / "outcomes.parquet")
    assert outcomes.loc[outcomes["label"] == "exhaustive", "recall10"].eq(1.0).all()
    part = next(p for p in (tmp_path / "run" / "parts").glob("*.json")
                if json.loads(p.read_text()).get("input", {}).get("kind") == "audio")
    assert json.loads(part.read_text())["input"]["frontend_ms_per_segment"] == 0.0


@pytest.mark.slow
def test_an_open_set_run_with_a_transform_axis_reports_robustness_and_thresholds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.report.run_report import write_run_report

    write_rirs(tmp_path / "rirs")
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path / "cache"))
    queries = QuerySetConfig(durations=(3.0,), snrs=(None,), reverbs=(None,), per_cell=6, seed=2,
                             transforms=("none", "speed:1.05"), absent_share=0.5)
    config = RunConfig(synth_tracks=40, rooms=str(tmp_path / "rirs"), queries=queries, timing=TIMING,
                       db_splits=("test",))  # 40 synthetic tracks hold 2 val tracks, 1 of them held out
    run_benchmark(config, ["exhaustive"], run_dir=tmp_path / "run", progress=False)
    run = tmp_path / "run"
    points = pd.read_parquet(run / "points.parquet")
    outcomes, open_set = pd.read_parquet(run / "outcomes.parquet"), pd.read_parquet(run / "open_set.parquet")
    assert (outcomes["role"] == "present").all() and len(outcomes) == 6
    assert open_set["role"].value_counts().to_dict() == {"absent": 6, "calibration": 6}
    assert not open_set["exact"].any() and not open_set["track"].any()
    p = points.iloc[0]
    assert (p["n_queries"], p["n_present"], p["n_absent"], p["n_calibration"]) == (6, 6, 6, 6)
    assert p["exact"] == outcomes["exact"].mean()
    assert 0 <= p["fpr_1pct"] <= 1 and 0 <= p["tpr_1pct"] <= p["exact"]
    results = pd.read_parquet(run / "results.parquet")
    assert sorted(results["transform"]) == ["none", "speed:1.05"]
    report = write_run_report(run).with_suffix(".md").read_text()
    assert "## Robustness: tempo, pitch, speed, codecs, phone line" in report
    assert "## Open set: songs that are not in the catalogue" in report
    assert (run / "figures" / "robustness_track.png").exists() and (run / "figures" / "open_set_roc.png").exists()
