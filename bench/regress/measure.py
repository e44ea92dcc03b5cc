"""Measure the regression scenario: hit rates per condition, the focus method's speedups over its
rivals (in candidates and in wall-clock latency) and its bucket balance.

Wall-clock speedups are measured as ratios inside one process: after the sweeps, the cheapest
sweep point of every build configuration that reaches the matched hit rate is timed again, all
of them in interleaved rounds (the order rotates each round). In each round a method's cost is
its fastest eligible point; the speedup is the median over rounds of rival cost / focus cost, so
a machine that slows down for a while slows both sides of a ratio alike.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bench.measure.metrics import CONDITION
from bench.measure.operating_points import highest_rate, speedup
from bench.measure.timing import time_queries
from bench.run.environment import environment
from bench.run.inputs import RunInputs, prepare_inputs
from bench.run.runner import BuiltMethod, build_method, method_label, sweep_method, timed_query_rows
from datasets.cache import stable_hash
from datasets.progress import tqdm
from methods.registry import learns, method_class, resolve_grid

from .scenario import Scenario

HIT_RATE, CANDIDATE_SPEEDUP, LATENCY_SPEEDUP = "hit_rate", "candidate_speedup", "latency_speedup"
KERNEL_SPEEDUP = "kernel_speedup"
EXPECTED_SIZE, ENTROPY = "expected_vs_random", "normalised_entropy"
DETERMINISTIC = {HIT_RATE, CANDIDATE_SPEEDUP, EXPECTED_SIZE, ENTROPY}


@dataclass
class Metric:
    """One checked number. ``n`` is the query count behind a hit rate (in percent)."""

    kind: str
    value: float
    n: int | None = None
    detail: dict = field(default_factory=dict)

    @property
    def deterministic(self) -> bool:
        """Whether the number is reproducible exactly for a seed (everything but wall clock)."""
        return self.kind in DETERMINISTIC


@dataclass
class Measurement:
    """The metrics of one regression run, by name, and what they were measured on."""

    metrics: dict[str, Metric]
    info: dict

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"metrics": {k: asdict(m) for k, m in self.metrics.items()}, "info": self.info}


def condition_name(duration_s: float, snr: str, reverb: str) -> str:
    """A condition cell as in metric names: '1s snr=10 reverb=0.6'."""
    return f"{duration_s:g}s snr={snr} reverb={reverb}"


def most_accurate(points: pd.DataFrame) -> pd.Series:
    """A method's sweep point with the highest exact hit rate (fewest candidates, then first, on ties):
    the ``highest_rate`` selector by candidates (the check's hit rates are deterministic)."""
    return highest_rate(points, cost="candidates_mean")


def outcome_bits(hits: pd.Series) -> str:
    """Per-query exact hits as a string of 0 and 1, the form the baseline keeps them in."""
    return "".join("1" if h else "0" for h in hits.to_numpy(dtype=bool))


def hit_rate_metrics(results: pd.DataFrame, points: pd.DataFrame, methods: list[str],
                     outcomes: pd.DataFrame | None = None) -> dict[str, Metric]:
    """Per method, at its most accurate sweep point: top-1 exact hit rate (%) overall and per condition.

    With ``outcomes`` each metric also keeps its queries' hits (``detail['exact_bits']``, in query
    order; overall, ordered by condition cell with ``detail['cell_sizes']``) for the paired check.
    """
    out: dict[str, Metric] = {}
    for name in methods:
        best = most_accurate(points[points["method"] == name])
        where = {"label": best["label"], "query_params": best["query_params"]}
        mine, by_cell = None, {}
        if outcomes is not None:
            mine = outcomes[(outcomes["label"] == best["label"]) & (outcomes["query_params"] == best["query_params"])]
            mine = mine.sort_values([*CONDITION, "query_id"], kind="stable")
        detail = dict(where)
        if mine is not None:
            detail["exact_bits"] = outcome_bits(mine["exact"])
            by_cell = {key: g for key, g in mine.groupby(CONDITION, sort=False)}
            detail["cell_sizes"] = [len(g) for g in by_cell.values()]
        out[f"hit_rate {name} all"] = Metric(HIT_RATE, round(100 * float(best["exact"]), 6), int(best["n_queries"]),
                                             detail)
        cells = results[(results["label"] == best["label"]) & (results["query_params"] == best["query_params"])]
        for _, row in cells.sort_values(CONDITION).iterrows():
            key = f"hit_rate {name} {condition_name(row['duration_s'], row['snr'], row['reverb'])}"
            detail = dict(where)
            if mine is not None:
                detail["exact_bits"] = outcome_bits(by_cell[tuple(row[c] for c in CONDITION)]["exact"])
            out[key] = Metric(HIT_RATE, round(100 * float(row["exact"]), 6), int(row["n_queries"]), detail)
    return out


def balance_metrics(points: pd.DataFrame, focus: str) -> dict[str, Metric]:
    """The focus method's bucket balance, per build configuration."""
    out: dict[str, Metric] = {}
    for label, g in points[points["method"] == focus].groupby("label", sort=False):
        row = g.iloc[0]
        if "balance_expected_vs_random" not in row or pd.isna(row["balance_expected_vs_random"]):
            continue
        out[f"balance {label} expected/random"] = Metric(EXPECTED_SIZE, float(row["balance_expected_vs_random"]))
        out[f"balance {label} H/K"] = Metric(ENTROPY, float(row["balance_normalised_entropy"]))
    return out


def eligible_points(points: pd.DataFrame, target: float) -> list[tuple[str, str]]:
    """Per build configuration, its cheapest sweep point (fewest candidates) reaching ``target`` exact."""
    ok = points[points["exact"] >= target - 1e-12]
    picks = ok.sort_values(["candidates_mean", "param_index"], kind="stable").groupby("label", sort=False).head(1)
    return list(zip(picks["label"], picks["query_params"]))


def time_rounds(built: dict[str, BuiltMethod], entries: list[tuple[str, str]], inputs: RunInputs, rounds: int,
                progress: bool) -> dict[tuple[str, str], np.ndarray]:
    """Mean per-query latency (s) of each (label, query params) entry in each of ``rounds`` rounds."""
    cfg = inputs.config
    _, rows = timed_query_rows(inputs)
    out = {e: np.empty(rounds) for e in entries}
    bar = tqdm(total=rounds * len(entries), desc="timing rounds", disable=not progress)
    for r in range(rounds):
        shift = r % len(entries)
        for label, qp in entries[shift:] + entries[:shift]:
            method = built[label].method
            method.set_query_params(**json.loads(qp))
            queries = inputs.matrices(method.input_kind)[1]
            out[(label, qp)][r] = time_queries(method, queries, rows, cfg.k, cfg.timing.warmup, 1).seconds.mean()
            bar.update()
    bar.close()
    return out


def speedup_metrics(points: pd.DataFrame, built: dict[str, BuiltMethod], inputs: RunInputs, scenario: Scenario,
                    progress: bool) -> dict[str, Metric]:
    """The focus method's speedup over each rival at matched exact hit rate: candidates and wall clock."""
    focus = points[points["method"] == scenario.focus]
    out: dict[str, Metric] = {}
    plans = {}
    for rival in scenario.versus:
        other = points[points["method"] == rival]
        cand = speedup(focus, other, "exact", "candidates_mean")
        out[f"candidate_speedup {scenario.focus} over {rival}"] = Metric(
            CANDIDATE_SPEEDUP, float(cand["speedup"]), None,
            {"hit_rate": cand["hit_rate"], f"{rival}_candidates": cand["cost_b"],
             f"{scenario.focus}_candidates": cand["cost_a"]})
        target = cand["hit_rate"]
        plans[rival] = (target, eligible_points(focus, target), eligible_points(other, target))
    entries = list(dict.fromkeys(e for _, a, b in plans.values() for e in (*a, *b)))
    seconds = time_rounds(built, entries, inputs, scenario.rounds, progress)
    for rival, (target, mine, theirs) in plans.items():
        cost_focus = np.min([seconds[e] for e in mine], axis=0)
        cost_rival = np.min([seconds[e] for e in theirs], axis=0)
        ratios = cost_rival / cost_focus
        out[f"latency_speedup {scenario.focus} over {rival}"] = Metric(
            LATENCY_SPEEDUP, float(np.median(ratios)), None,
            {"hit_rate": target, "rounds": [round(float(x), 4) for x in ratios],
             f"{rival}_ms": 1e3 * float(np.median(cost_rival)),
             f"{scenario.focus}_ms": 1e3 * float(np.median(cost_focus)),
             "points": {"focus": [list(e) for e in mine], "rival": [list(e) for e in theirs]}})
    return out


def kernel_metrics(built: dict[str, BuiltMethod], inputs: RunInputs, scenario: Scenario,
                   progress: bool) -> dict[str, Metric]:
    """Compiled kernels' speedup over the NumPy reference for each ``compiled`` entry of the scenario:
    the same configuration and query point built both ways, timed in interleaved rounds (as
    ``speedup_metrics``); the metric is the median of the per-round ratios numpy / numba."""
    if not scenario.compiled:
        return {}
    plans = []  # (entry, its query params as JSON, (numba label, numpy label))
    for entry in scenario.compiled:
        labels = []
        for kernels in ("numba", "numpy"):
            params = {**entry["build"], "kernels": kernels}
            label = method_label(entry["method"], params)
            if label not in built:
                built[label] = build_method(entry["method"], params, inputs)
            labels.append(label)
        plans.append((entry, json.dumps(entry["query"], sort_keys=True), labels))
    entries = list(dict.fromkeys((label, qp) for _, qp, labels in plans for label in labels))
    seconds = time_rounds(built, entries, inputs, scenario.rounds, progress)
    out = {}
    for entry, qp, (fast, slow) in plans:
        ratios = seconds[(slow, qp)] / seconds[(fast, qp)]
        out[f"kernel_speedup {method_label(entry['method'], entry['build'])} at {qp}"] = Metric(
            KERNEL_SPEEDUP, float(np.median(ratios)), None,
            {"rounds": [round(float(x), 4) for x in ratios], "numba_ms": 1e3 * float(np.median(seconds[(fast, qp)])),
             "numpy_ms": 1e3 * float(np.median(seconds[(slow, qp)]))})
    return out


def measure(scenario: Scenario, progress: bool = True) -> Measurement:
    """Run the scenario once and compute every checked metric."""
    t0 = time.perf_counter()
    config = scenario.config
    inputs = prepare_inputs(config, progress)
    if any(learns(name) for name in scenario.methods):
        inputs.train  # noqa: B018 - embed the train pairs on all cores, before the thread limit
    for kind in {method_class(name).input_kind for name in scenario.methods}:
        inputs.matrices(kind)  # spectral images, if any method needs them, also before the limit
    built: dict[str, BuiltMethod] = {}
    results, points, outcomes = [], [], []
    for name in scenario.methods:
        grid = resolve_grid(name, config.grids.get(name))
        for build_params in grid["build"]:
            if method_label(name, build_params) in built:
                continue
            with threadpool_limits(limits=config.timing.threads):
                b = build_method(name, build_params, inputs)
                res, pts, outs = sweep_method(b, inputs, grid["query"], progress, timed=False)
            built[b.label] = b
            results.append(res)
            points.append(pts)
            outcomes.append(outs)
    results_df, points_df = pd.concat(results, ignore_index=True), pd.concat(points, ignore_index=True)
    metrics = hit_rate_metrics(results_df, points_df, scenario.methods, pd.concat(outcomes, ignore_index=True))
    with threadpool_limits(limits=config.timing.threads):
        metrics.update(speedup_metrics(points_df, built, inputs, scenario, progress))
        metrics.update(kernel_metrics(built, inputs, scenario, progress))
    metrics.update(balance_metrics(points_df, scenario.focus))
    info = {"scenario": scenario.identity(), "scenario_hash": scenario.hash(), "scenario_file": scenario.source,
            "encoder": {"name": inputs.encoder.name, "sha256": inputs.encoder.sha256},
            "queryset": {"content_hash": inputs.queryset.content_hash, "queries": len(inputs.manifest)},
            "corpus": {"name": inputs.corpus.name, "identity_hash": stable_hash(inputs.corpus.identity(), n=32)},
            "db_segments": len(inputs.db), "threads": config.timing.threads,
            "environment": environment(), "seconds": round(time.perf_counter() - t0, 1)}
    return Measurement(metrics, info)
