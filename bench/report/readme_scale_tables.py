"""The README's tables from a scaling run folder (``bench scale``: ``run.json``, ``points.parquet``,
``outcomes.parquet``), computed as the scaling report computes them (bench.scale.analysis).

Kinds (``<!-- bench-table KIND run=reports/scale ... -->``):

- ``scale-target``: each method's mean latency and candidates at the highest exact hit rate FlowHash
  reaches at every size, per size, and the fitted growth exponent of its latency;
- ``scale-speedup``: FlowHash's latency speedup over each rival at matched exact hit rate, per size,
  with a 95% interval from bootstrapping the matching over the queries;
- ``scale-model-validation``: the fingerprint model's validation (``run=`` its synthetic side);
- ``scale-sharded``: the sharded plan measured on the run's largest DB (``bench scale --shards``);
- ``scale-budget``: at one size (``n=``, default the largest), each method at its best point under a
  mean-latency budget (``budget_ms=``, default the run's), exact % by duration and SNR.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from bench.measure.metrics import overall_intervals
from bench.measure.operating_points import RECALL_TARGET, RECALL_TARGETS, TARGET_SHARES
from bench.run.store import OUTCOMES, POINTS, RUN_JSON
from bench.scale.analysis import common_target, finished, growth_table, operating_points, speedups

from .render import num, pct, pipe_table
from .run_report import decided_ratio, factorial_cells
from .scale_report import ann_by_size, decided_by_size, decided_recall_by_size, factorial_by_size
from .tables import (
    FOCUS,
    budget_operating_points,
    method_sort_key,
    params_text,
    snr_sort_key,
    speedup_intervals,
)


@dataclass(frozen=True)
class ScaleRun:
    """What a scaling run stored: its run.json, its sweep points and the per-query outcomes."""

    root: Path
    info: dict
    points: pd.DataFrame
    outcomes: pd.DataFrame | None

    @property
    def seed(self) -> int:
        """The run's seed (the bootstraps use it)."""
        return int(self.info.get("seed", 0) or 0)


def load_scale_run(root: Path | str) -> ScaleRun:
    """Read a scaling run folder; errors name the file and what is wrong."""
    root = Path(root)
    path = root / RUN_JSON
    if not path.is_file():
        raise ValueError(f"{path}: not found; is {root} a folder written by `bench scale`?")
    info = json.loads(path.read_text())
    if info.get("kind") != "scale":
        raise ValueError(f"{path}: kind {info.get('kind')!r}, not 'scale'; scale-* tables need a `bench scale` run")
    points = pd.read_parquet(root / POINTS)
    outcomes = pd.read_parquet(root / OUTCOMES) if (root / OUTCOMES).exists() else None
    return ScaleRun(root, info, points, outcomes)


def check_selection(option: str, wanted: list, available: list, what: str) -> None:
    """Refuse a table option that names anything ``what`` lacks (its table would silently leave it
    out, or be empty), naming what is available."""
    missing = [w for w in wanted if w not in available]
    if missing:
        raise ValueError(f"{option}={','.join(map(str, wanted))}: {', '.join(map(str, missing))} not among {what}; "
                         f"available: {', '.join(map(str, available))}")


def size_label(n: int) -> str:
    """'N = 71.5k', 'N = 1M'."""
    return f"N = {n / 1e6:g}M" if n % 1_000_000 == 0 else f"N = {n / 1e3:.1f}k"


def _sorted_methods(methods: set[str]) -> list[str]:
    return sorted(methods, key=method_sort_key)


def _table(header: list[str], rows: list[list[str]]) -> str:
    return pipe_table(header, ["l", *"r" * (len(header) - 1)], rows)


def target_table(run: ScaleRun, args: dict[str, str]) -> str:
    """Mean latency / candidates at FlowHash's common target per size, and latency's exponent a."""
    target = common_target(run.points)
    if not math.isfinite(target):
        raise ValueError(f"{run.root}: FlowHash reaches no common exact hit rate at every size")
    ops = operating_points(run.points, float(run.info["config"]["latency_budget_ms"]), target=target)
    tgt = ops[ops["point"] == "target"]
    growth = growth_table(ops, "target").set_index("method")
    sizes = sorted(tgt["n_db"].unique())
    rows = []
    for method in _sorted_methods(set(tgt["method"])):
        mine = tgt[tgt["method"] == method].set_index("n_db")
        cells = [f"{num(mine.loc[n, 'latency_mean_ms'])} ms / {num(mine.loc[n, 'candidates_mean'], ',.0f')}"
                 if n in mine.index and mine.loc[n, "reached"] else "not reached" for n in sizes]
        a = growth["a_latency_mean_ms"].get(method, float("nan"))
        rows.append([method, *cells, num(a, ".2f") if math.isfinite(a) else "-"])
    return _table([f"method (at {pct(target)}% exact)", *(size_label(n) for n in sizes), "a"], rows)


