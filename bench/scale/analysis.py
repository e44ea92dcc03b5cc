"""What a scaling run's points say: operating points per method and size, growth exponents
(cost ~ N^a, least squares on log-log), FlowHash's speedup over each rival, and an extrapolation
to sizes this machine cannot hold (marked as such)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.measure.operating_points import REFERENCE, best_under_budget, cheapest_reaching, highest_rate, speedup

MATCH_POINTS = 0.01  # "matched": within 1 point of exhaustive's exact hit rate at the same N
EXTRAPOLATE_TO = (10_000_000, 100_000_000)
KEEP = ["method", "label", "query_params", "n_db", "exact", "time", "near", "track", "latency_mean_ms",
        "latency_p50_ms", "latency_p99_ms", "candidates_mean", "candidates_frac", "build_s", "fit_s",
        "index_bytes", "peak_memory_bytes", "real_distractor_segments", "synthetic_distractor_segments"]


def finished(points: pd.DataFrame) -> pd.DataFrame:
    """The points of configurations that ran (not those recorded as over their build budget)."""
    return points[points["status"] == "ok"] if "status" in points else points


def reference_hits(points: pd.DataFrame, level: str = "exact") -> pd.Series:
    """Exhaustive search's hit rate at each size (index: n_db)."""
    ref = finished(points)
    ref = ref[ref["method"] == REFERENCE]
    return ref.groupby("n_db")[level].max()


def common_target(points: pd.DataFrame, subject: str = "flowhash") -> float:
    """The highest exact hit rate ``subject`` reaches at every size (NaN without it): the level of
    the ``target`` operating point, where methods that cannot match exhaustive search still compare."""
    pts = finished(points)
    best = pts[pts["method"] == subject].groupby("n_db")["exact"].max()
    return float(best.min()) if len(best) else float("nan")


def operating_points(points: pd.DataFrame, budget_ms: float, by: str = "method",
                     target: float | None = None) -> pd.DataFrame:
    """For each method (``by="method"``, over all its configurations) or each configuration
    (``by="label"``) and size, operating points over its query parameters: ``matched`` (the
    fastest point within 1 point of exhaustive's exact hit rate; its best point, marked not
    reached, when it never gets there), ``budget`` (the highest exact hit rate with mean latency
    under ``budget_ms``) and, with ``target``, ``target`` (the fastest point reaching that exact
    hit rate)."""
    pts = finished(points)
    ref = reference_hits(pts)
    rows = []
    for (key, n), g in pts.groupby([by, "n_db"], sort=True):
        keep = [c for c in KEEP if c in g.columns]
        unreached = {"method": g["method"].iloc[0], by: key, "n_db": n, "reached": False}
        matched = cheapest_reaching(g, ref.get(n, np.nan) - MATCH_POINTS)
        rows.append({**matched[keep].to_dict(), "point": "matched", "reached": True} if matched is not None
                    else {**highest_rate(g)[keep].to_dict(), "point": "matched", "reached": False})
        budget = best_under_budget(g, budget_ms)
        rows.append({**budget[keep].to_dict(), "point": "budget", "reached": True} if budget is not None
                    else {**unreached, "point": "budget"})
        if target is not None and np.isfinite(target):
            hit = cheapest_reaching(g, target)
            rows.append({**hit[keep].to_dict(), "point": "target", "reached": True, "target": target}
                        if hit is not None else {**unreached, "point": "target", "target": target})
    out = pd.DataFrame(rows)
    out["reference_exact"] = out["n_db"].map(ref)
    return out


def growth_exponent(n: np.ndarray, cost: np.ndarray) -> float:
    """``a`` of cost ~ N^a, by least squares on log-log (NaN with fewer than 2 usable sizes)."""
    n, cost = np.asarray(n, dtype=float), np.asarray(cost, dtype=float)
    ok = np.isfinite(cost) & (cost > 0) & np.isfinite(n) & (n > 0)
    if ok.sum() < 2 or len(set(n[ok])) < 2:
        return float("nan")
    return float(np.polyfit(np.log(n[ok]), np.log(cost[ok]), 1)[0])


