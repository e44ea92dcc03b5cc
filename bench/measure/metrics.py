"""Per-query outcomes of a search and their aggregation by condition (definitions in docs/protocol.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from datasets.queries.matching import hit_levels, vote_sequences
from datasets.queries.open_set import ROLE
from methods.base import SearchResult

from .recall import RECALL_KS, recall_column
from .uncertainty import mean_interval, stratified_rate_interval, wilson_interval

CONDITION = ["duration_s", "snr", "reverb"]
TRANSFORM = "transform"  # a fourth condition column, in query sets with a transform axis
LEVELS = ("exact", "near", "track")
TIME_LEVEL = "time"  # right track, predicted start within +-TIME_TOLERANCE_S of the true start
TIME_TOLERANCE_S = 0.25
#: Result columns fixed by the seed and the data alone (the same on any engine or machine, bit for
#: bit): hit rates, candidates, counts, index size and bucket balance. Timings are not among them.
DETERMINISTIC_COLUMNS = ("n_queries", "exact", "near", "track", "time", "seg_exact", "seg_near", "seg_track",
                         "recall1", "recall10",
                         "candidates_mean", "candidates_frac", "n_db", "k", "index_bytes")


#: Recall@k columns of outcomes, results and points (embedding methods only)
RECALL_COLUMNS = tuple(recall_column(k) for k in RECALL_KS)

#: Suffixes of a hit rate's 95% interval columns (``exact_lo``, ``exact_hi``, ...): Wilson per
#: condition cell, a seeded bootstrap stratified by cell over all queries (bench/measure/uncertainty.py)
INTERVAL_SUFFIXES = ("_lo", "_hi")


def deterministic_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a results/points table that are deterministic (:data:`DETERMINISTIC_COLUMNS`,
    every hit rate's interval and every ``balance_*`` column), in the table's order."""
    intervals = {f"{lv}{s}" for lv in (*LEVELS, TIME_LEVEL) for s in INTERVAL_SUFFIXES}
    return [c for c in frame.columns if c in DETERMINISTIC_COLUMNS or c in intervals or c.startswith("balance_")]


def condition_columns(frame: pd.DataFrame) -> list[str]:
    """The condition columns of a manifest, outcomes or results table: duration, SNR, reverb, and
    the transform when the query set has that axis."""
    return CONDITION + ([TRANSFORM] if TRANSFORM in frame.columns else [])


def condition_cells(outcomes: pd.DataFrame) -> np.ndarray:
    """The condition cell (duration, SNR, reverb[, transform]) of each row, as an integer label."""
    return outcomes.groupby(condition_columns(outcomes), sort=False, dropna=False).ngroup().to_numpy()


def cell_intervals(group: pd.DataFrame, levels: tuple[str, ...]) -> dict[str, float]:
    """Wilson 95% intervals of one condition cell's hit rates (``<level>_lo``, ``<level>_hi``)."""
    out = {}
    for lv in levels:
        ci = wilson_interval(int(group[lv].sum()), len(group))
        out[f"{lv}_lo"], out[f"{lv}_hi"] = ci.low, ci.high
    return out


def overall_intervals(outcomes: pd.DataFrame, levels: tuple[str, ...], seed: int = 0) -> dict[str, float]:
    """95% intervals of the overall hit rates: a bootstrap of the queries stratified by condition
    cell, seeded (``<level>_lo``, ``<level>_hi``)."""
    cells = condition_cells(outcomes)
    out = {}
    for lv in levels:
        ci = stratified_rate_interval(outcomes[lv].to_numpy(), cells, seed=seed)
        out[f"{lv}_lo"], out[f"{lv}_hi"] = ci.low, ci.high
    return out


