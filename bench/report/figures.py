"""The report's figures: one function per figure, each saving a PNG and an SVG and returning their paths.

matplotlib without pyplot (no global state, no display). Every method has one colour, fixed by its
name, so colours agree across figures, reports and runs; build configurations of one method differ
by marker and line style. Output is deterministic: fixed sizes and dpi, a fixed SVG hash salt, no
dates or software versions in the files.
"""
from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.measure.operating_points import pareto_front

from .tables import (
    FOCUS,
    REFERENCE,
    condition_rates,
    end_to_end_cost,
    method_sort_key,
    params_text,
    reverb_labels,
    reverb_title,
    shown_stages,
    snr_labels,
    uniform_occupancy,
)

DPI = 110
METHOD_COLOURS = {  # tab10, fixed per method; unknown methods draw from EXTRA_COLOURS by a stable hash
    "exhaustive": "#4d4d4d", "flowhash": "#d62728", "lsh": "#1f77b4", "ivf": "#2ca02c", "ivfpq": "#9467bd",
    "hnsw": "#ff7f0e", "minhash": "#8c564b", "itq": "#e377c2", "binary-hash": "#17becf", "lsh-directed": "#bcbd22",
    "pca-sign": "#98df8a", "audfprint": "#000000", "hnswlib": "#ffbb78", "scann": "#aec7e8", "usearch": "#c5b0d5",
    "rabitq": "#393b79", "ivf-rabitq": "#6b6ecf", "binary-index": "#e7ba52",
}
EXTRA_COLOURS = ("#bcbd22", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d",
                 "#9edae5")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES: tuple = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
STYLE = {"svg.hashsalt": "flowhash-bench", "svg.fonttype": "path", "font.family": "DejaVu Sans", "font.size": 9,
         "axes.titlesize": 10, "figure.titlesize": 11, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
         "savefig.dpi": DPI, "figure.dpi": DPI}
PNG_METADATA = {"Software": None}
SVG_METADATA = {"Date": None, "Creator": None}

F = TypeVar("F", bound=Callable[..., list[Path]])


def method_colour(method: str) -> str:
    """The method's colour, the same in every figure and run."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return EXTRA_COLOURS[int(hashlib.sha256(method.encode()).hexdigest()[:8], 16) % len(EXTRA_COLOURS)]


def _styled(func: F) -> F:
    """Run a figure function under the report's rcParams (they matter at drawing and at saving)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return func(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.svg under ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.savefig(png, format="png", dpi=DPI, metadata=PNG_METADATA)
    fig.savefig(svg, format="svg", metadata=SVG_METADATA)
    return [png, svg]


def _legend_below(fig: Figure, n_entries: int, ncols: int = 2, **kwargs) -> None:
    """A legend under the axes in ``ncols`` columns; the figure grows by the legend's height, so
    long configuration labels neither cover the title nor run off the figure."""
    rows = math.ceil(n_entries / ncols)
    w, h = fig.get_size_inches()
    fig.set_size_inches(w, h + 0.2 * rows + 0.2)
    fig.legend(loc="outside lower center", ncols=ncols, **kwargs)


def _grid(n_panels: int, panel_w: float, panel_h: float, max_cols: int = 4,
          sharey: bool = True) -> tuple[Figure, list[Axes]]:
    """Panels in rows of ``max_cols``, room for a legend below; at least 8 inches wide."""
    ncols = max(1, min(n_panels, max_cols))
    nrows = max(1, math.ceil(n_panels / ncols))
    fig = Figure(figsize=(max(panel_w * ncols, 8.0), panel_h * nrows + 1.0), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, sharey=sharey, squeeze=False).flat)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


