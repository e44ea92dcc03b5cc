"""A scaling run's report: ``report.md`` / ``report.html`` and the tables behind it
(``operating_points.csv`` per method, ``config_points.csv`` per configuration, ``growth.csv``,
``speedups.csv``, ``extrapolation.csv``), built only from what the run stored (``run.json`` and
``points.parquet``)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import __version__
from bench.measure.operating_points import RECALL_TARGET, RECALL_TARGETS, TARGET_SHARES
from bench.run.store import OUTCOMES, POINTS, RUN_JSON, now
from bench.scale.analysis import (
    MATCH_POINTS,
    common_target,
    extrapolation,
    finished,
    growth_table,
    operating_points,
    speedups,
    time_spent,
)

from . import scale_figures
from .render import Bullets, Document, FigureBlock, Heading, Para, Table, count, num, pct, write_document
from .run_report import FACTORIAL_CAPTION, decided_ratio, factorial_cells
from .tables import ann_table, decided_recall_speedups, decided_speedups, factorial_ablation, method_sort_key


def _ms(v: float | None) -> str:
    return num(v, ".3g", missing="")


def _pct(v: float | None) -> str:
    return pct(v, missing="")


def _num(v: float | None, digits: int = 3) -> str:
    return num(v, f".{digits}g", missing="")


def _int(v: float | None) -> str:
    return count(v, missing="")


FIGURES = "figures"
STEM = "report"


def _figure(paths: list[Path], root: Path, caption: str) -> FigureBlock:
    return FigureBlock(str(paths[0].relative_to(root)), str(paths[1].relative_to(root)), caption)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(_k=frame["method"].map(method_sort_key)).sort_values(["_k", "n_db"]).drop(columns="_k")


def decided_by_size(outcomes: pd.DataFrame, points: pd.DataFrame, seed: int,
                    sizes: list[int] | None = None, shares: tuple[float, ...] = TARGET_SHARES) -> pd.DataFrame:
    """``tables.decided_speedups`` at each size of a scaling run (``sizes``, default every size its
    configurations ran at) and each of ``shares``, an ``n_db`` column added."""
    pts = finished(points)
    frames = [decided_speedups(outcomes[outcomes["n_db"] == n], pts[pts["n_db"] == n], shares=shares,
                               seed=seed).assign(n_db=n)
              for n in (sorted(pts["n_db"].unique()) if sizes is None else sizes)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def decided_recall_by_size(outcomes: pd.DataFrame, points: pd.DataFrame, seed: int,
                           sizes: list[int] | None = None,
                           targets: tuple[float, ...] = RECALL_TARGETS) -> pd.DataFrame:
    """``tables.decided_recall_speedups`` at each size of a scaling run (``sizes``, default every
    size) and each recall@10 target, an ``n_db`` column added; empty for a run without recall."""
    if "recall10" not in outcomes.columns or "latency_ms" not in outcomes.columns:
        return pd.DataFrame()
    pts = finished(points)
    frames = [decided_recall_speedups(outcomes[outcomes["n_db"] == n], pts[pts["n_db"] == n], targets=targets,
                                      seed=seed).assign(n_db=n)
              for n in (sorted(pts["n_db"].unique()) if sizes is None else sizes)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ann_by_size(points: pd.DataFrame, sizes: list[int] | None = None) -> pd.DataFrame:
    """``tables.ann_table`` (best recall@10, QPS at recall@10 >= 0.9) at each size, ``n_db`` added."""
    pts = finished(points)
    if "recall10" not in pts.columns:
        return pd.DataFrame()
    frames = [ann_table(pts[pts["n_db"] == n]).assign(n_db=n)
              for n in (sorted(pts["n_db"].unique()) if sizes is None else sizes)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def factorial_by_size(outcomes: pd.DataFrame, points: pd.DataFrame, seed: int,
                      sizes: list[int] | None = None) -> pd.DataFrame:
    """``tables.factorial_ablation`` (projection x flow, like with like) at each size of a scaling
    run (``sizes``, default every size), an ``n_db`` column added."""
    if "latency_ms" not in outcomes.columns or "n_db" not in outcomes.columns:
        return pd.DataFrame()  # a run whose every configuration was skipped, or one without latencies
    pts = finished(points)
    frames = [factorial_ablation(outcomes[outcomes["n_db"] == n], pts[pts["n_db"] == n], seed=seed).assign(n_db=n)
              for n in (sorted(pts["n_db"].unique()) if sizes is None else sizes)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ann_blocks(root: Path, points: pd.DataFrame, seed: int) -> list:
    """The ANN view at each size: QPS at recall@10 >= RECALL_TARGET and the best recall@10 per
    method, and FlowHash's decided speedups at fixed recall@10 targets; nothing without recall."""
    ann = ann_by_size(points)
    if ann.empty:
        return []
    out = [Heading(2, "Recall against exact search at each N (the ANN view)"),
           Table(["method", "N", "best recall@10", f"QPS at recall@10 ≥ {RECALL_TARGET:g}", "recall@1 there",
                  "exact % there", "configuration"],
                 [[r["method"], _int(r["n_db"]), _num(r["best_recall"]),
                   _int(r["qps"]) if math.isfinite(r["qps"]) else "not reached", _num(r["recall1"]), _pct(r["exact"]),
                   r["label"] or "-"]
                  for r in _sorted(ann).to_dict("records")], text_columns=1,
                 caption="Recall@10 of each query segment's exact top-10 over the DB of that size (tie-aware, "
                         "docs/protocol.md); QPS on one thread is 1000 / mean latency per query at the cheapest "
                         "point (over all the method's configurations) reaching the recall.")]
    if (root / OUTCOMES).exists():
        decided = decided_recall_by_size(pd.read_parquet(root / OUTCOMES), points, seed)
        if len(decided):
            out.append(Table(["recall@10", "N", "rival", "flowhash ms", "rival ms", "speedup [95% CI]", "decision"],
                             [[f"{r['target']:g}", _int(r["n_db"]), r["other"], _ms(r["focus_ms"]), _ms(r["other_ms"]),
                               decided_ratio(pd.Series(r)), r["decision"]]
                              for r in decided.sort_values(["target", "other", "n_db"],
                                                           ascending=[False, True, True]).to_dict("records")],
                             text_columns=3,
                             caption=f"Decided at matched recall: at fixed recall@10 targets "
                                     f"({', '.join(f'{t:g}' for t in RECALL_TARGETS)}), each method's mean latency "
                                     f"interpolated along its sweep at the sweep's timing; the interval resamples "
                                     f"the queries with their recalls and latencies."))
    return out


