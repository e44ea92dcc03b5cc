"""A run's report: ``report.md`` and a self-contained ``report.html`` with figures (PNG + SVG).

Built only from what the run stored (``bench.report.data``); the same results give the same
files byte for byte except the one 'Generated at' line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bench import __version__
from bench.measure.open_set import FPR_TARGETS, fpr_key, roc_points
from bench.measure.operating_points import RECALL_TARGET, RECALL_TARGETS, TARGET_SHARES
from bench.measure.robustness import RETAINED, axis_of, robustness_table
from bench.run.retime import RETIMED_MS
from bench.run.store import RESULTS_FORMAT, now

from . import figures
from .data import RunData, load_run
from .render import Bullets, Document, FigureBlock, Heading, Para, Pre, Table, num, pct, write_document
from .tables import (
    FOCUS,
    REFERENCE,
    ablation_table,
    ann_table,
    balance_table,
    budget_operating_points,
    build_table,
    condition_rates,
    decided_recall_speedups,
    decided_speedups,
    end_to_end_cost,
    factorial_ablation,
    latency_budget,
    method_sort_key,
    paired_table,
    params_text,
    queries_text,
    reverb_labels,
    reverb_title,
    shown_stages,
    snr_labels,
    speedup_intervals,
    speedup_table,
    stage_table,
    widest_half_width,
)

FIGURES = "figures"
STEM = "report"
RUN_FILES = {
    "run.json": "config, environment, seeds, hashes",
    "results.parquet": "one row per method configuration × query parameters × condition",
    "points.parquet": "one row per sweep point over all queries (the Pareto curves)",
    "outcomes.parquet": "one row per query per sweep point",
    "buckets.parquet": "bucket-occupancy histograms (label, size, n_buckets)",
    "open_set.parquet": "an open-set run's absent and calibration queries, one row per query per sweep point",
}

DEFINITIONS = [
    "**Top-1 hit rate** (sequence level: offset-aligned voting over the per-segment top-k, as in NAFP): **exact** = "
    "right track and the DB segment nearest the true start; **near** = within ±1 segment; **track** = right track.",
    "**Latency**: one `search` call per query (all its segments) from embeddings, `time.perf_counter`, after "
    "warm-up, median of repeats, at the run's fixed thread count; encoder time is reported separately. "
    "**End-to-end latency**: that search time plus the front end of the query's segments (encoder, or spectral "
    "images; nothing for audfprint, whose analysis of the query audio is inside its search).",
    "**Candidates**: DB vectors whose full embedding was scored per query (deterministic for a seed); for "
    "audfprint, the DB segments holding a landmark the query's landmarks retrieved.",
    "**Speedup** of A over B: B's cost / A's cost at the highest exact hit rate both reach, each at its cheapest "
    "sweep point reaching it (mean latency; candidates for the deterministic version).",
    "**Bucket balance**: normalised entropy H/K of the occupancy, fraction of non-empty buckets, max/mean load, "
    "CV, and the expected bucket size a data-distributed query sees, sum(c²)/N, against a random hash's "
    "1 + (N-1)/2^K for the same N and K (and the perfect-balance floor, about max(1, N/2^K)).",
    "Full definitions: docs/protocol.md, 'Metrics'.",
]


@dataclass(frozen=True)
class ReportFiles:
    """What a report wrote."""

    markdown: Path
    html: Path
    figures: list[Path]


def _figure(paths: list[Path], root: Path, caption: str) -> list:
    if not paths:
        return []
    png, svg = (p.relative_to(root).as_posix() for p in paths)
    return [FigureBlock(png=png, svg=svg, caption=caption)]


def pct_ci(row: pd.Series, level: str) -> str:
    """A hit rate in percent with its 95% interval, ``55.1 [52.3, 57.9]`` (the rate alone when the
    run stored no interval)."""
    lo, hi = row.get(f"{level}_lo", float("nan")), row.get(f"{level}_hi", float("nan"))
    if lo is None or not math.isfinite(float(lo)):
        return pct(row[level])
    return f"{pct(row[level])} [{pct(lo)}, {pct(hi)}]"


def latency_ci(row: pd.Series) -> str:
    """Mean latency in ms with the bootstrap interval of the mean, ``0.262 [0.251, 0.274]`` (the mean
    alone when the run stored no interval)."""
    lo, hi = row.get("latency_mean_lo_ms", float("nan")), row.get("latency_mean_hi_ms", float("nan"))
    if lo is None or not math.isfinite(float(lo)):
        return num(row["latency_mean_ms"], ".3f")
    return f"{num(row['latency_mean_ms'], '.3f')} [{num(lo, '.3f')}, {num(hi, '.3f')}]"


def operating_point_table(ops: pd.DataFrame, budget_text: str) -> Table:
    """One row per method at its best point within the latency budget."""
    exact = [pct_ci(r, "exact") for _, r in ops.iterrows()]
    mean = [latency_ci(r) for _, r in ops.iterrows()]
    rows = [[m, params_text(b), params_text(q), "yes" if ok else "no (fastest point)", e, pct(n), pct(t),
             lat, num(iqr, ".3f"), num(p99, ".3f"), num(e2e, ".3f"), num(c, ".1f"), num(100 * f, ".2f"),
             num(qps, ".0f")]
            for m, b, q, ok, e, n, t, lat, iqr, p99, e2e, c, f, qps in zip(
                ops["method"], ops["build_params"], ops["query_params"], ops["within_budget"], exact,
                ops["near"], ops["track"], mean, ops.get("latency_iqr_ms", ops["latency_mean_ms"] * np.nan),
                ops["latency_p99_ms"],
                ops.get("e2e_mean_ms", ops["latency_mean_ms"] * np.nan), ops["candidates_mean"],
                ops["candidates_frac"], ops["qps"])]
    caption = (f"Operating points under the latency budget ({budget_text}): each method's sweep point (over all "
               f"its build configurations) with the highest top-1 exact hit rate within the budget. A method with "
               f"no point within the budget is shown at its fastest point ('no'). Exact hit rates carry their 95% "
               f"interval (a bootstrap of the queries stratified by condition cell, seeded), mean latencies the "
               f"bootstrap interval of the mean over the timed queries, and IQR is the interquartile range of the "
               f"per-query latencies (each the median of its repeats), where the run stored them.")
    return Table(["method", "build", "query", "within budget", "exact %", "near %", "track %", "mean latency ms",
                  "IQR ms", "p99 ms", "end-to-end ms", "candidates/query", "candidates % of DB", "QPS (batch)"],
                 rows, caption, text_columns=4)


def paired_block(table: pd.DataFrame) -> Table:
    """The paired differences of each method's operating point against one method's."""
    rows = [[m, f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]", str(a), str(b), f"{p:.2g}",
             "yes" if sig else "no (interval contains 0)"]
            for m, d, lo, hi, a, b, p, sig in zip(table["method"], table["difference"], table["low"], table["high"],
                                                  table["only_method"], table["only_against"], table["mcnemar_p"],
                                                  table["significant"])]
    against = table["against"].iloc[0]
    caption = (f"Each method's operating point minus {against}'s, query by query (all methods answer the same "
               f"queries): the difference in top-1 exact hit rate (points) with its 95% paired bootstrap interval "
               f"(query pairs resampled within each condition cell, seeded), the queries only it found and only "
               f"{against} found, and the exact McNemar test's p-value. A difference is marked significant when its "
               f"interval leaves out 0.")
    return Table(["method", f"exact − {against}, points", "only method", f"only {against}", "McNemar p",
                  "significant"], rows, caption, text_columns=1)


def condition_table(results: pd.DataFrame, ops: pd.DataFrame, by: list[str], caption: str) -> Table:
    """Exact / near hit rate (%) per condition (rows) and method (columns) at the operating points."""
    rates = condition_rates(results, ops, by)
    methods = list(ops["method"])
    wide = {m: rates[rates["method"] == m].set_index(by) for m in methods}
    keys = rates[by].drop_duplicates().itertuples(index=False, name=None)
    names = {"duration_s": "duration s", "snr": "SNR dB", "reverb": "reverb (RT60 s)"}
    widest = widest_half_width(rates, by)
    half = dict(zip(widest.index if len(by) > 1 else [(k,) for k in widest.index], widest))
    rows = []
    for key in keys:
        first = wide[methods[0]]
        row = [f"{v:g}" if isinstance(v, float) else str(v) for v in key]
        row.append(str(int(first.loc[key, "n_queries"])) if key in first.index else "-")
        for m in methods:
            w = wide[m]
            row.append(f"{pct(w.loc[key, 'exact'])} / {pct(w.loc[key, 'near'])}" if key in w.index else "-")
        row.insert(len(by) + 1, f"±{100 * half[key]:.1f}" if key in half else "-")
        rows.append(row)
    return Table([*(names[b] for b in by), "queries", "95% CI ± (widest)", *(f"{m} exact / near %" for m in methods)],
                 rows, caption + " The ± column is the widest half-width of the row's exact rates' 95% Wilson "
                 "intervals: differences within a row smaller than about that are not established by this cell alone "
                 "(the paired tables above test differences on all queries).", text_columns=len(by))


def ratio_ci(value: float, low: float, high: float) -> str:
    """A ratio with its interval, ``1.13 [0.95, 1.30]`` (the ratio alone without one)."""
    if low is None or not math.isfinite(float(low)):
        return num(value, ".2f")
    return f"{num(value, '.2f')} [{num(low, '.2f')}, {num(high, '.2f')}]"


def speedup_block(table: pd.DataFrame) -> Table:
    """The numbers behind the speedup figure, with the speedups' intervals where computed."""
    nan = pd.Series(float("nan"), index=table.index)
    e2e = table.get("lat_cost", pd.Series("", index=table.index)).map(end_to_end_cost)
    rows = [[o + (" (end to end)" if end_to_end else ""), pct(lh), num(lo, ".3f"), num(lf, ".3f"),
             ratio_ci(ls, lsl, lsh), pct(ch), num(co, ".1f"), num(cf, ".1f"), ratio_ci(cs, csl, csh)]
            for o, end_to_end, lh, lf, lo, ls, lsl, lsh, ch, cf, co, cs, csl, csh in zip(
                table["other"], e2e, table["lat_hit_rate"], table["lat_focus_ms"], table["lat_other_ms"],
                table["lat_speedup"], table.get("lat_speedup_lo", nan), table.get("lat_speedup_hi", nan),
                table["cand_hit_rate"], table["cand_focus"], table["cand_other"], table["cand_speedup"],
                table.get("cand_speedup_lo", nan), table.get("cand_speedup_hi", nan))]
    return Table(["over", "matched exact %", "other ms", f"{FOCUS} ms", "latency speedup ×", "matched exact %",
                  "other candidates", f"{FOCUS} candidates", "candidates speedup ×"], rows,
                 f"Speedup of {FOCUS} at matched top-1 exact hit rate, read off each method's sweep "
                 f"(bench/measure/operating_points.py): the highest exact hit rate both reach, each at its cheapest "
                 f"point reaching it. "
                 f"In brackets, a 95% interval: the whole procedure bootstrapped over the queries (stratified by "
                 f"condition cell, seeded; in latency each point's mean latency is held, in candidates they are "
                 f"resampled too). Over a method that searches raw audio (\"end to end\") latency is end to end on "
                 f"both sides, its own analysis of the query against {FOCUS}'s encoder plus search.")