class _PlainLogFormatter(ticker.LogFormatter):
    """matplotlib's choice of labelled log ticks, written as plain numbers (0.06, 0.1, 20)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def _plain_log(axis) -> None:
    """Plain numbers rather than powers of ten on a log axis (minor ticks labelled on short ranges)."""
    axis.set_major_formatter(_PlainLogFormatter())
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _integer_log_ticks(axis, top: int) -> None:
    """Ticks 1, 2, 3, 5, 10, 20, 30, 50, ... up to ``top`` on a log axis of counts."""
    ticks = [m * 10 ** e for e in range(int(math.log10(max(top, 1))) + 1) for m in (1, 2, 3, 5) if m * 10 ** e <= top]
    axis.set_ticks(ticks, [str(t) for t in ticks])
    axis.set_minor_formatter(ticker.NullFormatter())


def _config_style(labels: Sequence[str]) -> dict[str, tuple[str, object]]:
    """Marker and line style of each build configuration of one method, by sorted label."""
    return {label: (MARKERS[i % len(MARKERS)], LINESTYLES[i % len(LINESTYLES)])
            for i, label in enumerate(sorted(labels))}


def _level_handles(ops: pd.DataFrame) -> list:
    handles: list = [Line2D([], [], color=method_colour(m), marker="o",
                            label=m if ok else f"{m} (fastest point, over budget)")
                     for m, ok in zip(ops["method"], ops["within_budget"])]
    return handles + [Line2D([], [], color="0.3", ls="-", label="exact"),
                      Line2D([], [], color="0.3", ls="--", marker="o", mfc="none", label="near (±1 segment)")]


@_styled
def hit_rate_vs_snr(results: pd.DataFrame, ops: pd.DataFrame, out_dir: Path, note: str) -> list[Path]:
    """Top-1 hit rate (exact solid with its 95% Wilson band, near dashed) vs SNR, one panel per query
    duration, a line per method.

    Each method is at its operating point (``ops``); reverb conditions are pooled. ``note`` goes in the title.
    """
    rates = condition_rates(results, ops, ["duration_s", "snr"])
    durations = sorted(set(rates["duration_s"]))
    snrs = snr_labels(results)
    x = np.arange(len(snrs))
    fig, axes = _grid(len(durations), 3.3, 3.1)
    for ax, duration in zip(axes, durations):
        for method in ops["method"]:
            r = rates[(rates["method"] == method) & (rates["duration_s"] == duration)].set_index("snr").reindex(snrs)
            c = method_colour(method)
            ax.plot(x, 100 * r["exact"], color=c, marker="o", ms=4, ls="-")
            ax.fill_between(x, 100 * r["exact_lo"], 100 * r["exact_hi"], color=c, alpha=BAND_ALPHA, lw=0)
            ax.plot(x, 100 * r["near"], color=c, marker="o", ms=4, mfc="none", ls="--", lw=1)
        ax.set_xticks(x, snrs)
        ax.set_xlabel("SNR (dB)")
        ax.set_title(f"{duration:g} s queries")
        ax.set_ylim(0, 102)
    axes[0].set_ylabel("top-1 hit rate (%)")
    handles = _level_handles(ops)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))
    fig.suptitle(f"Top-1 hit rate vs SNR per query duration (reverb conditions pooled; {note})")
    return save(fig, out_dir, "hit_rate_vs_snr")


@_styled
def hit_rate_vs_duration(results: pd.DataFrame, ops: pd.DataFrame, out_dir: Path, note: str) -> list[Path]:
    """Top-1 hit rate (exact solid with its 95% Wilson band, near dashed) vs query duration, one panel per
    reverb condition."""
    rates = condition_rates(results, ops, ["reverb", "duration_s"])
    reverbs = reverb_labels(results)
    durations = sorted(set(rates["duration_s"]))
    fig, axes = _grid(len(reverbs), 3.3, 3.1)
    for ax, reverb in zip(axes, reverbs):
        for method in ops["method"]:
            r = rates[(rates["method"] == method) & (rates["reverb"] == reverb)].set_index("duration_s")
            r = r.reindex(durations)
            c = method_colour(method)
            ax.plot(durations, 100 * r["exact"], color=c, marker="o", ms=4, ls="-")
            ax.fill_between(durations, 100 * r["exact_lo"], 100 * r["exact_hi"], color=c, alpha=BAND_ALPHA, lw=0)
            ax.plot(durations, 100 * r["near"], color=c, marker="o", ms=4, mfc="none", ls="--", lw=1)
        ax.set_xticks(durations, [f"{d:g}" for d in durations])
        ax.set_xlabel("query duration (s)")
        ax.set_title(reverb_title(reverb))
        ax.set_ylim(0, 102)
    axes[0].set_ylabel("top-1 hit rate (%)")
    handles = _level_handles(ops)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))
    fig.suptitle(f"Top-1 hit rate vs query duration per reverb condition (SNRs pooled; {note})")
    return save(fig, out_dir, "hit_rate_vs_duration")


COSTS = {"latency_mean_ms": ("pareto_latency", "mean search latency per query (ms, log scale)", "mean latency"),
         "e2e_mean_ms": ("pareto_e2e_latency", "mean end-to-end latency per query: front end + search (ms, log scale)",
                         "end-to-end latency"),
         "candidates_mean": ("pareto_candidates", "candidates scanned per query (log scale)", "candidates scanned")}


BAND_ALPHA = 0.15
# a cost column and the columns of its 95% interval (the mean latency's bootstrap interval)
COST_INTERVALS = {"latency_mean_ms": ("latency_mean_lo_ms", "latency_mean_hi_ms")}


def _error_bars(ax, g: pd.DataFrame, cost: str, colour: str) -> None:
    """Thin 95% error bars on Pareto points: the exact hit rate's (vertical) and, where stored, the
    cost's (horizontal); nothing for runs stored before the intervals existed."""
    if "exact_lo" not in g or g["exact_lo"].isna().all():
        return
    y = 100 * g["exact"].to_numpy(dtype=float)
    yerr = np.vstack([y - 100 * g["exact_lo"].to_numpy(dtype=float), 100 * g["exact_hi"].to_numpy(dtype=float) - y])
    xerr = None
    lo_col, hi_col = COST_INTERVALS.get(cost, (None, None))
    if lo_col in g and not g[lo_col].isna().any():
        x = g[cost].to_numpy(dtype=float)
        xerr = np.vstack([x - g[lo_col].to_numpy(dtype=float), g[hi_col].to_numpy(dtype=float) - x]).clip(min=0)
    ax.errorbar(g[cost], y, yerr=yerr.clip(min=0), xerr=xerr, fmt="none", ecolor=colour, elinewidth=0.6,
                alpha=0.5, capsize=0)