@dataclass
class _ScaleTables:
    """What every section of a scaling report reads: the run's record, points and derived tables."""

    root: Path
    info: dict
    points: pd.DataFrame
    budget: float
    target: float
    ops: pd.DataFrame
    per_config: pd.DataFrame
    growth: pd.DataFrame
    growth_target: pd.DataFrame
    spd: pd.DataFrame
    extra: pd.DataFrame
    figs: dict[str, list[Path]]

    @property
    def seed(self) -> int:
        """The run's seed (the intervals' bootstrap seed)."""
        return int(self.info.get("seed", 0) or 0)

    @property
    def outcomes(self) -> pd.DataFrame | None:
        """The per-query outcomes, where the run kept them."""
        return pd.read_parquet(self.root / OUTCOMES) if (self.root / OUTCOMES).exists() else None


def _tables(root: Path) -> _ScaleTables:
    """Read the run, derive its operating points, growth, speedups and extrapolation, write them as
    CSV files and draw the figures."""
    info = json.loads((root / RUN_JSON).read_text())
    points = pd.read_parquet(root / POINTS)
    budget = float(info["config"]["latency_budget_ms"])
    target = common_target(points)
    ops = operating_points(points, budget, target=target)
    per_config = operating_points(points, budget, by="label")
    growth = growth_table(ops)
    growth_target = growth_table(ops, "target")
    spd = speedups(points)
    extra = (extrapolation(ops, growth_target, point="target") if np.isfinite(target)
             else extrapolation(ops, growth))
    for name, frame in (("operating_points", ops), ("config_points", per_config),
                        ("growth", pd.concat([growth, growth_target], ignore_index=True)),
                        ("speedups", spd), ("extrapolation", extra)):
        frame.to_csv(root / f"{name}.csv", index=False)
    fig_dir = root / FIGURES
    figs = {
        "latency": scale_figures.cost_vs_n(ops, fig_dir, "latency_mean_ms", "mean latency per query (ms)",
                                           "latency_vs_n",
                                           "Latency at matched hit rate (within 1 point of exhaustive)"),
        "candidates": scale_figures.cost_vs_n(ops, fig_dir, "candidates_mean", "candidates per query",
                                              "candidates_vs_n", "Candidates scored at matched hit rate"),
        "latency_target": scale_figures.cost_vs_n(ops, fig_dir, "latency_mean_ms", "mean latency per query (ms)",
                                                  "latency_vs_n_target",
                                                  f"Latency at {100 * target:.1f}% exact (FlowHash's reach at every N)",
                                                  point="target"),
        "hits": scale_figures.hit_rate_vs_n(ops, fig_dir, budget),
        "build": scale_figures.build_memory_vs_n(ops, fig_dir),
    }
    if len(spd):
        figs["speedup"] = scale_figures.speedup_vs_n(spd, fig_dir)
    return _ScaleTables(root, info, points, budget, target, ops, per_config, growth, growth_target, spd, extra, figs)


