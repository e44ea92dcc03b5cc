"""The README's results tables, rendered from committed run folders, and the check that they agree.

A table in a Markdown file is tied to its run by a marker line before it and a closing one after::

    <!-- bench-table budget run=reports/debian-music budget_ms=1.0 -->
    | method (point) | 1 s | ... |
    <!-- /bench-table -->

Kinds from a ``bench run`` folder: ``budget``, ``snr``, ``paired``, ``speedup``, ``e2e``, ``e2e-snr``,
``ablation``, ``ablation-factorial``, ``balance``, ``robustness``, ``open-set``; from a ``bench scale``
folder, the ``scale-*`` kinds of ``readme_scale_tables``. ``check_tables`` renders every marked
table afresh from the run it names and lists the ones whose text differs; ``write_tables`` rewrites
them. ``python -m bench readme``
runs either. A line that looks like a marker (an HTML comment whose first word is ``bench-table`` in
any case or spelling) must parse, and a marker's options must be its kind's (``OPTIONS``), of their
type, and name what its run holds: anything else is an error naming the line, never skipped.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bench.measure.operating_points import highest_rate

from .data import RunData, load_run
from .readme_scale_tables import RENDERERS as SCALE_RENDERERS
from .readme_scale_tables import ScaleRun, check_selection, decided_share, load_scale_run, recall_target
from .render import num, pct, pipe_table
from .run_report import ann_cells, decided_cells, decided_ratio, open_set_cells, pct_ci, robustness_cells
from .tables import (
    FOCUS,
    REFERENCE,
    ablation_table,
    ann_table,
    balance_table,
    budget_operating_points,
    condition_rates,
    decided_recall_speedups,
    decided_speedups,
    end_to_end_cost,
    factorial_ablation,
    latency_budget,
    method_sort_key,
    paired_table,
    snr_labels,
    speedup_intervals,
    speedup_table,
    widest_half_width,
)

MARKER = re.compile(r"^<!-- bench-table (?P<kind>[a-z0-9-]+)(?P<args>(?: [a-z_]+=\S+)*) -->$")
END = "<!-- /bench-table -->"
# anything that looks like a marker: it must then parse, or be an error (never skipped)
LOOSE = re.compile(r"^<!--\s*(?P<slash>/?)\s*bench[-_\s]?table", re.IGNORECASE)
FORM = "'<!-- bench-table KIND run=PATH [key=value ...] -->'"

NUMBER, INTEGER = "a positive number", "a positive integer"
NAME, NAMES, INTEGERS = "a method name", "comma-separated method names", "comma-separated positive integers"
OPTIONS: dict[str, dict[str, str]] = {
    "budget": {"budget_ms": NUMBER}, "snr": {"budget_ms": NUMBER},
    "paired": {"budget_ms": NUMBER, "against": NAME}, "speedup": {}, "speedup-decided": {"share": NUMBER},
    "ranking": {"share": NUMBER},
    "e2e": {"methods": NAMES}, "e2e-snr": {"methods": NAMES}, "ablation": {}, "ablation-factorial": {},
    "balance": {"methods": NAMES}, "robustness": {}, "open-set": {}, "ann": {}, "decided-recall": {"target": NUMBER},
    "scale-ann": {"sizes": INTEGERS}, "scale-decided-recall": {"sizes": INTEGERS, "target": NUMBER},
    "scale-target": {}, "scale-speedup": {"sizes": INTEGERS}, "scale-decided": {"sizes": INTEGERS, "share": NUMBER},
    "scale-budget": {"n": INTEGER, "budget_ms": NUMBER}, "scale-factorial": {"n": INTEGER},
    "scale-model-validation": {}, "scale-sharded": {},
}
REQUIRED: dict[str, tuple[str, ...]] = {"e2e": ("methods",), "e2e-snr": ("methods",)}


@dataclass(frozen=True)
class Block:
    """One marked table in a Markdown file: what to render, and the lines it holds now."""

    kind: str
    args: dict[str, str]
    start: int  # index of the marker line
    end: int    # index of the closing line
    text: str
    source: str = ""  # the Markdown file, for messages

    @property
    def where(self) -> str:
        """The marker as written, for messages."""
        args = "".join(f" {k}={v}" for k, v in self.args.items())
        return f"bench-table {self.kind}{args} (line {self.start + 1})"


def varying_params(points: pd.DataFrame, method: str) -> set[str]:
    """The build parameters that tell a method's configurations in this run apart (a key some
    configurations lack counts as varying)."""
    configs = [json.loads(b) for b in points.loc[points["method"] == method, "build_params"].unique()]
    keys = set().union(*configs) if configs else set()
    return {k for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1}


def _defaults(method: str) -> dict:
    from methods.registry import method_class

    try:
        return dict(method_class(method).build_defaults)
    except ValueError:  # a plugin method not loaded here: every parameter counts as set
        return {}


def point_label(points: pd.DataFrame, row: pd.Series) -> str:
    """'method (the build parameters that vary in this run or differ from the method's defaults;
    the query parameters)'."""
    build = json.loads(row["build_params"])
    defaults = _defaults(row["method"])
    keep = varying_params(points, row["method"]) | {k for k, v in build.items() if defaults.get(k, object()) != v}
    parts = [", ".join(f"{k}={v}" for k, v in sorted(build.items()) if k in keep),
             ", ".join(f"{k}={v}" for k, v in sorted(json.loads(row["query_params"]).items()))]
    inner = "; ".join(p for p in parts if p)
    return f"{row['method']} ({inner})" if inner else str(row["method"])


