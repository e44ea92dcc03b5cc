"""A comparison report of several runs (two encoders, two commits, two corpora, ...).

Run A (the first given) is the baseline: every other run's numbers carry their difference from A,
highlighted when it matters: hit rates when |delta| >= 1 point, costs when they differ by >= 10 %,
run facts (commit, encoder, query set, ...) whenever they differ.
"""
from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench import __version__
from bench.run.store import now
from datasets.cache import stable_hash

from . import figures
from .data import RunData
from .render import Bullets, Cell, Document, FigureBlock, Heading, Para, Pre, Table, num, pct, write_document
from .run_report import ReportFiles, environment_text
from .tables import (
    balance_table,
    budget_operating_points,
    condition_rates,
    latency_budget,
    method_sort_key,
    params_text,
    reverb_sort_key,
    snr_sort_key,
    speedup_table,
)

STEM = "report"
FIGURES = "figures"
HIT_POINTS = 1.0      # highlight hit-rate differences of at least this many percentage points
COST_RATIO = 0.10     # highlight cost differences of at least this fraction
NOT_HIGHLIGHTED = ("run id", "folder", "finished", "latency budget")  # differ between any two runs


def comparison_dir(run_dirs: Sequence[Path | str], parent: Path | str = "reports") -> Path:
    """Default output folder: ``reports/compare-<hash of the run folders' absolute paths, in order>``."""
    return Path(parent) / f"compare-{stable_hash([str(Path(p).resolve()) for p in run_dirs], n=10)}"


def run_tags(runs: Sequence[RunData]) -> list[str]:
    """Short names of the runs: A, B, C, ... (AA, AB, ... past Z)."""
    letters = string.ascii_uppercase
    return [letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26] for i in range(len(runs))]


def hit_delta(value: float, base: float) -> Cell:
    """Difference of two 0..1 rates in points, marked when at least ``HIT_POINTS``."""
    if any(v is None or math.isnan(v) for v in (value, base)):
        return Cell("-")
    d = round(100 * (value - base), 1) + 0.0  # no '-0.0'
    mark = "better" if d >= HIT_POINTS else "worse" if d <= -HIT_POINTS else ""
    return Cell(f"{d:+.1f}", mark)


def cost_ratio(value: float, base: float) -> Cell:
    """Ratio of two costs (lower is better), marked when they differ by at least ``COST_RATIO``."""
    if not (math.isfinite(value) and math.isfinite(base)) or base <= 0:
        return Cell("-")
    r = value / base
    mark = "better" if r <= 1 - COST_RATIO else "worse" if r >= 1 + COST_RATIO else ""
    return Cell(f"{r:.2f}×", mark)


def _run_facts(run: RunData, budget_text: str) -> dict[str, str]:
    info = run.info
    env, git = info.get("environment", {}) or {}, (info.get("environment", {}) or {}).get("git", {}) or {}
    enc, qs, corpus, db = (info.get(k, {}) or {} for k in ("encoder", "queryset", "corpus", "db"))
    libs = env.get("libraries", {}) or {}
    return {
        "run id": run.run_id,
        "folder": str(run.root),
        "corpus": f"{corpus.get('name')} ({str(corpus.get('identity_hash'))[:12]})",
        "database": f"{db.get('segments')} segments, {db.get('tracks')} tracks",
        "encoder": f"{enc.get('name')} ({str(enc.get('sha256'))[:12]})",
        "query set": f"{str(qs.get('content_hash'))[:12]}, {qs.get('queries')} queries",
        "git commit": f"{str(git.get('commit'))[:12]}{' (dirty)' if git.get('dirty') else ''}",
        "methods": ", ".join(run.methods),
        "threads": str(info.get("threads")),
        "cpu": f"{env.get('cpu')} ({env.get('cpu_count')})",
        "torch / faiss-cpu": f"{libs.get('torch')} / {libs.get('faiss-cpu')}",
        "finished": str(info.get("finished", "-")),
        "latency budget": budget_text,
    }