def open_ratio(value: float, low: float, high: float) -> str:
    """A ratio and its interval whose ends may be 0 or infinite: ``2.06 [0.00, ∞]``."""
    def text(x: float) -> str:
        return "∞" if x == math.inf else num(x, ".2f")
    return f"{text(value)} [{text(low)}, {text(high)}]"


def decided_ratio(row: pd.Series) -> str:
    """A decided speedup's ratio with its interval, or that the other method misses the target."""
    if not math.isfinite(float(row["other_ms"])):
        return f"misses {pct(row['target'])}%"
    if not math.isfinite(float(row["focus_ms"])):
        return f"{FOCUS} misses {pct(row['target'])}%"
    return open_ratio(row["speedup"], row["low"], row["high"])


def decided_cells(row: pd.Series) -> list[str]:
    """A decided speedup's cells: the two interpolated latencies, the ratio with its interval, the
    decision (``tables.decided_speedups``)."""
    return [num(row["focus_ms"], ".3f"), num(row["other_ms"], ".3f"), decided_ratio(row), row["decision"]]


def target_label(row: pd.Series) -> str:
    """A decided speedup's target: '58.8% (90% of exhaustive)'."""
    return f"{pct(row['target'])}% ({100 * row['share']:.0f}% of exhaustive)"