def _budget_ops(run: RunData, args: dict[str, str]) -> tuple[pd.DataFrame, float]:
    budget = float(args.get("budget_ms", "1.0"))
    return budget_operating_points(run.points, budget), budget


def budget_table(run: RunData, args: dict[str, str]) -> str:
    """Each method at its best point under the latency budget: exact % by duration, overall with its
    interval, mean latency and candidates, and a last row of each column's widest 95% half-width."""
    ops, budget = _budget_ops(run, args)
    rates = condition_rates(run.results, ops, ["duration_s"])
    durations = sorted(rates["duration_s"].unique())
    rows = []
    for _, op in ops.iterrows():
        label = point_label(run.points, op)
        if not op["within_budget"]:
            label = (f"{op['method']} (no budget)" if op["method"] == REFERENCE
                     else f"{label}, fastest point: none within {budget:g} ms")
        mine = rates[rates["method"] == op["method"]].set_index("duration_s")
        rows.append([label, *(pct(mine.loc[d, "exact"]) for d in durations), pct_ci(op, "exact"),
                     num(op["latency_mean_ms"], ".2f"),
                     num(op["candidates_mean"], ".0f")])
    half = widest_half_width(rates, ["duration_s"]).to_dict()
    n = int(rates["n_queries"].iloc[0]) if len(rates) else 0
    rows.append([f"*95% CI ± of a column (widest; {n} queries each)*", *(f"±{100 * half[d]:.1f}" for d in durations),
                 "", "", ""])
    return pipe_table(["method (point)", *(f"{d:g} s" for d in durations), "all [95% CI]", "ms", "candidates"],
                  ["l", *"r" * (len(durations) + 3)], rows)


def snr_table(run: RunData, args: dict[str, str]) -> str:
    """Exact % by SNR (rows) and method (columns) at the budget's points, with each row's widest
    95% half-width."""
    ops, _ = _budget_ops(run, args)
    rates = condition_rates(run.results, ops, ["snr"])
    half = widest_half_width(rates, ["snr"]).to_dict()
    methods = list(ops["method"])
    n = int(rates["n_queries"].iloc[0]) if len(rates) else 0
    rows = []
    for snr in snr_labels(run.results):
        cell = rates[rates["snr"] == snr].set_index("method")
        rows.append([snr, f"±{100 * half[snr]:.1f}", *(pct(cell.loc[m, "exact"]) for m in methods)])
    return pipe_table(["SNR dB", f"95% CI ± (widest; {n} queries)", *methods], ["l", *"r" * (len(methods) + 1)], rows)


