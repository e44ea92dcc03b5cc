"""The report's ablation table: each ingredient at the highest exact hit rate every row reaches."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.report.tables import ablation_table, factorial_ablation


def point(method: str, build: dict, query: dict, exact: float, candidates: float, latency: float) -> dict:
    return {"method": method, "label": method + json.dumps(build), "build_params": json.dumps(build),
            "query_params": json.dumps(query), "exact": exact, "candidates_mean": candidates,
            "latency_mean_ms": latency}


def test_rows_are_read_at_the_highest_rate_all_reach_each_at_its_cheapest_point() -> None:
    points = pd.DataFrame([
        point("lsh", {"K": 16}, {"radius": 1}, 0.50, 500, 1.0),
        point("lsh", {"K": 16}, {"radius": 2}, 0.70, 2000, 2.0),
        point("pca-sign", {"K": 16}, {"n_probes": 8}, 0.60, 300, 0.5),
        point("pca-sign", {"K": 16}, {"n_probes": 64}, 0.65, 900, 0.9),
        point("flowhash", {"K": 16, "base": "gmm"}, {"tau": 0.5}, 0.66, 200, 0.8),
        point("flowhash", {"K": 16, "base": "gmm"}, {"tau": 1.0}, 0.68, 250, 0.7),
        point("flowhash", {"K": 16, "base": "normal"}, {"n_probes": 4}, 0.40, 50, 0.2),  # never reaches 0.65
        point("exhaustive", {}, {}, 0.9, 10_000, 3.0),
    ])
    table = ablation_table(points)
    assert list(table["variant"]) == ["LSH: hyperplanes through 0, Hamming-ball probing",
                                      "PCA-sign: FlowHash without the flow", "FlowHash, standard-normal base",
                                      "FlowHash, the paper's (two-mode base)"]
    assert (table["matched_exact"] == 0.40).all()  # the standard-normal row reaches only 40%
    without_normal = ablation_table(points[~points["build_params"].str.contains("normal")])
    assert (without_normal["matched_exact"] == 0.65).all()
    rows = without_normal.set_index("method")
    assert rows.loc["lsh", "candidates"] == 2000 and rows.loc["pca-sign", "candidates"] == 900
    assert rows.loc["flowhash", "candidates"] == 200 and rows.loc["flowhash", "latency_ms"] == 0.7
    assert rows.loc["flowhash", "candidates_vs_first"] == 10.0
    assert "tau=1.0" in rows.loc["flowhash", "latency_point"]


def test_fewer_than_two_rows_give_no_table() -> None:
    points = pd.DataFrame([point("lsh", {"K": 16}, {"radius": 1}, 0.5, 500, 1.0),
                           point("exhaustive", {}, {}, 0.9, 10_000, 3.0)])
    assert ablation_table(points).empty


def _factorial_run(cells: list[tuple[str, dict, float, float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One sweep point per (method, build params, exact rate, latency ms), 400 queries in 4 cells:
    the first ``rate`` share of each cell's queries are hits, every query takes ``latency`` ms."""
    n = 400
    qid = np.arange(n)
    pts, rows = [], []
    for method, build, rate, ms in cells:
        label = f"{method}({json.dumps(build, sort_keys=True)})"
        hits = (qid % 100) < round(100 * rate)
        rows.append(pd.DataFrame({"label": label, "query_params": "{}", "query_id": qid, "duration_s": qid % 2,
                                  "snr": "clean", "reverb": (qid // 2) % 2, "exact": hits,
                                  "latency_ms": np.full(n, ms)}))
        pts.append({**point(method, build, {}, float(hits.mean()), 100.0, ms), "label": label})
    return pd.DataFrame(pts), pd.concat(rows, ignore_index=True)


def test_the_factorial_ablation_compares_each_flow_with_its_own_projection_at_equal_k_and_tau_db() -> None:
    points, outcomes = _factorial_run([
        ("pca-sign", {}, 0.70, 0.2), ("flowhash", {}, 0.72, 0.4),
        ("pca-sign", {"projection": "learned"}, 0.80, 0.3), ("flowhash", {"projection": "learned"}, 0.80, 0.15),
        ("pca-sign", {"K": 20}, 0.50, 0.1),                                       # alone at K 20: no row
        ("pca-sign", {"tau_db": 1.0}, 0.80, 0.5), ("flowhash", {"tau_db": 1.0}, 0.85, 1.0),
        ("itq", {"K": 16}, 0.55, 0.2), ("lsh-directed", {"K": 16, "L": 4}, 0.66, 0.25),
        ("exhaustive", {}, 0.9, 3.0),
    ])
    table = factorial_ablation(outcomes, points, n_boot=200)
    assert set(zip(table["K"], table["tau_db"])) == {(16, 0.0), (16, 1.0)}
    zero = table[table["tau_db"] == 0.0].set_index("cell")
    assert set(zero.index) == {"pca only", "pca + flow", "learned only", "learned + flow", "itq", "lsh-directed"}
    assert (zero["matched"] == 0.55).all()  # the highest rate every cell of the row reaches (itq's)
    assert zero.loc["learned + flow", "reached"] == 0.80
    # a flow's speedup is over the same projection without it, never across projections
    assert zero.loc["pca + flow", "flow_speedup"] == pytest.approx(0.5)
    assert zero.loc["pca + flow", "decision"] == "slower"
    assert zero.loc["learned + flow", "flow_speedup"] == pytest.approx(2.0)
    assert zero.loc["learned + flow", "decision"] == "faster"
    assert np.isnan(zero.loc["itq", "flow_speedup"]) and zero.loc["itq", "decision"] == ""
    one = table[table["tau_db"] == 1.0].set_index("cell")
    assert set(one.index) == {"pca only", "pca + flow"}  # the rivals insert once: tau_db 0 rows only
    assert one.loc["pca + flow", "flow_speedup"] == pytest.approx(0.5)
