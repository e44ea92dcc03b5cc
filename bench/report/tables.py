"""The numbers behind the report's tables and figures, read off stored results (no recomputation).

Operating point under a latency budget: for each method, the sweep point (over all its build
configurations) with the highest top-1 exact hit rate whose mean latency is within the budget;
ties go to the lower latency. A method with no point within the budget is shown at its fastest
point, flagged ``within_budget = False``.
"""
from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np
import pandas as pd

from bench.measure.metrics import RECALL_COLUMNS
from bench.measure.operating_points import (
    FOCUS,
    RECALL_TARGET,
    RECALL_TARGETS,
    REFERENCE,
    TARGET_SHARES,
    best_under_budget,
    cheapest,
    cheapest_reaching,
    speedup,
)
from bench.measure.uncertainty import wilson_interval
from bench.run.retime import RETIMED_MS, paired_column

BUDGET_FACTOR = 2.0
BALANCE_COLUMNS = ("balance_n_buckets_total", "balance_n", "balance_normalised_entropy", "balance_nonempty_fraction",
                   "balance_max_mean_ratio", "balance_cv", "balance_expected_bucket_size",
                   "balance_random_bucket_size", "balance_floor_bucket_size", "balance_expected_vs_random",
                   "balance_expected_vs_floor")


def snr_sort_key(label: str) -> float:
    """Order SNR labels from clean to the noisiest: 'clean', then falling dB."""
    return -math.inf if label == "clean" else -float(label)


def reverb_sort_key(label: str) -> float:
    """Order reverb labels: 'none', then rising RT60."""
    return -math.inf if label == "none" else float(label)


def method_sort_key(method: str) -> str:
    """Order methods: the exhaustive reference first, then by name."""
    return f"0{method}" if method == REFERENCE else f"1{method}"


def snr_labels(results: pd.DataFrame) -> list[str]:
    """The SNR conditions of a run, clean first."""
    return sorted(set(results["snr"].astype(str)), key=snr_sort_key)


def reverb_labels(results: pd.DataFrame) -> list[str]:
    """The reverb conditions of a run, 'none' first."""
    return sorted(set(results["reverb"].astype(str)), key=reverb_sort_key)


def reverb_title(label: str) -> str:
    """'none' -> 'no reverb', '0.6' -> 'RT60 0.6 s'."""
    return "no reverb" if label == "none" else f"RT60 {label} s"


def queries_text(queryset: dict) -> str:
    """'3150 queries (1050 present, 1050 absent, 1050 calibration)' from run.json's queryset record
    (the roles only for an open set)."""
    roles = (queryset.get("open_set") or {}).get("roles") or {}
    counts = ", ".join(f"{n} {role}" for role, n in sorted(roles.items(), key=lambda kv: kv[0] != "present"))
    return f"{queryset.get('queries')} queries" + (f" ({counts})" if roles else "")


def params_text(params_json: str) -> str:
    """'{"K": 16, "L": 4}' -> 'K=16, L=4' ('-' when empty)."""
    d = json.loads(params_json)
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "-"


def latency_budget(points: pd.DataFrame, budget_ms: float | None = None) -> tuple[float, str]:
    """The latency budget in ms and a sentence saying where it comes from.

    Default: ``BUDGET_FACTOR`` x the exhaustive reference's mean latency; without a reference
    in the run and no explicit budget, there is no budget (``inf``).
    """
    if budget_ms is not None:
        if not budget_ms > 0:
            raise ValueError(f"latency budget {budget_ms} ms is out of range; allowed: > 0")
        return float(budget_ms), f"mean latency ≤ {budget_ms:.3g} ms (set with --latency-budget-ms)"
    ref = points[points["method"] == REFERENCE]
    if ref.empty:
        return math.inf, "none: the run has no exhaustive reference to set it"
    ref_ms = float(ref["latency_mean_ms"].min())
    budget = BUDGET_FACTOR * ref_ms
    return budget, (f"mean latency ≤ {budget:.3g} ms ({BUDGET_FACTOR:g}× the exhaustive reference's "
                    f"{ref_ms:.3g} ms)")