def write_scale_report(root: Path | str) -> Path:
    """Write the report and its tables into the scaling run folder ``root``; returns report.md."""
    t = _tables(Path(root))
    doc = Document("FlowHash bench: scaling run", f"{now()} by flowhash-bench {__version__} from the stored results")
    for section in (_intro, _db_section, _matched_section, _target_section, _growth_section, _budget_section,
                    _configs_section, _speedup_section, _ann_section, _factorial_section, _skipped_section,
                    _extrapolation_section, _time_section):
        doc.add(*section(t))
    md, _ = write_document(doc, t.root, STEM)
    return md


def _intro(t: _ScaleTables) -> list:
    """The run in one paragraph: queries, encoder, hop, threads, how the DB grows."""
    info = t.info
    proto = info["protocol"]
    blocks: list = []
    add = blocks.append
    add(Para(f"Query set {info['queryset']['content_hash'][:12]} ({info['queryset']['queries']} queries, "
             f"{info['queryset']['query_segments']} query segments), encoder {info['encoder']['name']} "
             f"({info['encoder']['sha256'][:12]}), DB hop {proto['hop_s']:g} s for targets, distractors and "
             f"queries alike; latency on {info['threads']} thread(s). The DB of size N is the first N rows of "
             f"one store: "
             f"the {info['db']['base_segments']:,} segments of the run's own DB tracks (query tracks and the "
             f"corpus's other DB tracks), then distractors in a fixed shuffled order."))
    return blocks


def _db_section(t: _ScaleTables) -> list:
    """The DB at each size: corpus and distractor segments, tracks."""
    info = t.info
    sizes = info["db"]["sizes"]
    dist = info["distractors"]
    blocks: list = []
    add = blocks.append
    add(Heading(2, "The DB at each size"))
    add(Table(["N", "corpus segments", "real-music distractor segments", "synthetic distractor segments",
               "tracks"],
              [[_int(s["n_db"]), _int(s["corpus_segments"]), _int(s["real_distractor_segments"]),
                _int(s["synthetic_distractor_segments"]), _int(s["tracks"])] for s in sizes],
              caption=f"Distractors: {dist['tracks']} tracks, {dist['segments']:,} segments, of which "
                      f"{dist['real_segments']:,} real music ({len(dist['packages'])} Debian packages; "
                      f"{len(dist['dropped_sharing_audio'])} tracks left out for sharing audio with the corpus or with "
                      f"music already in the DB)."))
    return blocks