def runs_table(runs: Sequence[RunData], tags: list[str], budgets: list[str]) -> Table:
    """What each run is; facts that differ from run A are highlighted."""
    facts = [_run_facts(r, b) for r, b in zip(runs, budgets)]
    rows = []
    for key in facts[0]:
        base = facts[0][key]
        rows.append([key] + [Cell(f[key], "differs" if i and f[key] != base and key not in NOT_HIGHLIGHTED else "")
                             for i, f in enumerate(facts)])
    return Table(["", *(f"run {t}" for t in tags)], rows,
                 "The runs compared (A is the baseline); highlighted: what they were made from differs from A.",
                 text_columns=len(tags) + 1)


def operating_points_table(all_ops: list[pd.DataFrame], tags: list[str], methods: list[str]) -> Table:
    """Each method's operating point in each run, with its difference from run A."""
    rows = []
    for method in methods:
        base = all_ops[0][all_ops[0]["method"] == method]
        for tag, ops in zip(tags, all_ops):
            op = ops[ops["method"] == method]
            if op.empty:
                rows.append([method, tag, "not run"] + ["-"] * 10)
                continue
            o = op.iloc[0]
            if tag == tags[0] or base.empty:
                deltas = [Cell(""), Cell(""), Cell(""), Cell("")]
            else:
                b = base.iloc[0]
                deltas = [hit_delta(o["exact"], b["exact"]), hit_delta(o["near"], b["near"]),
                          cost_ratio(o["latency_mean_ms"], b["latency_mean_ms"]),
                          cost_ratio(o["candidates_mean"], b["candidates_mean"])]
            rows.append([method, tag, params_text(o["build_params"]), params_text(o["query_params"]),
                         "yes" if o["within_budget"] else "no", pct(o["exact"]), deltas[0], pct(o["near"]), deltas[1],
                         num(o["latency_mean_ms"], ".3f"), deltas[2], num(o["candidates_mean"], ".1f"), deltas[3]])
    return Table(["method", "run", "build", "query", "within budget", "exact %", "Δ exact pts", "near %",
                  "Δ near pts", "mean latency ms", "latency / A", "candidates", "candidates / A"], rows,
                 f"Each method's operating point per run (highest exact hit rate within that run's latency budget). "
                 f"Differences from run A highlighted: hit rates at |Δ| ≥ {HIT_POINTS:g} point, costs at ≥ "
                 f"{100 * COST_RATIO:g} % (green better, red worse).", text_columns=5)


def condition_compare_table(runs: Sequence[RunData], all_ops: list[pd.DataFrame], tags: list[str],
                            by: list[str], caption: str) -> Table:
    """Exact hit rate per method and condition in each run, with each run's difference from A."""
    rates = [condition_rates(r.results, o, by).set_index(["method", *by]) for r, o in zip(runs, all_ops)]
    keys = sorted({k for r in rates for k in r.index},
                  key=lambda k: (method_sort_key(k[0]), *[_cond_key(b, v) for b, v in zip(by, k[1:])]))
    names = {"duration_s": "duration s", "snr": "SNR dB", "reverb": "reverb (RT60 s)"}
    columns = ["method", *(names[b] for b in by)]
    for i, tag in enumerate(tags):
        columns += [f"{tag} exact %"] + ([f"Δ {tag}−A pts"] if i else [])
    rows = []
    for key in keys:
        row: list = [key[0], *(f"{v:g}" if isinstance(v, float) else str(v) for v in key[1:])]
        base = rates[0]["exact"].get(key, float("nan"))
        for i, r in enumerate(rates):
            value = r["exact"].get(key, float("nan"))
            row.append(pct(value))
            if i:
                row.append(hit_delta(value, base))
        rows.append(row)
    return Table(columns, rows, caption, text_columns=1 + len(by))


def _cond_key(column: str, value: object) -> object:
    return {"snr": snr_sort_key, "reverb": reverb_sort_key}.get(column, lambda v: v)(value)


def speedup_compare_table(runs: Sequence[RunData], tags: list[str]) -> Table | None:
    """FlowHash's speedups (latency and candidates, with the matched hit rate) side by side."""
    tables = [speedup_table(r.points).set_index("other") for r in runs]
    others = sorted({o for t in tables for o in t.index}, key=method_sort_key)
    if not others:
        return None
    columns = ["over"]
    for tag in tags:
        columns += [f"{tag} latency ×", f"{tag} candidates ×", f"{tag} @ exact %"]
    rows = []
    for other in others:
        row: list = [other]
        for t in tables:
            if other in t.index:
                s = t.loc[other]
                row += [num(s["lat_speedup"], ".2f"), num(s["cand_speedup"], ".2f"), pct(s["lat_hit_rate"])]
            else:
                row += ["-", "-", "-"]
        rows.append(row)
    return Table(columns, rows, "Speedup of flowhash at matched top-1 exact hit rate, per run.")