def budget_operating_points(points: pd.DataFrame, budget_ms: float) -> pd.DataFrame:
    """One row per method (sorted by name, exhaustive first) at its best point within the budget (the
    ``best_under_budget`` selector); a method with no point within it at its ``cheapest`` point,
    marked ``within_budget`` False."""
    rows = []
    for method in sorted(set(points["method"]), key=method_sort_key):
        g = points[points["method"] == method]
        row = best_under_budget(g, budget_ms)
        rows.append((cheapest(g) if row is None else row).to_dict() | {"within_budget": row is not None})
    return pd.DataFrame(rows).reset_index(drop=True)


def condition_rates(results: pd.DataFrame, ops: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Exact and near hit rates (0..1) of each operating point, pooled over the conditions not in ``by``.

    Long form: ``method``, the ``by`` columns, ``exact``, ``near``, ``n_queries``, and the Wilson
    95% interval of the pooled exact rate (``exact_lo``, ``exact_hi``).
    """
    keys = set(zip(ops["label"], ops["query_params"]))
    sel = results[[k in keys for k in zip(results["label"], results["query_params"])]].copy()
    sel["snr"] = sel["snr"].astype(str)
    sel["reverb"] = sel["reverb"].astype(str)
    for level in ("exact", "near"):
        sel[f"{level}_hits"] = sel[level] * sel["n_queries"]
    agg = sel.groupby(["method", *by], sort=True)[["exact_hits", "near_hits", "n_queries"]].sum().reset_index()
    agg["exact"] = agg["exact_hits"] / agg["n_queries"]
    agg["near"] = agg["near_hits"] / agg["n_queries"]
    ci = [wilson_interval(round(h), int(n)) for h, n in zip(agg["exact_hits"], agg["n_queries"])]
    agg["exact_lo"], agg["exact_hi"] = [c.low for c in ci], [c.high for c in ci]
    return _sort_conditions(agg[["method", *by, "exact", "near", "n_queries", "exact_lo", "exact_hi"]],
                            ["method", *by])


def widest_half_width(rates: pd.DataFrame, by: list[str]) -> pd.Series:
    """The widest half-width of the exact rates' 95% Wilson intervals in each ``by`` group of
    ``condition_rates``'s output (one group = one table row or column)."""
    half = np.maximum(rates["exact"] - rates["exact_lo"], rates["exact_hi"] - rates["exact"])
    return rates.assign(half=half).groupby(by, sort=False)["half"].max()


def end_to_end_cost(cost: object) -> bool:
    """Whether a speedup's latency column (``latency_cost``) is end to end."""
    return cost == "e2e_mean_ms"


def _sort_conditions(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    keys = {"snr": lambda s: s.map(snr_sort_key), "reverb": lambda s: s.map(reverb_sort_key),
            "method": lambda s: s.map(method_sort_key)}
    return frame.sort_values(columns, key=lambda s: keys[s.name](s) if s.name in keys else s,
                             kind="mergesort").reset_index(drop=True)


def speedup_table(points: pd.DataFrame, focus: str = FOCUS) -> pd.DataFrame:
    """The focus method's speedup over every other method at matched top-1 exact hit rate.

    Uses ``bench.measure.operating_points.speedup`` over each method's whole sweep (all build configurations):
    once in mean latency and once in candidates scanned. Empty when the focus method did not run.
    """
    cols = ["other", "lat_hit_rate", "lat_focus_ms", "lat_other_ms", "lat_speedup", "cand_hit_rate", "cand_focus",
            "cand_other", "cand_speedup", "lat_cost"]
    if focus not in set(points["method"]):
        return pd.DataFrame(columns=cols)
    a = points[points["method"] == focus]
    rows = []
    for other in sorted(set(points["method"]) - {focus}, key=method_sort_key):
        b = points[points["method"] == other]
        cost = latency_cost(points, other)
        lat = speedup(a, b, "exact", cost)
        cand = speedup(a, b, "exact", "candidates_mean")
        rows.append([other, lat["hit_rate"], lat["cost_a"], lat["cost_b"], lat["speedup"], cand["hit_rate"],
                     cand["cost_a"], cand["cost_b"], cand["speedup"], cost])
    return pd.DataFrame(rows, columns=cols)


def latency_cost(points: pd.DataFrame, other: str) -> str:
    """The latency column a speedup over ``other`` is read in: end to end (``e2e_mean_ms``) when
    ``other`` searches raw audio (its search includes its own front end, so search-only latency
    would compare its whole pipeline with the embedding methods' lookup alone), else search only."""
    from methods.registry import method_class

    try:
        audio = method_class(other).input_kind == "audio"
    except (KeyError, ValueError):  # a plugin method not loaded in this process
        audio = False
    if audio and "e2e_mean_ms" in points and not points["e2e_mean_ms"].isna().all():
        return "e2e_mean_ms"
    return "latency_mean_ms"


def balance_table(points: pd.DataFrame) -> pd.DataFrame:
    """Bucket balance per method configuration that has buckets (hash tables, IVF lists)."""
    if "balance_n_buckets_total" not in points:
        return pd.DataFrame(columns=["method", "label", "build_params", *BALANCE_COLUMNS])
    per_label = points.drop_duplicates("label")
    per_label = per_label[per_label["balance_n_buckets_total"].notna()]
    return per_label[["method", "label", "build_params", *BALANCE_COLUMNS]].sort_values(
        ["method", "label"], kind="mergesort").reset_index(drop=True)


# where each stage of a search is marked (methods/stages.py), in the order a search runs them
STAGES = ("checks", "hash", "coarse", "probes", "gather", "vote", "library", "rerank", "topk", "rest")


def stage_table(ops: pd.DataFrame) -> pd.DataFrame:
    """Per-stage mean ms per query of each operating point: one row per method that recorded stages,
    a ``stage_<name>_ms`` column per stage (0 where the method has no such stage), the whole-call
    mean ``stage_call_ms`` and ``stage_coverage`` (stages / whole call)."""
    columns = [f"stage_{s}_ms" for s in STAGES]
    present = [c for c in columns if c in ops.columns]
    if not present or "stage_call_ms" not in ops.columns:
        return pd.DataFrame()
    rows = ops.dropna(subset=["stage_call_ms"])
    keep = ["method", "label", "build_params", "query_params", "latency_mean_ms", "stage_call_ms", "stage_coverage"]
    return rows.reindex(columns=[*keep, *columns]).fillna({c: 0.0 for c in columns}).reset_index(drop=True)


def shown_stages(table: pd.DataFrame) -> list[str]:
    """The stages of ``stage_table``'s output that some method spends time in, in search order."""
    return [s for s in STAGES if table[f"stage_{s}_ms"].gt(0).any()]


def build_table(points: pd.DataFrame) -> pd.DataFrame:
    """Fit, kernel-compile and build seconds and index size per method configuration."""
    points = points if "jit_s" in points.columns else points.assign(jit_s=float("nan"))
    per_label = points.drop_duplicates("label")[["method", "label", "fit_s", "jit_s", "build_s", "index_bytes", "n_db"]]
    out = per_label.assign(index_mb=per_label["index_bytes"] / 1e6,
                           bytes_per_item=per_label["index_bytes"] / per_label["n_db"])
    return _sort_conditions(out, ["method", "label"])


def uniform_occupancy(n_items: int, n_buckets: int, sizes: np.ndarray) -> np.ndarray:
    """Expected number of buckets holding each size under uniform hashing: B * Binomial(N, 1/B) pmf."""
    from scipy.stats import binom

    return n_buckets * binom.pmf(sizes, n_items, 1.0 / n_buckets)


ABLATION: tuple[tuple[str, str, Callable[[pd.Series], bool]], ...] = (
    ("lsh", "LSH: hyperplanes through 0, Hamming-ball probing", lambda p: p["method"] == "lsh"),
    ("lsh-directed", "LSH: centred, query-directed probing", lambda p: p["method"] == "lsh-directed"),
    ("itq", "ITQ: PCA + learned rotation, margin probing", lambda p: p["method"] == "itq"),
    ("pca-sign", "PCA-sign: FlowHash without the flow", lambda p: p["method"] == "pca-sign"),
    ("flowhash", "FlowHash, standard-normal base",
     lambda p: p["method"] == "flowhash" and json.loads(p["build_params"]).get("base", "gmm") == "normal"),
    ("flowhash", "FlowHash, the paper's (two-mode base)",
     lambda p: p["method"] == "flowhash" and json.loads(p["build_params"]).get("base", "gmm") == "gmm"),
)
"""The ablation's rows, from the plainest hash to the paper's FlowHash: (method, what it is, which points)."""


def ablation_table(points: pd.DataFrame) -> pd.DataFrame:
    """What each ingredient buys: every ablation row present in the run, at the highest top-1 exact hit
    rate all of them reach, with its cheapest sweep point (over all its configurations) reaching it,
    by candidates and by mean latency. Empty when fewer than two rows are present."""
    rows = []
    for method, what, select in ABLATION:
        mask = points.apply(select, axis=1) if len(points) else pd.Series([], dtype=bool)
        if mask.any():
            rows.append((method, what, points[mask]))
    if len(rows) < 2:
        return pd.DataFrame()
    target = min(float(p["exact"].max()) for _, _, p in rows)
    out = []
    for method, what, pts in rows:
        ok = pts[pts["exact"] >= target - 1e-12]
        by_cand = ok.loc[ok["candidates_mean"].idxmin()]
        by_lat = ok.loc[ok["latency_mean_ms"].idxmin()] if ok["latency_mean_ms"].notna().any() else by_cand
        out.append({"method": method, "variant": what, "matched_exact": target,
                    "candidates": float(by_cand["candidates_mean"]), "candidates_point": _point(by_cand),
                    "latency_ms": float(by_lat["latency_mean_ms"]), "latency_point": _point(by_lat)})
    table = pd.DataFrame(out)
    lsh = table["candidates"].iloc[0], table["latency_ms"].iloc[0]
    table["candidates_vs_first"] = lsh[0] / table["candidates"]
    table["latency_vs_first"] = lsh[1] / table["latency_ms"]
    return table


def _point(row: pd.Series) -> str:
    return f"{params_text(row['build_params'])}; {params_text(row['query_params'])}"


def _point_outcomes(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``outcomes`` ordered by sweep point and query id, and each point's (label, query_params)
    row positions in it: every point's rows list the same queries in the same order."""
    ordered = outcomes.sort_values(["label", "query_params", "query_id"], kind="mergesort").reset_index(drop=True)
    return ordered, ordered.groupby(["label", "query_params"], sort=False).indices


class _SweepMatrices:
    """Per-query hits and latencies of sweep points, read off the outcomes: what the decided
    speedups resample. Latencies are the re-timed ones where asked for and the point has them,
    else the sweep's, so both sides of a comparison can be read under one timing regime."""

    def __init__(self, outcomes: pd.DataFrame) -> None:
        """Index ``outcomes`` by sweep point."""
        from bench.measure.metrics import condition_cells

        ordered, self.rows_of = _point_outcomes(outcomes)
        self.values = {col: ordered[col].to_numpy(dtype=float)
                       for col in ("exact", *RECALL_COLUMNS) if col in ordered.columns}
        self.latency = ordered["latency_ms"].to_numpy(dtype=float)
        self.timings = {col: ordered[col].to_numpy(dtype=float) for col in ordered.columns
                        if col == RETIMED_MS or col.startswith(f"{RETIMED_MS}:")}
        self.cells = condition_cells(ordered.loc[self.rows_of[next(iter(self.rows_of))]])

    def _rows(self, pts: pd.DataFrame) -> list[np.ndarray]:
        return [self.rows_of[(lab, qp)] for lab, qp in zip(pts["label"], pts["query_params"])]

    def _timed(self, pts: pd.DataFrame, column: str) -> bool:
        return column in self.timings and any(np.isfinite(self.timings[column][i]).any() for i in self._rows(pts))

    def regime(self, a: pd.DataFrame, b: pd.DataFrame) -> tuple[str, str] | None:
        """The re-timing columns under which the points ``a`` and ``b`` of two methods were timed
        together: beside each other (``timing.interleave: pairs``), else both in the one group of
        every compared point; None where they were not (both are then read at their sweep's)."""
        name_a, name_b = a["method"].iloc[0], b["method"].iloc[0]
        for col_a, col_b in ((paired_column(name_b), paired_column(name_a)), (RETIMED_MS, RETIMED_MS)):
            if self._timed(a, col_a) and self._timed(b, col_b):
                return col_a, col_b
        return None

    def of(self, pts: pd.DataFrame, column: str | None, rate: str = "exact") -> tuple[np.ndarray, np.ndarray]:
        """[points, queries] per-query ``rate`` (exact hits, or a recall) and latencies of ``pts``
        (re-timed latencies from ``column`` where given and a point has them, else the sweep's)."""
        rows = self._rows(pts)
        timed = self.timings.get(column) if column else None
        lat = [timed[i] if timed is not None and np.isfinite(timed[i]).any() else self.latency[i] for i in rows]
        return np.array([self.values[rate][i] for i in rows]), np.array(lat)


def paired_table(outcomes: pd.DataFrame, ops: pd.DataFrame, against: str, seed: int = 0) -> pd.DataFrame:
    """Each method's operating point against ``against``'s, query by query (they answer the same
    queries): the difference in top-1 exact hit rate with its paired bootstrap interval
    (stratified by condition cell), the discordant counts and the exact McNemar p-value.
    Empty when ``against`` is not among the operating points."""
    from bench.measure.metrics import condition_cells
    from bench.measure.uncertainty import paired_difference

    cols = ["method", "against", "difference", "low", "high", "only_method", "only_against", "mcnemar_p",
            "significant"]
    if against not in set(ops["method"]):
        return pd.DataFrame(columns=cols)

    ordered, rows_of = _point_outcomes(outcomes)

    def of(row: pd.Series) -> pd.DataFrame:
        return ordered.iloc[rows_of[(row["label"], row["query_params"])]].reset_index(drop=True)

    base = of(ops[ops["method"] == against].iloc[0])
    cells = condition_cells(base)
    rows = []
    for _, row in ops.iterrows():
        if row["method"] == against:
            continue
        mine = of(row)
        if not mine["query_id"].equals(base["query_id"]):
            raise ValueError(f"{row['label']} and {against} did not answer the same queries")
        cmp = paired_difference(mine["exact"].to_numpy(), base["exact"].to_numpy(), cells, seed=seed)
        d = cmp.difference
        rows.append([row["method"], against, d.estimate, d.low, d.high, cmp.only_a, cmp.only_b, cmp.mcnemar_p,
                     cmp.significant])
    return pd.DataFrame(rows, columns=cols)


def speedup_intervals(outcomes: pd.DataFrame, points: pd.DataFrame, focus: str = FOCUS, seed: int = 0,
                      n_boot: int = 1000) -> pd.DataFrame:
    """95% intervals of the focus method's speedup over every other method (``speedup_table``), the
    whole matched-hit-rate procedure bootstrapped over queries (bench.measure.uncertainty
    .speedup_interval): in mean latency (each point's mean latency fixed, the hit rates resampled)
    and in candidates (resampled with the queries). Empty when the focus method did not run."""
    from bench.measure.metrics import condition_cells
    from bench.measure.uncertainty import speedup_interval, stratified_weights

    cols = ["other", "lat_speedup_lo", "lat_speedup_hi", "cand_speedup_lo", "cand_speedup_hi"]
    if focus not in set(points["method"]):
        return pd.DataFrame(columns=cols)
    ordered, rows_of = _point_outcomes(outcomes)
    exact_all = ordered["exact"].to_numpy(dtype=float)
    cand_all = ordered["candidates"].to_numpy(dtype=float)

    def matrices(method: str, cost: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        pts = points[points["method"] == method]
        idx = [rows_of[(lab, qp)] for lab, qp in zip(pts["label"], pts["query_params"])]
        return (np.array([exact_all[i] for i in idx]), pts[cost].to_numpy(dtype=float),
                np.array([cand_all[i] for i in idx]), pts["candidates_mean"].to_numpy(dtype=float))

    ha, _, qa, ca = matrices(focus, "latency_mean_ms")
    first = rows_of[next(iter(rows_of))]
    cells = condition_cells(ordered.loc[first])
    weights = stratified_weights(cells, n_boot, seed)
    rows = []
    for other in sorted(set(points["method"]) - {focus}, key=method_sort_key):
        cost = latency_cost(points, other)
        la = matrices(focus, cost)[1]
        hb, lb, qb, cb = matrices(other, cost)
        lat = speedup_interval(ha, la, hb, lb, cells, seed=seed, weights=weights)
        cand = (speedup_interval(ha, ca, hb, cb, cells, seed=seed, query_cost_a=qa, query_cost_b=qb, weights=weights)
                if np.isfinite(cb).all() else None)
        rows.append([other, lat.low, lat.high, cand.low if cand else float("nan"),
                     cand.high if cand else float("nan")])
    return pd.DataFrame(rows, columns=cols)


#: The columns of a decided-speedups table (``share``: the target's share of exhaustive search's
#: rate, or a recall target itself)
DECIDED_COLUMNS = ["share", "other", "target", "focus_ms", "other_ms", "speedup", "low", "high", "decision"]


def decided_speedups(outcomes: pd.DataFrame, points: pd.DataFrame, focus: str = FOCUS,
                     shares: tuple[float, ...] = TARGET_SHARES, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """The focus method's speedup over every other method that searches embeddings or spectral
    images, at each fixed target exact rate (each of ``shares`` of exhaustive search's, column
    ``share``; rows by share, then method), each method's
    mean latency interpolated along its sweep, with the interval that resamples hit rates and
    per-query latencies together (``bench.measure.uncertainty.timed_speedup_interval``) and its
    decision (``decide_speedup``). Where both methods' compared points were re-timed interleaved
    (``bench.run.retime``: outcomes column ``retimed_ms``) both are read at those latencies;
    otherwise both at their sweep's, so a pair is never timed under two regimes. A method that
    searches raw audio is compared end to end in the speedup table instead, and left out here.
    Empty when the focus method or the reference did not run.
    """
    methods = set(points["method"])
    if focus not in methods or REFERENCE not in methods:
        return pd.DataFrame(columns=DECIDED_COLUMNS)
    best = float(points.loc[points["method"] == REFERENCE, "exact"].max())
    return _decided(outcomes, points, focus, _latency_rivals(points, focus), "exact",
                    [(share, share * best) for share in shares], True, seed, n_boot)


def _latency_rivals(points: pd.DataFrame, focus: str) -> list[str]:
    """The methods other than ``focus`` compared on search latency alone (those that search
    embeddings or spectral images; raw-audio methods are compared end to end instead)."""
    return [o for o in sorted(set(points["method"]) - {focus}, key=method_sort_key)
            if latency_cost(points, o) == "latency_mean_ms"]


#: where the first run decides: this share of the focus method's own best exact rate (a DB where
#: exact search is not the fastest way to what the focus method reaches)
FOCUS_BEST_SHARE = 0.9


def decided_at_focus_best(outcomes: pd.DataFrame, points: pd.DataFrame, focus: str = FOCUS,
                          share: float = FOCUS_BEST_SHARE, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """As :func:`decided_speedups`, at one target: ``share`` of the focus method's own best exact
    rate over its sweep (column ``share``), so that the question is whether any rival reaches
    what the focus method reaches faster, not whether the focus method reaches exact search's rate.
    Empty when the focus method did not run."""
    if focus not in set(points["method"]):
        return pd.DataFrame(columns=DECIDED_COLUMNS)
    best = float(points.loc[points["method"] == focus, "exact"].max())
    return _decided(outcomes, points, focus, _latency_rivals(points, focus), "exact", [(share, share * best)], True,
                    seed, n_boot)


def decided_recall_speedups(outcomes: pd.DataFrame, points: pd.DataFrame, focus: str = FOCUS,
                            targets: tuple[float, ...] = RECALL_TARGETS, rate: str = "recall10", seed: int = 0,
                            n_boot: int = 1000) -> pd.DataFrame:
    """As :func:`decided_speedups`, at fixed recall targets (``rate``: recall@k against exact search,
    column ``share`` holding the target itself) over every other method with a recall (those that
    search the embeddings). The sweep latencies are read on both sides: the interleaved re-timing
    chose its points by hit rate, not by recall. Empty when the focus method has no recall."""
    has = set(points.loc[points[rate].notna(), "method"]) if rate in points.columns else set()
    if focus not in has:
        return pd.DataFrame(columns=DECIDED_COLUMNS)
    others = sorted(has - {focus}, key=method_sort_key)
    return _decided(outcomes, points, focus, others, rate, [(t, t) for t in targets], False, seed, n_boot)


def _decided(outcomes: pd.DataFrame, points: pd.DataFrame, focus: str, others: list[str], rate: str,
             targets: list[tuple[float, float]], allow_retimed: bool, seed: int, n_boot: int) -> pd.DataFrame:
    """The decided speedups of ``focus`` over ``others`` at each (label, target) of ``targets`` on
    the per-query ``rate``; re-timed latencies where ``allow_retimed`` and both sides have them."""
    from bench.measure.operating_points import interpolated_cost
    from bench.measure.uncertainty import decide_speedup, timed_speedup_interval

    sweeps = _SweepMatrices(outcomes)
    of_method = {m: points[points["method"] == m] for m in {focus, *others}}

    def mean_cost(hits: np.ndarray, lat: np.ndarray, target: float) -> float:
        return float(interpolated_cost(hits.mean(axis=1), np.nanmean(lat, axis=1), target))

    # like with like: latencies re-timed together on both sides, or the sweep's on both (exhaustive
    # search at a scaling run's large sizes is not re-timed: against it the focus method is read at its sweep's)
    regimes = {other: (sweeps.regime(of_method[focus], of_method[other]) if allow_retimed else None) or (None, None)
               for other in others}
    focus_mats = {cols[0]: sweeps.of(of_method[focus], cols[0], rate) for cols in regimes.values()}
    mats = {other: sweeps.of(of_method[other], regimes[other][1], rate) for other in others}
    rows = []
    for label, target in sorted(targets, reverse=True):
        for other in others:
            ha, la = focus_mats[regimes[other][0]]
            hb, lb = mats[other]
            iv = timed_speedup_interval(ha, la, hb, lb, sweeps.cells, target, n_boot=n_boot, seed=seed)
            rows.append([label, other, target, mean_cost(ha, la, target), mean_cost(hb, lb, target), iv.estimate,
                         iv.low, iv.high, decide_speedup(iv)])
    return pd.DataFrame(rows, columns=DECIDED_COLUMNS)


def ann_table(points: pd.DataFrame, target: float = RECALL_TARGET, rate: str = "recall10") -> pd.DataFrame:
    """The ANN view of each method with a recall (it searches the embeddings): its highest ``rate``
    (recall@10 against exact search) and, at the cheapest point (mean latency, over all its build
    configurations) whose ``rate`` reaches ``target``, its QPS on one thread (1000 / mean latency
    ms, as ann-benchmarks counts queries a second), recall@1 and exact hit rate; NaN where no
    point reaches it. Methods by name, the reference first."""
    cols = ["method", "best_recall", "label", "query_params", "recall", "recall1", "exact", "latency_ms", "qps"]
    if rate not in points.columns:
        return pd.DataFrame(columns=cols)
    rows = []
    for method in sorted(set(points.loc[points[rate].notna(), "method"]), key=method_sort_key):
        pts = points[(points["method"] == method) & points[rate].notna()]
        at = cheapest_reaching(pts, target, rate)
        row = [method, float(pts[rate].max()), "", "", *[float("nan")] * 5]
        if at is not None:
            lat = float(at["latency_mean_ms"])
            row[2:] = [at["label"], at["query_params"], float(at[rate]), float(at.get("recall1", np.nan)),
                       float(at["exact"]), lat, 1e3 / lat if lat > 0 else float("nan")]
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def ablation_cell(row: pd.Series) -> tuple[int, float, str] | None:
    """(K, tau_db, cell) of a point of the factorial ablation, or None for a point outside it.
    Cells: ``<projection> + flow`` (flowhash), ``<projection> only`` (pca-sign: no flow), and the
    rivals at the same K, ``itq`` and ``lsh-directed`` (tau_db 0: they insert each item once)."""
    params = json.loads(row["build_params"])
    K = int(params.get("K", 16))
    if row["method"] in ("flowhash", "pca-sign"):
        projection = params.get("projection", "pca")
        flow = row["method"] == "flowhash" and int(params.get("n_blocks", 10)) > 0
        base = params.get("base", "gmm") if flow else "gmm"
        variant = "" if base == "gmm" else f" ({base} base)"  # the factorial's flow is the paper's
        return K, float(params.get("tau_db", 0.0)), f"{projection} {'+ flow' if flow else 'only'}{variant}"
    if row["method"] in ("itq", "lsh-directed"):
        return K, 0.0, str(row["method"])
    return None


def factorial_ablation(outcomes: pd.DataFrame, points: pd.DataFrame, seed: int = 0,
                       n_boot: int = 1000) -> pd.DataFrame:
    """Projection {pca, learned} x flow {none, trained}, like with like: for every (K, tau_db) with
    at least two cells, each cell's highest exact rate (its interval) and, at the highest rate all
    the row's cells reach (``matched``), its mean candidates and latency, each interpolated along
    its sweep (its points of that K and tau_db only). A flow cell also gets its latency speedup
    over the same projection without the flow at ``matched``, with the interval and decision of
    :func:`decided_speedups` (re-timed latencies where both were re-timed). ITQ and lsh-directed at
    the same K join the tau_db 0 rows. Empty without two cells anywhere."""
    from bench.measure.operating_points import interpolated_cost
    from bench.measure.uncertainty import decide_speedup, timed_speedup_interval

    cols = ["K", "tau_db", "cell", "reached", "reached_lo", "reached_hi", "matched", "candidates", "latency_ms",
            "flow_speedup", "flow_low", "flow_high", "decision"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    keyed = points.assign(_key=points.apply(ablation_cell, axis=1)).dropna(subset=["_key"])
    if keyed.empty:
        return pd.DataFrame(columns=cols)
    sweeps = _SweepMatrices(outcomes)
    rows = []
    groups = sorted({(k[0], k[1]) for k in keyed["_key"]})
    for K, tau_db in groups:
        members = {cell: pts for (k, t, cell), pts in keyed.groupby("_key", sort=True) if k == K and t == tau_db}
        if len(members) < 2 or not any(" + flow" in c or c.endswith(" only") for c in members):
            continue  # the rivals alone at a K are no ablation
        matched = min(float(p["exact"].max()) for p in members.values())
        for cell, pts in sorted(members.items()):
            best = pts.loc[pts["exact"].idxmax()]
            rec = {"K": K, "tau_db": tau_db, "cell": cell, "reached": float(best["exact"]),
                   "reached_lo": float(best.get("exact_lo", np.nan)), "reached_hi": float(best.get("exact_hi", np.nan)),
                   "matched": matched,
                   "candidates": float(interpolated_cost(pts["exact"].to_numpy(), pts["candidates_mean"].to_numpy(),
                                                         matched)),
                   "latency_ms": float(interpolated_cost(pts["exact"].to_numpy(), pts["latency_mean_ms"].to_numpy(),
                                                         matched)),
                   "flow_speedup": np.nan, "flow_low": np.nan, "flow_high": np.nan, "decision": ""}
            plain = cell.split(" + flow")[0] + " only"
            if " + flow" in cell and plain in members:
                timed = sweeps.regime(pts, members[plain]) or (None, None)
                ha, la = sweeps.of(pts, timed[0])
                hb, lb = sweeps.of(members[plain], timed[1])
                iv = timed_speedup_interval(ha, la, hb, lb, sweeps.cells, matched, n_boot=n_boot, seed=seed)
                rec.update(flow_speedup=iv.estimate, flow_low=iv.low, flow_high=iv.high, decision=decide_speedup(iv))
            rows.append(rec)
    return pd.DataFrame(rows, columns=cols)