def _matched_section(t: _ScaleTables) -> list:
    """Each method's fastest point at exhaustive search's hit rate, with the figures."""
    root = t.root
    ops = t.ops
    figs = t.figs
    blocks: list = []
    add = blocks.append
    add(Heading(2, "Matched hit rate: latency, candidates, build and memory against N"))
    matched = _sorted(ops[ops["point"] == "matched"])
    rows = []
    for r in matched.to_dict("records"):
        if not r["reached"]:
            rows.append([r["method"], _int(r["n_db"]), f"not reached; best: {r['label']} {r['query_params']}",
                         _pct(r["exact"]), _pct(r.get("time", float("nan"))), "", "", "", "", _num(r["build_s"]),
                         _num(r["index_bytes"] / 2**20), _num(r.get("peak_memory_bytes", float("nan")) / 2**20)])
            continue
        rows.append([r["method"], _int(r["n_db"]), f"{r['label']} {r['query_params']}", _pct(r["exact"]),
                     _pct(r.get("time", float("nan"))), _ms(r["latency_mean_ms"]), _ms(r["latency_p50_ms"]),
                     _ms(r["latency_p99_ms"]), _int(r["candidates_mean"]), _num(r["build_s"]),
                     _num(r["index_bytes"] / 2**20), _num(r.get("peak_memory_bytes", float("nan")) / 2**20)])
    add(Table(["method", "N", "configuration", "exact %", "±0.25 s %", "mean ms", "p50 ms", "p99 ms",
               "candidates", "build s", "index MiB", "peak MiB"], rows, text_columns=3,
              caption=f"Each method's fastest point (over all its configurations and query parameters) whose "
                      f"exact hit rate is within {100 * MATCH_POINTS:g} point of exhaustive's at the same N. "
                      f"Peak memory: anonymous RSS above the level before the configuration's fit, build and "
                      f"sweep (memory-mapped DB pages not counted)."))
    add(_figure(figs["latency"], root, "Mean latency per query at matched hit rate against N (log-log)."))
    add(_figure(figs["candidates"], root, "Candidates per query at matched hit rate against N (log-log)."))
    return blocks


def _target_section(t: _ScaleTables) -> list:
    """Each method's fastest point at the common target (FlowHash's reach at every N)."""
    root = t.root
    target = t.target
    ops = t.ops
    figs = t.figs
    blocks: list = []
    add = blocks.append
    add(Heading(2, f"At {100 * target:.1f}% exact: the highest hit rate FlowHash reaches at every N"))
    tgt = _sorted(ops[ops["point"] == "target"])
    add(Table(["method", "N", "configuration", "exact %", "mean ms", "p99 ms", "candidates"],
              [[r["method"], _int(r["n_db"]),
                f"{r['label']} {r['query_params']}" if r["reached"] else "not reached",
                _pct(r.get("exact", float("nan"))), _ms(r.get("latency_mean_ms", float("nan"))),
                _ms(r.get("latency_p99_ms", float("nan"))), _int(r.get("candidates_mean", float("nan")))]
               for r in tgt.to_dict("records")], text_columns=3,
              caption="Each method's fastest point reaching that exact hit rate: where FlowHash cannot match "
                      "exhaustive search, this is where it compares with every rival at equal accuracy."))
    add(_figure(figs["latency_target"], root, f"Mean latency per query at {100 * target:.1f}% exact against N "
                                              f"(log-log)."))
    return blocks


def _growth_section(t: _ScaleTables) -> list:
    """The fitted growth exponents of cost against N."""
    target = t.target
    growth_target = t.growth_target
    growth = t.growth
    blocks: list = []
    add = blocks.append
    add(Heading(2, "Growth exponents (cost ~ N^a)"))
    add(Table(["method", "at", "sizes", "N range", "a latency", "a candidates", "a build", "a index bytes",
               "a peak memory"],
              [[g["method"], "matched" if g["point"] == "matched" else f"{100 * target:.1f}%", str(g["sizes"]),
                f"{g['n_min']:,}..{g['n_max']:,}", _num(g.get("a_latency_mean_ms"), 2),
                _num(g.get("a_candidates_mean"), 2), _num(g.get("a_build_s"), 2), _num(g.get("a_index_bytes"), 2),
                _num(g.get("a_peak_memory_bytes"), 2)]
               for g in pd.concat([growth, growth_target], ignore_index=True).to_dict("records")], text_columns=2,
              caption="Least-squares slope of log cost on log N over the sizes where the method reached the "
                      "operating point (its configuration may change with N)."))
    return blocks


def _budget_section(t: _ScaleTables) -> list:
    """Each method's best point under the latency budget."""
    budget = t.budget
    ops = t.ops
    blocks: list = []
    add = blocks.append
    add(Heading(2, f"Under a {budget:g} ms latency budget"))
    bud = _sorted(ops[ops["point"] == "budget"])
    add(Table(["method", "N", "configuration", "exact %", "mean ms", "candidates"],
              [[r["method"], _int(r["n_db"]),
                f"{r['label']} {r['query_params']}" if r["reached"] else "none under budget",
                _pct(r.get("exact", float("nan"))), _ms(r.get("latency_mean_ms", float("nan"))),
                _int(r.get("candidates_mean", float("nan")))] for r in bud.to_dict("records")], text_columns=3))
    return blocks