def paired(run: RunData, args: dict[str, str]) -> str:
    """Each budget point's exact hit rate minus ``against``'s (default FlowHash's), paired per query."""
    ops, _ = _budget_ops(run, args)
    against = args.get("against", FOCUS)
    check_selection("against", [against], run.methods, f"the methods of {run.root}")
    if run.outcomes is None:
        raise ValueError(f"{run.root}: no outcomes.parquet, so no paired comparison")
    table = paired_table(run.outcomes, ops, against, seed=int(run.info.get("seed", 0) or 0))
    rows = [[r["method"], f"{100 * r['difference']:+.1f} [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]",
             f"{r['mcnemar_p']:.2g}", "yes" if r["significant"] else "no"] for _, r in table.iterrows()]
    return pipe_table(["method", f"exact - {against} (points) [95% CI]", "McNemar p", "significant"],
                  ["l", "r", "r", "l"], rows)


def speedups(run: RunData, args: dict[str, str]) -> str:
    """FlowHash's speedup over each method at matched exact hit rate, with the bootstrap intervals."""
    table = speedup_table(run.points)
    if run.outcomes is not None and len(table):
        table = table.merge(speedup_intervals(run.outcomes, run.points, seed=int(run.info.get("seed", 0) or 0)),
                            on="other", how="left")
    rows = []
    for _, r in table.iterrows():
        e2e = end_to_end_cost(r.get("lat_cost"))
        lat = (f"{r['lat_speedup']:.2f}x [{r['lat_speedup_lo']:.2f}, {r['lat_speedup_hi']:.2f}] "
               f"({r['lat_other_ms']:.2f} vs {r['lat_focus_ms']:.2f} ms)")
        cand = "-"
        if math.isfinite(float(r["cand_speedup"])):
            cand = (f"{r['cand_speedup']:.2f}x [{r['cand_speedup_lo']:.2f}, {r['cand_speedup_hi']:.2f}] "
                    f"({r['cand_other']:.0f} vs {r['cand_focus']:.0f})")
        rows.append([r["other"] + (" (end to end)" if e2e else ""), pct(r["lat_hit_rate"]), lat, cand])
    return pipe_table(["over", "matched exact %", "latency speedup [95% CI]", "candidates speedup [95% CI]"],
                  ["l", "r", "r", "r"], rows)


def _best_points(run: RunData, methods: list[str]) -> pd.DataFrame:
    """Each named method at its highest exact hit rate, its cheapest point there (search latency)."""
    check_selection("methods", methods, run.methods, f"the methods of {run.root}")
    rows = []
    for method in methods:
        g = run.points[run.points["method"] == method]
        rows.append(highest_rate(g).to_dict())
    return pd.DataFrame(rows)


def end_to_end(run: RunData, args: dict[str, str]) -> str:
    """The named methods at their highest exact point: exact % by duration, overall with its
    interval, search and end-to-end mean latency."""
    ops = _best_points(run, args["methods"].split(","))
    rates = condition_rates(run.results, ops, ["duration_s"])
    durations = sorted(rates["duration_s"].unique())
    rows = []
    for _, op in ops.iterrows():
        mine = rates[rates["method"] == op["method"]].set_index("duration_s")
        rows.append([point_label(run.points, op), *(pct(mine.loc[d, "exact"]) for d in durations), pct_ci(op, "exact"),
                     num(op["latency_mean_ms"], ".2f"), num(op["e2e_mean_ms"], ".2f")])
    return pipe_table(["method (its highest exact point)", *(f"{d:g} s" for d in durations), "all [95% CI]",
                   "search ms", "end-to-end ms"], ["l", *"r" * (len(durations) + 3)], rows)