def decided_block(table: pd.DataFrame, retimed: bool) -> Table:
    """The decided speedups at the fixed targets (``tables.decided_speedups``); ``retimed``: whether
    the run's compared points were re-timed interleaved (``bench.run.retime``)."""
    rows = [[target_label(r), r["other"], *decided_cells(r)] for _, r in table.iterrows()]
    timing = ("the compared points were re-timed together in interleaved rounds (A B, B A, ...) after the sweep, "
              "so the machine's drift falls on both methods alike" if retimed else
              "timing drift between configurations is not: this run's points were timed one configuration after "
              "another, not re-timed interleaved")
    return Table(["target", "over", f"{FOCUS} ms", "other ms", "latency speedup × [95% CI]", "decision"], rows,
                 f"Speedup of {FOCUS} at fixed targets ({', '.join(f'{100 * s:.0f}%' for s in TARGET_SHARES)} of "
                 f"exhaustive search's exact rate), each method's mean latency interpolated along its sweep (log "
                 f"latency linear in the rate between the points around the target). The interval resamples the "
                 f"queries (stratified by condition cell) and recomputes every point's hit rate and its mean latency "
                 f"over the draw's timed queries, so query-to-query timing variation is inside it; {timing}. "
                 f"Decision: faster above 1.1, slower below 1/1.1, equivalent within 10% inside both, "
                 f"undetermined across a bound. A draw in which a method misses the target counts as 0 or "
                 f"infinity. Methods that search raw audio are compared end to end above.", text_columns=2)


def ablation_block(table: pd.DataFrame) -> Table:
    """The ablation rows at the matched hit rate: candidates and latency, and their ratio to the first row."""
    first = table["variant"].iloc[0]
    rows = [[v, pct(h), num(c, ".4g"), num(cr, ".2f"), cp, num(lat, ".3g"), num(lr, ".2f"), lp]
            for v, h, c, cr, cp, lat, lr, lp in zip(
                table["variant"], table["matched_exact"], table["candidates"], table["candidates_vs_first"],
                table["candidates_point"], table["latency_ms"], table["latency_vs_first"], table["latency_point"])]
    return Table(["variant", "matched exact %", "candidates", "× fewer than first", "at (candidates)",
                  "mean latency ms", "× faster than first", "at (latency)"], rows,
                 f"Each ingredient at the highest top-1 exact hit rate every row reaches, at its cheapest sweep point "
                 f"(over all its configurations) by candidates and by latency; ratios against the first row ({first}).",
                 text_columns=1)