def _configs_section(t: _ScaleTables) -> list:
    """Every configuration's matched point at every size, and the hit-rate and build figures."""
    root = t.root
    per_config = t.per_config
    figs = t.figs
    blocks: list = []
    add = blocks.append
    add(Heading(2, "Every configuration at every size"))
    cfg_rows = []
    for r in _sorted(per_config[per_config["point"] == "matched"]).to_dict("records"):
        cfg_rows.append([r["label"], _int(r["n_db"]), r["query_params"] if r["reached"] else
                         f"not reached; best {r['query_params']}", _pct(r["exact"]), _ms(r["latency_mean_ms"]),
                         _ms(r["latency_p50_ms"]), _ms(r["latency_p99_ms"]), _int(r["candidates_mean"]),
                         _num(r["build_s"]), _num(r["index_bytes"] / 2**20),
                         _num(r.get("peak_memory_bytes", float("nan")) / 2**20)])
    add(Table(["configuration", "N", "query params", "exact %", "mean ms", "p50 ms", "p99 ms", "candidates",
               "build s", "index MiB", "peak MiB"], cfg_rows, text_columns=3,
              caption="Each configuration's fastest query parameters within 1 point of exhaustive's exact hit "
                      "rate, or, where it never gets there, its best point; build, index and memory belong to "
                      "the configuration at that N."))
    add(_figure(figs["hits"], root, "Exhaustive's hit rates, and each method's best under the budget, against N."))
    add(_figure(figs["build"], root, "Build time, index bytes and peak memory at matched hit rate against N."))
    return blocks


def _speedup_section(t: _ScaleTables) -> list:
    """FlowHash's matched-rate speedups, and the decided ones at the fixed targets."""
    root = t.root
    points = t.points
    spd = t.spd
    figs = t.figs
    blocks: list = []
    add = blocks.append
    if len(spd):
        add(Heading(2, "FlowHash's speedup over each rival"))
        add(Table(["N", "rival", "hit rate %", "flowhash ms", "rival ms", "speedup", "candidate ratio"],
                  [[_int(r["n_db"]), r["rival"], _pct(r["hit_rate"]), _ms(r["subject_ms"]), _ms(r["rival_ms"]),
                    _num(r["speedup"]), _num(r["candidate_ratio"])]
                   for r in spd.sort_values(["rival", "n_db"]).to_dict("records")], text_columns=2,
                  caption="At the highest exact hit rate both reach at that N (each at its cheapest point reaching "
                          "it); above 1, FlowHash is faster."))
        add(_figure(figs["speedup"], root, "FlowHash's latency speedup over each rival against N."))
        if (root / OUTCOMES).exists():
            decided = decided_by_size(pd.read_parquet(root / OUTCOMES), points, t.seed)
            add(Table(["share", "N", "rival", "target exact %", "flowhash ms", "rival ms", "speedup [95% CI]",
                       "decision"],
                      [[f"{100 * r['share']:.0f}%", _int(r["n_db"]), r["other"], _pct(r["target"]),
                        _ms(r["focus_ms"]), _ms(r["other_ms"]), decided_ratio(pd.Series(r)), r["decision"]]
                       for r in decided.sort_values(["share", "other", "n_db"],
                                                    ascending=[False, True, True]).to_dict("records")],
                      text_columns=3,
                      caption=f"Decided: at fixed targets ({', '.join(f'{100 * s:.0f}%' for s in TARGET_SHARES)} "
                              f"of exhaustive search's rate at that N), each method's mean latency interpolated "
                              f"along its sweep; the compared points re-timed in interleaved rounds after each "
                              f"size's sweep; the interval resamples the queries and recomputes hit rates and "
                              f"mean latencies over each draw's timed queries (docs/protocol.md, Uncertainty). "
                              f"Faster above 1.1, slower below 1/1.1, equivalent within 10% inside both, else "
                              f"undetermined."))
    return blocks


def _ann_section(t: _ScaleTables) -> list:
    """The ANN view: QPS at recall, the decided tables at matched recall."""
    return ann_blocks(t.root, t.points, t.seed)