def end_to_end_snr(run: RunData, args: dict[str, str]) -> str:
    """The same methods' exact % by SNR."""
    methods = args["methods"].split(",")
    ops = _best_points(run, methods)
    rates = condition_rates(run.results, ops, ["snr"])
    rows = []
    for snr in snr_labels(run.results):
        cell = rates[rates["snr"] == snr].set_index("method")
        rows.append([snr, *(pct(cell.loc[m, "exact"]) for m in methods)])
    return pipe_table(["SNR dB", *methods], ["l", *"r" * len(methods)], rows)


def ablation(run: RunData, args: dict[str, str]) -> str:
    """The report's ablation: each ingredient at the highest exact hit rate all rows reach, its
    cheapest point by candidates and by mean latency."""
    table = ablation_table(run.points)
    if table.empty:
        raise ValueError(f"{run.root}: fewer than two of the ablation's methods ran")
    rows = [[r["variant"], pct(r["matched_exact"]), num(r["candidates"], ".0f"), num(r["latency_ms"], ".3f")]
            for _, r in table.iterrows()]
    return pipe_table(["variant", "matched exact %", "candidates", "mean latency ms"], ["l", "r", "r", "r"], rows)


def factorial(run: RunData, args: dict[str, str]) -> str:
    """The report's factorial ablation: projection x flow at each K and tau_db, each cell's
    highest exact rate and, at the row group's matched rate, its candidates and latency; a flow
    cell's speedup over the same projection without it, decided."""
    if run.outcomes is None or "latency_ms" not in run.outcomes:
        raise ValueError(f"{run.root}: no per-query outcomes with latencies; the factorial ablation needs them")
    table = factorial_ablation(run.outcomes, run.points, seed=int(run.info.get("seed", 0) or 0))
    if table.empty:
        raise ValueError(f"{run.root}: no two cells of the factorial ablation at one K and tau_db")
    rows = []
    for _, r in table.iterrows():
        speedup = "-" if not math.isfinite(r["flow_speedup"]) else (
            f"{r['flow_speedup']:.2f} [{r['flow_low']:.2f}, {r['flow_high']:.2f}]: {r['decision']}")
        rows.append([f"{int(r['K'])}", f"{r['tau_db']:g}", r["cell"], pct(r["reached"]), pct(r["matched"]),
                     num(r["candidates"], ".0f"), num(r["latency_ms"], ".3f"), speedup])
    return pipe_table(["K", "tau_db", "cell", "highest exact %", "matched %", "candidates", "mean latency ms",
                       "flow over the same projection [95% CI]"], ["r", "r", "l", "r", "r", "r", "r", "l"], rows)


def balance(run: RunData, args: dict[str, str]) -> str:
    """Bucket balance of each configuration with buckets: K bits (log2 of the buckets), expected
    bucket size over a random hash's, and normalised entropy H/K (``methods=`` limits the methods)."""
    table = balance_table(run.points)
    if "methods" in args:
        wanted = args["methods"].split(",")
        check_selection("methods", wanted, sorted(set(table["method"]), key=method_sort_key),
                        f"the methods with buckets of {run.root}")
        table = table[table["method"].isin(wanted)]
        table = table.assign(_k=table["method"].map(wanted.index)).sort_values(["_k", "label"], kind="mergesort")
    n = int(table["balance_n"].iloc[0]) if len(table) else 0
    rows = []
    for _, r in table.iterrows():
        label = point_label(run.points, r.reindex([*r.index, "query_params"], fill_value="{}"))
        rows.append([label, f"{math.log2(r['balance_n_buckets_total']):.3g}", f"{r['balance_n']:.0f}",
                     num(r["balance_expected_vs_random"], ".2f"), num(r["balance_normalised_entropy"], ".3f"),
                     num(100 * r["balance_nonempty_fraction"], ".1f")])
    return pipe_table(["configuration", "K bits", f"N (all {n})" if table["balance_n"].nunique() == 1 else "N",
                   "expected / random", "H/K", "non-empty %"], ["l", "r", "r", "r", "r", "r"], rows)