def factorial_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The factorial ablation's header and rows (``tables.factorial_ablation``): one row per (K,
    tau_db, cell)."""
    def interval(r: pd.Series) -> str:
        if not math.isfinite(r["flow_speedup"]):
            return "-"
        return f"{r['flow_speedup']:.2f} [{r['flow_low']:.2f}, {r['flow_high']:.2f}]"

    rows = [[f"{int(r['K'])}", f"{r['tau_db']:g}", r["cell"],
             f"{pct(r['reached'])} [{pct(r['reached_lo'])}, {pct(r['reached_hi'])}]", pct(r["matched"]),
             num(r["candidates"], ",.0f"), num(r["latency_ms"], ".3g"), interval(r), r["decision"] or "-"]
            for _, r in table.iterrows()]
    return (["K", "tau_db", "cell", "highest exact % [95% CI]", "matched exact %", "candidates", "mean latency ms",
             "flow's speedup over the same projection [95% CI]", "decision"], rows)


FACTORIAL_CAPTION = (
    "Projection (PCA whitening or the learned head) × flow (none or trained), like with like: each (K, tau_db) row "
    "group holds only configurations of that K and DB multi-insertion, over the same query sweep, with ITQ and "
    "lsh-directed at the same K beside the tau_db 0 group. Candidates and latency are interpolated along each cell's "
    "sweep at the highest rate every cell of the group reaches; a flow cell's speedup is the same projection without "
    "the flow over it at that rate, with the decided speedups' interval and decision.")


def factorial_block(table: pd.DataFrame) -> Table:
    """The factorial ablation (``tables.factorial_ablation``) as a report table."""
    header, rows = factorial_cells(table)
    return Table(header, rows, FACTORIAL_CAPTION, text_columns=3)


def latent_block(training: dict) -> Table:
    """Latent diagnostics per learned-hash configuration (``methods.common.latent_diagnostics``)."""
    rows = []
    for label, rec in sorted(training.items()):
        lat = rec.get("latent")
        if not lat:
            continue
        ones = lat["ones_share"]
        unc = lat["uncertain"]
        tau_text = "; ".join(f"{t}: {u['mean_bits']:.2f} ({u['base_mean_bits']:.2f})" for t, u in unc.items())
        cap_text = "; ".join(f"{t}: {100 * u['capped_share']:.2f}%" for t, u in unc.items())
        stopped = (rec.get("training") or {}).get("stopped", "-")
        rows.append([label, f"{min(ones):.3f}..{max(ones):.3f}", tau_text, f"{cap_text} (cap {lat['cap']} bits)",
                     num(lat["expected_over_random"], ".2f"), str(stopped)])
    return Table(["configuration", "share of ones per bit (min..max)",
                  "uncertain bits per DB row at tau (the base's prediction)", "rows over the cap at tau",
                  "expected / random bucket size", "training stopped by"], rows,
                 "The latent of each flow and projection over the DB rows: bits are z > 0, a bit is uncertain at "
                 "tau when |z| <= tau (threshold probing and multi-insertion expand it both ways), the base's "
                 "prediction is K P(|z| <= tau) under the configuration's base; rows with more uncertain bits "
                 "than the cap are truncated to their most uncertain ones.", text_columns=3)


def balance_block(table: pd.DataFrame) -> Table:
    """Bucket balance per configuration with buckets."""
    rows = [[m, lb, f"{int(b)}", num(math.log2(b), ".3g"), f"{int(n)}", num(h, ".3f"), num(100 * ne, ".2f"),
             num(mm, ".1f"), num(cv, ".2f"), num(e, ".3g"), num(rb, ".3g"), num(fb, ".3g"), num(r, ".2f"),
             num(f, ".2f")]
            for m, lb, b, n, h, ne, mm, cv, e, rb, fb, r, f in zip(
                table["method"], table["label"], table["balance_n_buckets_total"], table["balance_n"],
                table["balance_normalised_entropy"], table["balance_nonempty_fraction"],
                table["balance_max_mean_ratio"], table["balance_cv"], table["balance_expected_bucket_size"],
                table["balance_random_bucket_size"], table["balance_floor_bucket_size"],
                table["balance_expected_vs_random"], table["balance_expected_vs_floor"])]
    return Table(["method", "configuration", "buckets", "K bits", "N items", "entropy H/K", "non-empty %",
                  "max/mean", "CV", "expected size sum(c²)/N", "random hash 1+(N-1)/B", "perfect balance",
                  "expected/random", "expected/perfect"], rows,
                 "Bucket balance (hash table 0 for hashing methods; IVF lists count as buckets). The expected "
                 "bucket size a data-distributed query sees, against a random (uniform, independent) hash of the "
                 "same N items into the same B buckets (expected/random 1 = as balanced as random hashing; below 1 "
                 "is better) and against perfect balance (every bucket floor or ceil of N/B).", text_columns=2)


def build_block(table: pd.DataFrame) -> Table:
    """Fit/JIT/build time and index size per configuration."""
    rows = [[m, lb, num(f, ".3g"), num(j, ".3g"), num(b, ".3g"), num(mb, ".3g"), num(bpi, ".1f")]
            for m, lb, f, j, b, mb, bpi in zip(table["method"], table["label"], table["fit_s"], table["jit_s"],
                                               table["build_s"], table["index_mb"], table["bytes_per_item"])]
    return Table(["method", "configuration", "fit s", "JIT s", "build s", "index MB", "bytes per DB item"], rows,
                 "Build cost: training (fit), compiling the search kernels (JIT: numba, once per process and "
                 "then loaded from its disk cache; '-' in runs before it was recorded) and index build seconds, "
                 "serialised index size.", text_columns=2)


def stage_block(table: pd.DataFrame) -> Table:
    """Per-stage mean ms per query at each method's operating point."""
    shown = shown_stages(table)
    rows = [[m, params_text(b), params_text(q), *[num(r[f"stage_{s}_ms"], ".3g") for s in shown],
             num(r["stage_call_ms"], ".3g"), num(100 * r["stage_coverage"], ".0f"), num(r["latency_mean_ms"], ".3g")]
            for (_, r), m, b, q in zip(table.iterrows(), table["method"], table["build_params"], table["query_params"])]
    return Table(["method", "build", "query", *[f"{s} ms" for s in shown], "whole call ms", "stages % of call",
                  "latency ms (median of repeats)"], rows,
                 "Where a query's time goes, at each method's operating point: mean ms per query of each stage the "
                 "search marks (methods/stages.py), over the same timed calls as the latency. checks: the harness's "
                 "input checks in Method.search; hash: projection / flow / sign bits; probes: probe codes; gather: "
                 "bucket lookup and de-duplication; library: the faiss call; rerank: inner products with the "
                 "candidates; topk: selection; rest: whatever follows the method's last mark. The stages sum to "
                 "the whole call less the timer's own cost and the call into search.", text_columns=3)


def overhead_text(info: dict) -> str:
    """A sentence on the harness's overhead per timed query (run.json), against the fastest method."""
    cost = info.get("harness_overhead")
    if not cost:
        return "This run did not record the harness's overhead (runs before it was measured)."
    text = (f"Harness overhead, measured with a search that does no work on the same timed queries: "
            f"{1e3 * cost['call_ms']:.1f} µs per query, of which {1e3 * cost['checks_ms']:.1f} µs are "
            f"Method.search's input checks.")
    if "fastest_latency_mean_ms" in cost:
        text += (f" That is {100 * cost['fraction_of_fastest']:.1f}% of the fastest point's mean latency "
                 f"({cost['fastest_label']} at {params_text(cost['fastest_query_params'])}, "
                 f"{cost['fastest_latency_mean_ms']:.3g} ms).")
    return text