def _factorial_section(t: _ScaleTables) -> list:
    """The projection x flow ablation at each N."""
    root = t.root
    points = t.points
    blocks: list = []
    add = blocks.append
    if (root / OUTCOMES).exists():
        fa = factorial_by_size(pd.read_parquet(root / OUTCOMES), points, t.seed)
        if len(fa):
            add(Heading(2, "Ablation: projection × flow at each N, like with like"))
            for n, table in fa.groupby("n_db", sort=True):
                header, rows = factorial_cells(table)
                add(Table(header, rows, text_columns=3, caption=f"N = {int(n):,}. {FACTORIAL_CAPTION}"))
    return blocks


def _skipped_section(t: _ScaleTables) -> list:
    """Configurations not run: over the build budget, or on model rows the model was not validated for."""
    points = t.points
    blocks: list = []
    add = blocks.append
    skipped = points[points.get("status", pd.Series(dtype=str)) != "ok"] if "status" in points else points[:0]
    if len(skipped):
        add(Heading(2, "Not run"))
        add(Bullets([f"{r['label']} at N={int(r['n_db']):,}: {r['status_detail']}"
                     for r in skipped.to_dict("records")]))
    return blocks


def _extrapolation_section(t: _ScaleTables) -> list:
    """Extrapolated (not measured) costs at 10M and 100M segments."""
    target = t.target
    extra = t.extra
    blocks: list = []
    add = blocks.append
    add(Heading(2, "Extrapolated, not measured: 10M and 100M segments"))
    add(Table(["method", "N", "from N", "index GB", "peak memory GB", "build s", "mean ms"],
              [[r["method"], _int(r["n_db"]), _int(r["from_n_db"]), _num(r["index_gb"]), _num(r["peak_memory_gb"]),
                _num(r["build_s"]), _ms(r["latency_mean_ms"])] for r in extra.to_dict("records")],
              caption=f"At the {'%.1f%% exact' % (100 * target) if np.isfinite(target) else 'matched'} "
                      f"operating point: index and memory bytes per item held at the largest measured size's; "
                      f"build time and latency grown by the fitted exponents (1 where none could be fitted). "
                      f"Extrapolated from this machine's measurements; running there is the distributed-engine "
                      f"issue."))
    return blocks


def _time_section(t: _ScaleTables) -> list:
    """Where the run's time went."""
    info = t.info
    points = t.points
    blocks: list = []
    add = blocks.append
    stages = info.get("stage_seconds", {})
    if stages:
        add(Heading(2, "Where the run's time went"))
        add(Bullets([f"{k}: {v:.0f} s" for k, v in stages.items()]
                    + [f"peak RSS of the run: {info.get('peak_rss_bytes', 0) / 2**30:.1f} GiB"]))
        spent = time_spent(points, info.get("retime_seconds") or {})
        if len(spent):
            add(Table(["N", "fit s", "build s", "accuracy passes s", "latency timing s", "re-timing s", "total s"],
                      [[_int(r["n_db"]), _num(r["fit_s"]), _num(r["build_s"]), _num(r["accuracy_s"]),
                        _num(r["timing_s"]), _num(r["retime_s"]), _num(r["total_s"])]
                       for r in spent.to_dict("records")],
                      caption="The methods stage by size: fitting (once per configuration, at the first size), "
                              "building, the untimed accuracy passes over every query (on the accuracy threads), "
                              "the sweep's latency timing of every point, and the interleaved re-timing of the "
                              "compared points."))
    return blocks


def _interval(estimate: float, lo: float, hi: float, fmt: str) -> str:
    return f"{format(estimate, fmt)} [{format(lo, fmt)}, {format(hi, fmt)}]" if math.isfinite(estimate) else "-"


def validation_rows(table: pd.DataFrame) -> list[list[str]]:
    """The validation table's rows as the report prints them: method, point, N, then each
    comparison's estimate [95% CI]: decision."""
    rows = []
    ordered = table.assign(_m=table["method"].map(method_sort_key)).sort_values(["_m", "label", "query_params", "n_db"])
    for r in ordered.itertuples():
        rows.append([r.label, str(r.query_params), count(r.n_db),
                     f"{pct(r.exact_real)} / {pct(r.exact_synthetic)}",
                     f"{_interval(100 * r.exact_diff, 100 * r.exact_diff_lo, 100 * r.exact_diff_hi, '+.2f')}: "
                     f"{r.exact_decision}",
                     f"{_interval(r.candidates_ratio, r.candidates_lo, r.candidates_hi, '.3f')}: "
                     f"{r.candidates_decision}",
                     f"{_interval(r.latency_ratio, r.latency_lo, r.latency_hi, '.3f')}: {r.latency_decision}",
                     "yes" if r.matches else "**no**"])
    return rows