def speedup_table(run: ScaleRun, args: dict[str, str]) -> str:
    """FlowHash's speedup over each rival per size: 'speedup [95% CI] at exact %'."""
    pts = finished(run.points)
    spd = speedups(pts)
    if spd.empty:
        raise ValueError(f"{run.root}: {FOCUS} did not run")
    available = sorted(int(n) for n in spd["n_db"].unique())
    sizes = [int(n) for n in args["sizes"].split(",")] if "sizes" in args else available
    check_selection("sizes", sizes, available, f"the sizes of {run.root}")
    intervals = {}
    if run.outcomes is not None:
        for n in sizes:
            ci = speedup_intervals(run.outcomes[run.outcomes["n_db"] == n], pts[pts["n_db"] == n], seed=run.seed)
            intervals.update({(n, r["other"]): (r["lat_speedup_lo"], r["lat_speedup_hi"]) for _, r in ci.iterrows()})
    rows = []
    for rival in _sorted_methods(set(spd["rival"])):
        cells = []
        for n in sizes:
            r = spd[(spd["n_db"] == n) & (spd["rival"] == rival)]
            if r.empty or not math.isfinite(float(r["speedup"].iloc[0])):
                cells.append("-")
                continue
            r = r.iloc[0]
            lo, hi = intervals.get((n, rival), (float("nan"), float("nan")))
            ci = f" [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else ""
            cells.append(f"{r['speedup']:.2f}x{ci} at {pct(r['hit_rate'])}%")
        rows.append([rival, *cells])
    return _table(["over", *(size_label(n) for n in sizes)], rows)


def budget_table(run: ScaleRun, args: dict[str, str]) -> str:
    """At one size, each method's best point under the budget: exact % by duration and SNR, overall
    with its 95% interval, mean latency."""
    pts = finished(run.points)
    n = int(args.get("n", pts["n_db"].max()))
    budget = float(args.get("budget_ms", run.info["config"]["latency_budget_ms"]))
    check_selection("n", [n], sorted(int(s) for s in pts["n_db"].unique()), f"the sizes of {run.root}")
    at_n = pts[pts["n_db"] == n]
    if run.outcomes is None:
        raise ValueError(f"{run.root}: no outcomes.parquet, so no per-condition hit rates")
    ops = budget_operating_points(at_n, budget)
    out = run.outcomes[run.outcomes["n_db"] == n].copy()
    out["snr"] = out["snr"].astype(str)
    durations = sorted(out["duration_s"].unique())
    snrs = sorted(out["snr"].unique(), key=snr_sort_key)
    rows = []
    for _, op in ops.iterrows():
        mine = out[(out["label"] == op["label"]) & (out["query_params"] == op["query_params"])]
        ci = overall_intervals(mine, ("exact",), seed=run.seed)
        label = op["label"] if op["query_params"] == "{}" else f"{op['label']}; {params_text(op['query_params'])}"
        if not op["within_budget"]:
            label += f", fastest point: none within {budget:g} ms"
        rows.append([label, *(pct(mine.loc[mine["duration_s"] == d, "exact"].mean()) for d in durations),
                     *(pct(mine.loc[mine["snr"] == s, "exact"].mean()) for s in snrs),
                     f"{pct(mine['exact'].mean())} [{pct(ci['exact_lo'])}, {pct(ci['exact_hi'])}]",
                     num(op["latency_mean_ms"], ".3g")])
    return _table([f"{size_label(n)}, ≤ {budget:g} ms", *(f"{d:g} s" for d in durations),
                   *(s if s == "clean" else f"{s} dB" for s in snrs), "all [95% CI]", "ms"], rows)


