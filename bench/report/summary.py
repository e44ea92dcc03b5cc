"""The short text summary printed at the end of ``bench run``."""
from __future__ import annotations

import json

import pandas as pd

from bench.measure.operating_points import speedup

from .tables import budget_operating_points, end_to_end_cost, latency_budget, latency_cost, queries_text

FOCUS = "flowhash"


def _params(p: str) -> str:
    d = json.loads(p)
    return ",".join(f"{k}={v}" for k, v in d.items()) or "-"


def method_table(ops: pd.DataFrame) -> pd.DataFrame:
    """One line per method at its operating point."""
    table = pd.DataFrame({
        "method": ops["method"], "build": ops["build_params"].map(_params), "query": ops["query_params"].map(_params),
        "exact%": 100 * ops["exact"], "near%": 100 * ops["near"], "track%": 100 * ops["track"],
        "seg_exact%": 100 * ops["seg_exact"],
        "lat_ms": ops["latency_mean_ms"], "p99_ms": ops["latency_p99_ms"], "qps": ops["qps"],
        "cand": ops["candidates_mean"], "cand%db": 100 * ops["candidates_frac"],
    })
    if "recall10" in ops:  # recall@10 against exact search (methods that search the embeddings)
        table["recall@10"] = ops["recall10"]
    if "balance_expected_vs_random" in ops:
        table["E[b]/rand"] = ops["balance_expected_vs_random"]
        table["H/K"] = ops["balance_normalised_entropy"]
    return table.round(2).reset_index(drop=True)


def condition_table(results: pd.DataFrame, ops: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Exact hit rate (%) of each method's operating point, by the given condition columns."""
    keys = set(zip(ops["label"], ops["query_params"]))
    sel = results[[k in keys for k in zip(results["label"], results["query_params"])]]
    weighted = sel.assign(hits=sel["exact"] * sel["n_queries"])
    agg = weighted.groupby(["method", *by], sort=False)[["hits", "n_queries"]].sum()
    rate = (100 * agg["hits"] / agg["n_queries"]).unstack("method")
    return rate[[m for m in ops["method"] if m in rate.columns]].round(1)


def speedups(points: pd.DataFrame, focus: str = FOCUS) -> list[str]:
    """Lines: the focus method's speedup over every other method at matched exact hit rate."""
    if focus not in set(points["method"]):
        return []
    a = points[points["method"] == focus]
    lines = []
    for other, b in points[points["method"] != focus].groupby("method", sort=False):
        cost = latency_cost(points, other)
        lat = speedup(a, b, "exact", cost)
        cand = speedup(a, b, "exact", "candidates_mean")
        what = "end-to-end latency" if end_to_end_cost(cost) else "latency"
        lines.append(f"{focus} over {other} at {100 * lat['hit_rate']:.1f}% exact: {lat['speedup']:.2f}x in mean "
                     f"{what} ({other} {lat['cost_b']:.3f} ms, {focus} {lat['cost_a']:.3f} ms), "
                     f"{cand['speedup']:.2f}x in candidates ({other} {cand['cost_b']:.0f}, "
                     f"{focus} {cand['cost_a']:.0f})")
    return lines


def decided_lines(points: pd.DataFrame, outcomes: pd.DataFrame, seed: int = 0) -> list[str]:
    """Lines: the focus method's decided speedup over every other method, at fixed shares of
    exhaustive search's exact rate (``tables.decided_speedups``) and of its own best
    (``tables.decided_at_focus_best``)."""
    from .run_report import decided_ratio
    from .tables import decided_at_focus_best, decided_speedups

    def line(r: pd.Series, of: str) -> str:
        ratio = decided_ratio(r)
        return (f"{FOCUS} over {r['other']} at {100 * r['target']:.1f}% exact ({100 * r['share']:.0f}% of {of}): "
                f"{ratio}{' in mean latency' if '[' in ratio else ''}; decision: {r['decision']}")

    return ([line(r, "exhaustive") for _, r in decided_speedups(outcomes, points, seed=seed).iterrows()]
            + [line(r, f"{FOCUS}'s best") for _, r in decided_at_focus_best(outcomes, points, seed=seed).iterrows()])


def format_summary(results: pd.DataFrame, points: pd.DataFrame, info: dict,
                   outcomes: pd.DataFrame | None = None) -> str:
    """The whole summary as text; with ``outcomes`` (per-query latencies), the decided speedups too."""
    budget, why = latency_budget(points)
    ops = budget_operating_points(points, budget)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        parts = [
            f"run {info['run_id']}: {queries_text(info['queryset'])} "
            f"(query set {info['queryset']['content_hash'][:12]}), "
            f"DB {info['db']['segments']} segments of {info['db']['tracks']} tracks{_distractors(info['db'])}, "
            f"encoder {info['encoder']['name']} "
            f"({info['encoder']['sha256'][:12]}, {_encoder_ms(info['encoder']['ms_per_segment'])}), "
            f"{info['threads']} thread(s)",
            f"\nEach method at its operating point (best_under_budget, as in report.md: its highest exact hit rate "
            f"with {why}; a method with no point within it at its cheapest point):",
            method_table(ops).to_string(index=False),
            "\nTop-1 exact hit rate (%) by duration and SNR (all reverb conditions):",
            condition_table(results, ops, ["duration_s", "snr"]).to_string(),
            "\nTop-1 exact hit rate (%) by reverb (all durations and SNRs):",
            condition_table(results, ops, ["reverb"]).to_string(),
        ]
    lines = speedups(points)
    if lines:
        parts += ["\nSpeedup at matched exact hit rate (Pareto curves over each method's sweep):", *lines]
    if outcomes is not None and "latency_ms" in outcomes:
        decided = decided_lines(points, outcomes, int(info.get("seed", 0) or 0))
        if decided:
            parts += ["\nDecided (95% interval with the timing inside, at fixed shares of exhaustive search's exact "
                      f"rate and of {FOCUS}'s own best; faster > 1.1x, slower < 1/1.1x, equivalent within 10%, "
                      "else undetermined):", *decided]
    return "\n".join(parts)


def _distractors(db: dict) -> str:
    n = int(db.get("distractor_segments", 0) or 0)
    return f" ({n} of them synthetic distractors)" if n else ""


def _encoder_ms(ms: float) -> str:
    """The encoder's time per segment, or why there is none (precomputed vectors run no encoder)."""
    return "encoder time not measured" if ms != ms else f"{ms:.2f} ms/segment"