def query_outcomes(result: SearchResult, query_index: pd.DataFrame, manifest: pd.DataFrame,
                   db_codes: np.ndarray, db_tracks: pd.Index, db_segment: np.ndarray,
                   hop_s: float | None = None) -> pd.DataFrame:
    """One row per query: sequence-level hits (offset-aligned voting) and the answer's score,
    segment-level hit fractions (each query segment's top-1 alone), and candidates scanned summed
    over the query's segments; an open-set query set's ``role`` column is kept.

    With the DB hop ``hop_s`` the sequence-level ``time`` level is added too: the right track and
    a predicted start (segment x hop) within +-0.25 s of the query's true start time, a level that
    compares across hops."""
    q = query_index["query"].to_numpy()
    j = query_index["j"].to_numpy()
    n = len(manifest)
    true_track = db_tracks.get_indexer(manifest["track_id"])
    true_start = manifest["true_segment"].to_numpy()
    pred_track, pred_start, pred_score = vote_sequences(q, j, result.ids, result.scores, db_codes, db_segment, n)
    seq = hit_levels(pred_track, pred_start, true_track, true_start)
    top1 = result.ids[:, 0]
    found = top1 >= 0
    seg_track = np.where(found, db_codes[np.maximum(top1, 0)], -1)
    seg_start = np.where(found, db_segment[np.maximum(top1, 0)] - j, -1)
    seg = hit_levels(seg_track, seg_start, true_track[q], true_start[q])
    per_query = pd.DataFrame({f"seg_{k}": v for k, v in seg.items()}).groupby(q).mean()
    out = manifest[["query_id", *condition_columns(manifest), *([ROLE] if ROLE in manifest.columns else [])]].copy()
    for level in LEVELS:
        out[level] = seq[level]
        out[f"seg_{level}"] = per_query[f"seg_{level}"].to_numpy()
    out["score"] = pred_score
    if hop_s is not None:
        err = np.abs(pred_start * hop_s - manifest["start_s"].to_numpy())
        out[TIME_LEVEL] = (pred_track == true_track) & (pred_start >= 0) & (err <= TIME_TOLERANCE_S + 1e-9)
    out["candidates"] = np.bincount(q, weights=result.candidates, minlength=n).astype(np.int64)
    out["n_segments"] = np.bincount(q, minlength=n)
    return out


@dataclass(frozen=True)
class Measure:
    """One measure a condition cell and the whole run both report: its column, unit, how it is
    computed from the cell's query outcomes and the DB size, and the outcome column it needs (the
    measure is left out where that column is missing)."""

    name: str
    unit: str
    compute: Callable[[pd.DataFrame, int], float]
    needs: str | None = None


def _share(column: str) -> Callable[[pd.DataFrame, int], float]:
    return lambda g, n_db: float(g[column].mean())


def _per_segment(column: str) -> Callable[[pd.DataFrame, int], float]:
    return lambda g, n_db: float(np.average(g[column], weights=g["n_segments"]))


#: The measures of ``by_condition`` and ``overall``, in their column order (each adds its intervals
#: and latency beside them).
MEASURES: tuple[Measure, ...] = (
    *(Measure(lv, "share of queries", _share(lv), needs=lv) for lv in (*LEVELS, TIME_LEVEL)),
    *(Measure(f"seg_{lv}", "share of query segments", _per_segment(f"seg_{lv}")) for lv in LEVELS),
    *(Measure(col, "share of the exact top-k, per query segment", _per_segment(col), needs=col)
      for col in RECALL_COLUMNS),  # embedding methods only (bench/measure/recall.py)
    Measure("candidates_mean", "DB items scored per query", lambda g, n_db: float(g["candidates"].mean())),
    Measure("candidates_frac", "share of the DB scored per query segment",
            lambda g, n_db: float(g["candidates"].sum() / (g["n_segments"].sum() * n_db))),
)


def measures(outcomes: pd.DataFrame, n_db: int) -> dict[str, float]:
    """Every applicable measure of ``MEASURES`` over ``outcomes`` (a condition cell, or all queries)."""
    return {m.name: m.compute(outcomes, n_db) for m in MEASURES if m.needs is None or m.needs in outcomes.columns}