def balance_compare_table(runs: Sequence[RunData], tags: list[str]) -> Table | None:
    """Normalised entropy and expected bucket size over a random hash's, per configuration, per run."""
    tables = [balance_table(r.points).set_index("label") for r in runs]
    labels = sorted({lb for t in tables for lb in t.index})
    if not labels:
        return None
    columns = ["configuration"]
    for tag in tags:
        columns += [f"{tag} H/K", f"{tag} expected/random"]
    rows = [[lb] + [v for t in tables for v in ((num(t.loc[lb, "balance_normalised_entropy"], ".3f"),
                                                 num(t.loc[lb, "balance_expected_vs_random"], ".2f"))
                                                if lb in t.index else ("-", "-"))] for lb in labels]
    return Table(columns, rows, "Bucket balance per configuration and run (hash table 0; IVF lists).")


def build_comparison(runs: Sequence[RunData], out_dir: Path, latency_budget_ms: float | None = None,
                     generated_at: str | None = None) -> tuple[Document, list[Path]]:
    """Draw the overlay figure into ``out_dir``/figures and assemble the comparison document."""
    tags = run_tags(runs)
    budgets = [latency_budget(r.points, latency_budget_ms) for r in runs]
    all_ops = [budget_operating_points(r.points, b) for r, (b, _) in zip(runs, budgets)]
    methods = sorted({m for r in runs for m in r.methods}, key=method_sort_key)
    doc = Document(title=f"FlowHash bench comparison: {' vs '.join(r.run_id for r in runs)}",
                   generated=f"{generated_at or now()} by flowhash-bench {__version__} from the stored results")
    doc.add(Para("Run A is the baseline; every other run is compared with it. Definitions as in each run's report "
                 "(docs/protocol.md, 'Metrics')."),
            runs_table(runs, tags, [t for _, t in budgets]),
            Heading(1, "Operating points"), operating_points_table(all_ops, tags, methods))
    paths = figures.pareto_overlay([(f"run {t}: {r.run_id}", r.points) for t, r in zip(tags, runs)],
                                   out_dir / FIGURES)
    png, svg = (p.relative_to(out_dir).as_posix() for p in paths)
    doc.add(FigureBlock(png, svg, "Pareto fronts (top-1 exact hit rate vs mean latency, left, and vs candidates "
                                  "scanned, right; log axes) of every method in every run: colour = method, line "
                                  "style and marker = run."))
    doc.add(Heading(1, "Hit rate per condition"),
            condition_compare_table(runs, all_ops, tags, ["duration_s", "snr"],
                                    "Top-1 exact hit rate (%) by duration and SNR (reverbs pooled) at each run's "
                                    f"operating points; Δ highlighted at ≥ {HIT_POINTS:g} point."),
            condition_compare_table(runs, all_ops, tags, ["reverb"],
                                    "Top-1 exact hit rate (%) by reverb (durations and SNRs pooled)."))
    for heading, table in (("Speedup of flowhash", speedup_compare_table(runs, tags)),
                           ("Bucket balance", balance_compare_table(runs, tags))):
        if table is not None:
            doc.add(Heading(1, heading), table)
    doc.add(Heading(1, "Environments"))
    for tag, run in zip(tags, runs):
        doc.add(Heading(2, f"Run {tag}: {run.run_id}"), Pre(environment_text(run.info)))
    doc.add(Bullets([f"Rebuild with `python -m bench report {' '.join(str(r.root) for r in runs)}`; nothing is "
                     f"recomputed."]))
    return doc, paths


def write_comparison(runs: Sequence[RunData], out_dir: Path | str, latency_budget_ms: float | None = None,
                     generated_at: str | None = None) -> ReportFiles:
    """Write report.md, report.html and figures/ (the comparison) into ``out_dir``."""
    if len(runs) < 2:
        raise ValueError(f"a comparison needs at least 2 runs, got {len(runs)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc, drawn = build_comparison(runs, out, latency_budget_ms, generated_at)
    md, page = write_document(doc, out, STEM)
    return ReportFiles(markdown=md, html=page, figures=drawn)