VERDICT = {True: "matches: runs on model rows",
           False: "does not match: left out where a run holds model rows"}


def _latency_source_text(table: pd.DataFrame) -> str:
    """How the validation's latencies were timed, from its ``latency_source`` column."""
    sources = set(table["latency_source"]) if "latency_source" in table else {"sweeps"}
    if sources == {"interleaved"}:
        return ("each point was built over both DBs and the two timed in interleaved rounds over the same queries "
                "(`bench/scale/model_latency.py`), so the machine's drift falls on both sides alike.")
    what = ("the two runs' sweeps timed them" if len(sources) == 1
            else "some points interleaved, the others as the two runs' sweeps")
    return (f"{what}: one run after the other, so machine drift between them is not inside the interval of a point "
            f"timed so.")


def write_validation_report(root: Path | str) -> Path:
    """Write ``validation.md``/``.html`` into the validation folder ``root`` (``bench scale
    --validate-model``): the model's fit, the fingerprint statistics of real and model rows, and
    each method compared at fixed sweep points; returns validation.md."""
    from bench.scale.fingerprint_stats import stat_names
    from bench.scale.model_validation import (
        CANDIDATES_MARGIN,
        LATENCY_MARGIN,
        REAL_DIR,
        SYNTHETIC_DIR,
        method_verdicts,
        read_validation,
        side_info,
    )

    root = Path(root)
    table = read_validation(root)
    info = side_info(root)
    model = info.get("fingerprint_model", {})
    doc = Document("FlowHash bench: does the fingerprint model stand in for real distractors?",
                   f"{now()} by flowhash-bench {__version__} from the stored results")
    doc.add(Para(f"One scaling config run twice on the same {info['queryset']['queries']:,} queries: in `{REAL_DIR}/`, "
                 f"the run's own DB ({info['db']['base_segments']:,} segments) followed by real-music distractors; in "
                 f"`{SYNTHETIC_DIR}/`, the same rows followed by tracks drawn from the fingerprint model "
                 f"(`bench/scale/fingerprint_model.py`) in their place. The model was fitted on "
                 f"{model.get('rows', 0):,} real distractor rows of {model.get('tracks', 0)} tracks (never a corpus "
                 f"row), {model.get('states', '?')} states shared by its tracks, in "
                 f"{model.get('fit_seconds', '?')} s; "
                 f"the draw holds {model.get('model_tracks', 0):,} tracks."))
    stats = model.get("stats")
    if stats:
        doc.add(Heading(2, "Fingerprint statistics, real and model rows"),
                Table(["statistic", "real", "model"],
                      [[k, f"{stats[k]['real']:.3f}", f"{stats[k]['model']:.3f}"]
                       for k in stat_names() if k in stats],
                      "Mean cosine between two segments of one track k hops apart (lag_k), between two random "
                      "segments, between a probe row and its k-th nearest other row (neighbour_k), and its "
                      "k-th nearest row of another track (other_track_k), over the same number of rows of "
                      "each."))
    verdicts = method_verdicts(table)
    doc.add(Heading(2, "Each method at fixed query parameters"),
            Para(f"Synthetic against real at the same build and query parameters and the same size N. Exact "
                 f"rate: the paired difference, synthetic minus real, in points, decided equivalent within 1 point. "
                 f"Candidates: the ratio of means, synthetic over real, decided within "
                 f"{100 * (CANDIDATES_MARGIN - 1):.0f}%. Latency: the ratio of mean latencies over the queries "
                 f"timed in both runs (one thread), within {100 * (LATENCY_MARGIN - 1):.0f}%; "
                 f"{_latency_source_text(table)} Exhaustive search does the same work on both DBs (its candidates "
                 f"ratio is 1): its latency ratio is the control. 95% intervals resample the queries within each "
                 f"condition cell, one draw for both sides."),
            Table(["point", "query", "N", "exact % real / synth.", "exact diff. (points)", "candidates ratio",
                   "latency ratio", "matches"], validation_rows(table), "", 3),
            Bullets([f"{m}: {VERDICT[verdicts[m]]}" for m in sorted(verdicts, key=method_sort_key)]))
    md, _ = write_document(doc, root, "validation")
    return md