def _levels(outcomes: pd.DataFrame) -> tuple[str, ...]:
    """The sequence-level hit levels the outcomes carry (the time level only when a hop was given)."""
    return LEVELS + ((TIME_LEVEL,) if TIME_LEVEL in outcomes.columns else ())


def latency_stats(seconds: np.ndarray, prefix: str = "latency") -> dict[str, float]:
    """Mean and percentiles of per-query latencies, in milliseconds (``<prefix>_mean_ms``, ...)."""
    if len(seconds) == 0:
        return {f"{prefix}_{s}_ms": float("nan") for s in ("mean", "p50", "p95", "p99")}
    ms = 1e3 * np.asarray(seconds)
    return {f"{prefix}_mean_ms": float(ms.mean()), f"{prefix}_p50_ms": float(np.percentile(ms, 50)),
            f"{prefix}_p95_ms": float(np.percentile(ms, 95)), f"{prefix}_p99_ms": float(np.percentile(ms, 99))}


def latency_spread(latency_s: pd.Series, seed: int = 0) -> dict[str, float]:
    """How spread the per-query latencies are: their interquartile range and a 95% bootstrap
    interval of their mean (``latency_iqr_ms``, ``latency_mean_lo_ms``, ``latency_mean_hi_ms``)."""
    ms = 1e3 * latency_s.to_numpy(dtype=float)
    if len(ms) == 0:
        return {"latency_iqr_ms": float("nan"), "latency_mean_lo_ms": float("nan"), "latency_mean_hi_ms": float("nan")}
    q1, q3 = np.percentile(ms, [25, 75])
    ci = mean_interval(ms, seed=seed)
    return {"latency_iqr_ms": float(q3 - q1), "latency_mean_lo_ms": ci.low, "latency_mean_hi_ms": ci.high}


def end_to_end_seconds(latency_s: pd.Series, outcomes: pd.DataFrame, frontend_ms_per_segment: float) -> pd.Series:
    """End-to-end seconds of each timed query: its search time plus its segments' front end (the
    encoder, or the spectral images; 0 for a method that analyses raw audio inside its search)."""
    segments = outcomes.loc[latency_s.index, "n_segments"].to_numpy()
    return latency_s + segments * frontend_ms_per_segment / 1e3


def by_condition(outcomes: pd.DataFrame, latency_s: pd.Series, n_db: int,
                 e2e_s: pd.Series | None = None) -> pd.DataFrame:
    """Hit rates, candidates and latency per (duration, SNR, reverb[, transform]); latency (search-only, and
    end to end when ``e2e_s`` is given) comes from the timed queries of the same duration (SNR and
    reverb do not change the work of a search)."""
    e2e_s = latency_s * np.nan if e2e_s is None else e2e_s
    rows = []
    columns = condition_columns(outcomes)
    for key, g in outcomes.groupby(columns, sort=False):
        duration = key[0]
        same = outcomes.loc[latency_s.index, "duration_s"] == duration
        timed = latency_s[same]
        rows.append({**dict(zip(columns, key)), "n_queries": len(g), **measures(g, n_db),
                     **cell_intervals(g, _levels(g)),
                     **latency_stats(timed.to_numpy()), **latency_stats(e2e_s[same].to_numpy(), "e2e")})
    return pd.DataFrame(rows)


def overall(outcomes: pd.DataFrame, latency_s: pd.Series, n_db: int,
            e2e_s: pd.Series | None = None, seed: int = 0) -> dict[str, float]:
    """The same measures over all queries: one point of the method's Pareto curve (the hit rates'
    intervals bootstrapped with ``seed``)."""
    e2e_s = latency_s * np.nan if e2e_s is None else e2e_s
    return {"n_queries": len(outcomes), **measures(outcomes, n_db),
            **overall_intervals(outcomes, _levels(outcomes), seed),
            **latency_stats(latency_s.to_numpy()), **latency_spread(latency_s, seed),
            **latency_stats(e2e_s.to_numpy(), "e2e")}