def _stated(args: dict[str, str], option: str, stated: tuple[float, ...], read_at: str) -> float:
    """A decided table's ``option`` (default the highest of ``stated``), one of the ``stated``
    targets; any other value is refused, naming what the decided speedups are ``read_at``."""
    value = float(args.get(option, max(stated)))
    if not any(math.isclose(value, s) for s in stated):
        raise ValueError(f"{option}={args[option]}: the decided speedups are read at {read_at}")
    return value


def decided_share(args: dict[str, str]) -> float:
    """A decided table's ``share`` option (default the highest), one of ``TARGET_SHARES``."""
    return _stated(args, "share", TARGET_SHARES,
                   f"shares {', '.join(f'{s:g}' for s in TARGET_SHARES)} of exhaustive search's rate")


def recall_target(args: dict[str, str]) -> float:
    """A recall table's ``target`` option (default the highest), one of ``RECALL_TARGETS``."""
    return _stated(args, "target", RECALL_TARGETS,
                   f"matched recall@10 {', '.join(f'{t:g}' for t in RECALL_TARGETS)}")


def _sizes(run: ScaleRun, args: dict[str, str]) -> list[int]:
    """The ``sizes`` option (default every size the run finished configurations at), checked."""
    available = sorted(int(n) for n in finished(run.points)["n_db"].unique())
    sizes = [int(n) for n in args["sizes"].split(",")] if "sizes" in args else available
    check_selection("sizes", sizes, available, f"the sizes of {run.root}")
    return sizes


def ann_scale_table(run: ScaleRun, args: dict[str, str]) -> str:
    """Each method's QPS at recall@10 >= 0.9 (one thread) and its best recall@10 at every size,
    'QPS (best recall)', or 'not reached (best)'."""
    sizes = _sizes(run, args)
    table = ann_by_size(run.points, sizes)
    if table.empty:
        raise ValueError(f"{run.root}: no recall in this run (runs before recall was measured)")
    rows = []
    for method in _sorted_methods(set(table["method"])):
        mine = table[table["method"] == method].set_index("n_db")
        rows.append([method, *((f"{num(mine.loc[n, 'qps'], ',.0f')} ({mine.loc[n, 'best_recall']:.3f})"
                                if math.isfinite(mine.loc[n, "qps"]) else
                                f"not reached ({mine.loc[n, 'best_recall']:.3f})") if n in mine.index else "-"
                               for n in sizes)])
    return _table(["method", *(f"{size_label(n)}: QPS at recall@10 ≥ {RECALL_TARGET:g} (best recall@10)"
                               for n in sizes)], rows)


def _decided_rows(decided: pd.DataFrame, sizes: list[int]) -> list[list[str]]:
    """One row per rival: 'speedup [95% CI]: decision' at each size ('-' where it did not run)."""
    rows = []
    for rival in _sorted_methods(set(decided["other"])):
        mine = decided[decided["other"] == rival].set_index("n_db")
        rows.append([rival, *(f"{decided_ratio(mine.loc[n])}: {mine.loc[n, 'decision']}" if n in mine.index else "-"
                              for n in sizes)])
    return rows


def decided_recall_table(run: ScaleRun, args: dict[str, str]) -> str:
    """FlowHash's speedup over each method with a recall per size at the ``target`` recall@10
    (``tables.decided_recall_speedups``), 'speedup [95% CI]: decision'."""
    if run.outcomes is None or "recall10" not in run.outcomes or "latency_ms" not in run.outcomes:
        raise ValueError(f"{run.root}: no per-query recall and latencies in outcomes.parquet")
    sizes = _sizes(run, args)
    target = recall_target(args)
    decided = decided_recall_by_size(run.outcomes, run.points, run.seed, sizes, targets=(target,))
    if decided.empty:
        raise ValueError(f"{run.root}: {FOCUS} has no recall in this run")
    rows = _decided_rows(decided, sizes)
    return _table(["over", *(f"{size_label(n)} (at recall@10 {target:g})" for n in sizes)], rows)