@_styled
def pareto(points: pd.DataFrame, out_dir: Path, cost: str = "latency_mean_ms",
           budget_ms: float | None = None, per_config: bool = False) -> list[Path]:
    """Top-1 exact hit rate vs ``cost``: one frontier per method, as ann-benchmarks draws its
    algorithms (``pareto_front`` over all the method's build configurations and query points), or,
    with ``per_config``, one line per build configuration (method colour; marker and style per
    configuration; saved as ``<name>_configs``). The exhaustive reference is a star with a dotted
    line at its hit rate; on the latency plot the latency budget is a vertical dashed line.
    """
    name, xlabel, what = COSTS[cost]
    fig = Figure(figsize=(11.5, 5.0), layout="constrained")
    ax = fig.subplots()
    if cost not in points.columns or points[cost].isna().all():
        return []  # a run from before the column existed
    for method in sorted(set(points["method"]) - {REFERENCE}, key=method_sort_key):
        sub = points[points["method"] == method]
        if not per_config:
            front = pareto_front(sub.dropna(subset=[cost]), "exact", cost)
            if front.empty:
                continue
            n = sub["label"].nunique()
            ax.plot(front[cost], 100 * front["exact"], color=method_colour(method), marker="o", ms=4, lw=1.5,
                    label=f"{method} ({n} configuration{'s' if n > 1 else ''})")
            _error_bars(ax, front, cost, method_colour(method))
            continue
        styles = _config_style(list(set(sub["label"])))
        for label, (marker, ls) in styles.items():
            g = sub[sub["label"] == label].sort_values("param_index")
            ax.plot(g[cost], 100 * g["exact"], color=method_colour(method), marker=marker, ls=ls, ms=4, lw=1.3,
                    label=label)
            _error_bars(ax, g, cost, method_colour(method))
    ref = points[points["method"] == REFERENCE]
    if len(ref):
        ax.plot(ref[cost], 100 * ref["exact"], ls="none", marker="*", ms=15, color=method_colour(REFERENCE),
                label="exhaustive (exact search, reference)")
        _error_bars(ax, ref, cost, method_colour(REFERENCE))
        ax.axhline(100 * float(ref["exact"].max()), color=method_colour(REFERENCE), ls=":", lw=1)
    if budget_ms is not None and cost == "latency_mean_ms" and math.isfinite(budget_ms):  # a search-time budget
        ax.axvline(budget_ms, color="0.5", ls="--", lw=1, label=f"latency budget ({budget_ms:.3g} ms)")
    ax.set_xscale("log")
    _plain_log(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 exact hit rate (%)")
    ax.set_ylim(0, 102)
    _legend_below(fig, len(ax.get_legend_handles_labels()[1]), ncols=2 if per_config else 4)
    over = ("each build configuration's query-parameter sweep" if per_config
            else "each method's frontier over all its configurations")
    fig.suptitle(f"Pareto: top-1 exact hit rate vs {what}, {over}")
    return save(fig, out_dir, f"{name}_configs" if per_config else name)


@_styled
def recall_qps(points: pd.DataFrame, out_dir: Path, rate: str = "recall10",
               target: float | None = None) -> list[Path]:
    """The ANN view, as ann-benchmarks plots it: queries per second on one thread (1000 / mean
    latency per query) against recall@k of the exact top-k, one frontier per method with a recall
    (``pareto_front`` over all its configurations), log QPS; a dashed line at ``target``."""
    if rate not in points.columns or points[rate].isna().all():
        return []
    k = rate.removeprefix("recall")
    fig = Figure(figsize=(11.5, 5.0), layout="constrained")
    ax = fig.subplots()
    have = points[points[rate].notna() & (points["latency_mean_ms"] > 0)]
    for method in sorted(set(have["method"]), key=method_sort_key):
        sub = have[have["method"] == method]
        front = pareto_front(sub, rate, "latency_mean_ms")
        style = dict(ls="none", marker="*", ms=15) if method == REFERENCE else dict(marker="o", ms=4, lw=1.5)
        ax.plot(front[rate], 1e3 / front["latency_mean_ms"], color=method_colour(method), label=method, **style)
    if target is not None:
        ax.axvline(target, color="0.5", ls="--", lw=1, label=f"recall@{k} = {target:g}")
    ax.set_yscale("log")
    _plain_log(ax.yaxis)
    ax.set_xlabel(f"recall@{k} of the exact top-{k} (per query segment, tie-aware)")
    ax.set_ylabel("queries per second, one thread (log scale)")
    ax.set_xlim(0, 1.02)
    _legend_below(fig, len(ax.get_legend_handles_labels()[1]), ncols=5)
    fig.suptitle(f"Recall@{k} against QPS: each method's frontier over all its configurations (up and right is better)")
    return save(fig, out_dir, f"recall{k}_qps")


@_styled
def bucket_occupancy(buckets: pd.DataFrame, points: pd.DataFrame, out_dir: Path,
                     methods: Sequence[str] = (FOCUS, "lsh")) -> list[Path]:
    """Bucket-size distribution of FlowHash vs LSH (log-log), one panel per K, with random
    (uniform, independent) hashing's curve.

    y = how many buckets hold x items (empty buckets are not drawn; the balance table counts them).
    Returns no paths when no configuration of ``methods`` has a stored histogram.
    """
    meta = points.drop_duplicates("label").set_index("label")
    labels = sorted(set(buckets["label"]) & set(meta.index[meta["method"].isin(methods)]))
    if not labels or "balance_n_buckets_total" not in meta:
        return []
    k_of = {lb: int(round(math.log2(meta.loc[lb, "balance_n_buckets_total"]))) for lb in labels}
    ks = sorted(set(k_of.values()))
    fig, axes = _grid(len(ks), 4.6, 3.6, max_cols=3, sharey=False)
    handles: dict[str, object] = {}
    for ax, k in zip(axes, ks):
        top = 1
        for method in sorted(methods, key=method_sort_key):
            mine = [lb for lb in labels if k_of[lb] == k and meta.loc[lb, "method"] == method]
            styles = _config_style([lb for lb in labels if meta.loc[lb, "method"] == method])
            for label in mine:
                h = buckets[(buckets["label"] == label) & (buckets["size"] > 0)]
                marker, ls = styles[label]
                line, = ax.plot(h["size"], h["n_buckets"], color=method_colour(method), marker=marker, ls=ls, ms=4,
                                lw=1.2, label=label)
                handles.setdefault(label, line)
                top = max(top, int(h["size"].max()) if len(h) else 1)
        n_items = int(meta.loc[[lb for lb in labels if k_of[lb] == k][0], "balance_n"])
        sizes = np.arange(1, max(top, 2) + 1)
        expected = uniform_occupancy(n_items, 2 ** k, sizes)
        keep = expected >= 0.05
        line, = ax.plot(sizes[keep], expected[keep], color="black", ls="--", lw=1.2,
                        label="random hashing (expected)")
        uniform = line
        ax.set_xscale("log")
        ax.set_yscale("log")
        _integer_log_ticks(ax.xaxis, top)
        _plain_log(ax.yaxis)
        ax.set_ylim(bottom=0.5)
        ax.set_xlabel("bucket size (items)")
        ax.set_title(f"K = {k} bits: 2^{k} buckets, N = {n_items}, N/2^K = {n_items / 2 ** k:.3g}")
    axes[0].set_ylabel("number of buckets")
    fig.legend(handles=[*handles.values(), uniform], loc="outside lower center", ncols=min(len(handles) + 1, 3))
    fig.suptitle("Bucket occupancy: how many buckets hold each number of DB items (hash table 0)")
    return save(fig, out_dir, "bucket_occupancy")


@_styled
def speedup_bars(table: pd.DataFrame, out_dir: Path, focus: str = FOCUS) -> list[Path]:
    """Bars: the focus method's speedup over each other method at matched top-1 exact hit rate.

    Left mean latency, right candidates scanned; bars start at 1x (up = the focus method is
    cheaper) and are annotated with the speedup and the hit rate it was read at; black whiskers
    are the speedup's 95% interval where the table has one (``lat_speedup_lo`` ...).
    """
    if table.empty:
        return []
    fig = Figure(figsize=(max(11.0, 0.9 * len(table) + 2), 5.0), layout="constrained")
    axes = fig.subplots(1, 2)
    x = np.arange(len(table))
    for ax, (kind, what) in zip(axes, (("lat", "mean latency"), ("cand", "candidates scanned"))):
        values = table[f"{kind}_speedup"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        lo, hi = min([1.0, *finite]) / 4, max([1.0, *finite]) * 4
        for xi, (_, row), v, hit in zip(x, table.iterrows(), values, table[f"{kind}_hit_rate"]):
            other = row["other"]
            if not np.isfinite(v):
                ax.annotate("n/a", (xi, 1.0), ha="center", va="bottom")
                continue
            ax.bar(xi, v - 1.0, bottom=1.0, width=0.6, color=method_colour(other), edgecolor="black", lw=0.5)
            ci_lo, ci_hi = (float(row.get(f"{kind}_speedup_{end}", np.nan)) for end in ("lo", "hi"))
            if np.isfinite(ci_lo) and np.isfinite(ci_hi):
                ax.errorbar(xi, v, yerr=[[max(v - ci_lo, 0.0)], [max(ci_hi - v, 0.0)]], fmt="none", ecolor="black",
                            elinewidth=0.8, capsize=3)
            ax.annotate(f"{v:.2f}×\n@{100 * hit:.1f}%", (xi, v), xytext=(0, 3 if v >= 1 else -3),
                        textcoords="offset points", ha="center", va="bottom" if v >= 1 else "top", fontsize=7)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.set_ylim(lo, hi)
        ax.set_xlim(-0.6, len(table) - 0.4)
        e2e = table.get("lat_cost", pd.Series("", index=table.index)).map(end_to_end_cost).to_numpy(dtype=bool)
        ax.set_xticks(x, [f"{o} (e2e)" if kind == "lat" and end_to_end else o
                          for o, end_to_end in zip(table["other"], e2e)], rotation=40, ha="right")
        ax.set_ylabel(f"{focus} speedup in {what} (×, log scale)")
        ax.set_title(f"{what}: other's cost / {focus}'s cost")
    fig.suptitle(f"Speedup of {focus} at matched top-1 exact hit rate (> 1: {focus} is cheaper)")
    return save(fig, out_dir, "speedup")


@_styled
def build_cost(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Horizontal bars per method configuration: fit + build seconds, and serialised index size (MB)."""
    n = len(table)
    fig = Figure(figsize=(13.0, 0.34 * n + 1.7), layout="constrained")
    ax_t, ax_s = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)
    colours = [method_colour(m) for m in table["method"]]
    fit, build = table["fit_s"].to_numpy(float), table["build_s"].to_numpy(float)
    ax_t.barh(y, fit, color=colours, alpha=0.45, height=0.7)
    ax_t.barh(y, build, left=fit, color=colours, height=0.7)
    for yi, total in zip(y, fit + build):
        ax_t.annotate(f"{total:.3g} s", (total, yi), xytext=(3, 0), textcoords="offset points", va="center",
                      fontsize=7.5)
    ax_t.set_xlim(0, max(float((fit + build).max()), 1e-3) * 1.25)
    ax_t.set_xlabel("fit + build time (s)")
    ax_t.set_title("fit (light) + build (solid)")
    mb = table["index_mb"].to_numpy(float)
    ax_s.barh(y, mb, color=colours, height=0.7)
    for yi, v in zip(y, mb):
        ax_s.annotate(f"{v:.3g} MB", (v, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7.5)
    ax_s.set_xlim(0, max(float(mb.max()), 1e-3) * 1.25)
    ax_s.set_xlabel("serialised index size (MB)")
    ax_s.set_title("index size")
    ax_t.set_yticks(y, table["label"])
    ax_t.invert_yaxis()
    fig.suptitle("Build cost per method configuration")
    return save(fig, out_dir, "build_cost")


@_styled
def pareto_overlay(runs: Sequence[tuple[str, pd.DataFrame]], out_dir: Path) -> list[Path]:
    """Several runs' Pareto fronts on one plot: method colour, run line style and marker.

    ``runs`` holds (tag, points) pairs; each method's front is taken over all its build
    configurations (``bench.measure.operating_points.pareto_front``). Left mean latency, right candidates scanned.
    """
    fig = Figure(figsize=(12.5, 5.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    methods = sorted({m for _, p in runs for m in p["method"]}, key=method_sort_key)
    for ax, cost in zip(axes, ("latency_mean_ms", "candidates_mean")):
        for r, (tag, points) in enumerate(runs):
            marker, ls = MARKERS[r % len(MARKERS)], LINESTYLES[r % len(LINESTYLES)]
            for method in methods:
                sub = points[points["method"] == method]
                if sub.empty:
                    continue
                if method == REFERENCE:
                    ax.plot(sub[cost], 100 * sub["exact"], ls="none", marker=marker, ms=9, mfc="none", mew=1.6,
                            color=method_colour(method))
                    continue
                front = pareto_front(sub, "exact", cost)
                ax.plot(front[cost], 100 * front["exact"], color=method_colour(method), marker=marker, ls=ls, ms=4,
                        lw=1.3)
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
        ax.set_xlabel(COSTS[cost][1])
        ax.set_title(f"exact hit rate vs {COSTS[cost][2]}")
        ax.set_ylim(0, 102)
    axes[0].set_ylabel("top-1 exact hit rate (%)")
    handles: list = [Line2D([], [], color=method_colour(m), lw=2, label=m) for m in methods]
    handles += [Line2D([], [], color="0.3", marker=MARKERS[r % len(MARKERS)], ls=LINESTYLES[r % len(LINESTYLES)],
                       label=tag) for r, (tag, _) in enumerate(runs)]
    _legend_below(fig, len(handles), ncols=min(len(handles), 6), handles=handles)
    fig.suptitle("Pareto fronts of each method, runs overlaid (exhaustive: open markers)")
    return save(fig, out_dir, "pareto_overlay")


@_styled
def ablation_bars(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Bars: candidates scanned (left) and mean latency (right) of each ablation row at the matched
    top-1 exact hit rate, from the plainest hash (top) to the paper's FlowHash (bottom)."""
    if table.empty:
        return []
    fig = Figure(figsize=(11, 0.55 * len(table) + 1.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(table))[::-1]
    for ax, (column, what) in zip(axes, (("candidates", "candidates scanned per query"),
                                         ("latency_ms", "mean latency per query (ms)"))):
        values = table[column].to_numpy(dtype=float)
        ax.barh(y, values, color=[method_colour(m) for m in table["method"]], edgecolor="black", lw=0.5)
        for yi, v in zip(y, values):
            ax.annotate(f"{v:.3g}", (v, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(f"{what} (log scale)")
        ax.set_xlim(right=max(values[np.isfinite(values)], default=1.0) * 3)
    axes[0].set_yticks(y, table["variant"])
    fig.suptitle(f"Ablation at matched top-1 exact hit rate {100 * table['matched_exact'].iloc[0]:.1f}% "
                 f"(each row at its cheapest sweep point reaching it)")
    return save(fig, out_dir, "ablation")


@_styled
def stage_bars(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Stacked horizontal bars: mean ms per query of each search stage, one bar per method at its
    operating point (``tables.stage_table``), the whole call's mean marked."""
    if table.empty:
        return []
    fig = Figure(figsize=(11, 0.45 * len(table) + 1.9), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(table))[::-1]
    left = np.zeros(len(table))
    shown = shown_stages(table)
    cmap = mpl.colormaps["tab10"]
    for i, stage in enumerate(shown):
        values = table[f"stage_{stage}_ms"].to_numpy(dtype=float)
        ax.barh(y, values, left=left, color=cmap(i % 10), edgecolor="white", lw=0.4, height=0.7, label=stage)
        left += values
    calls = table["stage_call_ms"].to_numpy(dtype=float)
    ax.scatter(calls, y, marker="|", s=220, color="black", label="whole call", zorder=3)
    for yi, v in zip(y, calls):
        ax.annotate(f"{v:.3g} ms", (v, yi), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, [f"{m}  {params_text(q)}" for m, q in zip(table["method"], table["query_params"])])
    ax.set_xlim(0, max(float(np.nanmax(calls)), 1e-3) * 1.3)
    ax.set_xlabel("mean time per query (ms)")
    fig.legend(loc="outside right upper", title="stage")
    fig.suptitle("Latency breakdown by stage at each method's operating point")
    return save(fig, out_dir, "stages")


@_styled
def training_curves(training: dict, out_dir: Path) -> list[Path]:
    """One panel per fitted flow or learned projection (configurations sharing a fit drawn once):
    its losses per epoch, the kept epoch marked."""
    panels, heads, flows = [], set(), set()
    for label, rec in sorted(training.items()):
        curve = rec.get("training_curve")
        key = tuple(sorted(curve[-1].items())) if curve else None
        if key is not None and key not in flows:  # configurations differing in tau_db share one fit
            flows.add(key)
            panels.append((label, curve, (rec.get("training") or {}).get("best_epoch"),
                           ("nll", "agreement", "val_loss")))
        head = rec.get("projection") or {}
        first = tuple(sorted(head["curve"][0].items())) if head.get("curve") else None
        if first is not None and first not in heads:  # configurations share one fitted head
            heads.add(first)
            panels.append((f"learned projection ({label})", head["curve"],
                           (head.get("training") or {}).get("best_epoch"), ("hinge", "held_out_loss")))
    if not panels:
        return []
    fig, axes = _grid(len(panels), 4.6, 3.0, max_cols=3, sharey=False)
    for ax, (label, curve, best, keys) in zip(axes, panels):
        epochs = [c["epoch"] for c in curve]
        for key in keys:
            if all(key in c for c in curve):
                ax.plot(epochs, [c[key] for c in curve], lw=1.2, label=key)
        if best:
            ax.axvline(best, color="grey", ls=":", lw=1)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    return save(fig, out_dir, "training_curves")


@_styled
def latent_histograms(training: dict, out_dir: Path) -> list[Path]:
    """One panel per configuration with a latent: the density of |z| against the base's."""
    panels = [(label, rec["latent"]) for label, rec in sorted(training.items()) if rec.get("latent")]
    if not panels:
        return []
    fig, axes = _grid(len(panels), 3.8, 2.8, max_cols=4, sharey=False)
    for ax, (label, lat) in zip(axes, panels):
        edges = np.asarray(lat["abs_z"]["edges"])
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.stairs(lat["abs_z"]["density"], edges, label="DB latent", color="tab:blue")
        ax.plot(centres, lat["abs_z"]["base_density"], color="black", lw=1, ls="--", label="base")
        ax.set_title(label, fontsize=7)
        ax.set_xlabel("|z|")
        ax.legend(fontsize=7)
    return save(fig, out_dir, "latent_abs_z")


def _transform_value(transform: str) -> str:
    """The x tick of a transform within its axis panel ('stretch:1.05' -> '1.05', 'phone:gsm' -> 'gsm')."""
    return transform.split(":", 1)[1] if ":" in transform else transform


@_styled
def robustness_lines(tables: dict[str, pd.DataFrame], out_dir: Path, level: str = "exact") -> list[Path]:
    """One panel per transform axis: each method's hit rate (95% interval as error bars) at each
    value of the axis, its untransformed rate dotted; ``tables`` are robustness tables by method."""
    axes_order = list(dict.fromkeys(a for t in tables.values() for a in t["axis"] if a != "none"))
    if not axes_order:
        return []
    fig, axes = _grid(len(axes_order), 3.4, 2.9, max_cols=3)
    for ax, axis in zip(axes, axes_order):
        values: list[str] = []
        for table in tables.values():
            values += [t for t in table.loc[table["axis"] == axis, "transform"] if t not in values]
        numeric = axis not in ("codec", "phone line")  # categories are not joined by lines
        if numeric:
            values.sort(key=lambda t: float(_transform_value(t)))
        x = {t: i for i, t in enumerate(values)}
        for k, (method, table) in enumerate(sorted(tables.items(), key=lambda kv: method_sort_key(kv[0]))):
            g = table[table["axis"] == axis].copy()
            g = g.assign(x=g["transform"].map(x) + (k - (len(tables) - 1) / 2) * 0.06).sort_values("x")
            colour = method_colour(method)
            ax.errorbar(g["x"], 100 * g[level], yerr=[100 * (g[level] - g[f"{level}_lo"]),
                                                       100 * (g[f"{level}_hi"] - g[level])],
                        color=colour, marker="o", ms=3.5, lw=1.2 if numeric else 0, capsize=2,
                        elinewidth=1.2, label=method if axis == axes_order[0] else None)
            base = table.loc[table["transform"] == "none", level]
            if len(base):
                ax.axhline(100 * float(base.iloc[0]), color=colour, ls=":", lw=0.9)
        ax.set_xticks(range(len(values)), [_transform_value(t) if numeric else t for t in values], fontsize=7)
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_title(axis)
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"top-1 {level} hit rate (%)")
    _legend_below(fig, len(tables), ncols=min(len(tables), 5))
    return save(fig, out_dir, f"robustness_{level}")


@_styled
def roc_curves(rocs: dict[str, pd.DataFrame], out_dir: Path, fprs: Sequence[float] = (0.01, 0.001)) -> list[Path]:
    """Open-set ROC of each method at its operating point: share of present queries accepted with an
    exact hit against share of absent songs accepted (log axis), the calibrated false-positive
    targets dashed; ``rocs`` are ``roc_points`` frames by method."""
    if not rocs:
        return []
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    floor = 1e-4
    for method, roc in sorted(rocs.items(), key=lambda kv: method_sort_key(kv[0])):
        ax.step(np.maximum(roc["fpr"], floor), 100 * roc["tpr"], where="post", color=method_colour(method),
                lw=1.4, label=method)
    for fpr in fprs:
        ax.axvline(fpr, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    _plain_log(ax.xaxis)
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"false-positive rate: absent songs accepted (log; {floor:g} stands for 0)")
    ax.set_ylabel("true-positive rate: accepted exact hits (%)")
    ax.legend(loc="lower right")
    return save(fig, out_dir, "open_set_roc")
