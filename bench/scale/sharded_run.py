"""The sharded plan measured on a finished scaling run: its largest DB with finished points (not those
the run left out) cut into shards, each a Ray actor (:mod:`bench.distributed.sharded`), each method
at one sweep point of the run (its cheapest reaching 80% of exact search's exact rate there, else
its highest), over the run's timed queries.

Per method: the plan's latency (slowest shard plus merge) against the same point's latency on the
whole DB in the sweep, over the same queries, and the exact hit rate of the merged answers against
the whole DB's on those queries (merging each shard's top-k can only add candidates)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.distributed.sharded import shard_bounds, sharded_search
from bench.measure.metrics import query_outcomes
from bench.measure.operating_points import REFERENCE, cheapest_reaching, highest_rate
from bench.run.inputs import RunInputs, prepare_inputs
from bench.run.runner import fit_method, timed_query_rows
from bench.run.store import OUTCOMES, POINTS
from methods.base import SearchResult

from .config import ScaleConfig
from .database import build_scale_db, sized_inputs

SHARDED_CSV = "sharded.csv"
SHARE = 0.8


def sharded_point(points: pd.DataFrame, method: str, share: float = SHARE) -> pd.Series:
    """The method's sweep point the sharded plan is measured at: its cheapest reaching ``share`` of
    exact search's exact rate in ``points`` (one size), else its highest."""
    mine = points[(points["method"] == method) & (points["status"] == "ok")]
    if mine.empty:
        raise ValueError(f"{method}: no finished point at this size to measure sharded")
    target = share * float(points.loc[points["method"] == REFERENCE, "exact"].max())
    hit = cheapest_reaching(mine, target)
    return hit if hit is not None else highest_rate(mine)


def _outcomes(sized: RunInputs, ids: np.ndarray, scores: np.ndarray, candidates: np.ndarray) -> pd.DataFrame:
    codes, tracks = sized.db_track_codes
    return query_outcomes(SearchResult(ids, scores, candidates), sized.query_index, sized.manifest, codes, tracks,
                          sized.db_segments["segment"].to_numpy(), sized.corpus.protocol.hop_s)


def measure_sharded(config: ScaleConfig, run_dir: Path | str, shards: int, methods: list[str],
                    progress: bool = True) -> pd.DataFrame:
    """Measure the sharded plan at the run's largest size holding finished points, for ``methods``
    (module docstring); one row per method, written to ``run_dir/sharded.csv``."""
    run_dir = Path(run_dir)
    points = pd.read_parquet(run_dir / POINTS)
    points = points[points["status"] == "ok"]  # not the configurations left out (over budget, not validated)
    outcomes = pd.read_parquet(run_dir / OUTCOMES)
    n = int(points["n_db"].max())
    points = points[points["n_db"] == n]
    inputs = prepare_inputs(config.run, progress)
    db = build_scale_db(config, inputs, progress)
    sized = sized_inputs(inputs, db, n)
    timed, rows = timed_query_rows(sized)
    seg = np.concatenate(rows)
    k = config.run.k
    out = []
    for name in methods:
        point = sharded_point(points, name)
        fitted = fit_method(name, json.loads(point["build_params"]), inputs)
        qp = json.loads(point["query_params"])
        run = sharded_search(fitted.method, db.store.root, n, shards, qp, sized.query_emb, rows, k)
        ids = np.full((len(sized.query_emb), k), -1, dtype=np.int64)
        scores = np.full((len(sized.query_emb), k), -np.inf, dtype=np.float32)
        cand = np.zeros(len(sized.query_emb), dtype=np.int64)
        ids[seg], scores[seg], cand[seg] = run.result.ids[seg], run.result.scores[seg], run.result.candidates[seg]
        merged = _outcomes(sized, ids, scores, cand).iloc[timed]
        whole = outcomes[(outcomes["label"] == point["label"]) & (outcomes["query_params"] == point["query_params"])
                         & (outcomes["n_db"] == n)].set_index("query_id").loc[merged["query_id"]]
        lat = run.timing
        out.append({"method": name, "label": point["label"], "query_params": point["query_params"], "n_db": n,
                    "shards": shards, "rows_per_shard": int(np.diff(shard_bounds(n, shards)).max()),
                    "queries": len(timed), "latency_mean_ms": float(lat["latency_ms"].mean()),
                    "latency_p95_ms": float(lat["latency_ms"].quantile(0.95)),
                    "slowest_shard_ms": float(lat["slowest_shard_ms"].mean()),
                    "merge_ms": float(lat["merge_ms"].mean()),
                    "round_trip_ms": float(lat["round_trip_ms"].mean()),
                    "whole_latency_mean_ms": float(whole["latency_ms"].mean()),
                    "exact_sharded": float(merged["exact"].mean()), "exact_whole": float(whole["exact"].mean()),
                    "candidates_sharded": float(merged["candidates"].mean()),
                    "candidates_whole": float(whole["candidates"].mean()),
                    "shard_build_s_max": float(max(run.build_s))})
        if progress:
            row = out[-1]
            print(f"{name}: sharded {row['latency_mean_ms']:.2f} ms, whole DB {row['whole_latency_mean_ms']:.2f} ms",
                  flush=True)
    table = pd.DataFrame(out)
    table.to_csv(run_dir / SHARDED_CSV, index=False)
    return table