def _decided_at_share(run: RunData, args: dict[str, str]) -> pd.DataFrame:
    """``tables.decided_speedups`` at the ``share`` option's share of exhaustive search's rate, or
    an error naming the run when it cannot be decided there."""
    if run.outcomes is None or "latency_ms" not in run.outcomes:
        raise ValueError(f"{run.root}: no per-query latencies in outcomes.parquet, so no decided speedups")
    table = decided_speedups(run.outcomes, run.points, shares=(decided_share(args),),
                             seed=int(run.info.get("seed", 0) or 0))
    if table.empty:
        raise ValueError(f"{run.root}: {FOCUS} or exhaustive search did not run")
    return table


def decided(run: RunData, args: dict[str, str]) -> str:
    """FlowHash's speedup over each method at the fixed target (``tables.decided_speedups``, at the
    ``share`` option's share of exhaustive search's rate), with the interval that holds the timing
    and the decision."""
    table = _decided_at_share(run, args)
    rows = [[r["other"], *decided_cells(r)] for _, r in table.iterrows()]
    return pipe_table(["over", f"{FOCUS} ms at {pct(table['target'].iloc[0])}%", "other ms",
                       "latency speedup [95% CI]", "decision"], ["l", "r", "r", "r", "l"], rows)


def ranking(run: RunData, args: dict[str, str]) -> str:
    """Every method that searches embeddings or spectral images ranked by its mean latency at the
    fixed target (the ``share`` option's share of exhaustive search's exact rate; FlowHash in its
    place), with FlowHash's decided speedup over each (``tables.decided_speedups``): the ranking to
    set beside another run's, e.g. another encoder's."""
    table = _decided_at_share(run, args)
    own = {"other": FOCUS, "other_ms": table["focus_ms"].iloc[0]}
    ordered = pd.concat([table, pd.DataFrame([own])], ignore_index=True).sort_values(["other_ms", "other"])
    rows = []
    for rank, (_, r) in enumerate(ordered.iterrows(), start=1):
        reached = np.isfinite(r["other_ms"])
        rows.append([str(rank) if reached else "-", r["other"], num(r["other_ms"], ".3f") if reached else "misses",
                     "" if r["other"] == FOCUS else decided_ratio(r),
                     "" if r["other"] == FOCUS else r["decision"]])
    return pipe_table(["rank", f"method (at {pct(table['target'].iloc[0])}% exact)", "ms",
                       f"{FOCUS}'s speedup [95% CI]", "decision"], ["r", "l", "r", "r", "l"], rows)


def ann(run: RunData, args: dict[str, str]) -> str:
    """The report's ANN table: each method's best recall@10 and its QPS at recall@10 >= 0.9."""
    table = ann_table(run.points)
    if table.empty:
        raise ValueError(f"{run.root}: no recall in this run (runs before recall was measured)")
    header, rows = ann_cells(table)
    return pipe_table(header, ["l", *["r"] * (len(header) - 2), "l"], rows)


def decided_recall(run: RunData, args: dict[str, str]) -> str:
    """FlowHash's speedup over each method with a recall at the ``target`` recall@10 option
    (``tables.decided_recall_speedups``), with its interval and decision."""
    if run.outcomes is None or "recall10" not in run.outcomes or "latency_ms" not in run.outcomes:
        raise ValueError(f"{run.root}: no per-query recall and latencies in outcomes.parquet")
    target = recall_target(args)
    table = decided_recall_speedups(run.outcomes, run.points, targets=(target,),
                                    seed=int(run.info.get("seed", 0) or 0))
    if table.empty:
        raise ValueError(f"{run.root}: {FOCUS} has no recall in this run")
    rows = [[r["other"], *decided_cells(r)] for _, r in table.iterrows()]
    return pipe_table(["over", f"{FOCUS} ms at recall@10 {target:g}", "other ms", "latency speedup [95% CI]",
                       "decision"], ["l", "r", "r", "r", "l"], rows)