def environment_text(info: dict) -> str:
    """The run's environment block from run.json: versions, CPU, threads, commit, seeds, hashes."""
    env, cfg = info.get("environment", {}), info.get("config", {})
    git = env.get("git", {}) or {}
    enc, qs, corpus, db = (info.get(k, {}) or {} for k in ("encoder", "queryset", "corpus", "db"))
    timing = cfg.get("timing", {}) or {}
    queries = cfg.get("queries", {}) or {}
    dirty = " (work tree had uncommitted changes)" if git.get("dirty") else ""
    lines = [
        ("run id", info.get("run_id")),
        ("started / finished", f"{info.get('started', '-')} / {info.get('finished', '-')}"),
        ("results format", info.get("results_format")),
        ("git commit", f"{git.get('commit') or 'unknown'}{dirty}"),
        ("python", env.get("python")),
        ("platform", env.get("platform")),
        ("cpu", f"{env.get('cpu')} ({env.get('cpu_count')} logical CPUs)"),
        ("threads", f"{info.get('threads')} (torch, faiss and BLAS during search)"),
        ("timing", ", ".join(f"{k} {v}" for k, v in sorted(timing.items()))),
        ("seeds", f"run {info.get('seed')}, query set {queries.get('seed')}, synth corpus {cfg.get('synth_seed')}"),
        ("encoder", f"{enc.get('name')} sha256 {enc.get('sha256')}"),
        ("encoder time", f"{num(enc.get('ms_per_segment', float('nan')), '.3f')} ms per 1 s segment"),
        ("query set", f"content hash {qs.get('content_hash')}, {qs.get('queries')} queries"),
        ("query grid", f"durations {queries.get('durations')} s, SNRs {queries.get('snrs')} dB (null = clean), "
                       f"reverbs {queries.get('reverbs')} s RT60 (null = none), {queries.get('per_cell')} per cell"),
        ("corpus", f"{corpus.get('name')} identity hash {corpus.get('identity_hash')}"),
        ("database", f"{db.get('segments')} segments of {db.get('tracks')} tracks, splits {db.get('splits')}"),
        ("noise / rooms", f"{cfg.get('noise')} / {cfg.get('rooms')}"),
        ("train/test overlap", ", ".join(f"{k} {v}" for k, v in (info.get("split_overlap") or {}).items())
         + " (cross-split pairs sharing content or ids; must be 0)"),
        ("stage seconds", ", ".join(f"{k} {v:.0f}" for k, v in (info.get("stage_seconds") or {}).items())),
        ("top-k", cfg.get("k")),
    ]
    libs = env.get("libraries", {}) or {}
    lines += [("libraries", "")] + [(f"  {name}", version) for name, version in sorted(libs.items())]
    width = max(len(k) for k, _ in lines) + 2
    return "\n".join(f"{k:<{width}}{v}".rstrip() for k, v in lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(run: RunData) -> list:
    info = run.info
    enc, qs, db, corpus = (info.get(k, {}) or {} for k in ("encoder", "queryset", "db", "corpus"))
    counts = run.points.groupby("method")["label"].nunique()
    sweep = run.points.groupby("method").size()
    methods = ", ".join(f"{m} ({_plural(counts[m], 'configuration')}, {_plural(sweep[m], 'sweep point')})"
                        for m in run.methods)
    return [Para(f"Run `{run.run_id}` on corpus **{corpus.get('name', '?')}**: a database of {db.get('segments')} "
                 f"segments from {db.get('tracks')} tracks, {queries_text(qs)} (query set "
                 f"`{str(qs.get('content_hash', ''))[:12]}`), encoder `{enc.get('name')}` "
                 f"(`{str(enc.get('sha256', ''))[:12]}`, {num(enc.get('ms_per_segment', float('nan')), '.2f')} ms per "
                 f"segment, not included in search latency), {info.get('threads')} search thread(s)."),
            Para(f"Methods: {methods}.")]


def build_document(run: RunData, out_dir: Path, latency_budget_ms: float | None = None,
                   generated_at: str | None = None) -> tuple[Document, list[Path]]:
    """Draw the figures into ``out_dir``/figures and assemble the report; returns it and the figure paths."""
    fig_dir = out_dir / FIGURES
    budget, budget_text = latency_budget(run.points, latency_budget_ms)
    ops = budget_operating_points(run.points, budget)
    note = (f"operating points under mean latency ≤ {budget:.3g} ms" if math.isfinite(budget)
            else "best operating points, no latency budget")
    doc = Document(title=f"FlowHash bench report: {run.run_id}",
                   generated=f"{generated_at or now()} by flowhash-bench {__version__} from the stored results")
    drawn: list[Path] = []

    def fig(paths: list[Path], caption: str) -> list:
        drawn.extend(paths)
        return _figure(paths, out_dir, caption)

    doc.add(*_summary(run), Heading(1, "Definitions"), Bullets(DEFINITIONS))

    doc.add(Heading(1, "Operating points under a latency budget"), operating_point_table(ops, budget_text))
    off = ops[~ops["within_budget"]]
    if len(off):
        doc.add(Para("No sweep point within the budget: " + "; ".join(
            f"{m} (fastest {num(lat, '.3f')} ms)" for m, lat in zip(off["method"], off["latency_mean_ms"]))
            + ". Such a method's rows and lines below are at its fastest point."))

    if run.outcomes is not None:
        for against in dict.fromkeys((FOCUS, REFERENCE)):
            paired = paired_table(run.outcomes, ops, against, seed=int(run.info.get("seed", 0) or 0))
            if len(paired):
                doc.add(Heading(2, f"Paired differences against {against}"), paired_block(paired))

    doc.add(Heading(1, "Hit rate per condition"),
            condition_table(run.results, ops, ["duration_s", "snr"],
                            "Top-1 exact / near hit rate (%) by query duration and SNR (reverb conditions pooled), "
                            "each method at its operating point."),
            condition_table(run.results, ops, ["duration_s", "reverb"],
                            "Top-1 exact / near hit rate (%) by query duration and reverb (SNRs pooled), each "
                            "method at its operating point."))
    doc.add(*fig(figures.hit_rate_vs_snr(run.results, ops, fig_dir, note),
                 f"Top-1 hit rate vs SNR, one panel per query duration; exact solid, near dashed; each method at its "
                 f"operating point (table above). SNR order: {', '.join(snr_labels(run.results))}."))
    doc.add(*fig(figures.hit_rate_vs_duration(run.results, ops, fig_dir, note),
                 "Top-1 hit rate vs query duration, one panel per reverb condition ("
                 + ", ".join(reverb_title(r) for r in reverb_labels(run.results)) + "); exact solid, near dashed."))

    doc.add(*robustness_section(run, ops, fig, fig_dir))
    doc.add(*open_set_section(run, ops, fig, fig_dir))

    doc.add(Heading(1, "Accuracy vs cost (Pareto)"))
    doc.add(*fig(figures.pareto(run.points, fig_dir, "latency_mean_ms", budget),
                 "Top-1 exact hit rate vs mean search latency (log axis): each method's frontier over all its "
                 "build configurations and query points (the points no other point of the method beats on both); "
                 "the exhaustive reference as a star, its hit rate dotted; the latency budget dashed."))
    doc.add(*fig(figures.pareto(run.points, fig_dir, "latency_mean_ms", budget, per_config=True),
                 "The same, one line per build configuration (each configuration's query-parameter sweep)."))
    doc.add(*fig(figures.pareto(run.points, fig_dir, "e2e_mean_ms"),
                 "The same against mean end-to-end latency: search plus the front end of the query's segments "
                 "(the encoder for embedding methods, measured on one segment at a time at the run's threads; "
                 "audfprint's own analysis is inside its search), the footing on which neural methods and "
                 "landmark fingerprinting compare."))
    doc.add(*fig(figures.pareto(run.points, fig_dir, "candidates_mean"),
                 "The same against candidates scanned per query (deterministic for a seed)."))

    doc.add(*ann_section(run, fig, fig_dir))

    doc.add(Heading(1, f"Speedup of {FOCUS} at matched hit rate"))
    sp = speedup_table(run.points)
    if len(sp) and run.outcomes is not None and "candidates" in run.outcomes:
        sp = sp.merge(speedup_intervals(run.outcomes, run.points, seed=int(run.info.get("seed", 0) or 0)),
                      on="other", how="left")
    if sp.empty:
        doc.add(Para(f"{FOCUS} is not in this run: no speedup to report."))
    else:
        doc.add(*fig(figures.speedup_bars(sp, fig_dir),
                     f"{FOCUS}'s speedup over each method in mean latency (left) and candidates scanned (right), "
                     f"annotated with the matched top-1 exact hit rate; bars above 1× mean {FOCUS} is cheaper."),
                speedup_block(sp))
        if run.outcomes is not None and "latency_ms" in run.outcomes:
            doc.add(decided_block(decided_speedups(run.outcomes, run.points, seed=int(run.info.get("seed", 0) or 0)),
                                  RETIMED_MS in run.outcomes and run.outcomes[RETIMED_MS].notna().any()))

    doc.add(Heading(1, "Ablation: what the flow adds"))
    ab = ablation_table(run.points)
    if ab.empty:
        doc.add(Para("Fewer than two of the ablation's methods ran (lsh, lsh-directed, itq, pca-sign, flowhash with "
                     "each base): run them together, e.g. `--method lsh lsh-directed itq pca-sign flowhash`."))
    else:
        doc.add(*fig(figures.ablation_bars(ab, fig_dir),
                     "Candidates scanned and mean latency of each ingredient at the matched top-1 exact hit rate."),
                ablation_block(ab))

    doc.add(Heading(1, "Ablation: projection × flow, like with like"))
    fa = (factorial_ablation(run.outcomes, run.points, seed=int(run.info.get("seed", 0) or 0))
          if run.outcomes is not None and "latency_ms" in run.outcomes else pd.DataFrame())
    doc.add(factorial_block(fa) if len(fa) else Para(
        "No two cells of the factorial ablation at one K and tau_db in this run: run flowhash and pca-sign with "
        "`projection: pca` and `learned` at the same K and tau_db (configs/debian-music.yml)."))

    doc.add(Heading(1, "Training and latent diagnostics"))
    curves = figures.training_curves(run.training, fig_dir)
    if curves:
        doc.add(*fig(curves, "Training of each flow (NLL, agreement term and held-out loss per epoch) and of each "
                             "learned projection (hinge and held-out loss per epoch); the kept epoch marked."))
    hist = figures.latent_histograms(run.training, fig_dir)
    if hist:
        doc.add(*fig(hist, "Density of |z| over the DB rows' latents against the base's density of |z|, one panel "
                           "per configuration."))
    lb = latent_block(run.training)
    doc.add(lb if lb.rows else Para("No learned hash in this run recorded its latent (`training.json` is written by "
                                    "runs of this version)."))

    doc.add(Heading(1, "Bucket occupancy and balance"))
    occ = figures.bucket_occupancy(run.buckets, run.points, fig_dir)
    if occ:
        doc.add(*fig(occ, f"Distribution of bucket sizes (log-log: how many buckets hold each number of DB items) "
                          f"for {FOCUS} and LSH, one panel per K, with random (uniform, independent) hashing's "
                          f"expected curve "
                          f"(B · Binomial(N, 1/B)); empty buckets are counted in the table."))
    else:
        doc.add(Para(f"No bucket-occupancy histograms for {FOCUS} or LSH in this run (`buckets.parquet` is written by "
                     f"runs of this version; older runs stored only the balance summary below)."))
    bal = balance_table(run.points)
    doc.add(balance_block(bal) if len(bal) else Para("No method with buckets in this run."))

    doc.add(Heading(1, "Latency breakdown by stage"))
    st = stage_table(ops)
    if st.empty:
        doc.add(Para("No per-stage times in this run (runs before they were recorded)."))
    else:
        doc.add(*fig(figures.stage_bars(st, fig_dir),
                     "Mean time per query of each search stage at each method's operating point (stacked)."),
                stage_block(st))
    doc.add(Para(overhead_text(run.info)))

    doc.add(Heading(1, "Build cost"))
    bt = build_table(run.points)
    doc.add(*fig(figures.build_cost(bt, fig_dir),
                 "Fit (training) plus build time and serialised index size per method configuration."),
            build_block(bt))

    doc.add(Heading(1, "Environment"), Pre(environment_text(run.info)),
            Heading(1, "Files"),
            Bullets([f"`{name}`: {what}" for name, what in RUN_FILES.items() if (run.root / name).exists()]
                    + [f"`{FIGURES}/` (beside this report): every figure as PNG and SVG"]),
            Para(f"Rebuild with `python -m bench report {run.root}` (results format {RESULTS_FORMAT}); nothing is "
                 f"recomputed."))
    return doc, drawn


def _at_point(frame: pd.DataFrame, op: pd.Series) -> pd.DataFrame:
    """The rows of a per-query table at one operating point (label and query parameters)."""
    return frame[(frame["label"] == op["label"]) & (frame["query_params"] == op["query_params"])]


def robustness_cells(run: RunData, ops: pd.DataFrame,
                     level: str = "track") -> tuple[list[str], list[list[str]], dict[str, pd.DataFrame]]:
    """The robustness table's header and rows (each method at its operating point: its hit rate at
    ``level`` per transform with its interval and survival decision) and each method's robustness
    table; no rows for a run without a transform axis."""
    if run.outcomes is None or "transform" not in run.outcomes.columns:
        return [], [], {}
    seed = int(run.info.get("seed", 0) or 0)
    tables = {op["method"]: robustness_table(_at_point(run.outcomes, op), level, seed) for _, op in ops.iterrows()}
    methods = sorted(tables, key=method_sort_key)
    by_transform = {m: tables[m].set_index("transform") for m in methods}
    rows = []
    for transform in dict.fromkeys(t for table in tables.values() for t in table["transform"]):
        cells = []
        for m in methods:
            if transform not in by_transform[m].index:
                cells.append("")
                continue
            r = by_transform[m].loc[transform]
            text = f"{pct(r[level])} [{pct(r[f'{level}_lo'])}, {pct(r[f'{level}_hi'])}]"
            if transform != "none":
                text += f" {r['decision']} ({num(100 * r['retained'], '.0f')}% kept)"
            cells.append(text)
        rows.append([transform, axis_of(transform), *cells])
    return ["transform", "axis", *methods], rows, tables


ROBUSTNESS_CAPTION = ("hit rate (%) [95% Wilson interval] of each method at its operating point, per transform, and "
                      f"its decision: **survives** when the whole 95% interval of the share of its untransformed rate "
                      f"it keeps is ≥ {RETAINED:.0%}, **fails** when the whole interval is below, **undetermined** "
                      "otherwise (a seeded bootstrap of both cells' queries).")
ROBUSTNESS_LEVELS = {
    "track": "Top-1 track hit rate (the right song, whatever the offset): the level at which tempo and speed changes "
             "read fairly, since a stretched query's later segments drift off the DB grid; ",
    "exact": "Top-1 exact hit rate (the right song and the DB segment nearest the true start; under a tempo or speed "
             "change the offset-aligned vote may settle one segment off); ",
}


def robustness_section(run: RunData, ops: pd.DataFrame, fig: Callable[[list[Path], str], list],
                       fig_dir: Path) -> list:
    """Hit rate per transform of each method at its operating point, with the survival decisions
    and the figure (nothing for a run without a transform axis)."""
    out: list = []
    for level, what in ROBUSTNESS_LEVELS.items():
        header, rows, tables = robustness_cells(run, ops, level)
        if not rows:
            return []
        out += [Heading(2, f"{level.capitalize()} level"), Table(header, rows, caption=what + ROBUSTNESS_CAPTION),
                *fig(figures.robustness_lines(tables, fig_dir, level),
                     f"Top-1 {level} hit rate against each transform axis (95% intervals), one panel per axis, each "
                     "method at its operating point; its untransformed rate dotted.")]
    return [Heading(1, "Robustness: tempo, pitch, speed, codecs, phone line"), *out]


def open_set_cells(run: RunData, ops: pd.DataFrame) -> tuple[list[str], list[list[str]], dict[str, pd.DataFrame]]:
    """The open-set table's header and rows (each method at its operating point: TPR at each
    calibrated false-positive target, the threshold and the test FPR) and each method's ROC; no
    rows for a run without absent queries."""
    if run.open_set is None or run.outcomes is None or "tpr_1pct" not in run.points.columns:
        return [], [], {}
    rows, rocs = [], {}
    points = run.points.set_index(["label", "query_params"])
    for _, op in ops.sort_values("method", key=lambda s: s.map(method_sort_key)).iterrows():
        p = points.loc[(op["label"], op["query_params"])]
        point = f"{params_text(op['build_params'])}; {params_text(op['query_params'])}"
        counts = f"{int(p['n_present'])} / {int(p['n_absent'])} / {int(p['n_calibration'])}"
        if not bool(p["score_meaningful"]):
            rows.append([op["method"], point, *["no meaningful score: its answers cannot be ranked"] * 2, counts])
            continue
        cells = []
        for fpr in FPR_TARGETS:
            key = fpr_key(fpr)
            res = "" if bool(p[f"resolved_{key}"]) else " (calibration max)"
            threshold = float(p[f"threshold_{key}"])
            accept = "any answer" if threshold == -math.inf else f"> {num(threshold)}"
            cells.append(f"{pct(p[f'tpr_{key}'])} [{pct(p[f'tpr_{key}_lo'])}, {pct(p[f'tpr_{key}_hi'])}] at "
                         f"{accept}{res}; test FPR {pct(p[f'fpr_{key}'])} "
                         f"[{pct(p[f'fpr_{key}_lo'])}, {pct(p[f'fpr_{key}_hi'])}]")
        rows.append([op["method"], point, *cells, counts])
        rocs[op["method"]] = roc_points(pd.concat([_at_point(run.outcomes, op), _at_point(run.open_set, op)]))
    header = ["method", "operating point", *[f"TPR at {fpr:.1%} FPR" for fpr in FPR_TARGETS],
              "present / absent / calibration"]
    return header, rows, rocs


OPEN_SET_CAPTION = ("Open set: each method at its operating point answers every query with a score (its offset-aligned "
                    "vote's summed similarity; aligned landmarks for audfprint). The threshold is chosen on the "
                    "calibration queries (songs in no DB, from held-out val tracks) so that at most the target share "
                    "of them is accepted, then applied unchanged to the test queries: TPR = present queries accepted "
                    "with an exact hit (%), test FPR = absent songs accepted (%), both with 95% Wilson intervals. "
                    "'(calibration max)': fewer calibration queries than 1/target, so the threshold is their highest "
                    "score. 'any answer': fewer calibration queries than the target share got an answer at all (a "
                    "method with its own no-match rule, as audfprint's min_count), so every answer is accepted.")


def open_set_section(run: RunData, ops: pd.DataFrame, fig: Callable[[list[Path], str], list],
                     fig_dir: Path) -> list:
    """True-positive rates at calibrated false-positive rates of each method at its operating point,
    and the ROC curves (nothing for a run without absent queries)."""
    header, rows, rocs = open_set_cells(run, ops)
    if not rows:
        return []
    return [Heading(1, "Open set: songs that are not in the catalogue"), Table(header, rows, caption=OPEN_SET_CAPTION),
            *fig(figures.roc_curves(rocs, fig_dir),
                 "Open-set ROC of each method at its operating point on the test queries; the false-positive "
                 "targets dashed.")]


def ann_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ANN table (``tables.ann_table``), shared by the report and the README."""
    rows = [[r["method"], num(r["best_recall"], ".3f"),
             num(r["qps"], ",.0f") if math.isfinite(r["qps"]) else "not reached",
             num(r["recall"], ".3f"), num(r["recall1"], ".3f"), pct(r["exact"]) if math.isfinite(r["exact"]) else "-",
             _point_text(r)]
            for _, r in table.iterrows()]
    return (["method", "best recall@10", f"QPS at recall@10 ≥ {RECALL_TARGET:g}", "recall@10 there",
             "recall@1 there", "exact % there", "point"], rows)


def _point_text(row: pd.Series) -> str:
    """A sweep point as 'label query-params' (the label alone when it has no query parameters)."""
    if not row["label"]:
        return "-"
    params = params_text(row["query_params"])
    return row["label"] if params == "-" else f"{row['label']} {params}"


def ann_section(run: RunData, fig: Callable[[list[Path], str], list], fig_dir: Path) -> list:
    """The ANN view: recall against exact search, QPS at a recall target, and the decided speedups
    at fixed recall targets; nothing for a run from before recall was measured."""
    if "recall10" not in run.points.columns or run.points["recall10"].isna().all():
        return []
    seed = int(run.info.get("seed", 0) or 0)
    header, rows = ann_cells(ann_table(run.points))
    out = [Heading(1, "Recall against exact search (the ANN view)"),
           Para("Recall@k of a query segment is the share of its exact top-k by inner product over the same DB "
                "(exhaustive search) that the method returns in its own top k; an item tied with the k-th exact "
                "score counts as found (tie-aware, docs/protocol.md). It separates losing the neighbour (the "
                "index) from ranking a wrong neighbour first (the encoder): a method can beat exact search at the "
                "task and still miss neighbours. Methods that do not search the embeddings have no recall."),
           *fig(figures.recall_qps(run.points, fig_dir, target=RECALL_TARGET),
                "Queries per second on one thread (1000 / mean latency per query) against recall@10, each "
                "method's frontier over all its configurations, as ann-benchmarks draws it."),
           Table(header, rows, f"Each method's highest recall@10 and, at its cheapest point (mean latency, over all "
                               f"its configurations) reaching recall@10 ≥ {RECALL_TARGET:g}, its QPS on one thread, "
                               f"recall and exact hit rate.", text_columns=1)]
    if run.outcomes is not None and "recall10" in run.outcomes.columns and "latency_ms" in run.outcomes:
        table = decided_recall_speedups(run.outcomes, run.points, seed=seed)
        if len(table):
            out.append(decided_recall_block(table))
    return out


def decided_recall_block(table: pd.DataFrame) -> Table:
    """The decided speedups at fixed recall@10 targets (``tables.decided_recall_speedups``)."""
    rows = [[f"recall@10 {r['target']:g}", r["other"], *decided_cells(r)] for _, r in table.iterrows()]
    return Table(["target", "over", f"{FOCUS} ms", "other ms", "latency speedup × [95% CI]", "decision"], rows,
                 f"Speedup of {FOCUS} at matched recall: at fixed recall@10 targets "
                 f"({', '.join(f'{t:g}' for t in RECALL_TARGETS)}), each method's mean latency interpolated along "
                 f"its sweep, read at the sweep's timing on both sides (the interleaved re-timing chose its points "
                 f"by hit rate); the interval resamples the queries (stratified by condition cell) with their "
                 f"recalls and latencies. Decisions as for the hit-rate targets.", text_columns=2)


def write_report(run: RunData, out_dir: Path | str | None = None, latency_budget_ms: float | None = None,
                 generated_at: str | None = None) -> ReportFiles:
    """Write report.md, report.html and figures/ into ``out_dir`` (default: the run folder)."""
    out = Path(out_dir) if out_dir is not None else run.root
    out.mkdir(parents=True, exist_ok=True)
    doc, drawn = build_document(run, out, latency_budget_ms, generated_at)
    for stale in sorted((out / FIGURES).glob("*")):
        if stale.suffix in (".png", ".svg") and stale not in drawn:
            stale.unlink()
    md, page = write_document(doc, out, STEM)
    return ReportFiles(markdown=md, html=page, figures=drawn)


def write_run_report(run_dir: Path | str) -> Path:
    """Load a finished run folder and write its report into it; returns report.html's path."""
    return write_report(load_run(run_dir)).html