def decided_table(run: ScaleRun, args: dict[str, str]) -> str:
    """FlowHash's speedup over each rival per size at the fixed target (``tables.decided_speedups``:
    the ``share`` option's share, default 90%, of exhaustive search's rate at that size),
    'speedup [95% CI]: decision'."""
    if run.outcomes is None or "latency_ms" not in run.outcomes:
        raise ValueError(f"{run.root}: no per-query latencies in outcomes.parquet, so no decided speedups")
    sizes = _sizes(run, args)
    share = decided_share(args)
    decided = decided_by_size(run.outcomes, run.points, run.seed, sizes, shares=(share,))
    if decided.empty:
        raise ValueError(f"{run.root}: {FOCUS} or exhaustive search did not run")
    rows = _decided_rows(decided, sizes)
    target = decided.groupby("n_db")["target"].first()
    targets = [f"{pct(target[n])}%" if n in target.index else "-" for n in sizes]
    return _table(["over", *(f"{size_label(n)} (at {t})" for n, t in zip(sizes, targets))], rows)


def factorial_table(run: ScaleRun, args: dict[str, str]) -> str:
    """The factorial ablation (projection x flow, like with like) at one size (the ``n`` option,
    default the largest): each cell's highest exact rate, its cost at the group's matched rate, and
    a flow cell's decided speedup over the same projection without it."""
    if run.outcomes is None or "latency_ms" not in run.outcomes:
        raise ValueError(f"{run.root}: no per-query latencies in outcomes.parquet, so no factorial ablation")
    available = sorted(int(n) for n in finished(run.points)["n_db"].unique())
    n = int(args["n"]) if "n" in args else available[-1]
    check_selection("n", [n], available, f"the sizes of {run.root}")
    table = factorial_by_size(run.outcomes, run.points, run.seed, [n])
    if table.empty:
        raise ValueError(f"{run.root}: no two cells of the factorial ablation at N={n:,}")
    header, rows = factorial_cells(table)
    return _table(header, rows)


def model_validation_table(run: ScaleRun, args: dict[str, str]) -> str:
    """The fingerprint model's validation (``bench scale --validate-model``; ``run=`` its synthetic
    side, the comparison beside it): per method and size, each comparison's decision, and the verdict."""
    from bench.scale.model_validation import NOT_COUNTED, first_miss, method_verdicts, read_validation

    table = read_validation(run.root.parent)
    verdicts = method_verdicts(table)
    sizes = sorted(table["n_db"].unique())
    rows = []
    for method in _sorted_methods(set(table["method"])):
        cells = []
        for n in sizes:
            r = table[(table["method"] == method) & (table["n_db"] == n)]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            cand = ("cand. not counted" if r["candidates_decision"] == NOT_COUNTED
                    else f"{num(r['candidates_ratio'], '.2f')}x cand.")
            cells.append(f"{num(100 * r['exact_diff'], '+.2f')} pt, {cand}, "
                         f"{num(r['latency_ratio'], '.2f')}x ms: "
                         + ("equivalent" if r["matches"] else f"**{first_miss(r)}**"))
        rows.append([method, *cells, "matches" if verdicts[method] else "**does not match**"])
    return _table(["method", *(size_label(n) for n in sizes), "verdict"], rows)


def sharded_table(run: ScaleRun, args: dict[str, str]) -> str:
    """The sharded plan measured on the run's largest DB (``bench scale --shards``): per method,
    the plan's latency (slowest shard plus merge) against the whole DB's, and the hit rates."""
    from bench.scale.sharded_run import SHARDED_CSV

    path = run.root / SHARDED_CSV
    if not path.is_file():
        raise ValueError(f"{path}: not found; run bench scale --shards S on this run")
    table = pd.read_csv(path)
    rows = [[r["method"], params_text(r["query_params"]), f"{int(r['shards'])} x {int(r['rows_per_shard']):,}",
             f"{num(r['slowest_shard_ms'])} + {num(r['merge_ms'])} = {num(r['latency_mean_ms'])} ms",
             f"{num(r['whole_latency_mean_ms'])} ms", f"{pct(r['exact_sharded'])} / {pct(r['exact_whole'])}"]
            for r in table.to_dict("records")]
    return _table(["method", "point", "shards x rows", "sharded: slowest shard + merge", "whole DB",
                   "exact % sharded / whole"], rows)


RENDERERS: dict[str, Callable[[ScaleRun, dict[str, str]], str]] = {
    "scale-model-validation": model_validation_table, "scale-sharded": sharded_table,
    "scale-target": target_table, "scale-speedup": speedup_table, "scale-budget": budget_table,
    "scale-decided": decided_table, "scale-factorial": factorial_table, "scale-ann": ann_scale_table,
    "scale-decided-recall": decided_recall_table,
}
