"""The report's ablation table: each ingredient at the highest exact hit rate every row reaches."""
from __future__ import annotations

import json

import pandas as pd

from bench.report.tables import ablation_table


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