def growth_table(ops: pd.DataFrame, point: str = "matched") -> pd.DataFrame:
    """Per method, the exponent of each cost at the ``point`` operating point, and where it was measured."""
    rows = []
    matched = ops[(ops["point"] == point) & ops["reached"]]
    for method, g in matched.groupby("method", sort=True):
        g = g.sort_values("n_db")
        rows.append({"method": method, "point": point, "sizes": len(g), "n_min": int(g["n_db"].min()),
                     "n_max": int(g["n_db"].max()),
                     **{f"a_{c}": growth_exponent(g["n_db"], g[c])
                        for c in ("latency_mean_ms", "candidates_mean", "build_s", "index_bytes", "peak_memory_bytes")
                        if c in g}})
    return pd.DataFrame(rows)


def speedups(points: pd.DataFrame, subject: str = "flowhash", level: str = "exact") -> pd.DataFrame:
    """``subject``'s speedup over each other method at each size: the rival's mean latency over the
    subject's at the highest hit rate both reach (each one's Pareto curve over all its configurations)."""
    pts = finished(points)
    rows = []
    for n, g in pts.groupby("n_db", sort=True):
        a = g[g["method"] == subject]
        if not len(a):
            continue
        for rival, b in g[g["method"] != subject].groupby("method", sort=True):
            s = speedup(a, b, level, "latency_mean_ms")
            c = speedup(a, b, level, "candidates_mean", target=s["hit_rate"])
            rows.append({"n_db": n, "rival": rival, "hit_rate": s["hit_rate"], "subject_ms": s["cost_a"],
                         "rival_ms": s["cost_b"], "speedup": s["speedup"], "candidate_ratio": c["speedup"]})
    return pd.DataFrame(rows)


def extrapolation(ops: pd.DataFrame, growth: pd.DataFrame, sizes: tuple[int, ...] = EXTRAPOLATE_TO,
                  point: str = "matched") -> pd.DataFrame:
    """What each method would cost at ``sizes`` from its largest measured size at the ``point``
    operating point (``growth`` made at the same point): memory and index bytes per item held
    constant, build and latency grown by their fitted exponents. Extrapolated, not measured."""
    rows = []
    matched = ops[(ops["point"] == point) & ops["reached"]]
    for method, g in matched.groupby("method", sort=True):
        last = g.sort_values("n_db").iloc[-1]
        exps = growth.set_index("method").loc[method] if method in set(growth["method"]) else pd.Series(dtype=float)
        n0 = float(last["n_db"])
        a_build, a_latency = (float(exps.get(c, np.nan)) for c in ("a_build_s", "a_latency_mean_ms"))
        for n in sizes:
            r = n / n0
            rows.append({"method": method, "point": point, "n_db": n, "from_n_db": int(n0), "extrapolated": True,
                         "index_gb": float(last["index_bytes"]) * r / 1e9,
                         "peak_memory_gb": float(last.get("peak_memory_bytes", np.nan)) * r / 1e9,
                         "build_s": float(last["build_s"]) * r ** (a_build if np.isfinite(a_build) else 1.0),
                         "latency_mean_ms": float(last["latency_mean_ms"])
                         * r ** (a_latency if np.isfinite(a_latency) else 1.0)})
    return pd.DataFrame(rows)


def time_spent(points: pd.DataFrame, retime_s: dict) -> pd.DataFrame:
    """Where a scaling run's sweep spent its time, per size (seconds): fitting (once per
    configuration, counted at the first size), building, the accuracy passes, the sweep's latency
    timing and the interleaved re-timing (``retime_s``: size -> seconds); NaN where the run
    recorded none (parts from before the accuracy and timing seconds were kept)."""
    pts = finished(points)
    configs = pts.drop_duplicates(["label", "n_db"])
    first = configs.sort_values("n_db").drop_duplicates("label")
    rows = []
    for n, at in pts.groupby("n_db"):
        rows.append({"n_db": int(n), "fit_s": float(first.loc[first["n_db"] == n, "fit_s"].sum()),
                     "build_s": float(configs.loc[configs["n_db"] == n, "build_s"].sum()),
                     "accuracy_s": float(at["accuracy_s"].sum(min_count=1)) if "accuracy_s" in at else np.nan,
                     "timing_s": float(at["timing_s"].sum(min_count=1)) if "timing_s" in at else np.nan,
                     "retime_s": float(retime_s.get(str(int(n)), retime_s.get(int(n), np.nan)))})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["total_s"] = frame[["fit_s", "build_s", "accuracy_s", "timing_s", "retime_s"]].sum(axis=1, min_count=1)
    return frame