def _report_cells_table(run: RunData, cells: Callable, missing: str) -> str:
    """A report table built by ``cells`` (``robustness_cells`` or ``open_set_cells``) at the report's
    own operating points (its default latency budget), as a pipe table; ``missing`` when it has no rows."""
    header, rows, _ = cells(run, budget_operating_points(run.points, latency_budget(run.points)[0]))
    if not rows:
        raise ValueError(f"{run.root}: {missing}")
    return pipe_table(header, ["l", "l", *["r"] * (len(header) - 2)], rows)


def robustness(run: RunData, args: dict[str, str]) -> str:
    """The report's robustness table at the track level: each method at its operating point, its
    track hit rate per transform, interval and survival decision."""
    return _report_cells_table(run, robustness_cells, "no transform axis in this run's queries")


def open_set(run: RunData, args: dict[str, str]) -> str:
    """The report's open-set table: each method at its operating point, TPR at each calibrated
    false-positive target with the threshold and the test FPR."""
    return _report_cells_table(run, open_set_cells, "no absent queries in this run's query set")


RENDERERS: dict[str, Callable[[RunData, dict[str, str]], str]] = {
    "budget": budget_table, "snr": snr_table, "paired": paired, "speedup": speedups, "e2e": end_to_end,
    "e2e-snr": end_to_end_snr, "ablation": ablation, "ablation-factorial": factorial, "balance": balance,
    "speedup-decided": decided, "ranking": ranking, "robustness": robustness, "open-set": open_set, "ann": ann,
    "decided-recall": decided_recall,
}
KINDS = (*RENDERERS, *SCALE_RENDERERS)


def _valid(value: str, expected: str) -> bool:
    """Whether an option's text is of the ``expected`` type (one of the OPTIONS types)."""
    parts = value.split(",") if expected in (NAMES, INTEGERS) else [value]
    if expected in (NAME, NAMES):
        return all(re.fullmatch(r"[\w.+-]+", p) for p in parts)
    try:
        numbers = [float(p) if expected == NUMBER else int(p) for p in parts]
    except ValueError:
        return False
    return all(math.isfinite(x) and x > 0 for x in numbers)


def parse_options(kind: str, text: str, where: str) -> dict[str, str]:
    """A marker's ``key=value`` options, checked against the kind's OPTIONS (``run`` always needed)."""
    allowed = {"run": "PATH", **OPTIONS[kind]}
    args: dict[str, str] = {}
    for key, value in (a.split("=", 1) for a in text.split()):
        if key not in allowed:
            raise ValueError(f"{where}: unknown option {key!r}; allowed: {', '.join(allowed)}")
        if key in args:
            raise ValueError(f"{where}: option {key} given twice")
        if key != "run" and not _valid(value, allowed[key]):
            raise ValueError(f"{where}: option {key}={value}: expected {allowed[key]}")
        args[key] = value
    missing = [k for k in ("run", *REQUIRED.get(kind, ())) if k not in args]
    if missing:
        raise ValueError(f"{where}: needs " + ", ".join("run=PATH (a committed run folder)" if k == "run" else
                                                        f"{k}=... ({allowed[k]})" for k in missing))
    return args


def _marker_error(text: str, where: str) -> ValueError:
    """What is wrong with a line that looks like a marker but does not parse: the exact form when
    only spacing, case or the keyword's spelling differ, else the form expected."""
    loose = LOOSE.match(text)
    if text.endswith("-->"):
        keyword = "/bench-table" if loose["slash"] else "bench-table"
        canonical = "<!-- " + " ".join([keyword, *text[loose.end():-3].split()]) + " -->"
        if canonical == END or MARKER.match(canonical):
            return ValueError(f"{where}: near-miss marker; write it as {canonical!r} (one space between words, lower "
                              f"case), or the table is not checked; found {text!r}")
    if loose["slash"]:
        return ValueError(f"{where}: malformed closing marker {text!r}; expected {END!r}")
    return ValueError(f"{where}: malformed marker {text!r}; expected {FORM}")


