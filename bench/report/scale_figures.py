"""A scaling run's figures: cost and accuracy against DB size N, one line per method, log-log
where the quantity is a cost. Colours are the run report's (``figures.method_colour``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import _plain_log, _styled, method_colour, save
from .tables import method_sort_key


def _methods(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["method"].dropna().unique(), key=method_sort_key)


def _n_label(n: float) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _log_n(ax, sizes=None) -> None:
    """A log N axis labelled at the run's sizes (72k, 200k, ..., 1M)."""
    ax.set_xscale("log")
    ax.set_xlabel("DB size N (segments)")
    if sizes is not None and len(sizes):
        ax.set_xticks(sorted(set(sizes)), [_n_label(n) for n in sorted(set(sizes))])
        ax.minorticks_off()


@_styled
def cost_vs_n(ops: pd.DataFrame, out_dir: Path, cost: str, ylabel: str, name: str, title: str,
              point: str = "matched") -> list[Path]:
    """``cost`` at each method's ``point`` operating point (where reached) against N, log-log."""
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    matched = ops[(ops["point"] == point) & ops["reached"]].dropna(subset=[cost])
    for method in _methods(matched):
        g = matched[matched["method"] == method].sort_values("n_db")
        ax.plot(g["n_db"], g[cost], marker="o", color=method_colour(method), label=method,
                lw=2.2 if method == "flowhash" else 1.4)
    _log_n(ax, ops["n_db"].unique())
    ax.set_yscale("log")
    _plain_log(ax.yaxis)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", ncols=2)
    try:
        return save(fig, out_dir, name)
    finally:
        fig.clear()


@_styled
def hit_rate_vs_n(ops: pd.DataFrame, out_dir: Path, budget_ms: float) -> list[Path]:
    """Exhaustive's exact and +-0.25 s hit rates against N, and each method's hit rate under the
    latency budget."""
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    ref = ops[(ops["method"] == "exhaustive") & (ops["point"] == "matched")].sort_values("n_db")
    ax.plot(ref["n_db"], 100 * ref["exact"], color=method_colour("exhaustive"), marker="o", lw=2.2,
            label="exhaustive, exact")
    if "time" in ref:
        ax.plot(ref["n_db"], 100 * ref["time"], color=method_colour("exhaustive"), marker="o", ls="--",
                label="exhaustive, start within ±0.25 s")
    budget = ops[(ops["point"] == "budget") & ops["reached"] & (ops["method"] != "exhaustive")]
    for method in _methods(budget):
        g = budget[budget["method"] == method].sort_values("n_db")
        ax.plot(g["n_db"], 100 * g["exact"], marker="s", ms=4, color=method_colour(method), ls=":",
                label=f"{method}, best under {budget_ms:g} ms")
    _log_n(ax, ops["n_db"].unique())
    ax.set_ylabel("top-1 hit rate (%)")
    ax.set_title("Hit rate against DB size (distractors make it harder)")
    ax.legend(loc="lower left", fontsize=7, ncols=2)
    try:
        return save(fig, out_dir, "hit_rate_vs_n")
    finally:
        fig.clear()


@_styled
def build_memory_vs_n(ops: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Build time and index bytes / peak memory of each method's matched configuration against N."""
    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    matched = ops[(ops["point"] == "matched") & ops["reached"]].dropna(subset=["build_s"])
    for method in _methods(matched):
        g = matched[matched["method"] == method].sort_values("n_db")
        colour = method_colour(method)
        axes[0].plot(g["n_db"], g["build_s"].clip(lower=1e-3), marker="o", color=colour, label=method)
        axes[1].plot(g["n_db"], g["index_bytes"].clip(lower=1) / 2**20, marker="o", color=colour, label=method)
        if "peak_memory_bytes" in g:
            axes[1].plot(g["n_db"], g["peak_memory_bytes"].clip(lower=1) / 2**20, marker="x", ls=":", color=colour)
    for ax, ylabel, title in ((axes[0], "build time (s)", "Build"),
                              (axes[1], "MiB", "Index bytes (solid), peak memory above start (dotted)")):
        _log_n(ax, ops["n_db"].unique())
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    axes[0].legend(loc="upper left", fontsize=7)
    try:
        return save(fig, out_dir, "build_memory_vs_n")
    finally:
        fig.clear()


@_styled
def speedup_vs_n(table: pd.DataFrame, out_dir: Path, subject: str = "flowhash") -> list[Path]:
    """``subject``'s latency speedup over each rival against N (above 1: the subject is faster)."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for rival in sorted(table["rival"].unique(), key=method_sort_key):
        g = table[table["rival"] == rival].sort_values("n_db")
        ax.plot(g["n_db"], g["speedup"], marker="o", color=method_colour(rival), label=f"over {rival}")
    ax.axhline(1.0, color="black", lw=0.8)
    _log_n(ax, table["n_db"].unique())
    ax.set_yscale("log")
    _plain_log(ax.yaxis)
    ax.set_ylabel(f"{subject} speedup (rival ms / {subject} ms)")
    ax.set_title(f"{subject}'s speedup at the highest hit rate both reach")
    ax.legend(loc="best", fontsize=7)
    if not np.isfinite(table["speedup"]).any():
        ax.text(0.5, 0.5, "no finite speedup", transform=ax.transAxes, ha="center")
    try:
        return save(fig, out_dir, "speedup_vs_n")
    finally:
        fig.clear()