def find_blocks(lines: list[str], source: str) -> list[Block]:
    """Every marked table in ``lines``; a line that looks like a marker but does not parse is an
    error naming the file, the line and what is wrong."""
    blocks, opened = [], None
    for i, line in enumerate(lines):
        text = line.strip()
        if not LOOSE.match(text):
            continue
        where = f"{source}:{i + 1}"
        if text == END:
            if opened is None:
                raise ValueError(f"{where}: {END} closes no table (no marker before it)")
            start, kind, args = opened
            blocks.append(Block(kind, args, start, i, "\n".join(lines[start + 1:i]).strip("\n"), source))
            opened = None
            continue
        m = MARKER.match(text)
        if m is None:
            raise _marker_error(text, where)
        if opened is not None:
            raise ValueError(f"{source}:{opened[0] + 1}: no closing {END} after this marker before the next one "
                             f"(line {i + 1})")
        if m["kind"] not in KINDS:
            raise ValueError(f"{where}: unknown table kind {m['kind']!r}; allowed: {', '.join(KINDS)}")
        opened = (i, m["kind"], parse_options(m["kind"], m["args"], f"{where}: bench-table {m['kind']}"))
    if opened is not None:
        raise ValueError(f"{source}:{opened[0] + 1}: no closing {END} after this marker")
    return blocks


def render_block(block: Block, root: Path, runs: dict[Path, RunData | ScaleRun]) -> str:
    """The table a block should hold, from its run folder (``run=`` is relative to ``root``); errors
    name the file, the marker's line and its kind."""
    try:
        return _render(block, root, runs)
    except ValueError as exc:
        raise ValueError(f"{block.source}:{block.start + 1}: bench-table {block.kind}: {exc}") from None


def _render(block: Block, root: Path, runs: dict[Path, RunData | ScaleRun]) -> str:
    path = (root / block.args["run"]).resolve()
    if path not in runs:
        runs[path] = load_scale_run(path) if block.kind in SCALE_RENDERERS else load_run(path)
    run = runs[path]
    if block.kind in SCALE_RENDERERS:
        if not isinstance(run, ScaleRun):
            raise ValueError(f"{block.args['run']} is not a scaling run")
        return SCALE_RENDERERS[block.kind](run, block.args)
    if not isinstance(run, RunData) or run.info.get("kind") == "scale":
        raise ValueError(f"{block.args['run']} is a scaling run; its tables are the scale-* kinds")
    return RENDERERS[block.kind](run, block.args)


def documents(root: Path | str) -> list[Path]:
    """The documents ``bench readme`` checks by default under the repository ``root``: README.md,
    then every Markdown file of docs/ (those without markers check trivially)."""
    root = Path(root)
    if not (root / "README.md").is_file():
        raise FileNotFoundError(f"{root}: no README.md here; run bench readme from the repository root, or name "
                                f"the files")
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def check_tables(markdown: Path | str) -> list[str]:
    """A unified diff for every marked table of ``markdown`` that differs from its run's results
    (an empty list when all agree)."""
    markdown = Path(markdown)
    lines = markdown.read_text().splitlines()
    runs: dict[Path, RunData | ScaleRun] = {}
    problems = []
    for block in find_blocks(lines, str(markdown)):
        want = render_block(block, markdown.parent, runs)
        if want != block.text:
            diff = difflib.unified_diff(block.text.splitlines(), want.splitlines(), "README now", "from the results",
                                        lineterm="", n=0)
            problems.append(f"{markdown}: {block.where} differs from {block.args['run']}:\n" + "\n".join(diff))
    return problems


def write_tables(markdown: Path | str) -> int:
    """Rewrite every marked table of ``markdown`` from its run; returns how many changed."""
    markdown = Path(markdown)
    lines = markdown.read_text().splitlines()
    runs: dict[Path, RunData | ScaleRun] = {}
    changed = 0
    for block in reversed(find_blocks(lines, str(markdown))):
        want = render_block(block, markdown.parent, runs)
        if want != block.text:
            lines[block.start + 1:block.end] = want.splitlines()
            changed += 1
    markdown.write_text("\n".join(lines) + "\n")
    return changed

